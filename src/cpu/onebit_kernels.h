/* SPDX-License-Identifier: Apache-2.0
 *
 * CPU kernels of the 1-bit method (methods/onebit.cc, docs/DESIGN.md "1-bit"). A chunk of
 * n values x is compressed to one scale s = mean |x| (accumulated in AccumOf<T> in index
 * order, rounded once into T) and n signs, packed 32 per word, bit i%32 of word i/32 set for
 * x >= 0 (so sign(0) = +1). The value a chunk stands for is c_i = +s or -s, exactly T.
 * Both levels use the same kernels: the worker compresses x = g + e_w, the server x = m + e_s.
 */
#ifndef SPCCL_CPU_ONEBIT_KERNELS_H_
#define SPCCL_CPU_ONEBIT_KERNELS_H_

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dtype_core.h"

namespace spccl {
namespace cpu {

inline size_t signWords(size_t n) { return (n + 31) / 32; }
inline bool signBit(const uint32_t* words, size_t i) { return (words[i / 32] >> (i % 32)) & 1u; }

// x = in + e (e null: x = in), rounded once into T as every method's acc.
template <typename T>
typename AccumOf<T>::type signInput(const T* in, const T* e, size_t i) {
  return toAcc(feedbackValue(in, e, i));
}

// scale and signs of x = in + e over n values. Returns the scale (a value of T, widened).
template <typename T>
double signCompress(const T* in, const T* e, size_t n, uint32_t* words) {
  using AccT = typename AccumOf<T>::type;
  memset(words, 0, signWords(n) * sizeof(uint32_t));
  AccT sum = 0;
  for (size_t i = 0; i < n; ++i) {
    const AccT x = signInput(in, e, i);
    sum += x < 0 ? -x : x;
    if (!(x < 0)) words[i / 32] |= 1u << (i % 32);
  }
  return n ? (double)toAcc(fromAcc<T>(sum / (AccT)n)) : 0.0;
}

// The value of position i of a compressed chunk: +scale or -scale.
template <typename T>
typename AccumOf<T>::type signValue(double scale, const uint32_t* words, size_t i) {
  using AccT = typename AccumOf<T>::type;
  return signBit(words, i) ? (AccT)scale : -(AccT)scale;
}

// eOut = x - c, what the chunk did not carry (x recomputed from in and eIn, which may alias
// eOut: each position is read before it is written).
template <typename T>
void signResidual(const T* in, const T* eIn, size_t n, double scale, const uint32_t* words, T* eOut) {
  for (size_t i = 0; i < n; ++i) eOut[i] = fromAcc<T>(signInput(in, eIn, i) - signValue<T>(scale, words, i));
}

// out = c.
template <typename T>
void signUnpack(double scale, const uint32_t* words, size_t n, T* out) {
  for (size_t i = 0; i < n; ++i) out[i] = fromAcc<T>(signValue<T>(scale, words, i));
}

}  // namespace cpu
}  // namespace spccl

#endif  // SPCCL_CPU_ONEBIT_KERNELS_H_
