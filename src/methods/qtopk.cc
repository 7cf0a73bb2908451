// SPDX-License-Identifier: Apache-2.0
//
// QTOPK: Top-k per chunk with the values quantized to b bits and one power-of-two scale per
// chunk, after SparseLoCo (Sarfi et al., arXiv 2508.15706), for outer gradients of local
// steps (docs/DESIGN.md, "Quantized Top-k"; docs/local_steps.md).
//
// The tensor is cut into chunks of config.blockSize elements (the last one shorter). Per
// chunk, each rank sends the k = min(chunk, max(1, ceil(density * chunk))) entries of
// acc = g + e of largest magnitude (lower index on ties), each as its offset in the chunk
// and a level q in [-L, L] (L = 2^(b-1) - 1, b = config.valueBits), plus the chunk's
// exponent E: the receiver adds c = q * 2^E (qtopk_core.h).
// Wire: one allgather of each rank's payload, ceil(nchunks * k * (offset bits + b) / 64)
// 64-bit words after nchunks 16-bit exponents; bytes per rank (P-1) * payload. Every rank
// adds the P payloads in rank order in the accumulation type and rounds once (avg: times
// 1/P first). The allgather grows with P where a dense allreduce does not, so past some P
// (about 290 at density 1/64, chunks of 4096, 2 bits) the state runs dense instead
// (config.denseSwitch, as the top-k family does).
// Invariants: c + e_new == g + e_old on every coordinate, exactly (the power-of-two scale
// makes acc - c exact, qtopk_core.h); the residual changes only after the allgather and the
// payload check succeeded. Host buffers only: no device kernels yet.

#include <type_traits>

#include "checks.h"
#include "cpu/qtopk_kernels.h"
#include "dispatch.h"
#include "feedback.h"
#include "method.h"
#include "pairs.h"
#include "staging.h"
#include "workspace.h"

namespace spccl {
namespace {

// The method's private fields: the wire layout, and whether the collective runs dense.
struct QTopKState {
  QuantLayout layout;
  bool denseSwitched;
};

const QuantLayout& layoutOf(const spcclState& st) { return methodState<QTopKState>(st).layout; }
bool denseSwitched(const spcclState& st) { return methodState<QTopKState>(st).denseSwitched; }
size_t payloadStride(const spcclState& st) { return alignUp(quantPayloadBytes(layoutOf(st)), 8); }

// The workspace: the chunk-length selection order, every rank's payload (this rank's is
// written in place and gathered; a switched state keeps only its own, for spcclCompress), and
// for 16-bit types the unpack's fp32 sums.
struct Workspace {
  uint32_t* order;
  char* gathered;
  void* sums;
};

Workspace carve(const spcclState& st, WorkspaceCarver& c) {
  Workspace ws;
  ws.order = c.take<uint32_t>(layoutOf(st).chunk);
  const size_t payloads = denseSwitched(st) ? 1 : (size_t)st.comm->nranks;
  ws.gathered = static_cast<char*>(c.takeBytes(saturatingMul(payloads, payloadStride(st))));
  ws.sums = st.elemSize < 4 ? c.takeBytes(st.count * sizeof(float)) : nullptr;
  return ws;
}
Workspace workspaceOf(const spcclState& st) { return carveAt(st, st.workspace.ptr, carve); }
size_t workspaceBytes(const spcclState& st) { return carvedBytes(st, carve); }

uint32_t bitsFor(uint64_t maxValue) {
  uint32_t bits = 0;
  while (bits < 64 && (maxValue >> bits) != 0) ++bits;
  return bits;
}

spcclResult_t setup(spcclState& st) {
  SPCCL_REQUIRE(!st.onDevice, spcclInvalidUsage,
                "spcclStateCreate : qtopk does not run on device buffers yet (host kernels only; use topk)");
  SPCCL_REQUIRE(st.count <= 0xFFFFFFFFull, spcclInvalidArgument,
                "spcclStateCreate : count %zu is too large for qtopk (spcclCompress's indices are 32-bit)", st.count);
  QuantLayout& q = methodState<QTopKState>(st).layout;
  q.count = st.count;
  q.chunk = (uint32_t)std::max<size_t>(1, std::min<size_t>(st.count, (size_t)st.config.blockSize));
  q.nchunks = (uint32_t)((st.count + q.chunk - 1) / q.chunk);
  q.k = (uint32_t)topkCount(q.chunk, st.config.density);
  q.offsetBits = bitsFor(q.chunk - 1);
  q.valueBits = (uint32_t)st.config.valueBits;
  const size_t sparse = ringAllGatherBytes(st.comm->nranks, quantPayloadBytes(q)), dense = denseWireBytes(st);
  methodState<QTopKState>(st).denseSwitched = st.config.denseSwitch && sparse > dense;
  if (denseSwitched(st))
    INFO(kSubsysColl, "spcclStateCreate : qtopk would send %zu bytes per rank (%u of %zu elements over %d ranks), "
         "a dense allreduce %zu: running dense", sparse, q.nchunks * q.k, st.count, st.comm->nranks, dense);
  return spcclSuccess;
}

size_t compressedCount(const spcclState& st) { return (size_t)layoutOf(st).nchunks * layoutOf(st).k; }

void describe(const spcclState& st, spcclStateInfo_t* info) {
  info->selected = compressedCount(st);
  info->methodWireBytes = ringAllGatherBytes(st.comm->nranks, quantPayloadBytes(layoutOf(st)));
  info->rounds = ringAllGatherRounds(st.comm->nranks);
  info->denseSwitched = denseSwitched(st);
}

// acc = g + e into acc, this rank's payload into `payload`.
spcclResult_t compressPass(const spcclState& st, const void* g, void* acc, void* payload) {
  uint32_t* order = workspaceOf(st).order;
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    cpu::quantCompress(static_cast<const T*>(g), static_cast<const T*>(feedbackIn(st)), static_cast<T*>(acc),
                       layoutOf(st), payload, order);
    return spcclSuccess;
  });
}

// e = acc - c (nothing without feedback).
spcclResult_t residualPass(const spcclState& st, const void* acc, const void* payload) {
  void* e = feedbackOut(st);
  if (!e) return spcclSuccess;
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    cpu::quantResidual(static_cast<const T*>(acc), layoutOf(st), payload, static_cast<T*>(e));
    return spcclSuccess;
  });
}

spcclResult_t checkPayloads(const spcclState& st, const char* gathered, const char* api) {
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    for (int r = 0; r < st.comm->nranks; ++r) {
      const uint32_t bad = cpu::quantFirstBadChunk<T>(layoutOf(st), gathered + r * payloadStride(st));
      SPCCL_REQUIRE(bad == layoutOf(st).nchunks, spcclRemoteError,
                    "%s : rank %d's qtopk payload has a bad slot in chunk %u (offset outside the chunk, level "
                    "outside [-%d, %d] or a value that is not finite)", api, r, bad, quantLevels(st.config.valueBits),
                    quantLevels(st.config.valueBits));
    }
    return spcclSuccess;
  });
}

spcclResult_t sparseAllReduce(const spcclInfo& info) {
  const spcclState& st = *info.state;
  if (denseSwitched(st)) return denseWithFeedback(info, info.recvbuff);
  const Workspace ws = workspaceOf(st);
  const size_t stride = payloadStride(st);
  char* own = ws.gathered + info.comm->rank * stride;
  void* acc = info.recvbuff;  // overwritten by the result anyway
  SPCCLCHECK(compressPass(st, info.sendbuff, acc, own));
  SPCCLCHECK(stateAllGather(st, own, ws.gathered, stride, info.stream));
  SPCCLCHECK(checkPayloads(st, ws.gathered, info.opName));
  // Commit: nothing below can fail on data.
  SPCCLCHECK(residualPass(st, acc, own));
  const double scale = info.op == spcclAvg ? 1.0 / info.comm->nranks : 1.0;
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    using AccT = typename AccumOf<T>::type;
    T* out = static_cast<T*>(info.recvbuff);
    AccT* sums = std::is_same<T, AccT>::value ? reinterpret_cast<AccT*>(out) : static_cast<AccT*>(ws.sums);
    cpu::quantUnpack(layoutOf(st), ws.gathered, info.comm->nranks, stride, scale, out, sums);
    return spcclSuccess;
  });
}

// Without communication: this rank's c as (index, value) pairs, one per slot (a slot that
// sends nothing, and a short last chunk's spare slots, carry SPCCL_PAD_INDEX and 0).
spcclResult_t compress(const spcclInfo& info, void* values, uint32_t* indices, size_t* nvalues) {
  const spcclState& st = *info.state;
  SPCCL_REQUIRE(indices != nullptr, spcclInvalidArgument, "spcclCompress : indices argument is NULL (qtopk sends pairs)");
  char* own = workspaceOf(st).gathered;
  // acc in place in the residual: nothing after the selection can fail. Without feedback the
  // residual is scratch here, and zero again after.
  SPCCLCHECK(compressPass(st, info.sendbuff, st.residual.ptr, own));
  SPCCLCHECK(residualPass(st, st.residual.ptr, own));
  if (!feedbackOn(st)) memset(st.residual.ptr, 0, st.residual.bytes);
  const QuantLayout& q = layoutOf(st);
  const size_t slots = compressedCount(st);
  for (size_t j = 0; j < slots; ++j) indices[j] = SPCCL_PAD_INDEX;
  SPCCLCHECK(withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    T* v = static_cast<T*>(values);
    for (size_t j = 0; j < slots; ++j) v[j] = fromAcc<T>(0);
    cpu::quantForEachSlot(q, own, [&](uint32_t c, uint32_t j, uint32_t offset, int level, int E) {
      const size_t slot = (size_t)c * q.k + j;
      if (level == 0) return;
      indices[slot] = (uint32_t)((uint64_t)c * q.chunk + offset);
      v[slot] = fromAcc<T>((typename AccumOf<T>::type)quantValue(level, E));
    });
    return spcclSuccess;
  }));
  *nvalues = slots;
  return spcclSuccess;
}

}  // namespace

// Slots (spcclCompress writes dequantized (index, value) slots; the collective allgathers them
// packed); TOPK's passes, one selection pass per chunk.
extern const MethodOps kQTopKMethod = {spcclMethodQTopK, "qtopk", {spcclPayloadSlots, 6, 1}, setup, workspaceBytes,
                                       compressedCount,
                                       describe, sparseAllReduce, compress, pairsDecompress, nullptr, nullptr};

}  // namespace spccl
