// SPDX-License-Identifier: Apache-2.0
//
// GAUSSIANK: approximate top-k by a threshold from a normal model of acc = g + e, after Shi
// et al., "Understanding Top-k Sparsification in Distributed Deep Learning" (2019).
//
// One pass computes acc and the mean μ and standard deviation σ of its finite values; the
// threshold t = |μ| + σ·Φ⁻¹(1 − density/2) is counted, and adjusted (t/2 when fewer than
// 2k/3 pass, 1.5·t when more than 4k/3) at most three counts in all; selection uses the best
// *measured* threshold (topk_core.h, GaussianKSearch). No sort, a few streaming passes: cheap
// on GPUs, and the same on the CPU.
// Wire: exactly TOPK's, k slots per rank in one allgather, so the device path needs no host
// round trip: when more than k pass, the first k by index are sent (a stable compaction);
// when fewer, the remaining slots carry SPCCL_PAD_INDEX and 0, which receivers skip.
// Invariants: c + e_new == g + e_old on every coordinate; everything not sent stays in the
// residual, which changes only after the allgather and the index check succeeded.
// Device buffers: the same search and compaction as kernels (device.h), stream-ordered.

#include "checks.h"
#include "device.h"
#include "dispatch.h"
#include "feedback.h"
#include "pairs.h"

namespace spccl {
namespace {

spcclResult_t select(const spcclState& st, const void* sendbuff, void* acc, const PairsWorkspace& ws,
                     uint32_t* indices, void* values, spcclStream_t stream) {
  if (st.onDevice)
    return device::gaussiankSelect(st.datatype, sendbuff, feedbackIn(st), acc, st.count, pairsK(st),
                                   st.config.density, indices, values, ws.deviceScratch, stream);
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    const T* e = static_cast<const T*>(feedbackIn(st));
    const size_t found = cpu::gaussianK(static_cast<const T*>(sendbuff), e, static_cast<T*>(acc), st.count, pairsK(st),
                                        st.config.density, indices, static_cast<T*>(values));
    TRACE(kSubsysSelect, "gaussiank : %zu of %zu slots used (count %zu)", found, pairsK(st), st.count);
    return spcclSuccess;
  });
}

spcclResult_t setup(spcclState& st) { return pairsSetup(st, pairsAllGatherWire, false); }
size_t workspaceBytes(const spcclState& st) { return pairsWorkspaceBytes(st, pairsAllGatherTailBytes(st)); }
void describe(const spcclState& st, spcclStateInfo_t* info) {
  pairsDescribe(st, pairsAllGatherWire, pairsAllGatherRounds, info);
}
spcclResult_t sparseAllReduce(const spcclInfo& info) { return pairsAllGather(info, select); }

spcclResult_t compress(const spcclInfo& info, void* values, uint32_t* indices, size_t* nvalues) {
  return pairsCompress(info, select, indices, values, nvalues);
}

}  // namespace

// Slots; TOPK's passes, and a statistics pass, up to three counts and the compaction instead of
// the listing pass (about three on average).
extern const MethodOps kGaussianKMethod = {spcclMethodGaussianK, "gaussiank", {spcclPayloadSlots, 6, 3}, setup,
                                           workspaceBytes, pairsCompressedCount,
                                      describe, sparseAllReduce, compress, pairsDecompress, nullptr, nullptr};

}  // namespace spccl
