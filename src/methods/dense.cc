// SPDX-License-Identifier: Apache-2.0
//
// Dense: the whole tensor through one allreduce. The last resort of every method, and the
// baseline the perf binary measures the others against. Everything is sent, so the residual
// stays zero whatever the feedback setting, and compress is the identity. Also here: the
// dense call of a compressed state (denseWithFeedback), for its dense switch and for auto.

#include <stdint.h>
#include <string.h>

#include <chrono>

#include "checks.h"
#include "device.h"
#include "dispatch.h"
#include "feedback.h"
#include "method.h"
#include "staging.h"

namespace spccl {
namespace {

// Whether `bytes` bytes at `p` are all zero bits (a -0.0 is not: the slow path is exact too).
bool allBytesZero(const void* p, size_t bytes) {
  const unsigned char* b = static_cast<const unsigned char*>(p);
  size_t i = 0;
  for (; i + 64 <= bytes; i += 64) {  // a cache line per test
    uint64_t w[8];
    memcpy(w, b + i, sizeof(w));
    if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) return false;
  }
  for (; i < bytes; ++i)
    if (b[i]) return false;
  return true;
}

spcclResult_t setup(spcclState&) { return spcclSuccess; }
// Device buffers on a host transport stage the whole tensor through the pinned mirror.
size_t workspaceBytes(const spcclState& st) { return stagedThroughHost(st) ? st.count * st.elemSize : 0; }
size_t compressedCount(const spcclState& st) { return st.count; }

void describe(const spcclState& st, spcclStateInfo_t* info) {
  info->selected = st.count;
  info->methodWireBytes = denseWireBytes(st);
  info->rounds = ringAllReduceRounds(st.comm->nranks);
}

spcclResult_t sparseAllReduce(const spcclInfo& info) {
  return stateAllReduce(*info.state, info.sendbuff, info.recvbuff, info.count, info.op, info.stream);
}

spcclResult_t compress(const spcclInfo& info, void* values, uint32_t*, size_t* nvalues) {
  const size_t bytes = info.count * info.state->elemSize;
  if (info.state->onDevice) SPCCLCHECK(device::copyAsync(values, info.sendbuff, bytes, info.stream));
  else memcpy(values, info.sendbuff, bytes);
  *nvalues = info.count;
  return spcclSuccess;
}

spcclResult_t decompress(const spcclState& st, const void* values, const uint32_t*, size_t nvalues,
                         unsigned long long, double scale, void* recvbuff, spcclStream_t stream) {
  SPCCL_REQUIRE(nvalues == st.count, spcclInvalidArgument,
                "spcclDecompress : nvalues %zu is not the dense payload size %zu", nvalues, st.count);
  SPCCL_REQUIRE(scale == 1.0, spcclInvalidArgument, "spcclDecompress : dense decompress takes scale 1, not %g", scale);
  if (st.onDevice) return device::copyAsync(recvbuff, values, nvalues * st.elemSize, stream);
  memcpy(recvbuff, values, nvalues * st.elemSize);
  return spcclSuccess;
}

}  // namespace

spcclResult_t denseWithFeedback(const spcclInfo& info, void* acc, double* allReduceSeconds) {
  spcclState& st = *info.state;
  // The allreduce alone, timed: what every dense call costs once the residual is empty.
  auto allReduce = [&](const void* send) {
    const auto start = std::chrono::steady_clock::now();
    const spcclResult_t ran = stateAllReduce(st, send, info.recvbuff, st.count, info.op, info.stream);
    if (allReduceSeconds)
      *allReduceSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return ran;
  };
  const void* e = feedbackIn(st);
  void* eOut = feedbackOut(st);
  // After a dense call the residual is empty, and stays so while dense runs: then g + e is g,
  // and the call is the plain allreduce (not a pass that forms g + e and one that empties e).
  // Known empty (state.h) unless a caller holds the residual's address; then its bytes are
  // read (the adapters write it in place: DEF's rescaling, LocalSGD's decay, restores).
  const bool knownEmpty = st.residualEmptyAtStep == st.step && !st.residualShared;
  const bool empty = !e || knownEmpty || allBytesZero(e, st.residual.bytes);
  if (!st.onDevice && e == eOut && empty) {
    SPCCLCHECK(allReduce(info.sendbuff));
    st.residualEmptyAtStep = st.step + 1;  // the caller advances the step past this call
    return spcclSuccess;
  }
  if (st.onDevice) {
    SPCCLCHECK(device::feedbackSum(st.datatype, info.sendbuff, e, acc, st.count, info.stream));
  } else {
    SPCCLCHECK(withType(st.datatype, [&](auto tag) {
      using T = decltype(tag);
      const T* g = static_cast<const T*>(info.sendbuff);
      const T* eIn = static_cast<const T*>(e);
      T* out = static_cast<T*>(acc);
      for (size_t i = 0; i < st.count; ++i) out[i] = feedbackValue(g, eIn, i);
      return spcclSuccess;
    }));
  }
  SPCCLCHECK(allReduce(acc));
  // Everything was sent.
  if (eOut && st.onDevice) return device::zeroAsync(eOut, st.residual.bytes, info.stream);
  if (eOut) memset(eOut, 0, st.residual.bytes);
  st.residualEmptyAtStep = st.step + 1;
  return spcclSuccess;
}

// Values on every position; the transport does all the work.
extern const MethodOps kDenseMethod = {spcclMethodDense, "dense", {spcclPayloadValues, 0, 0},
                                       setup, workspaceBytes, compressedCount, describe, sparseAllReduce,
                                       compress, decompress, nullptr, nullptr};

}  // namespace spccl
