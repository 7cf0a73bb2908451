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

#include <math.h>

#include "argcheck.h"
#include "checks.h"
#include "cpu/block_kernels.h"
#include "dispatch.h"
#include "method.h"

namespace spccl {
namespace {

// The workspace: m*B packed elements, then the m chosen blocks in address order.
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
  const uint64_t B = (uint64_t)st.config.blockSize;
  st.nblocks = ceilDiv(st.count, B);
  const double wanted = ceil(st.config.density * (double)st.nblocks);
  st.nselected = std::min<uint64_t>(st.nblocks, std::max<uint64_t>(1, (uint64_t)wanted));
  if (st.count == 0) st.nselected = 0;
  return spcclSuccess;
}

size_t workspaceBytes(const spcclState& st) { return packedBytes(st) + st.nselected * sizeof(cpu::BlockSlot); }

size_t compressedCount(const spcclState& st) { return st.nselected * st.config.blockSize; }

size_t wireBytes(const spcclState& st) {
  const int P = st.comm->nranks;
  return P > 1 ? 2 * (P - 1) * compressedCount(st) * st.elemSize / P : 0;
}

const void* residualIfEF(const spcclState& st) {
  return st.config.feedback == spcclFeedbackEF ? st.residual.ptr : nullptr;
}

// Pack this rank's contribution for `step` into `packed`.
spcclResult_t pack(const spcclState& st, const void* sendbuff, unsigned long long step, void* packed) {
  const BlockSelection sel = stateSelection(st, step);
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    cpu::feedbackPack(static_cast<const T*>(sendbuff), static_cast<const T*>(residualIfEF(st)), st.count,
                      st.config.blockSize, sel, static_cast<T*>(packed));
    return spcclSuccess;
  });
}

// The commit pass: residual update and/or unpack of `packed` into recvbuff.
spcclResult_t commit(const spcclState& st, const void* sendbuff, void* residual, const void* packed, double scale,
                     unsigned long long step, void* recvbuff) {
  const BlockSelection sel = stateSelection(st, step);
  cpu::BlockSlot* order = workspaceOf(st).order;
  cpu::sortedSelection(sel, order);
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    using AccT = typename AccumOf<T>::type;
    cpu::unpackCommit(static_cast<const T*>(sendbuff), static_cast<T*>(residual), static_cast<const T*>(packed),
                      (AccT)scale, st.count, st.config.blockSize, order, sel.nselected, static_cast<T*>(recvbuff));
    return spcclSuccess;
  });
}

spcclResult_t sparseAllReduce(const spcclInfo& info) {
  const spcclState& st = *info.state;
  void* packed = workspaceOf(st).packed;
  SPCCLCHECK(pack(st, info.sendbuff, st.step, packed));
  SPCCLCHECK(info.comm->transport->allReduce(packed, packed, compressedCount(st), st.datatype, spcclSum, info.stream));
  const double scale = info.op == spcclAvg ? 1.0 / info.comm->nranks : 1.0;
  void* residual = st.config.feedback == spcclFeedbackEF ? st.residual.ptr : nullptr;
  return commit(st, info.sendbuff, residual, packed, scale, st.step, info.recvbuff);
}

spcclResult_t compress(const spcclInfo& info, void* values, uint32_t*, size_t* nvalues) {
  const spcclState& st = *info.state;
  SPCCLCHECK(pack(st, info.sendbuff, st.step, values));
  void* residual = st.config.feedback == spcclFeedbackEF ? st.residual.ptr : nullptr;
  SPCCLCHECK(commit(st, info.sendbuff, residual, nullptr, 1.0, st.step, nullptr));
  *nvalues = compressedCount(st);
  return spcclSuccess;
}

spcclResult_t decompress(const spcclState& st, const void* values, const uint32_t*, size_t nvalues,
                         unsigned long long step, double scale, void* recvbuff, spcclStream_t) {
  SPCCL_REQUIRE(nvalues == compressedCount(st), spcclInvalidArgument,
                "spcclDecompress : nvalues %zu is not the random-block payload size %zu", nvalues,
                compressedCount(st));
  return commit(st, nullptr, nullptr, values, scale, step, recvbuff);
}

}  // namespace

extern const MethodOps kRandomBlockMethod = {"randomblock", setup,      workspaceBytes, compressedCount,
                                             wireBytes,     sparseAllReduce, compress,  decompress};

}  // namespace spccl
