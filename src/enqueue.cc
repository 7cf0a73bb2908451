// SPDX-License-Identifier: Apache-2.0
//
// The checking funnel every collective goes through, as ncclEnqueueCheck in NCCL.

#include "enqueue.h"

#include <stdio.h>
#include <string.h>

#include <memory>

#include "argcheck.h"
#include "autoselect.h"
#include "checks.h"
#include "device.h"
#include "hierarchy.h"
#include "method.h"
#include "param.h"
#include "staging.h"

namespace spccl {

spcclResult_t InUse::check(const char* api, const char* what, const void* object) const {
  SPCCL_REQUIRE(owned_, spcclInvalidUsage, "%s : %s %p is in use by another thread (calls on one %s must not overlap)",
                api, what, object, what);
  return spcclSuccess;
}

namespace {

// A failure in the transport leaves peers mid-operation: the comm cannot be trusted again.
spcclResult_t breakCommOn(spcclComm* comm, spcclResult_t res) {
  if (res == spcclTimeout || res == spcclSystemError || res == spcclRemoteError || res == spcclUnhandledCudaError) {
    int expected = spcclSuccess;
    comm->brokenBy.compare_exchange_strong(expected, res);
  }
  return res;
}

// What every rank must agree on for a sparse collective (SPCCL_CHECK=1).
struct CallSignature {
  uint64_t count;
  uint64_t step;
  uint64_t seed;
  uint64_t tensorKey;
  double density;
  int32_t datatype, op, method, feedback, blockSize, blockPattern, denseSwitch, valueBits;
  int32_t hierarchical;  // changes every message: in-host stages, then the method on shards
  int32_t autoSelect;    // the calibration adds a collective and switches what later calls send
};

CallSignature signatureOf(const spcclInfo& info) {
  const spcclState& st = *info.state;
  return {info.count, st.step, st.config.seed, st.config.tensorKey, st.config.density, info.datatype, info.op,
       st.config.method, st.config.feedback, st.config.blockSize, st.config.blockPattern, st.config.denseSwitch,
       st.config.valueBits, st.config.hierarchical, st.config.autoSelect};
}

// Names the first field in which `theirs` differs from `mine`, or returns nullptr.
const char* firstDifference(const CallSignature& a, const CallSignature& b, char* text, size_t len) {
#define SPCCL_COMPARE(field, fmt, cast)                                                                \
  if (a.field != b.field) {                                                                            \
    snprintf(text, len, #field " " fmt " against " fmt, (cast)a.field, (cast)b.field);                \
    return text;                                                                                       \
  }
  SPCCL_COMPARE(count, "%llu", unsigned long long)
  SPCCL_COMPARE(datatype, "%d", int)
  SPCCL_COMPARE(op, "%d", int)
  SPCCL_COMPARE(method, "%d", int)
  SPCCL_COMPARE(density, "%g", double)
  SPCCL_COMPARE(blockSize, "%d", int)
  SPCCL_COMPARE(blockPattern, "%d", int)
  SPCCL_COMPARE(feedback, "%d", int)
  SPCCL_COMPARE(denseSwitch, "%d", int)
  SPCCL_COMPARE(valueBits, "%d", int)
  SPCCL_COMPARE(autoSelect, "%d", int)
  SPCCL_COMPARE(hierarchical, "%d", int)
  SPCCL_COMPARE(seed, "%llu", unsigned long long)
  SPCCL_COMPARE(tensorKey, "%llu", unsigned long long)
  SPCCL_COMPARE(step, "%llu", unsigned long long)
#undef SPCCL_COMPARE
  return nullptr;
}

// One tiny allgather of every rank's signature, so ranks that disagree all get
// spcclInvalidUsage with a message instead of a hang, garbage or an MPI failure.
spcclResult_t compareAcrossRanks(const spcclInfo& info, const CallSignature& mine, const char* which) {
  const int P = info.comm->nranks;
  std::unique_ptr<CallSignature[]> all(new CallSignature[P]);
  SPCCLCHECK(info.comm->transport->allGatherHost(&mine, all.get(), sizeof(mine)));
  char text[256];
  for (int r = 1; r < P; ++r) {
    if (const char* diff = firstDifference(all[r], all[0], text, sizeof(text))) {
      WARN("%s : ranks disagree (%s): rank %d has %s on rank 0", info.opName, which, r, diff);
      return spcclInvalidUsage;
    }
  }
  return spcclSuccess;
}

// SPCCL_CHECK=1: every call's signature, step and op included.
spcclResult_t consistencyCheck(const spcclInfo& info) {
  if (!info.comm->checkCalls) return spcclSuccess;
  return compareAcrossRanks(info, signatureOf(info), "SPCCL_CHECK");
}

// Always, once per state: the message sizes of a sparse collective follow from the state
// (method, count, type, density, block size, dense switch, hierarchical), and peers whose states differ
// would hand MPI mismatched collectives, which can corrupt memory inside MPI before any error
// comes back. The state's own fields are compared, not the call's (step and op change). On
// NCCL too: ranks whose k or stride differ would gather lists the scatter cannot use.
spcclResult_t stateAgreementCheck(const spcclInfo& info) {
  spcclState& st = *info.state;
  if (st.agreed) return spcclSuccess;
  CallSignature mine = signatureOf(info);
  mine.count = st.count;
  mine.step = 0;
  mine.op = 0;
  SPCCLCHECK(compareAcrossRanks(info, mine, "their states differ"));
  st.agreed = true;
  return spcclSuccess;
}

}  // namespace

namespace {

spcclResult_t readDeviceStep(spcclState& st) {
  return device::copyNow(st.deviceSync, &st.step, st.deviceStep.ptr, sizeof(st.step));
}

}  // namespace

const DeviceCallOps kDeviceCallOps = {device::streamCapturing, device::advanceStep, device::markWork, readDeviceStep};

spcclResult_t endCall(spcclState& st, spcclResult_t res, spcclStream_t stream, const DeviceCallOps& ops) {
  if (!st.onDevice) {
    if (res == spcclSuccess) st.step++;
    return res;
  }
  if (res != spcclSuccess) {
    (void)ops.markWork(st.deviceSync, stream);  // the first error is the one to report
    return res;
  }
  bool captured = false;
  spcclResult_t end = ops.capturing(stream, &captured);
  if (captured) st.stepOnDeviceOnly = true;
  else st.step++;
  if (end == spcclSuccess) end = ops.advanceStep(static_cast<unsigned long long*>(st.deviceStep.ptr), stream);
  const spcclResult_t marked = ops.markWork(st.deviceSync, stream);
  if (end == spcclSuccess) end = marked;
  if (end != spcclSuccess)
    WARN("state %p : the call's work was enqueued and counted (host step now %llu), but its bookkeeping on the "
         "stream failed; the state's blocking calls may not wait for it",
         (void*)&st, st.step);
  return end;
}

spcclResult_t compressStep(spcclState& st, spcclStream_t stream, const char* api, const DeviceCallOps& ops) {
  if (!st.onDevice) return spcclSuccess;
  bool capturing = false;
  SPCCLCHECK(ops.capturing(stream, &capturing));
  SPCCL_REQUIRE(!capturing, spcclInvalidUsage,
                "%s : the stream is being captured into a CUDA graph; the step a compress returns could not name "
                "the step of each replay (capture spcclSparseAllReduce, or compress eagerly)",
                api);
  return st.stepOnDeviceOnly ? ops.readStep(st) : spcclSuccess;
}

spcclResult_t takePairReport(const spcclState& st, PairReportSlot slot, const char* api) {
  device::BadPairReport* report = badPairReport(st, slot);
  if (!report) return spcclSuccess;
  // Written by the device (index, fence, kind): read in the opposite order.
  const uint32_t kind = __atomic_load_n(&report->kind, __ATOMIC_ACQUIRE);
  if (kind == device::kPairsClean) return spcclSuccess;
  const uint32_t index = __atomic_load_n(&report->index, __ATOMIC_RELAXED);
  __atomic_store_n(&report->kind, (uint32_t)device::kPairsClean, __ATOMIC_RELAXED);
  const char* source = slot == kCollectivePairs
                           ? "a collective on this state (a peer's payload is corrupt, or its state differs)"
                           : "an earlier spcclDecompress on this state (its pair list)";
  if (kind == device::kSlotUndecodable)
    WARN("%s : state %p : %s held a qtopk payload whose chunk %u does not decode (an offset outside the chunk or "
         "out of order, a level outside the range or a value that is not finite); that payload's chunk was dropped",
         api, (void*)&st, source, index);
  else if (kind == device::kPairsUnordered)
    WARN("%s : state %p : %s held a pair list that is not ascending (index %u out of place); pairs outside their "
         "place were dropped",
         api, (void*)&st, source, index);
  else
    WARN("%s : state %p : %s held pair index %u, outside [0, %zu) and not the padding index; those pairs were "
         "dropped",
         api, (void*)&st, source, index, st.count);
  return spcclRemoteError;
}

namespace {

// The state's own collective: its method, flat (hierarchical on values included: its payload's
// allreduce is hierarchical) or on shards.
spcclResult_t runSparse(const spcclInfo& info) {
  return hierarchicalOnShards(*info.state) ? hierarchicalAllReduce(info) : info.state->method->sparseAllReduce(info);
}

}  // namespace

spcclResult_t enqueueSparse(const spcclInfo& info) {
  SPCCLCHECK(argsCheck(info));
  const InUse call(info.comm->busy);
  SPCCLCHECK(call.check(info.opName, "comm", info.comm));
  const InUse stateCall(info.state->busy);
  SPCCLCHECK(stateCall.check(info.opName, "state", info.state));
  // Before the count-0 no-op: a rank that passes 0 while its peers pass the state's count must
  // take part in the check, or the peers would wait for it.
  SPCCLCHECK(breakCommOn(info.comm, consistencyCheck(info)));
  if (info.count == 0) return spcclSuccess;
  spcclState& st = *info.state;
  SPCCLCHECK(breakCommOn(info.comm, stateAgreementCheck(info)));
  INFO(kSubsysColl, "%s : %s step %llu sendbuff %p recvbuff %p count %zu datatype %s op %s comm %p [nranks=%d]",
       info.opName, st.method->name, st.step, info.sendbuff, info.recvbuff, info.count, dataTypeName(info.datatype),
       opName(info.op), (void*)info.comm, info.comm->nranks);
  const spcclResult_t ran =
      breakCommOn(info.comm, st.config.autoSelect ? autoAllReduce(info, runSparse) : runSparse(info));
  SPCCLCHECK(breakCommOn(info.comm, endCall(st, ran, info.stream)));
  SPCCLCHECK(breakCommOn(info.comm, stagedComplete(st, info.stream)));
  // Last: the collective has been joined, whatever an earlier call's kernels reported.
  return takePairReport(st, kCollectivePairs, info.opName);
}

namespace {

// The dense collective itself, on whatever buffers it is given (the caller's, or host
// copies of device buffers when a host transport serves a device comm).
spcclResult_t runDense(const spcclInfo& info, const void* sendbuff, void* recvbuff) {
  Transport& t = *info.comm->transport;
  const size_t bytes = info.count * dataTypeSize(info.datatype);
  switch (info.func) {
    case spcclFuncAllReduce:
      return t.allReduce(sendbuff, recvbuff, info.count, info.datatype, info.op, info.stream);
    case spcclFuncReduceScatter:
      return t.reduceScatter(sendbuff, recvbuff, info.count, info.datatype, info.op, info.stream);
    case spcclFuncAllGather: return t.allGather(sendbuff, recvbuff, bytes, info.stream);
    case spcclFuncBroadcast: return t.broadcast(sendbuff, recvbuff, bytes, info.root, info.stream);
    default: WARN("%s : not a dense collective", info.opName); return spcclInternalError;
  }
}

spcclResult_t runDenseOnHostCopies(const spcclInfo& info, const void* send, void* recv) {
  // The host allgather runs in place: this rank's part goes into its slot first.
  if (info.func == spcclFuncAllGather) {
    const size_t bytes = info.count * dataTypeSize(info.datatype);
    char* mine = static_cast<char*>(recv) + (size_t)info.comm->rank * bytes;
    memcpy(mine, send, bytes);
    return runDense(info, mine, recv);
  }
  return runDense(info, send, recv);
}

}  // namespace

spcclResult_t enqueueDense(const spcclInfo& info) {
  SPCCLCHECK(argsCheck(info));
  const InUse call(info.comm->busy);
  SPCCLCHECK(call.check(info.opName, "comm", info.comm));
  // A bad root is an error even for count 0, where the call is otherwise a no-op.
  if (info.func == spcclFuncBroadcast)
    SPCCL_REQUIRE(info.root >= 0 && info.root < info.comm->nranks, spcclInvalidArgument,
                  "spcclBroadcast : invalid root %d (root should be in the 0..%d range)", info.root,
                  info.comm->nranks - 1);
  if (info.count == 0) return spcclSuccess;
  INFO(kSubsysColl, "%s : sendbuff %p recvbuff %p count %zu datatype %s op %s root %d comm %p [nranks=%d]",
       info.opName, info.sendbuff, info.recvbuff, info.count, dataTypeName(info.datatype), opName(info.op), info.root,
       (void*)info.comm, info.comm->nranks);
  if (!info.comm->onDevice || info.comm->transport->deviceBuffers())
    return breakCommOn(info.comm, runDense(info, info.sendbuff, info.recvbuff));
  const size_t bytes = info.count * dataTypeSize(info.datatype), P = (size_t)info.comm->nranks;
  const size_t sendBytes = info.func == spcclFuncReduceScatter ? P * bytes : bytes;
  const size_t recvBytes = info.func == spcclFuncAllGather ? P * bytes : bytes;
  return breakCommOn(info.comm, stagedDense(info, sendBytes, recvBytes, runDenseOnHostCopies));
}

}  // namespace spccl
