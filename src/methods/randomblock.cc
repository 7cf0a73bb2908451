// SPDX-License-Identifier: Apache-2.0
//
// Random block sparsification: block-wise random sparse ring-allreduce, after An Xu's
// dissertation "New Efficient and Privacy-Preserving Methods for Distributed Training" (2023).
//
// The n elements are cut into aligned blocks of B (the last one short); every rank derives
// the same m = min(nb, max(1, ceil(density * nb))) blocks from (seed, tensorKey, step)
// (select_core.h), so no index is ever sent: the m packed blocks are identical in shape on
// all ranks and go through one ordinary allreduce of m*B elements.
// Wire bytes per rank: 2 (P-1)/P * m*B * sizeof(T), against 2 (P-1)/P * n * sizeof(T) dense.
// Invariant: c + e_new == g + e_old, each coordinate either moved (chosen) or kept.
// Device buffers take the same two passes as CUDA kernels (device.h), stream-ordered.

#include <math.h>

#include "argcheck.h"
#include "checks.h"
#include "cpu/block_kernels.h"
#include "device.h"
#include "dispatch.h"
#include "method.h"
#include "staging.h"

namespace spccl {
namespace {

// The workspace: m*B packed elements, then (host only) the m chosen blocks in address order.
struct Workspace {
  void* packed;
  cpu::BlockSlot* order;
};

size_t packedBytes(const spcclState& st) {
  size_t bytes = st.nselected * st.config.blockSize * st.elemSize;
  return (bytes + 63) & ~size_t(63);
}

Workspace workspaceOf(const spcclState& st) {
  char* base = static_cast<char*>(st.workspace.ptr);
  return {base, reinterpret_cast<cpu::BlockSlot*>(base + packedBytes(st))};
}

spcclResult_t setup(spcclState& st) {
  // A block larger than the tensor would only pad the packed buffer (a 1000-element tensor
  // with blockSize INT_MAX would reserve gigabytes): one block covers the tensor exactly, and
  // the resolved config says so.
  if (st.count > 0 && (uint64_t)st.config.blockSize > st.count) st.config.blockSize = (int)st.count;
  const uint64_t B = (uint64_t)st.config.blockSize;
  st.nblocks = ceilDiv(st.count, B);
  const double wanted = ceil(st.config.density * (double)st.nblocks);
  st.nselected = std::min<uint64_t>(st.nblocks, std::max<uint64_t>(1, (uint64_t)wanted));
  if (st.count == 0) st.nselected = 0;
  return spcclSuccess;
}

size_t workspaceBytes(const spcclState& st) {
  return packedBytes(st) + (st.onDevice ? 0 : st.nselected * sizeof(cpu::BlockSlot));
}

size_t compressedCount(const spcclState& st) { return st.nselected * st.config.blockSize; }

size_t wireBytes(const spcclState& st) {
  const int P = st.comm->nranks;
  return P > 1 ? 2 * (P - 1) * compressedCount(st) * st.elemSize / P : 0;
}

const void* residualIfEF(const spcclState& st) {
  return st.config.feedback == spcclFeedbackEF ? st.residual.ptr : nullptr;
}

// The selection as a device kernel sees it: the collective reads the step from the state's
// device counter (graph replays advance it), compress and decompress are given theirs.
device::DeviceSelection deviceSelection(const spcclState& st, const BlockSelection& sel, bool stepOnDevice) {
  return {sel, st.config.seed, st.config.tensorKey,
          stepOnDevice ? static_cast<const unsigned long long*>(st.deviceStep.ptr) : nullptr};
}

// Pack this rank's contribution for `step` into `packed`.
spcclResult_t pack(const spcclState& st, const void* sendbuff, unsigned long long step, bool stepOnDevice,
                   void* packed, spcclStream_t stream) {
  const BlockSelection sel = stateSelection(st, step);
  if (st.onDevice) {
    const device::DeviceSelection ds = deviceSelection(st, sel, stepOnDevice);
    return device::randomBlockPack(st.datatype, sendbuff, residualIfEF(st), st.count, st.config.blockSize, &ds,
                                   packed, stream);
  }
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    cpu::feedbackPack(static_cast<const T*>(sendbuff), static_cast<const T*>(residualIfEF(st)), st.count,
                      st.config.blockSize, sel, static_cast<T*>(packed));
    return spcclSuccess;
  });
}

template <typename T>
cpu::CommitArgs<T> commitArgs(const void* sendbuff, const void* eIn, void* eOut, const void* packed, double scale,
                              void* recvbuff) {
  using AccT = typename AccumOf<T>::type;
  return {static_cast<const T*>(sendbuff), static_cast<const T*>(eIn), static_cast<T*>(eOut),
          static_cast<const T*>(packed), (AccT)scale, static_cast<T*>(recvbuff)};
}

// The commit pass in one go: residual update and/or unpack of `packed` into recvbuff.
spcclResult_t commit(const spcclState& st, const void* sendbuff, void* residual, const void* packed, double scale,
                     unsigned long long step, bool stepOnDevice, void* recvbuff, spcclStream_t stream) {
  if (st.onDevice) {
    const device::DeviceSelection ds = deviceSelection(st, stateSelection(st, step), stepOnDevice);
    return device::randomBlockCommit(st.datatype, sendbuff, residual, packed, scale, st.count, st.config.blockSize,
                                     &ds, recvbuff, stream);
  }
  cpu::BlockSlot* order = workspaceOf(st).order;
  cpu::sortedSelection(stateSelection(st, step), order);
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    cpu::unpackCommit(commitArgs<T>(sendbuff, residual, residual, packed, scale, recvbuff), st.count,
                      st.config.blockSize, order, st.nselected);
    return spcclSuccess;
  });
}

// config.pipeline: the reduction of the packed blocks runs while the residual pass (the bulk
// of the memory traffic) writes the next residual into the spare buffer, in slices between
// progress calls; the chosen blocks of recvbuff are written once the reduction is done.
// The residual is swapped only after the reduction succeeded, so a failure changes nothing.
spcclResult_t overlappedAllReduce(spcclState& st, const spcclInfo& info, void* packed, double scale) {
  Transport& t = *info.comm->transport;
  PendingOp op;
  SPCCLCHECK(t.allReduceStart(packed, packed, compressedCount(st), st.datatype, info.stream, &op));
  cpu::BlockSlot* order = workspaceOf(st).order;
  cpu::sortedSelection(stateSelection(st, st.step), order);
  void* eNext = st.residualNext.ptr;
  const size_t slice = ceilDiv(size_t(1) << 18, st.config.blockSize) * st.config.blockSize;
  spcclResult_t res = withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    const auto args = commitArgs<T>(info.sendbuff, st.residual.ptr, eNext, nullptr, scale, info.recvbuff);
    for (size_t begin = 0; begin < st.count; begin += slice) {
      cpu::unpackCommit(args, st.count, st.config.blockSize, order, st.nselected, begin, begin + slice);
      SPCCLCHECK(t.progress(&op));
    }
    SPCCLCHECK(t.wait(&op));
    cpu::unpackChosen(static_cast<const T*>(packed), args.scale, st.count, st.config.blockSize, order, st.nselected,
                      static_cast<T*>(info.recvbuff));
    return spcclSuccess;
  });
  SPCCLCHECK(res);
  std::swap(st.residual, st.residualNext);  // commit
  return spcclSuccess;
}

spcclResult_t sparseAllReduce(const spcclInfo& info) {
  spcclState& st = *info.state;
  void* packed = workspaceOf(st).packed;
  SPCCLCHECK(pack(st, info.sendbuff, st.step, true, packed, info.stream));
  // A host transport averages fp16/bf16 in fp32 before rounding (an average that fits never
  // overflows), so it is handed the op; the others sum and the commit pass scales.
  const bool halfAvg = info.op == spcclAvg && st.elemSize == 2 && !info.comm->transport->deviceBuffers();
  const double scale = info.op == spcclAvg && !halfAvg ? 1.0 / info.comm->nranks : 1.0;
  if (st.residualNext.ptr && !halfAvg) return overlappedAllReduce(st, info, packed, scale);
  SPCCLCHECK(stateAllReduce(st, packed, packed, compressedCount(st), halfAvg ? spcclAvg : spcclSum, info.stream));
  void* residual = st.config.feedback == spcclFeedbackEF ? st.residual.ptr : nullptr;
  return commit(st, info.sendbuff, residual, packed, scale, st.step, true, info.recvbuff, info.stream);
}

spcclResult_t compress(const spcclInfo& info, void* values, uint32_t*, size_t* nvalues) {
  const spcclState& st = *info.state;
  SPCCLCHECK(pack(st, info.sendbuff, st.step, false, values, info.stream));
  void* residual = st.config.feedback == spcclFeedbackEF ? st.residual.ptr : nullptr;
  SPCCLCHECK(commit(st, info.sendbuff, residual, nullptr, 1.0, st.step, false, nullptr, info.stream));
  *nvalues = compressedCount(st);
  return spcclSuccess;
}

spcclResult_t decompress(const spcclState& st, const void* values, const uint32_t*, size_t nvalues,
                         unsigned long long step, double scale, void* recvbuff, spcclStream_t stream) {
  SPCCL_REQUIRE(nvalues == compressedCount(st), spcclInvalidArgument,
                "spcclDecompress : nvalues %zu is not the random-block payload size %zu", nvalues,
                compressedCount(st));
  return commit(st, nullptr, nullptr, values, scale, step, false, recvbuff, stream);
}

}  // namespace

extern const MethodOps kRandomBlockMethod = {"randomblock", setup,      workspaceBytes, compressedCount,
                                             wireBytes,     sparseAllReduce, compress,  decompress};

}  // namespace spccl
