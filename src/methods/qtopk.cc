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
// makes acc - c exact, qtopk_core.h); on the host (and an MPI device comm) the residual
// changes only after the allgather and the payload check succeeded.
// Device buffers run the same passes as CUDA kernels (device.h, cuda/kernels/qtopk_kernels.cuh)
// with the same bits, stream-ordered with no host round trip: on an NCCL comm the payloads are
// checked by the unpack kernel (a chunk that does not decode is skipped and reported by the
// state's next call, as the top-k family's pairs), on an MPI device comm in the pinned host
// copy they are staged through, before the residual changes.

#include <type_traits>

#include "checks.h"
#include "cpu/qtopk_kernels.h"
#include "device.h"
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

// The workspace: the chunk-length selection order (host), every rank's payload (this rank's is
// written in place and gathered; a switched state keeps only its own, for spcclCompress), for
// 16-bit types the unpack's fp32 sums, and on a device acc = g + e (count elements: its MPI
// staging mirror carries a switched state's dense allreduce from there) and the compress
// kernels' scratch.
struct Workspace {
  uint32_t* order;
  char* gathered;
  void* sums;
  void* deviceAcc;
  void* deviceScratch;
};

Workspace carve(const spcclState& st, WorkspaceCarver& c) {
  Workspace ws = {};
  if (st.onDevice) {
    ws.deviceAcc = c.takeBytes(st.count * st.elemSize);
    ws.deviceScratch = c.takeBytes(device::quantScratchBytes(layoutOf(st)));
  } else {
    ws.order = c.take<uint32_t>(layoutOf(st).chunk);
  }
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

// ---- the passes, on the CPU (cpu/qtopk_kernels.h) or the device (device.h): same bits.

// Where acc = g + e is formed: `host` on the host (recvbuff for a collective, the residual for
// spcclCompress), the workspace on a device.
void* accBuffer(const spcclState& st, void* host) { return st.onDevice ? workspaceOf(st).deviceAcc : host; }

// acc = g + e into acc, this rank's payload into `payload`.
spcclResult_t compressPass(const spcclState& st, const void* g, void* acc, void* payload, spcclStream_t stream) {
  if (st.onDevice)
    return device::quantCompress(st.datatype, g, feedbackIn(st), acc, layoutOf(st), payload,
                                 workspaceOf(st).deviceScratch, stream);
  uint32_t* order = workspaceOf(st).order;
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    cpu::quantCompress(static_cast<const T*>(g), static_cast<const T*>(feedbackIn(st)), static_cast<T*>(acc),
                       layoutOf(st), payload, order);
    return spcclSuccess;
  });
}

// e = acc - c (nothing without feedback).
spcclResult_t residualPass(const spcclState& st, const void* acc, const void* payload, spcclStream_t stream) {
  void* e = feedbackOut(st);
  if (!e) return spcclSuccess;
  if (st.onDevice) return device::quantResidual(st.datatype, acc, layoutOf(st), payload, e, stream);
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    cpu::quantResidual(static_cast<const T*>(acc), layoutOf(st), payload, static_cast<T*>(e));
    return spcclSuccess;
  });
}

// Every gathered payload decodes (qtopk_core.h, quantSlotDecodes), where the host can read
// them: the workspace itself, or the pinned copy they were staged through (MPI device comm).
// On an NCCL comm they never reach the host: the unpack kernel skips a chunk that does not
// decode and reports it for the state's next call (enqueue.h, takePairReport).
spcclResult_t checkPayloads(const spcclState& st, const char* gathered, const char* api) {
  if (st.onDevice && !stagedThroughHost(st)) return spcclSuccess;
  const char* host =
      st.onDevice ? hostMirror(st, gathered, (size_t)st.comm->nranks * payloadStride(st), api) : gathered;
  if (!host) return spcclInternalError;
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    for (int r = 0; r < st.comm->nranks; ++r) {
      const uint32_t bad = cpu::quantFirstBadChunk<T>(layoutOf(st), host + r * payloadStride(st));
      SPCCL_REQUIRE(bad == layoutOf(st).nchunks, spcclRemoteError,
                    "%s : rank %d's qtopk payload has a bad slot in chunk %u (offset outside the chunk or out of "
                    "order, level outside [-%d, %d] or a value that is not finite)", api, r, bad,
                    quantLevels(st.config.valueBits), quantLevels(st.config.valueBits));
    }
    return spcclSuccess;
  });
}

spcclResult_t sparseAllReduce(const spcclInfo& info) {
  const spcclState& st = *info.state;
  void* acc = accBuffer(st, info.recvbuff);  // on the host, overwritten by the result anyway
  if (denseSwitched(st)) return denseWithFeedback(info, acc);
  const Workspace ws = workspaceOf(st);
  const size_t stride = payloadStride(st);
  char* own = ws.gathered + info.comm->rank * stride;
  SPCCLCHECK(compressPass(st, info.sendbuff, acc, own, info.stream));
  SPCCLCHECK(stateAllGather(st, own, ws.gathered, stride, info.stream));
  SPCCLCHECK(checkPayloads(st, ws.gathered, info.opName));
  // Commit: nothing below can fail on data.
  SPCCLCHECK(residualPass(st, acc, own, info.stream));
  const double scale = info.op == spcclAvg ? 1.0 / info.comm->nranks : 1.0;
  if (st.onDevice)
    return device::quantUnpack(st.datatype, layoutOf(st), ws.gathered, info.comm->nranks, stride, scale,
                               info.recvbuff, st.elemSize < 4 ? ws.sums : info.recvbuff,
                               badPairReport(st, kCollectivePairs), info.stream);
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
  // acc in place in the residual on the host: nothing after the selection can fail. Without
  // feedback the residual is scratch there, and zero again after.
  void* acc = accBuffer(st, st.residual.ptr);
  SPCCLCHECK(compressPass(st, info.sendbuff, acc, own, info.stream));
  SPCCLCHECK(residualPass(st, acc, own, info.stream));
  const QuantLayout& q = layoutOf(st);
  const size_t slots = compressedCount(st);
  *nvalues = slots;
  if (st.onDevice) return device::quantSlots(st.datatype, q, own, indices, values, info.stream);
  if (!feedbackOn(st)) memset(st.residual.ptr, 0, st.residual.bytes);
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
  return spcclSuccess;
}

}  // namespace

// Slots (spcclCompress writes dequantized (index, value) slots; the collective allgathers them
// packed); TOPK's passes, one selection pass per chunk.
extern const MethodOps kQTopKMethod = {spcclMethodQTopK, "qtopk", {spcclPayloadSlots, 6, 1}, setup, workspaceBytes,
                                       compressedCount,
                                       describe, sparseAllReduce, compress, pairsDecompress, nullptr, nullptr};

}  // namespace spccl
