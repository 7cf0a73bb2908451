/* SPDX-License-Identifier: Apache-2.0
 *
 * Storage types and their fp32 accumulation, written once for the host and the device.
 * fp16 and bf16 are stored as raw 16-bit patterns and converted with round-to-nearest-even,
 * the same rounding CUDA's __float2half_rn / __float2bfloat16_rn use, so host and device
 * kernels produce bit-identical results. NaN stays NaN, infinities and subnormals are kept.
 */
#ifndef SPCCL_DTYPE_CORE_H_
#define SPCCL_DTYPE_CORE_H_

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "select_core.h"  // SPCCL_HD

namespace spccl {

struct half_t { uint16_t bits; };
struct bfloat16_t { uint16_t bits; };

SPCCL_HD uint32_t floatBits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
SPCCL_HD float bitsFloat(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

SPCCL_HD float halfToFloat(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ffu;
  if (exp == 0x1f) return bitsFloat(sign | 0x7f800000u | (mant << 13));  // inf / nan
  if (exp == 0) {
    if (mant == 0) return bitsFloat(sign);
    // subnormal: value = mant * 2^-24
    float f = (float)mant * 5.9604644775390625e-8f;
    return sign ? -f : f;
  }
  return bitsFloat(sign | ((exp + 112) << 23) | (mant << 13));
}

SPCCL_HD uint16_t floatToHalf(float f) {
  uint32_t u = floatBits(f);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
  uint32_t absu = u & 0x7fffffffu;
  if (absu >= 0x7f800000u) return sign | (absu > 0x7f800000u ? 0x7e00u : 0x7c00u);  // nan / inf
  if (absu >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: overflow to inf
  if (absu < 0x38800000u) {                        // below 2^-14: subnormal or zero
    if (absu < 0x33000000u) return sign;           // below 2^-25: rounds to zero
    uint32_t exp = absu >> 23, mant = (absu & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - exp;                    // value / 2^-24 = mant * 2^(exp - 126)
    uint32_t result = mant >> shift, rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (result & 1u))) ++result;
    return sign | (uint16_t)result;
  }
  uint32_t result = absu - 0x38000000u;  // rebias exponent 127 -> 15
  uint32_t rem = result & 0x1fffu;
  result >>= 13;
  if (rem > 0x1000u || (rem == 0x1000u && (result & 1u))) ++result;
  return sign | (uint16_t)result;
}

SPCCL_HD float bf16ToFloat(uint16_t b) { return bitsFloat((uint32_t)b << 16); }

SPCCL_HD uint16_t floatToBf16(float f) {
  uint32_t u = floatBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);  // quiet nan
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

// Accumulation type and conversions: half types accumulate in fp32, fp64 stays fp64.
template <typename T> struct AccumOf { typedef T type; };
template <> struct AccumOf<half_t> { typedef float type; };
template <> struct AccumOf<bfloat16_t> { typedef float type; };

SPCCL_HD float toAcc(float v) { return v; }
SPCCL_HD double toAcc(double v) { return v; }
SPCCL_HD float toAcc(half_t v) { return halfToFloat(v.bits); }
SPCCL_HD float toAcc(bfloat16_t v) { return bf16ToFloat(v.bits); }

template <typename T> SPCCL_HD T fromAcc(typename AccumOf<T>::type v) { return (T)v; }
template <> SPCCL_HD half_t fromAcc<half_t>(float v) { half_t h; h.bits = floatToHalf(v); return h; }
template <> SPCCL_HD bfloat16_t fromAcc<bfloat16_t>(float v) { bfloat16_t b; b.bits = floatToBf16(v); return b; }

// a + b in the accumulation type, rounded once into T: the single rounding of acc = g + e (DESIGN.md, Error feedback),
// shared by the CPU kernels, the CUDA kernels and the MPI half-type reduction.
template <typename T> SPCCL_HD T addRounded(T a, T b) { return fromAcc<T>(toAcc(a) + toAcc(b)); }
// acc = g + e at position i, rounded once; e null (feedback NONE) gives acc = g.
template <typename T> SPCCL_HD T feedbackValue(const T* g, const T* e, size_t i) {
  return e ? addRounded(g[i], e[i]) : g[i];
}
// The non-finite policy every method obeys (DESIGN.md, Error feedback): a NaN or Inf of
// acc = g + e, or a value the rounding into T overflowed, is sent at most in the call where it
// appears (when the method selects it) and is never kept: a residual holds finite values
// only, 0 in the place of any other. Every residual write goes through keptResidual.
template <typename T> SPCCL_HD bool isFiniteValue(T v) { return isfinite(toAcc(v)); }
template <typename T> SPCCL_HD T keptResidual(T v) { return isFiniteValue(v) ? v : T(); }
// T's largest finite value, widened.
template <typename T> SPCCL_HD double largestFinite();
template <> SPCCL_HD double largestFinite<float>() { return 3.40282346638528859812e+38; }
template <> SPCCL_HD double largestFinite<double>() { return 1.79769313486231570815e+308; }
template <> SPCCL_HD double largestFinite<half_t>() { return 65504.0; }
template <> SPCCL_HD double largestFinite<bfloat16_t>() { return 3.38953138925153547590e+38; }
// The residual of an element that was not sent: acc = g + e, kept when finite.
template <typename T> SPCCL_HD T keptSum(T g, T e) { return keptResidual(addRounded(g, e)); }
// scale * v in the accumulation type, rounded once (avg and decompress scaling).
template <typename T> SPCCL_HD T scaleRounded(T v, typename AccumOf<T>::type scale) {
  return fromAcc<T>(toAcc(v) * scale);
}

}  // namespace spccl

#endif  // SPCCL_DTYPE_CORE_H_
