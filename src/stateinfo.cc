// SPDX-License-Identifier: Apache-2.0
//
// spcclStateGetInfo: what a state does per call, from its method's table entry (facts and
// describe), the dense switch and the hierarchy. The struct is versioned (size, magic), so a
// later spccl.h can add fields without breaking callers built against this one.

#include <string.h>

#include <algorithm>

#include "argcheck.h"
#include "autoselect.h"
#include "checks.h"
#include "hierarchy.h"
#include "method.h"

namespace spccl {

namespace {

// Of wireBytes, the share a ring in rank order sends across hosts (`hosts` of its P links).
void splitFlatWire(const spcclState& st, spcclStateInfo_t* info) {
  const Topology* t = st.comm->topology.get();
  const int hosts = t ? t->hosts : 1;
  info->wireInterHostBytes =
      hosts > 1 ? saturated((unsigned __int128)info->wireBytes * (unsigned)hosts / (unsigned)st.comm->nranks) : 0;
  info->wireIntraHostBytes = info->wireBytes - info->wireInterHostBytes;
}

// The state's collective runs a dense allreduce of the whole tensor (dense switch, auto).
void describeDense(const spcclState& st, spcclStateInfo_t* info) {
  info->denseSwitched = 1;
  info->wireBytes = denseWireBytes(st);
  info->rounds = ringAllReduceRounds(st.comm->nranks);
  splitFlatWire(st, info);
}

}  // namespace

void describeFlat(const spcclState& st, spcclStateInfo_t* info) {
  st.method->describe(st, info);
  if (info->denseSwitched) return describeDense(st, info);
  info->wireBytes = info->methodWireBytes;
  splitFlatWire(st, info);
}

void describeMethod(const spcclState& st, spcclStateInfo_t* info) {
  info->method = st.config.method;
  info->count = st.count;
  info->denseWireBytes = denseWireBytes(st);
  const MethodFacts& facts = st.method->facts;
  info->payload = facts.payload;
  info->memoryPasses = facts.memoryPasses;
  info->selectPasses = facts.selectPasses;
  if (st.hier) hierarchicalDescribe(st, info);
  else describeFlat(st, info);
}

namespace {

const char* const kPayloadNames[spcclNumPayloads] = {"values", "slots", "rounds"};

// The smallest struct the library fills: the first versioned layout (spccl 0.1 with size).
constexpr size_t kInfoMinSize = sizeof(spcclStateInfo_t);

spcclResult_t infoStructCheck(const spcclStateInfo_t* info, const char* api) {
  SPCCLCHECK(ptrCheck(info, api, "info"));
  SPCCL_REQUIRE(info->magic == SPCCL_STATE_INFO_MAGIC && info->size >= kInfoMinSize, spcclInvalidUsage,
                "%s : info was not initialised with SPCCL_STATE_INFO_INITIALIZER (size %zu, magic 0x%x; a caller "
                "built against an spccl.h whose spcclStateInfo_t had no size field must be rebuilt)",
                api, info->size, info->magic);
  return spcclSuccess;
}

}  // namespace
}  // namespace spccl

using namespace spccl;

extern "C" {

const char* spcclPayloadName(int payload) {
  return payload >= 0 && payload < spcclNumPayloads ? kPayloadNames[payload] : nullptr;
}

spcclResult_t spcclMethodGetPayload(int method, int* payload) {
  const char* api = "spcclMethodGetPayload";
  SPCCLCHECK(ptrCheck(payload, api, "payload"));
  const MethodOps* m = methodOps(method);
  SPCCL_REQUIRE(m != nullptr, spcclInvalidArgument, "%s : %d names no method (%s)", api, method, methodNameList());
  *payload = m->facts.payload;
  return spcclSuccess;
}

spcclResult_t spcclStateGetInfo(spcclState_t state, spcclStateInfo_t* info) {
  const char* api = "spcclStateGetInfo";
  SPCCLCHECK(stateCheck(state, api));
  SPCCLCHECK(infoStructCheck(info, api));
  spcclStateInfo_t out = {};
  SPCCLCHECK(spcclStateGetMemoryFootprint(state, &out.memoryBytes));
  describeMethod(*state, &out);
  if (autoNextRunsDense(*state)) describeDense(*state, &out);
  // The caller's header may be newer (a larger struct: its extra fields stay as they were).
  const size_t header = offsetof(spcclStateInfo_t, method);
  memcpy(reinterpret_cast<char*>(info) + header, reinterpret_cast<const char*>(&out) + header,
         std::min(info->size, sizeof(out)) - header);
  return spcclSuccess;
}

}  // extern "C"
