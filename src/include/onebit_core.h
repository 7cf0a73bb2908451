/* SPDX-License-Identifier: Apache-2.0
 *
 * The rules of the 1-bit method (DESIGN.md, 1-bit) that the CPU kernels (cpu/onebit_kernels.h)
 * and the CUDA kernels (cuda/kernels/onebit_kernels.cuh) share, written once for both (nvcc
 * compiles this header too), so both produce the same bits.
 *
 * A chunk of len values x becomes one scale s and len signs, packed 32 per word: bit i%32 of
 * word i/32 is set for x >= 0 (sign(0) = +1, NaN counts as +), bits past len are clear.
 * s = S / len rounded into T, where S, the sum of |x| in AccumOf<T>, is added in a fixed tree
 * rather than in index order, so that a GPU can compute it in parallel and still match:
 * the 32 magnitudes of a word fold by halves (v[i] += v[i + h] for h = 16, 8, 4, 2, 1, i < h,
 * the sum is v[0]); the word sums fold the same way 32 at a time, and so on level by level
 * until one value is left; missing values past len count as +0. A warp folds with xor
 * shuffles (lane i adds lane i^h): the same pairs, and IEEE addition is commutative. Every
 * magnitude is +0 or more (fabs, never -0), so padding with +0 changes nothing and the
 * number of levels does not matter.
 *
 * The value a position stands for is c = +s or -s, exactly a value of T.
 *
 * Non-finite values (dtype_core.h's policy): a NaN or Inf of x adds +0 to S, so the scale is
 * always finite (a sum that overflows AccT gives the largest finite scale of T), and its
 * residual is 0, so it is never sent and never kept; its sign bit is set as for any other x.
 * A scale that is not finite can only come from a corrupt peer (the host path refuses it).
 *
 * A message (one compressed chunk, as it crosses the network): the scale as a double at
 * offset 0, then the sign words, padded to a multiple of 8 bytes; messages of one exchange
 * are messageBytes apart.
 */
#ifndef SPCCL_ONEBIT_CORE_H_
#define SPCCL_ONEBIT_CORE_H_

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "dtype_core.h"
#include "select_core.h"  // SPCCL_HD

namespace spccl {

// Values one fold adds: one word of signs, one warp.
constexpr unsigned kSignFold = 32;

SPCCL_HD size_t signWords(size_t len) { return ceilDiv(len, kSignFold); }
SPCCL_HD bool signBit(const uint32_t* words, size_t i) { return (words[i / kSignFold] >> (i % kSignFold)) & 1u; }
SPCCL_HD size_t signMessageBytes(size_t chunkLen) { return (sizeof(double) + 4 * signWords(chunkLen) + 7) / 8 * 8; }

// A tensor of n elements cut into nchunks chunks of chunkLen (the last ones shorter, possibly
// empty), chunk j's message at messages + j * messageBytes.
struct SignChunks {
  uint64_t n;
  uint64_t chunkLen;
  uint32_t nchunks;
  uint64_t messageBytes;
};

SPCCL_HD SignChunks signChunks(uint64_t n, uint32_t nchunks) {
  const uint64_t len = nchunks ? ceilDiv(n, nchunks) : 0;
  return {n, len, nchunks, signMessageBytes(len)};
}
SPCCL_HD uint64_t chunkBegin(const SignChunks& c, uint64_t j) {
  const uint64_t b = j * c.chunkLen;
  return b < c.n ? b : c.n;
}
SPCCL_HD uint64_t chunkSize(const SignChunks& c, uint64_t j) { return chunkBegin(c, j + 1) - chunkBegin(c, j); }

// Message j of an exchange, for writing and for reading.
struct SignMessage {
  double* scale;
  uint32_t* words;
};
struct SignMessageView {
  const double* scale;
  const uint32_t* words;
};
SPCCL_HD SignMessage signMessage(void* messages, uint64_t messageBytes, uint64_t j) {
  char* m = static_cast<char*>(messages) + j * messageBytes;
  return {reinterpret_cast<double*>(m), reinterpret_cast<uint32_t*>(m + sizeof(double))};
}
SPCCL_HD SignMessageView signMessage(const void* messages, uint64_t messageBytes, uint64_t j) {
  const char* m = static_cast<const char*>(messages) + j * messageBytes;
  return {reinterpret_cast<const double*>(m), reinterpret_cast<const uint32_t*>(m + sizeof(double))};
}

// |x| as the scale adds it: the sign bit cleared (+0 for -0); +0 for NaN and Inf.
SPCCL_HD float signMagnitude(float x) { return isfinite(x) ? fabsf(x) : 0.0f; }
SPCCL_HD double signMagnitude(double x) { return isfinite(x) ? fabs(x) : 0.0; }
// The sign bit of x: set for x >= 0 and for NaN.
template <typename AccT>
SPCCL_HD uint32_t signPositive(AccT x) {
  return !(x < 0) ? 1u : 0u;
}

// The scale of a chunk of len values whose magnitudes add up to sum: a finite value of T,
// widened. Finite magnitudes whose sum overflowed AccT give T's largest finite value.
template <typename T>
SPCCL_HD double signScale(typename AccumOf<T>::type sum, uint64_t len) {
  using AccT = typename AccumOf<T>::type;
  if (!len) return 0.0;
  const T s = fromAcc<T>(sum / (AccT)len);
  return isFiniteValue(s) ? (double)toAcc(s) : largestFinite<T>();
}

// Whether a received message's scale is one a sender can produce: finite and not negative.
SPCCL_HD bool signScaleValid(double scale) { return isfinite(scale) && scale >= 0; }

// The value c of position i of a message: +scale or -scale.
template <typename AccT>
SPCCL_HD AccT signValue(const SignMessageView& m, uint64_t i) {
  return signBit(m.words, i) ? (AccT)*m.scale : -(AccT)*m.scale;
}

// x = in + e at position i (e null: x = in), rounded once into T as every method's acc.
template <typename T>
SPCCL_HD typename AccumOf<T>::type signInput(const T* in, const T* e, uint64_t i) {
  return toAcc(feedbackValue(in, e, i));
}

// e = x - c at position i of a chunk (in, eIn: the chunk's inputs; i counted in the chunk),
// kept when finite.
template <typename T>
SPCCL_HD T signResidualAt(const T* in, const T* eIn, const SignMessageView& m, uint64_t i) {
  using AccT = typename AccumOf<T>::type;
  return keptResidual(fromAcc<T>(signInput(in, eIn, i) - signValue<AccT>(m, i)));
}

// factor times the sum, in message order, of the nmessages messages' values at position i,
// rounded once into T: the server's chunk mean (factor 1/P for avg, 1 for sum).
template <typename T>
SPCCL_HD T signMeanAt(const void* messages, uint64_t messageBytes, int nmessages, uint64_t i,
                      typename AccumOf<T>::type factor) {
  using AccT = typename AccumOf<T>::type;
  AccT sum = 0;
  for (int r = 0; r < nmessages; ++r) sum += signValue<AccT>(signMessage(messages, messageBytes, r), i);
  return fromAcc<T>(sum * factor);
}

}  // namespace spccl

#endif  // SPCCL_ONEBIT_CORE_H_
