/* SPDX-License-Identifier: Apache-2.0
 *
 * Per-element rules of the top-k family (DESIGN.md, Top-k family), written once for the host and the device
 * (nvcc compiles this header too).
 *
 * Invariant: the CPU kernels, the CUDA kernels and the test references rank elements by the
 * same key and break ties the same way, so they choose the same set from the same values:
 *  - magnitude order is the order of magnitudeKey(): the bits of |v| read as an unsigned
 *    integer. For IEEE floats that is the numeric order of |v|, -0 equals +0, and NaN ranks
 *    above +Inf (a NaN is never silently dropped from an exact top-k, and never crashes it);
 *  - among equal keys the lower index wins (magnitudeBefore).
 * Half types are ranked by their fp32 value, which orders exactly as their own bits do.
 *
 * Gaussian-k's threshold search is a small state machine (GaussianKSearch) so the host and a
 * single device thread run the identical decision rule: at most three counts, and selection
 * only with a threshold whose count was measured.
 */
#ifndef SPCCL_TOPK_CORE_H_
#define SPCCL_TOPK_CORE_H_

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "dtype_core.h"
#include "select_core.h"  // SPCCL_HD

namespace spccl {

// k = min(n, max(1, ceil(density * n))); 0 for an empty tensor.
SPCCL_HD size_t topkCount(size_t n, double density) {
  if (n == 0) return 0;
  const double wanted = ceil(density * (double)n);
  if (!(wanted >= 1.0)) return 1;  // also catches NaN
  return wanted >= (double)n ? n : (size_t)wanted;
}

// ------------------------------------------------------------------ magnitude order
template <typename T> struct MagnitudeKeyOf { typedef uint32_t type; };
template <> struct MagnitudeKeyOf<double> { typedef uint64_t type; };

SPCCL_HD uint32_t magnitudeKey(float v) { return floatBits(v) & 0x7fffffffu; }
SPCCL_HD uint32_t magnitudeKey(half_t v) { return magnitudeKey(toAcc(v)); }
SPCCL_HD uint32_t magnitudeKey(bfloat16_t v) { return magnitudeKey(toAcc(v)); }
SPCCL_HD uint64_t magnitudeKey(double v) {
  uint64_t u;
  memcpy(&u, &v, 8);
  return u & 0x7fffffffffffffffull;
}

// True when element (a, ia) ranks before (b, ib): larger magnitude first, lower index on ties.
template <typename T>
SPCCL_HD bool magnitudeBefore(T a, size_t ia, T b, size_t ib) {
  const auto ka = magnitudeKey(a), kb = magnitudeKey(b);
  return ka != kb ? ka > kb : ia < ib;
}

// ------------------------------------------------------------------ Gaussian-k threshold
// Φ⁻¹(p), the inverse standard normal CDF, by Acklam's rational approximation (relative
// error below 1.2e-9 on (0, 1)). Returns ±HUGE_VAL at 0 and 1, NaN outside [0, 1].
SPCCL_HD double inverseNormalCdf(double p) {
  const double a1 = -3.969683028665376e+01, a2 = 2.209460984245205e+02, a3 = -2.759285104469687e+02,
               a4 = 1.383577518672690e+02, a5 = -3.066479806614716e+01, a6 = 2.506628277459239e+00;
  const double b1 = -5.447609879822406e+01, b2 = 1.615858368580409e+02, b3 = -1.556989798598866e+02,
               b4 = 6.680131188771972e+01, b5 = -1.328068155288572e+01;
  const double c1 = -7.784894002430293e-03, c2 = -3.223964580411365e-01, c3 = -2.400758277161838e+00,
               c4 = -2.549732539343734e+00, c5 = 4.374664141464968e+00, c6 = 2.938163982698783e+00;
  const double d1 = 7.784695709041462e-03, d2 = 3.224671290700398e-01, d3 = 2.445134137142996e+00,
               d4 = 3.754408661907416e+00;
  const double pLow = 0.02425, pHigh = 1 - pLow;
  if (!(p >= 0.0 && p <= 1.0)) return NAN;
  if (p == 0.0) return -HUGE_VAL;
  if (p == 1.0) return HUGE_VAL;
  if (p < pLow) {
    const double q = sqrt(-2 * log(p));
    return (((((c1 * q + c2) * q + c3) * q + c4) * q + c5) * q + c6) / ((((d1 * q + d2) * q + d3) * q + d4) * q + 1);
  }
  if (p > pHigh) {
    const double q = sqrt(-2 * log(1 - p));
    return -(((((c1 * q + c2) * q + c3) * q + c4) * q + c5) * q + c6) / ((((d1 * q + d2) * q + d3) * q + d4) * q + 1);
  }
  const double q = p - 0.5, r = q * q;
  return (((((a1 * r + a2) * r + a3) * r + a4) * r + a5) * r + a6) * q /
         (((((b1 * r + b2) * r + b3) * r + b4) * r + b5) * r + 1);
}

// Gaussian-k's selection test, in AccT: |v| above the threshold t, and NaN too, so that a NaN
// passes once (as in exact top-k, where it ranks above +Inf) instead of staying behind; the
// residual keeps no non-finite value either way (dtype_core.h, keptResidual).
template <typename AccT>
SPCCL_HD bool aboveThreshold(AccT v, AccT t) {
  return !(fabs(v) <= t);
}

// t = |μ| + σ·Φ⁻¹(1 − density/2): for normal data, the fraction `density` of |acc| lies above.
SPCCL_HD double gaussianThreshold(double mean, double stddev, double density) {
  return fabs(mean) + stddev * inverseNormalCdf(1.0 - density / 2.0);
}

// The count-and-adjust search of DESIGN.md, Top-k family. Use:
//   GaussianKSearch s = gaussianKSearchStart(t0, k);
//   while (!s.done) gaussianKSearchCounted(&s, count of |acc| > s.next);
//   select with s.chosen (its count is s.chosenCount).
// A count within [2k/3, 4k/3] stops the search. Otherwise the next threshold is halved (too
// few) or multiplied by 1.5 (too many), at most three counts in all. The threshold kept is
// always one whose count was measured, preferring: a count inside the window; else the
// smallest count above 4k/3; else the largest count (all below 2k/3). Selecting with an
// uncounted threshold could send almost nothing when, late under error feedback, the values
// cluster just below the first threshold.
constexpr int kGaussianKMaxCounts = 3;

struct GaussianKSearch {
  size_t k;
  double next;  // the threshold to count next
  int counts;   // counts measured so far
  int done;
  double chosen;  // the best measured threshold so far
  size_t chosenCount;
};

// -1 below the window [2k/3, 4k/3], 0 inside, +1 above; integer arithmetic, no rounding.
SPCCL_HD int gaussianKWindow(size_t count, size_t k) {
  if (3 * (uint64_t)count < 2 * (uint64_t)k) return -1;
  return 3 * (uint64_t)count > 4 * (uint64_t)k ? 1 : 0;
}

// True when a measured count `a` is preferred to `b` (the preference order above).
SPCCL_HD bool gaussianKPrefer(size_t a, size_t b, size_t k) {
  const int wa = gaussianKWindow(a, k), wb = gaussianKWindow(b, k);
  if (wa == 0 || wb == 0) return wa == 0 && wb != 0;
  if (wa > 0 && wb > 0) return a < b;  // both too many: the smallest
  if (wa < 0 && wb < 0) return a > b;  // both too few: the largest
  return wa > 0;                       // too many beats too few
}

SPCCL_HD GaussianKSearch gaussianKSearchStart(double threshold, size_t k) {
  GaussianKSearch s;
  s.k = k;
  s.next = threshold;
  s.counts = 0;
  s.done = 0;
  s.chosen = threshold;
  s.chosenCount = 0;
  return s;
}

SPCCL_HD void gaussianKSearchCounted(GaussianKSearch* s, size_t count) {
  if (s->counts == 0 || gaussianKPrefer(count, s->chosenCount, s->k)) {
    s->chosen = s->next;
    s->chosenCount = count;
  }
  s->counts++;
  const int window = gaussianKWindow(count, s->k);
  if (window == 0 || s->counts >= kGaussianKMaxCounts) {
    s->done = 1;
    return;
  }
  s->next = window < 0 ? s->next * 0.5 : s->next * 1.5;
}

}  // namespace spccl

#endif  // SPCCL_TOPK_CORE_H_
