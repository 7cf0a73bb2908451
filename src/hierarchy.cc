// SPDX-License-Identifier: Apache-2.0
//
// Hierarchical mode (see hierarchy.h): a dense reduce-scatter inside the host, the state's
// method on this rank's shard across hosts through an inner state on the cross comm, a
// dense allgather inside the host. Host buffers only.

#include "hierarchy.h"

#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <memory>

#include "checks.h"
#include "comm.h"
#include "dispatch.h"
#include "method.h"
#include "param.h"
#include "state.h"

namespace spccl {

struct HierState {
  std::shared_ptr<Topology> topo;  // keeps the intra and cross comms alive
  spcclState* inner = nullptr;     // the method on [offset, offset + mine) over topo->cross
  size_t shard = 0;                // elements per local rank (the last shard may be shorter)
  size_t offset = 0, mine = 0;     // this rank's shard
  bool padded = false;             // count % localSize != 0: stages go through `pad`
  // One block: shardIn | shardOut | saved residual | pad (localSize * shard, when padded).
  char* buffers = nullptr;
  size_t bufferBytes = 0;
  char *shardIn = nullptr, *shardOut = nullptr, *saved = nullptr, *pad = nullptr;
  // The op of the calls since creation or the last reset: the residual holds host sums
  // (spcclSum) or host means (spcclAvg) of what its shard did not send, so it takes one op.
  int op = -1;

  ~HierState() {
    if (inner) {
      inner->residual = Buffer();  // a slice of the outer state's residual, not the inner's own
      spcclStateDestroy(inner);
    }
    // A timed-out stage may still be written by a late peer: leave its buffers to the process.
    const bool timedOut = topo && (topo->intra->brokenBy.load() == spcclTimeout ||
                                   topo->cross->brokenBy.load() == spcclTimeout);
    if (!timedOut) free(buffers);
  }
};

Topology::~Topology() {
  delete intra;
  delete cross;
}

spcclResult_t resolveHierarchical(spcclConfig_t* c, const spcclComm* comm, const char* api) {
  if (c->hierarchical == SPCCL_CONFIG_UNDEF_INT) {
    long long fromEnv = -1;  // unset: auto
    SPCCLCHECK(envInt("SPCCL_HIERARCHICAL", 0, 1, -1, &fromEnv, api));
    c->hierarchical = (int)fromEnv;
  } else {
    SPCCL_REQUIRE(c->hierarchical == 0 || c->hierarchical == 1, spcclInvalidArgument,
                  "%s : hierarchical %d is not 0 or 1 (leave it unset: on when the comm spans several hosts)", api,
                  c->hierarchical);
  }
  const Topology* t = comm->topology.get();
  const bool spans = t && t->intra && t->hosts > 1 && t->localSize > 1;
  // The inner state's residual is a slice of the outer one (hierarchicalSetup), which has no
  // room for feedback a method keeps after its residual (1-bit's server residual).
  const MethodOps* method = methodOps(c->method);
  const bool extraFeedback = method && method->residualExtra;
  if (c->hierarchical == -1) {  // auto
    c->hierarchical = spans && t->even && !comm->onDevice && !extraFeedback;
    if (spans && !c->hierarchical)
      INFO(kSubsysInit, "%s : flat, not hierarchical: %s", api,
           comm->onDevice   ? "device buffers"
           : extraFeedback ? "the method keeps feedback beyond its residual"
                           : "hosts have different numbers of ranks");
    return spcclSuccess;
  }
  if (c->hierarchical == 0) return spcclSuccess;
  SPCCL_REQUIRE(!extraFeedback, spcclInvalidUsage,
                "%s : method %s keeps feedback beyond its residual (a server residual), which hierarchical mode "
                "cannot shard; set hierarchical 0",
                api, method->name);
  SPCCL_REQUIRE(!comm->onDevice, spcclInvalidUsage,
                "%s : hierarchical mode runs on host buffers only (this comm has device buffers); set hierarchical 0",
                api);
  SPCCL_REQUIRE(t && t->intra && t->cross, spcclInvalidUsage,
                "%s : hierarchical mode needs an MPI comm (its hosts are found with MPI_Comm_split_type)", api);
  SPCCL_REQUIRE(t->even, spcclInvalidUsage,
                "%s : hierarchical mode needs the same number of ranks on every host (this host has %d); set "
                "hierarchical 0 for uneven hosts",
                api, t->localSize);
  return spcclSuccess;
}

spcclResult_t hierarchicalSetup(spcclState* st, const char* api) {
  auto h = std::make_shared<HierState>();
  h->topo = st->comm->topology;
  const Topology& t = *h->topo;
  const size_t n = st->count, L = (size_t)t.localSize, elem = st->elemSize;
  h->shard = (n + L - 1) / L;
  h->offset = std::min(n, (size_t)t.localRank * h->shard);
  h->mine = std::min(h->shard, n - h->offset);
  h->padded = n % L != 0;
  const size_t shardBytes = h->shard * elem;
  h->bufferBytes = 3 * shardBytes + (h->padded ? L * shardBytes : 0);
  h->buffers = h->bufferBytes ? static_cast<char*>(calloc(1, h->bufferBytes)) : nullptr;
  SPCCL_REQUIRE(h->buffers || !h->bufferBytes, spcclSystemError, "%s : failed to allocate %zu bytes of host memory", api, h->bufferBytes);
  h->shardIn = h->buffers;
  h->shardOut = h->shardIn + shardBytes;
  h->saved = h->shardOut + shardBytes;
  h->pad = h->padded ? h->saved + shardBytes : nullptr;
  if (h->mine > 0) {
    // The method, flat, on this rank's shard across hosts; no double-buffered residual.
    spcclConfig_t inner = st->config;
    inner.hierarchical = 0;
    inner.pipeline = 0;
    SPCCLCHECK(spcclStateCreate(&h->inner, t.cross, &inner, h->mine, st->datatype));
    // The inner residual is this shard's slice of the state's residual, so the state keeps
    // one count-element residual (spcclStateGetResidual) and conservation holds per shard.
    free(h->inner->residual.ptr);
    h->inner->residual.ptr = static_cast<char*>(st->residual.ptr) + h->offset * elem;
  }
  INFO(kSubsysInit, "%s : hierarchical %s: local rank %d of %d owns [%zu, %zu) across %d hosts", api,
       st->method->name, t.localRank, t.localSize, h->offset, h->offset + h->mine, t.hosts);
  st->hier = std::move(h);
  return spcclSuccess;
}

namespace {

// Stage 2: the method on this rank's shard; on failure the shard's residual is restored.
spcclResult_t crossHosts(const spcclInfo& info, HierState& h) {
  if (h.mine == 0) return spcclSuccess;
  spcclState& inner = *h.inner;
  const size_t bytes = h.mine * inner.elemSize;
  memcpy(h.saved, inner.residual.ptr, bytes);
  inner.step = info.state->step;  // follows the outer step (spcclStateReset included)
  spcclInfo shard = info;
  shard.sendbuff = h.shardIn;
  shard.recvbuff = h.shardOut;
  shard.count = h.mine;
  // Avg: the host means averaged over the hosts, which is the mean over every rank (hosts are
  // even); each stage divides before its one rounding, so no half-type sum overflows.
  shard.state = &inner;
  shard.comm = h.topo->cross;
  const spcclResult_t res = inner.method->sparseAllReduce(shard);
  if (res != spcclSuccess) memcpy(inner.residual.ptr, h.saved, bytes);
  return res;
}

}  // namespace

spcclResult_t hierarchicalAllReduce(const spcclInfo& info) {
  HierState& h = *info.state->hier;
  SPCCL_REQUIRE(h.op == -1 || h.op == info.op, spcclInvalidUsage,
                "%s : op %s on a hierarchical state whose residual holds host %s of earlier calls; one state takes "
                "one op (spcclStateReset lets it change)",
                info.opName, opName(info.op), h.op == spcclAvg ? "means" : "sums");
  Transport& intra = *h.topo->intra->transport;
  const size_t n = info.count, elem = info.state->elemSize, L = (size_t)h.topo->localSize;
  const void* send = info.sendbuff;
  if (h.padded) {  // equal shards for the block collectives: zeros past the end
    memcpy(h.pad, send, n * elem);
    memset(h.pad + n * elem, 0, (L * h.shard - n) * elem);
    send = h.pad;
  }
  // Stage 1 averages over the host for Avg (fp16/bf16 summed in fp32 and divided before the
  // one rounding, as every host-path average), so a host mean that fits never overflows.
  SPCCLCHECK(intra.reduceScatter(send, h.shardIn, h.shard, info.datatype, info.op, nullptr));
  SPCCLCHECK(crossHosts(info, h));
  void* gathered = h.padded ? h.pad : info.recvbuff;
  const spcclResult_t res = intra.allGather(h.shardOut, gathered, h.shard * elem, nullptr);
  if (res != spcclSuccess) {
    if (h.mine > 0) memcpy(h.inner->residual.ptr, h.saved, h.mine * elem);  // the call failed: undo stage 2
    return res;
  }
  if (h.padded) memcpy(info.recvbuff, h.pad, n * elem);
  h.op = info.op;
  return spcclSuccess;
}

void hierarchicalReset(const spcclState& st) { st.hier->op = -1; }

void hierarchicalDescribe(const spcclState& st, spcclStateInfo_t* info) {
  // The method runs on this rank's shard in the inner state, across hosts; the reduce-scatter
  // and the allgather inside the host are rings of L - 1 steps over the padded shards.
  const HierState& h = *st.hier;
  const int L = h.topo->localSize;
  if (h.inner) describeFlat(*h.inner, info);
  info->wireInterHostBytes = h.inner ? info->wireBytes : 0;
  info->wireIntraHostBytes = saturatingMul(2 * (size_t)(L - 1), saturatingMul(h.shard, st.elemSize));
  info->wireBytes = saturatingAdd(info->wireIntraHostBytes, info->wireInterHostBytes);
  info->rounds = (h.inner ? info->rounds : 0) + 2 * (size_t)(L - 1);
}

size_t hierarchicalFootprint(const spcclState& st) {
  if (!st.hier) return 0;
  size_t inner = 0;
  if (st.hier->inner) {
    spcclStateGetMemoryFootprint(st.hier->inner, &inner);
    inner -= st.hier->inner->residual.bytes;  // a slice of the outer residual, counted there
  }
  return st.hier->bufferBytes + inner;
}

}  // namespace spccl
