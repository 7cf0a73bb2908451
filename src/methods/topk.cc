// SPDX-License-Identifier: Apache-2.0
//
// TOPK: exact top-k sparsification with an allgather of (index, value) pairs, after Shi et
// al., "Understanding Top-k Sparsification in Distributed Deep Learning" (2019).
//
// Each rank sends the k = min(n, max(1, ceil(density * n))) entries of acc = g + e of largest
// magnitude; among equal magnitudes the lower index wins (topk_core.h), so the CPU, the GPU
// and a test reference choose the same set. Selection is a radix select over the magnitude
// bits (cpu/topk_kernels.h), exact, linear in n.
// Wire: one allgather of a block of k 32-bit indices and k values per rank, then every rank
// scatter-adds all P blocks into a zeroed recvbuff (repeated indices add up; avg divides by
// P). Bytes sent per rank: (P-1) * k * (4 + sizeof(T)); when that exceeds a dense allreduce's
// 2 (P-1)/P * n * sizeof(T), the state runs dense instead (config.denseSwitch, pairs.cc).
// Invariants: c + e_new == g + e_old on every coordinate (each is sent whole or kept whole);
// the residual changes only after the allgather and the index check succeeded.
// Device buffers: the same radix select as a kernel sequence (device.h), stream-ordered.

#include "checks.h"
#include "device.h"
#include "dispatch.h"
#include "feedback.h"
#include "pairs.h"

namespace spccl {

spcclResult_t selectTopK(const spcclState& st, const void* sendbuff, void* accBuff, const PairsWorkspace& ws,
                         uint32_t* indices, void* values, spcclStream_t stream) {
  if (st.onDevice)
    return device::topkSelect(st.datatype, sendbuff, feedbackIn(st), accBuff, st.count, pairsK(st), indices, values,
                              ws.deviceScratch, stream);
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    const T* e = static_cast<const T*>(feedbackIn(st));
    T* acc = static_cast<T*>(accBuff);
    cpu::topKFeedback(static_cast<const T*>(sendbuff), e, acc, st.count, pairsK(st), ws.scratch, indices);
    T* v = static_cast<T*>(values);
    for (size_t j = 0; j < pairsK(st); ++j) v[j] = acc[indices[j]];
    return spcclSuccess;
  });
}

namespace {

spcclResult_t setup(spcclState& st) { return pairsSetup(st, pairsAllGatherWire, true); }
size_t workspaceBytes(const spcclState& st) { return pairsWorkspaceBytes(st, pairsAllGatherTailBytes(st)); }
void describe(const spcclState& st, spcclStateInfo_t* info) {
  pairsDescribe(st, pairsAllGatherWire, pairsAllGatherRounds, info);
}
spcclResult_t sparseAllReduce(const spcclInfo& info) { return pairsAllGather(info, selectTopK); }

spcclResult_t compress(const spcclInfo& info, void* values, uint32_t* indices, size_t* nvalues) {
  return pairsCompress(info, selectTopK, indices, values, nvalues);
}

}  // namespace

// Slots; passes: acc = g + e (3), the residual (2), the zeroed output (1); one sampled-threshold
// listing pass over acc.
extern const MethodOps kTopKMethod = {spcclMethodTopK, "topk", {spcclPayloadSlots, 6, 1}, setup, workspaceBytes,
                                      pairsCompressedCount,
                                      describe, sparseAllReduce, compress, pairsDecompress, nullptr, nullptr};

}  // namespace spccl
