/* SPDX-License-Identifier: Apache-2.0
 *
 * QTOPK's per-element rules (Top-k per chunk, values quantized to b bits with one
 * power-of-two scale per chunk; docs/DESIGN.md, "Quantized Top-k"), written once for the
 * host kernels (cpu/qtopk_kernels.h) and any device kernels, so both produce the same bits.
 *
 * A chunk's scale is s = 2^E, E the smallest exponent with L * 2^E >= the largest finite
 * magnitude the chunk sends (L = 2^(b-1) - 1 levels a side), and never below the exponent of
 * T's smallest subnormal. A sent value a becomes the level q = sign(a) * floor(|a|/s + 1/2),
 * in [-L, L], and the receiver adds c = q * s. Why a power of two: c then has at most b-1
 * significant bits, so it is a value of T, and whenever q != 0, |a| >= s/2 puts a and c
 * within a factor of two of each other (c/2 <= a <= 2c): Sterbenz's lemma makes a - c exact
 * in T. So e_new = a - c is exact and c + e_new == a holds bit for bit (DESIGN.md, Error
 * feedback), with no rounding to state. q = 0 (|a| < s/2, or a c that would overflow T)
 * sends nothing: the value stays whole in the residual. A non-finite a has no level: it is
 * not sent, and the residual keeps 0 in its place (dtype_core.h, keptResidual).
 */
#ifndef SPCCL_QTOPK_CORE_H_
#define SPCCL_QTOPK_CORE_H_

#include <math.h>
#include <stdint.h>

#include "dtype_core.h"

namespace spccl {

// The exponent of a chunk that sends nothing (no finite nonzero value among its slots).
#define SPCCL_QTOPK_NO_SCALE INT16_MIN

// The exponent of T's smallest subnormal.
template <typename T> SPCCL_HD int smallestExponent();
template <> SPCCL_HD int smallestExponent<float>() { return -149; }
template <> SPCCL_HD int smallestExponent<double>() { return -1074; }
template <> SPCCL_HD int smallestExponent<half_t>() { return -24; }
template <> SPCCL_HD int smallestExponent<bfloat16_t>() { return -133; }

// Levels a side of b-bit codes: the symmetric range [-L, L] (one code of the 2^b is unused).
SPCCL_HD int quantLevels(int bits) { return (1 << (bits - 1)) - 1; }

// The chunk's exponent for its largest finite magnitude `peak` (SPCCL_QTOPK_NO_SCALE for 0).
template <typename T>
SPCCL_HD int quantExponent(double peak, int bits) {
  if (!(peak > 0)) return SPCCL_QTOPK_NO_SCALE;
  const double L = quantLevels(bits);
  int e;
  frexp(peak / L, &e);  // peak / L in [2^(e-1), 2^e): the answer is e - 1 or e
  if (ldexp(L, e - 1) >= peak) e -= 1;
  return e < smallestExponent<T>() ? smallestExponent<T>() : e;
}

// The level of value a at exponent E (0: not sent).
template <typename T>
SPCCL_HD int quantLevel(double a, int E, int bits) {
  if (E == SPCCL_QTOPK_NO_SCALE || !(fabs(a) <= largestFinite<T>())) return 0;
  int q = (int)floor(ldexp(fabs(a), -E) + 0.5);
  const int L = quantLevels(bits);
  if (q > L) q = L;                                              // only by the rounding of peak itself
  if (ldexp((double)q, E) > largestFinite<T>()) q = 0;           // c would overflow T: keep a whole
  return a < 0 ? -q : q;
}

// The value the receiver adds for level q at exponent E.
SPCCL_HD double quantValue(int q, int E) { return q == 0 ? 0.0 : ldexp((double)q, E); }

// ---- the payload: one rank's chunks, nchunks int16 exponents (padded to 8 bytes), then the
// slots as fields of offsetBits + valueBits bits, little-endian in 64-bit words: slot j of
// chunk c is field c * k + j; a field holds the offset inside the chunk and the level + L.
struct QuantLayout {
  uint64_t count;      // elements of the tensor
  uint32_t chunk;      // elements per chunk (the last chunk may be shorter)
  uint32_t nchunks;
  uint32_t k;          // slots per chunk
  uint32_t offsetBits; // bits of an offset inside a chunk
  uint32_t valueBits;  // bits of a level
};

SPCCL_HD uint32_t quantFieldBits(const QuantLayout& q) { return q.offsetBits + q.valueBits; }
SPCCL_HD uint64_t quantChunkLength(const QuantLayout& q, uint32_t c) {
  const uint64_t start = (uint64_t)c * q.chunk;
  return q.count - start < q.chunk ? q.count - start : q.chunk;
}
// Slots chunk c actually uses: k, or fewer in a short last chunk (the rest stay zero).
SPCCL_HD uint32_t quantChunkSlots(const QuantLayout& q, uint32_t c) {
  const uint64_t len = quantChunkLength(q, c);
  return len < q.k ? (uint32_t)len : q.k;
}
SPCCL_HD uint64_t quantExponentBytes(const QuantLayout& q) { return ((uint64_t)q.nchunks * 2 + 7) / 8 * 8; }
SPCCL_HD uint64_t quantFieldWords(const QuantLayout& q) {
  return ((uint64_t)q.nchunks * q.k * quantFieldBits(q) + 63) / 64;
}
SPCCL_HD uint64_t quantPayloadBytes(const QuantLayout& q) { return quantExponentBytes(q) + 8 * quantFieldWords(q); }

SPCCL_HD int16_t* quantExponents(void* payload) { return static_cast<int16_t*>(payload); }
SPCCL_HD const int16_t* quantExponents(const void* payload) { return static_cast<const int16_t*>(payload); }
SPCCL_HD uint64_t* quantFields(const QuantLayout& q, void* payload) {
  return reinterpret_cast<uint64_t*>(static_cast<char*>(payload) + quantExponentBytes(q));
}
SPCCL_HD const uint64_t* quantFields(const QuantLayout& q, const void* payload) {
  return reinterpret_cast<const uint64_t*>(static_cast<const char*>(payload) + quantExponentBytes(q));
}

// Field `slot` (c * k + j): ORed into zeroed words, read back.
SPCCL_HD void quantPutField(uint64_t* words, uint64_t slot, uint32_t bits, uint64_t value) {
  const uint64_t bit = slot * bits, w = bit / 64, shift = bit % 64;
  words[w] |= value << shift;
  if (shift + bits > 64) words[w + 1] |= value >> (64 - shift);
}
SPCCL_HD uint64_t quantGetField(const uint64_t* words, uint64_t slot, uint32_t bits) {
  const uint64_t bit = slot * bits, w = bit / 64, shift = bit % 64;
  uint64_t v = words[w] >> shift;
  if (shift + bits > 64) v |= words[w + 1] << (64 - shift);
  return v & ((bits == 64 ? 0 : (1ull << bits)) - 1);
}
SPCCL_HD uint64_t quantPackSlot(const QuantLayout& q, uint32_t offset, int level) {
  return (uint64_t)offset | ((uint64_t)(level + quantLevels(q.valueBits)) << q.offsetBits);
}
SPCCL_HD uint32_t quantSlotOffset(const QuantLayout& q, uint64_t field) {
  return (uint32_t)(field & ((1ull << q.offsetBits) - 1));
}
SPCCL_HD int quantSlotLevel(const QuantLayout& q, uint64_t field) {
  return (int)(field >> q.offsetBits) - quantLevels(q.valueBits);
}

// Whether a received slot decodes inside the tensor (the receiver's check, host and device
// alike): its offset inside chunk c and above the previous slot's (prevOffset, -1 for the
// chunk's first slot: a sender writes a chunk's offsets strictly ascending, so no two slots of
// one payload add into one element), its level in [-L, L], and its value finite in T.
template <typename T>
SPCCL_HD bool quantSlotDecodes(const QuantLayout& q, uint32_t c, int64_t prevOffset, uint32_t offset, int level,
                               int E) {
  const int L = quantLevels(q.valueBits);
  return offset < quantChunkLength(q, c) && (int64_t)offset > prevOffset && level >= -L && level <= L &&
         (level == 0 || (E != SPCCL_QTOPK_NO_SCALE && E >= smallestExponent<T>() &&
                         fabs(quantValue(level, E)) <= largestFinite<T>()));
}

}  // namespace spccl

#endif  // SPCCL_QTOPK_CORE_H_
