/* SPDX-License-Identifier: Apache-2.0
 *
 * CPU kernels of QTOPK (methods/qtopk.cc, docs/DESIGN.md "Quantized Top-k"): per chunk, the
 * k entries of acc = g + e of largest magnitude (lower index on ties, topk_core.h's order),
 * their levels at the chunk's power-of-two scale, the residual commit and the unpack. The
 * per-element rules and the payload layout are qtopk_core.h's.
 */
#ifndef SPCCL_CPU_QTOPK_KERNELS_H_
#define SPCCL_CPU_QTOPK_KERNELS_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>

#include "qtopk_core.h"
#include "topk_core.h"

namespace spccl {
namespace cpu {

// acc = g + e (rounded once), and one rank's payload: per chunk the k largest magnitudes'
// offsets (ascending) and levels, and the chunk's exponent. order: chunk-length scratch.
template <typename T>
void quantCompress(const T* g, const T* e, T* acc, const QuantLayout& q, void* payload, uint32_t* order) {
  memset(payload, 0, quantPayloadBytes(q));
  int16_t* exponents = quantExponents(payload);
  uint64_t* fields = quantFields(q, payload);
  const uint32_t bits = quantFieldBits(q);
  for (uint32_t c = 0; c < q.nchunks; ++c) {
    const uint64_t start = (uint64_t)c * q.chunk, len = quantChunkLength(q, c);
    const uint32_t slots = quantChunkSlots(q, c);
    T* a = acc + start;
    for (uint64_t i = 0; i < len; ++i) a[i] = feedbackValue(g + start, e ? e + start : nullptr, i);
    for (uint32_t i = 0; i < len; ++i) order[i] = i;
    std::partial_sort(order, order + slots, order + len,
                      [a](uint32_t x, uint32_t y) { return magnitudeBefore(a[x], x, a[y], y); });
    std::sort(order, order + slots);
    double peak = 0;
    for (uint32_t j = 0; j < slots; ++j) {
      const double m = fabs((double)toAcc(a[order[j]]));
      if (m <= largestFinite<T>() && m > peak) peak = m;
    }
    const int E = quantExponent<T>(peak, q.valueBits);
    exponents[c] = (int16_t)E;
    for (uint32_t j = 0; j < slots; ++j) {
      const int level = quantLevel<T>((double)toAcc(a[order[j]]), E, q.valueBits);
      quantPutField(fields, (uint64_t)c * q.k + j, bits, quantPackSlot(q, order[j], level));
    }
  }
}

// Calls visit(chunk, slot in the chunk, offset, level, exponent) for every used slot.
template <typename Visit>
void quantForEachSlot(const QuantLayout& q, const void* payload, Visit visit) {
  const int16_t* exponents = quantExponents(payload);
  const uint64_t* fields = quantFields(q, payload);
  const uint32_t bits = quantFieldBits(q);
  for (uint32_t c = 0; c < q.nchunks; ++c)
    for (uint32_t j = 0; j < quantChunkSlots(q, c); ++j) {
      const uint64_t field = quantGetField(fields, (uint64_t)c * q.k + j, bits);
      visit(c, j, quantSlotOffset(q, field), quantSlotLevel(q, field), exponents[c]);
    }
}

// Whether a received payload decodes inside the tensor (qtopk_core.h, quantSlotDecodes):
// offsets inside their chunk and strictly ascending in it, levels in [-L, L], values finite
// in T. Returns the first bad chunk, or nchunks.
template <typename T>
uint32_t quantFirstBadChunk(const QuantLayout& q, const void* payload) {
  uint32_t bad = q.nchunks;
  int64_t prev = -1;
  quantForEachSlot(q, payload, [&](uint32_t c, uint32_t j, uint32_t offset, int level, int E) {
    if (j == 0) prev = -1;
    if (!quantSlotDecodes<T>(q, c, prev, offset, level, E) && c < bad) bad = c;
    prev = offset;
  });
  return bad;
}

// e = acc - c: acc where nothing was sent (0 where acc is not finite), acc - c (exact,
// qtopk_core.h) on the sent slots.
template <typename T>
void quantResidual(const T* acc, const QuantLayout& q, const void* payload, T* e) {
  for (uint64_t i = 0; i < q.count; ++i) e[i] = keptResidual(acc[i]);
  quantForEachSlot(q, payload, [&](uint32_t c, uint32_t, uint32_t offset, int level, int E) {
    if (level == 0) return;
    const uint64_t i = (uint64_t)c * q.chunk + offset;
    e[i] = fromAcc<T>(toAcc(acc[i]) - (typename AccumOf<T>::type)quantValue(level, E));
  });
}

// out = scale * (the sum over npayloads payloads, stride bytes apart, of their c), added in
// the accumulation type in payload order and rounded once; zero where none sent anything.
// sum: count elements of scratch in the accumulation type.
template <typename T>
void quantUnpack(const QuantLayout& q, const void* payloads, int npayloads, size_t stride, double scale, T* out,
                 typename AccumOf<T>::type* sum) {
  using AccT = typename AccumOf<T>::type;
  for (uint64_t i = 0; i < q.count; ++i) sum[i] = 0;
  for (int r = 0; r < npayloads; ++r)
    quantForEachSlot(q, static_cast<const char*>(payloads) + r * stride, [&](uint32_t c, uint32_t, uint32_t offset,
                                                                           int level, int E) {
      if (level != 0) sum[(uint64_t)c * q.chunk + offset] += (AccT)quantValue(level, E);
    });
  for (uint64_t i = 0; i < q.count; ++i) out[i] = fromAcc<T>(scale == 1.0 ? sum[i] : sum[i] * (AccT)scale);
}

}  // namespace cpu
}  // namespace spccl

#endif  // SPCCL_CPU_QTOPK_KERNELS_H_
