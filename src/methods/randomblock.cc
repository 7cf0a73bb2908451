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
#include "feedback.h"
#include "method.h"
#include "staging.h"
#include "workspace.h"

namespace spccl {
namespace {

// The method's private state: nblocks = ceil(count / B), nselected = m.
struct RandomBlock {
  uint64_t nblocks;
  uint64_t nselected;
};
const RandomBlock& privateOf(const spcclState& st) { return methodState<RandomBlock>(st); }

// The selection the state makes at `step`.
BlockSelection selectionAt(const spcclState& st, unsigned long long step) {
  const RandomBlock& rb = privateOf(st);
  return makeBlockSelection(rb.nblocks, rb.nselected, st.config.blockPattern == spcclBlocksScattered,
                            selectionKey(st.config.seed, st.config.tensorKey, step));
}

// The workspace: m*B packed elements, then (host only) the m chosen blocks in address order.
struct Workspace {
  void* packed;
  cpu::BlockSlot* order;
};

Workspace carve(const spcclState& st, WorkspaceCarver& c) {
  const uint64_t m = privateOf(st).nselected;
  Workspace ws;
  ws.packed = c.takeBytes(m * st.config.blockSize * st.elemSize);
  ws.order = st.onDevice ? nullptr : c.take<cpu::BlockSlot>(m);
  return ws;
}

Workspace workspaceOf(const spcclState& st) { return carveAt(st, st.workspace.ptr, carve); }
size_t workspaceBytes(const spcclState& st) { return carvedBytes(st, carve); }

spcclResult_t setup(spcclState& st) {
  // A block larger than the tensor would only pad the packed buffer (a 1000-element tensor
  // with blockSize INT_MAX would reserve gigabytes): one block covers the tensor exactly, and
  // the resolved config says so.
  if (st.count > 0 && (uint64_t)st.config.blockSize > st.count) st.config.blockSize = (int)st.count;
  RandomBlock& rb = methodState<RandomBlock>(st);
  const uint64_t B = (uint64_t)st.config.blockSize;
  rb.nblocks = ceilDiv(st.count, B);
  const double wanted = ceil(st.config.density * (double)rb.nblocks);
  rb.nselected = std::min<uint64_t>(rb.nblocks, std::max<uint64_t>(1, (uint64_t)wanted));
  if (st.count == 0) rb.nselected = 0;
  return spcclSuccess;
}

size_t compressedCount(const spcclState& st) { return privateOf(st).nselected * st.config.blockSize; }

void describe(const spcclState& st, spcclStateInfo_t* info) {
  info->selected = compressedCount(st);
  info->methodWireBytes = ringAllReduceBytes(st.comm->nranks, saturatingMul(compressedCount(st), st.elemSize));
  info->rounds = ringAllReduceRounds(st.comm->nranks);
}

// The overlapped host path only: device states are stream-ordered already.
bool spareResidual(const spcclState& st) { return st.config.pipeline && feedbackOn(st) && !st.onDevice; }

// The selection as a device kernel sees it: the collective reads the step from the state's
// device counter (graph replays advance it), compress and decompress are given theirs.
device::DeviceSelection deviceSelection(const spcclState& st, const BlockSelection& sel, bool stepOnDevice) {
  return {sel, st.config.seed, st.config.tensorKey,
          stepOnDevice ? static_cast<const unsigned long long*>(st.deviceStep.ptr) : nullptr};
}

// Pack this rank's contribution for `step` into `packed`.
spcclResult_t pack(const spcclState& st, const void* sendbuff, unsigned long long step, bool stepOnDevice,
                   void* packed, spcclStream_t stream) {
  const BlockSelection sel = selectionAt(st, step);
  if (st.onDevice) {
    const device::DeviceSelection ds = deviceSelection(st, sel, stepOnDevice);
    return device::randomBlockPack(st.datatype, sendbuff, feedbackIn(st), st.count, st.config.blockSize, &ds,
                                   packed, stream);
  }
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    cpu::feedbackPack(static_cast<const T*>(sendbuff), static_cast<const T*>(feedbackIn(st)), st.count,
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
    const device::DeviceSelection ds = deviceSelection(st, selectionAt(st, step), stepOnDevice);
    return device::randomBlockCommit(st.datatype, sendbuff, residual, packed, scale, st.count, st.config.blockSize,
                                     &ds, recvbuff, stream);
  }
  cpu::BlockSlot* order = workspaceOf(st).order;
  cpu::sortedSelection(selectionAt(st, step), order);
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    cpu::unpackCommit(commitArgs<T>(sendbuff, residual, residual, packed, scale, recvbuff), st.count,
                      st.config.blockSize, order, privateOf(st).nselected);
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
  cpu::sortedSelection(selectionAt(st, st.step), order);
  void* eNext = st.residualNext.ptr;
  const size_t slice = ceilDiv(size_t(1) << 18, st.config.blockSize) * st.config.blockSize;
  spcclResult_t res = withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    const auto args = commitArgs<T>(info.sendbuff, st.residual.ptr, eNext, nullptr, scale, info.recvbuff);
    for (size_t begin = 0; begin < st.count; begin += slice) {
      cpu::unpackCommit(args, st.count, st.config.blockSize, order, privateOf(st).nselected, begin, begin + slice);
      SPCCLCHECK(t.progress(&op));
    }
    SPCCLCHECK(t.wait(&op));
    cpu::unpackChosen(static_cast<const T*>(packed), args.scale, st.count, st.config.blockSize, order, privateOf(st).nselected,
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
  // fp16/bf16 avg goes to the transport as avg, so that an average that fits never overflows
  // on the way (DESIGN.md, Half precision): MPI divides in fp32 before its one rounding,
  // NCCL's ncclAvg multiplies each rank's value by 1/P before summing. A sum there followed
  // by the commit's 1/P would reach inf at 65504 (P = 8, |x| > 8188). The others sum and the
  // commit pass scales.
  const bool halfAvg = info.op == spcclAvg && st.elemSize == 2;
  const double scale = info.op == spcclAvg && !halfAvg ? 1.0 / info.comm->nranks : 1.0;
  if (st.residualNext.ptr && !halfAvg) return overlappedAllReduce(st, info, packed, scale);
  SPCCLCHECK(stateAllReduce(st, packed, packed, compressedCount(st), halfAvg ? spcclAvg : spcclSum, info.stream));
  void* residual = feedbackOut(st);
  return commit(st, info.sendbuff, residual, packed, scale, st.step, true, info.recvbuff, info.stream);
}

spcclResult_t compress(const spcclInfo& info, void* values, uint32_t*, size_t* nvalues) {
  const spcclState& st = *info.state;
  SPCCLCHECK(pack(st, info.sendbuff, st.step, false, values, info.stream));
  void* residual = feedbackOut(st);
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

// Values on blocks every rank derives from the seed; the commit pass reads g and e and writes
// e and the output (pack reads only the chosen blocks); no selection work.
extern const MethodOps kRandomBlockMethod = {spcclMethodRandomBlock, "randomblock", {spcclPayloadValues, 4, 0},
                                             setup, workspaceBytes,
                                             compressedCount, describe, sparseAllReduce, compress,
                                             decompress, spareResidual, nullptr};

}  // namespace spccl

using namespace spccl;

// The random-block part of the public API: the blocks every rank chooses at `step`.
extern "C" spcclResult_t spcclBlockSelection(spcclState_t state, unsigned long long step, size_t* blocks,
                                             size_t* nblocks) {
  const char* api = "spcclBlockSelection";
  SPCCLCHECK(stateCheck(state, api));
  SPCCLCHECK(flatStateCheck(state, api));
  SPCCLCHECK(ptrCheck(nblocks, api, "nblocks"));
  SPCCL_REQUIRE(state->method == &kRandomBlockMethod, spcclInvalidUsage,
                "%s : the state's method is %s, not randomblock", api, state->method->name);
  const uint64_t nselected = privateOf(*state).nselected;
  const size_t capacity = *nblocks;
  *nblocks = nselected;
  if (!blocks) return spcclSuccess;
  SPCCL_REQUIRE(capacity >= nselected, spcclInvalidArgument,
                "%s : blocks has room for %zu entries, the selection has %zu", api, capacity, (size_t)nselected);
  const BlockSelection sel = selectionAt(*state, step);
  for (uint64_t slot = 0; slot < sel.nselected; ++slot) blocks[slot] = slotBlock(sel, slot);
  return spcclSuccess;
}
