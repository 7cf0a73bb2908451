// SPDX-License-Identifier: Apache-2.0
//
// PtrCheck, CommCheck, StateCheck, ArgsCheck and ConfigCheck: everything a call is checked
// against before it touches a buffer or a peer.

#include "argcheck.h"

#include "hierarchy.h"

#include <math.h>
#include <stdlib.h>
#include <limits.h>

#include "checks.h"
#include "device.h"
#include "hierarchy.h"
#include "method.h"
#include "param.h"

namespace spccl {

spcclResult_t ptrCheck(const void* ptr, const char* api, const char* what) {
  SPCCL_REQUIRE(ptr != nullptr, spcclInvalidArgument, "%s : %s argument is NULL", api, what);
  return spcclSuccess;
}

spcclResult_t commCheck(const spcclComm* comm, const char* api) {
  SPCCLCHECK(ptrCheck(comm, api, "comm"));
  SPCCL_REQUIRE(comm->startMagic == kCommMagic && comm->endMagic == kCommMagic, spcclInvalidArgument,
                "%s : comm %p is not a live spccl communicator", api, (const void*)comm);
  return spcclSuccess;
}

spcclResult_t commUsableCheck(const spcclComm* comm, const char* api) {
  SPCCLCHECK(commCheck(comm, api));
  const int broken = comm->brokenBy.load();
  SPCCL_REQUIRE(broken == spcclSuccess, spcclInvalidUsage,
                "%s : comm %p is broken by an earlier error (%s); abort or destroy it", api, (const void*)comm,
                spcclGetErrorString((spcclResult_t)broken));
  const char* why = comm->transport ? comm->transport->unusable() : nullptr;
  SPCCL_REQUIRE(!why, spcclInvalidUsage, "%s : comm %p cannot communicate: %s", api, (const void*)comm, why);
  return spcclSuccess;
}

spcclResult_t stateCheck(const spcclState* state, const char* api) {
  SPCCLCHECK(ptrCheck(state, api, "state"));
  SPCCL_REQUIRE(state->startMagic == kStateMagic && state->endMagic == kStateMagic, spcclInvalidArgument,
                "%s : state %p is not a live spccl state", api, (const void*)state);
  return spcclSuccess;
}

// A hierarchical state on shards compresses host sums of shards inside its collective: there is
// no one-rank compressed form of the whole tensor to hand out. (On values it compresses as flat.)
spcclResult_t flatStateCheck(const spcclState* state, const char* api) {
  SPCCL_REQUIRE(!hierarchicalOnShards(*state), spcclInvalidUsage,
                "%s : the state is hierarchical (it compresses per-host shards inside spcclSparseAllReduce); create "
                "it with config.hierarchical = 0 for stand-alone compression",
                api);
  return spcclSuccess;
}

spcclResult_t dataTypeCheck(int datatype, const char* api) {
  SPCCL_REQUIRE(dataTypeSize((spcclDataType_t)datatype) != 0, spcclInvalidArgument,
                "%s : invalid datatype %d (supported: spcclFloat16 6, spcclFloat32 7, spcclFloat64 8, "
                "spcclBfloat16 9)",
                api, datatype);
  return spcclSuccess;
}

spcclResult_t opCheck(int op, const char* api) {
  SPCCL_REQUIRE(op == spcclSum || op == spcclAvg, spcclInvalidArgument,
                "%s : invalid reduction op %d (supported: spcclSum 0, spcclAvg 4)", api, op);
  return spcclSuccess;
}

// On a device comm a host pointer would make the kernels (or NCCL) fault long after the call
// returned: reject it here, with the reason. Host comms skip the query, which would create a
// CUDA context in processes that never use the GPU.
spcclResult_t memoryCheck(const spcclComm* comm, const void* ptr, const char* api, const char* what) {
  if (!comm->onDevice) return spcclSuccess;
  int isDevice = 0;
  SPCCLCHECK(device::pointerIsDevice(ptr, &isDevice));
  SPCCL_REQUIRE(isDevice, spcclInvalidArgument,
                "%s : %s %p is host memory, but comm %p takes device buffers (transport %s)", api, what, ptr,
                (const void*)comm, comm->transport->name());
  return spcclSuccess;
}

spcclResult_t alignCheck(const void* ptr, size_t elemSize, const char* api, const char* what) {
  SPCCL_REQUIRE((uintptr_t)ptr % elemSize == 0, spcclInvalidArgument,
                "%s : %s %p is not aligned to its %zu-byte elements", api, what, ptr, elemSize);
  return spcclSuccess;
}

namespace {

bool overlap(const void* a, size_t aBytes, const void* b, size_t bBytes) {
  const uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
  return aBytes && bBytes && x < y + bBytes && y < x + aBytes;
}

size_t bytesOf(size_t n, size_t elem) { return n > SIZE_MAX / elem ? SIZE_MAX : n * elem; }

// What an entry point reads and writes: send, recv (and the others) with the in-place
// position the collective allows, if any.
spcclResult_t collectiveOverlapCheck(const spcclInfo& info) {
  const size_t elem = dataTypeSize(info.datatype), P = (size_t)info.comm->nranks, bytes = info.count * elem;
  const size_t rank = (size_t)info.comm->rank;
  size_t sendBytes = bytes, recvBytes = bytes;
  ptrdiff_t inPlace = 0;  // sendbuff - recvbuff of the one overlap allowed
  if (info.func == spcclFuncAllGather) {
    recvBytes = P * bytes;
    inPlace = (ptrdiff_t)(rank * bytes);
  } else if (info.func == spcclFuncReduceScatter) {
    sendBytes = P * bytes;
    // NCCL's in place is recvbuff = sendbuff + rank * recvcount; MPI's is the same pointer.
    inPlace = info.comm->transport->deviceBuffers() ? -(ptrdiff_t)(rank * bytes) : 0;
  }
  const CallBuffer buffers[] = {{"sendbuff", info.sendbuff, sendBytes, false},
                                {"recvbuff", info.recvbuff, recvBytes, true}};
  return overlapCheck(info.opName, info.state, buffers, 2, inPlace);
}

}  // namespace

spcclResult_t overlapCheck(const char* api, const spcclState* st, const CallBuffer* buffers, size_t n,
                           ptrdiff_t inPlace) {
  for (size_t i = 0; i < n; ++i) {
    const CallBuffer& a = buffers[i];
    for (size_t j = i + 1; j < n; ++j) {
      const CallBuffer& b = buffers[j];
      if (!(a.written || b.written) || !overlap(a.ptr, a.bytes, b.ptr, b.bytes)) continue;
      if (i == 0 && j == 1 && inPlace != kNoInPlace) {
        if ((const char*)a.ptr - (const char*)b.ptr == inPlace) continue;  // exactly in place
        if (inPlace == 0)
          WARN("%s : %s %p and %s %p overlap without being equal (in place means the same pointer)", api, a.name,
               a.ptr, b.name, b.ptr);
        else
          WARN("%s : %s %p and %s %p overlap without being in place (%s at %s + %td bytes)", api, a.name, a.ptr,
               b.name, b.ptr, a.name, b.name, inPlace);
        return spcclInvalidArgument;
      }
      WARN("%s : %s %p and %s %p overlap (the call writes one while it reads the other)", api, a.name, a.ptr, b.name,
           b.ptr);
      return spcclInvalidArgument;
    }
  }
  if (!st) return spcclSuccess;
  // The kernels read and write the state's own memory during the call: no buffer may lie in it.
  const Buffer* owned[] = {&st->residual, &st->residualNext, &st->workspace, &st->staging};
  for (size_t i = 0; i < n; ++i)
    for (const Buffer* b : owned)
      SPCCL_REQUIRE(!overlap(buffers[i].ptr, buffers[i].bytes, b->ptr, b->bytes), spcclInvalidArgument,
                    "%s : %s %p lies in the state's own memory (its residual or workspace)", api, buffers[i].name,
                    buffers[i].ptr);
  return spcclSuccess;
}

spcclResult_t compressOverlapCheck(const spcclState& st, const void* sendbuff, const void* values,
                                   const uint32_t* indices) {
  const size_t cap = st.method->compressedCount(st);
  const CallBuffer buffers[] = {{"sendbuff", sendbuff, st.count * st.elemSize, false},
                                {"values", values, cap * st.elemSize, true},
                                {"indices", indices, indices ? cap * sizeof(uint32_t) : 0, true}};
  return overlapCheck("spcclCompress", &st, buffers, 3, kNoInPlace);
}

spcclResult_t decompressOverlapCheck(const spcclState& st, const void* values, const uint32_t* indices,
                                     size_t nvalues, const void* recvbuff) {
  const CallBuffer buffers[] = {{"values", values, bytesOf(nvalues, st.elemSize), false},
                                {"recvbuff", recvbuff, st.count * st.elemSize, true},
                                {"indices", indices, indices ? bytesOf(nvalues, sizeof(uint32_t)) : 0, false}};
  return overlapCheck("spcclDecompress", &st, buffers, 3, kNoInPlace);
}

spcclResult_t argsCheck(const spcclInfo& info) {
  SPCCLCHECK(commUsableCheck(info.comm, info.opName));
  SPCCL_REQUIRE(!info.comm->compressOnly, spcclInvalidUsage,
                "%s : comm %p is compress-only (spcclCommInitLocal) and cannot communicate; use spcclCompress and "
                "spcclDecompress and move the payload yourself",
                info.opName, (const void*)info.comm);
  SPCCLCHECK(dataTypeCheck(info.datatype, info.opName));
  SPCCLCHECK(opCheck(info.op, info.opName));
  if (info.state) {
    const spcclState* st = info.state;
    SPCCLCHECK(stateCheck(st, info.opName));
    SPCCL_REQUIRE(st->comm == info.comm, spcclInvalidUsage,
                  "%s : state %p was created on comm %p, not on comm %p", info.opName, (const void*)st,
                  (const void*)st->comm, (const void*)info.comm);
  }
  if (info.count == 0) return spcclSuccess;  // a no-op: buffers may be NULL
  if (info.state) {
    const spcclState* st = info.state;
    SPCCL_REQUIRE(st->count == info.count, spcclInvalidUsage,
                  "%s : count %zu differs from the state's count %zu", info.opName, info.count, st->count);
    SPCCL_REQUIRE(st->datatype == info.datatype, spcclInvalidUsage,
                  "%s : datatype %s differs from the state's datatype %s", info.opName,
                  dataTypeName(info.datatype), dataTypeName(st->datatype));
  }
  SPCCLCHECK(ptrCheck(info.sendbuff, info.opName, "sendbuff"));
  SPCCLCHECK(ptrCheck(info.recvbuff, info.opName, "recvbuff"));
  SPCCLCHECK(alignCheck(info.sendbuff, dataTypeSize(info.datatype), info.opName, "sendbuff"));
  SPCCLCHECK(alignCheck(info.recvbuff, dataTypeSize(info.datatype), info.opName, "recvbuff"));
  SPCCLCHECK(memoryCheck(info.comm, info.sendbuff, info.opName, "sendbuff"));
  if (info.recvbuff != info.sendbuff) SPCCLCHECK(memoryCheck(info.comm, info.recvbuff, info.opName, "recvbuff"));
  size_t elem = dataTypeSize(info.datatype);
  SPCCL_REQUIRE(info.count <= SIZE_MAX / elem / (size_t)info.comm->nranks, spcclInvalidArgument,
                "%s : count %zu is too large (the byte size overflows)", info.opName, info.count);
  return collectiveOverlapCheck(info);
}

spcclResult_t commEnvResolve(CommEnv* env, const char* api) {
  SPCCLCHECK(debugEnvCheck(api));
  SPCCLCHECK(envInt("SPCCL_TIMEOUT_MS", 0, INT_MAX, 0, &env->timeoutMs, api));
  SPCCLCHECK(envBool("SPCCL_CHECK", false, &env->checkCalls, api));
  return spcclSuccess;
}

spcclResult_t configResolve(const spcclConfig_t* in, spcclConfig_t* out, const char* api) {
  SPCCLCHECK(ptrCheck(in, api, "config"));
  SPCCL_REQUIRE(in->size == sizeof(spcclConfig_t) && in->magic == SPCCL_CONFIG_MAGIC, spcclInvalidArgument,
                "%s : config was not initialised with SPCCL_CONFIG_INITIALIZER (size %zu, magic 0x%x)", api, in->size,
                in->magic);
  SPCCL_REQUIRE(in->version <= SPCCL_VERSION_CODE, spcclInvalidArgument,
                "%s : config version %u is newer than this library's %d", api, in->version, SPCCL_VERSION_CODE);
  static const char* const kPatterns[] = {"contiguous", "scattered"};
  static const char* const kFeedbacks[] = {"none", "ef"};
  spcclConfig_t c = *in;
  // Only fields left unset read their variable, so a bad variable fails the calls it steers.
  if (c.method == SPCCL_CONFIG_UNDEF_INT)
    SPCCLCHECK(envChoice("SPCCL_METHOD", methodNames(), spcclNumMethods, spcclMethodRandomBlock, &c.method, api));
  if (c.blockPattern == SPCCL_CONFIG_UNDEF_INT)
    SPCCLCHECK(envChoice("SPCCL_BLOCK_PATTERN", kPatterns, spcclNumBlockPatterns, spcclBlocksContiguous,
                         &c.blockPattern, api));
  if (c.feedback == SPCCL_CONFIG_UNDEF_INT)
    SPCCLCHECK(envChoice("SPCCL_FEEDBACK", kFeedbacks, spcclNumFeedbacks, spcclFeedbackEF, &c.feedback, api));
  long long number;
  bool flag;
  if (c.blockSize == SPCCL_CONFIG_UNDEF_INT) {
    SPCCLCHECK(envInt("SPCCL_BLOCK_SIZE", 1, INT_MAX, 256, &number, api));
    c.blockSize = (int)number;
  }
  if (c.valueBits == SPCCL_CONFIG_UNDEF_INT) {
    SPCCLCHECK(envInt("SPCCL_VALUE_BITS", 2, 8, 2, &number, api));
    c.valueBits = (int)number;
  }
  if (c.denseSwitch == SPCCL_CONFIG_UNDEF_INT) {
    SPCCLCHECK(envBool("SPCCL_DENSE_SWITCH", true, &flag, api));
    c.denseSwitch = flag;
  }
  if (c.pipeline == SPCCL_CONFIG_UNDEF_INT) {
    SPCCLCHECK(envBool("SPCCL_PIPELINE", false, &flag, api));
    c.pipeline = flag;
  }
  if (c.autoSelect == SPCCL_CONFIG_UNDEF_INT) {
    SPCCLCHECK(envBool("SPCCL_AUTO", false, &flag, api));
    c.autoSelect = flag;
  }
  // ~0 is the "unset" sentinel, so a variable cannot ask for it either.
  if (c.seed == SPCCL_CONFIG_UNDEF_U64)
    SPCCLCHECK(envUint64("SPCCL_SEED", SPCCL_CONFIG_UNDEF_U64 - 1, 0x5bcc1, &c.seed, api));
  if (c.density == SPCCL_CONFIG_UNDEF_DOUBLE) SPCCLCHECK(envReal("SPCCL_DENSITY", 0, 1, true, 1.0 / 64, &c.density, api));
  SPCCL_REQUIRE(c.method >= 0 && c.method < spcclNumMethods, spcclInvalidArgument,
                "%s : invalid method %d (0..%d: %s)", api, c.method, spcclNumMethods - 1, methodNameList());
  SPCCL_REQUIRE(c.density > 0.0 && c.density <= 1.0, spcclInvalidArgument, "%s : density %g is outside (0, 1]", api,
                c.density);
  SPCCL_REQUIRE(c.blockSize >= 1, spcclInvalidArgument, "%s : block size %d is not >= 1", api, c.blockSize);
  SPCCL_REQUIRE(c.blockPattern >= 0 && c.blockPattern < spcclNumBlockPatterns, spcclInvalidArgument,
                "%s : invalid block pattern %d (0 contiguous, 1 scattered)", api, c.blockPattern);
  SPCCL_REQUIRE(c.feedback >= 0 && c.feedback < spcclNumFeedbacks, spcclInvalidArgument,
                "%s : invalid feedback %d (0 none, 1 ef)", api, c.feedback);
  SPCCL_REQUIRE(c.denseSwitch == 0 || c.denseSwitch == 1, spcclInvalidArgument,
                "%s : denseSwitch %d is not 0 or 1", api, c.denseSwitch);
  SPCCL_REQUIRE(c.valueBits >= 2 && c.valueBits <= 8, spcclInvalidArgument, "%s : valueBits %d is outside [2, 8]",
                api, c.valueBits);
  SPCCL_REQUIRE(c.pipeline == 0 || c.pipeline == 1, spcclInvalidArgument, "%s : pipeline %d is not 0 or 1", api,
                c.pipeline);
  SPCCL_REQUIRE(c.autoSelect == 0 || c.autoSelect == 1, spcclInvalidArgument, "%s : autoSelect %d is not 0 or 1",
                api, c.autoSelect);
  *out = c;
  return spcclSuccess;
}

}  // namespace spccl
