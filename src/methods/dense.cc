// SPDX-License-Identifier: Apache-2.0
//
// Dense: the whole tensor through one allreduce. The last resort of every method, and the
// baseline the perf binary measures the others against. Everything is sent, so the residual
// stays zero whatever the feedback setting, and compress is the identity.

#include <string.h>

#include "checks.h"
#include "device.h"
#include "method.h"
#include "staging.h"

namespace spccl {
namespace {

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

// Values on every position; the transport does all the work.
extern const MethodOps kDenseMethod = {spcclMethodDense, "dense", {spcclPayloadValues, 0, 0},
                                       setup, workspaceBytes, compressedCount, describe, sparseAllReduce,
                                       compress, decompress, nullptr, nullptr};

}  // namespace spccl
