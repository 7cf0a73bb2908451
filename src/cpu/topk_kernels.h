/* SPDX-License-Identifier: Apache-2.0
 *
 * CPU kernels of the top-k family (DESIGN.md, Top-k family); the per-element rules live in topk_core.h.
 *
 *  - Exact top-k is a radix select over magnitudeKey(): one histogram of the top 11 key bits
 *    (fused with acc = g + e), one pass that lists the positions above the bucket holding the
 *    k-th key and the members of that bucket, then the remaining digits refined on those
 *    members only. A bucket too large for the candidate buffer (narrow or constant data) is
 *    refined over the full array instead: slower, same answer. The result is exact, lists
 *    positions in ascending order, and breaks ties by lower position.
 *  - Gaussian-k: one pass for acc and the moments of its finite values, up to three counting
 *    passes, one stable compaction into exactly k slots padded with SPCCL_PAD_INDEX / 0.
 *  - Pairs: scatter-add skips padding; callers check indices first with firstBadIndex so a
 *    bad payload is refused before anything is written.
 * NaN and Inf never crash or hang anything here: NaN ranks above Inf in top-k, NaN is never
 * above a Gaussian-k threshold, and the moments ignore non-finite values.
 */
#ifndef SPCCL_CPU_TOPK_KERNELS_H_
#define SPCCL_CPU_TOPK_KERNELS_H_

#include <math.h>
#include <stddef.h>
#include <string.h>

#include <algorithm>

#include "dtype_core.h"
#include "spccl.h"
#include "topk_core.h"

namespace spccl {
namespace cpu {

constexpr int kRadixBits = 11;
constexpr uint32_t kRadixBins = 1u << kRadixBits;

template <typename Key>
constexpr int topDigitShift() {
  return int(sizeof(Key) * 8) - kRadixBits;
}

// Scratch of the exact selection: `above` holds k positions, `cand` candCap of them.
struct TopKScratch {
  uint32_t* above;
  uint32_t* cand;
  size_t candCap;
};

// hist (kRadixBins entries) counts the top digit of each magnitude key of v[0, n).
template <typename T>
void magnitudeHistogram(const T* v, size_t n, uint32_t* hist) {
  using Key = typename MagnitudeKeyOf<T>::type;
  memset(hist, 0, kRadixBins * sizeof(uint32_t));
  for (size_t i = 0; i < n; ++i) hist[magnitudeKey(v[i]) >> topDigitShift<Key>()]++;
}

// acc = g + e and the top-digit histogram of acc in one pass over memory.
template <typename T>
void feedbackHistogram(const T* g, const T* e, T* acc, size_t n, uint32_t* hist) {
  using Key = typename MagnitudeKeyOf<T>::type;
  memset(hist, 0, kRadixBins * sizeof(uint32_t));
  for (size_t i = 0; i < n; ++i) {
    const T a = feedbackValue(g, e, i);
    acc[i] = a;
    hist[magnitudeKey(a) >> topDigitShift<Key>()]++;
  }
}

namespace detail {

// The bucket, walking down from the top, in which the need-th largest falls; *need becomes
// the rank inside it.
inline uint32_t radixBucket(const uint32_t* hist, size_t* need) {
  uint32_t b = kRadixBins - 1;
  while (hist[b] < *need) *need -= hist[b--];
  return b;
}

}  // namespace detail

// The k positions of v[0, n) of largest magnitude (lower position on ties), in ascending
// order, into out[0, k). hist is v's magnitudeHistogram. Requires 1 <= k <= n < 2^32.
template <typename T>
void topKFromHistogram(const T* v, size_t n, size_t k, const uint32_t* hist, const TopKScratch& s, uint32_t* out) {
  using Key = typename MagnitudeKeyOf<T>::type;
  constexpr int top = topDigitShift<Key>();
  if (k >= n) {
    for (size_t i = 0; i < n; ++i) out[i] = (uint32_t)i;
    return;
  }
  size_t need = k;
  const Key b1 = detail::radixBucket(hist, &need);
  size_t bucketCount = hist[b1];
  const bool listed = bucketCount <= s.candCap;
  // Positions above the bucket are in; the bucket's members are listed when they fit. Their
  // smallest and largest keys are noted: when equal (constant or few-valued data) the k-th
  // key is known and no refinement pass is needed.
  size_t nabove = 0, ncand = 0;
  Key lo = ~Key(0), hi = 0;
  for (size_t i = 0; i < n; ++i) {
    const Key key = magnitudeKey(v[i]);
    const Key d = key >> top;
    if (d > b1) {
      s.above[nabove++] = (uint32_t)i;
    } else if (d == b1) {
      lo = key < lo ? key : lo;
      hi = key > hi ? key : hi;
      if (listed) s.cand[ncand++] = (uint32_t)i;
    }
  }
  // Visits the bucket's members (position, key) in ascending position order.
  auto members = [&](auto&& f) {
    if (listed) {
      for (size_t j = 0; j < ncand; ++j) f(s.cand[j], magnitudeKey(v[s.cand[j]]));
    } else {
      for (size_t i = 0; i < n; ++i) {
        const Key key = magnitudeKey(v[i]);
        if ((key >> top) == b1) f((uint32_t)i, key);
      }
    }
  };
  // Refine digit by digit until the prefix pins the k-th key, or the bucket is taken whole.
  Key prefix = b1;
  int shift = top;
  if (lo == hi) {
    prefix = hi;
    shift = 0;
  }
  uint32_t hist2[kRadixBins];
  while (shift > 0 && need < bucketCount) {
    const int bits = shift < kRadixBits ? shift : kRadixBits;
    const int next = shift - bits;
    const Key mask = (Key(1) << bits) - 1;
    memset(hist2, 0, sizeof(hist2));
    members([&](uint32_t, Key key) {
      if ((key >> shift) == prefix) hist2[(key >> next) & mask]++;
    });
    const uint32_t b = detail::radixBucket(hist2, &need);
    bucketCount = hist2[b];
    prefix = (prefix << bits) | b;
    shift = next;
  }
  // Emit: members above the prefix, and the first `need` equal to it, merged by position
  // with the positions above the first bucket.
  size_t ia = 0, o = 0, taken = 0;
  members([&](uint32_t i, Key key) {
    const Key high = key >> shift;
    if (high < prefix || (high == prefix && taken++ >= need)) return;
    while (ia < nabove && s.above[ia] < i) out[o++] = s.above[ia++];
    out[o++] = i;
  });
  while (ia < nabove) out[o++] = s.above[ia++];
}

template <typename T>
void topK(const T* v, size_t n, size_t k, const TopKScratch& s, uint32_t* out) {
  uint32_t hist[kRadixBins];
  magnitudeHistogram(v, n, hist);
  topKFromHistogram(v, n, k, hist, s, out);
}

// ------------------------------------------------------------------------- Gaussian-k

struct Moments {
  double sum, sumSq;
  size_t finite;
};

// acc = g + e and the sums of acc's finite values, in one pass. Four lanes let the compiler
// keep several additions in flight without reassociating a single chain.
template <typename T>
Moments feedbackMoments(const T* g, const T* e, T* acc, size_t n) {
  double sum[4] = {0, 0, 0, 0}, sq[4] = {0, 0, 0, 0};
  size_t finite[4] = {0, 0, 0, 0};
  size_t i = 0;
  auto add = [&](int lane, size_t j) {
    const T a = feedbackValue(g, e, j);
    acc[j] = a;
    const double x = (double)toAcc(a);
    const bool ok = isfinite(x);
    sum[lane] += ok ? x : 0.0;
    sq[lane] += ok ? x * x : 0.0;
    finite[lane] += ok;
  };
  for (; i + 4 <= n; i += 4)
    for (int lane = 0; lane < 4; ++lane) add(lane, i + lane);
  for (; i < n; ++i) add(0, i);
  return {(sum[0] + sum[1]) + (sum[2] + sum[3]), (sq[0] + sq[1]) + (sq[2] + sq[3]),
          finite[0] + finite[1] + finite[2] + finite[3]};
}

// The first threshold: |μ| + σ·Φ⁻¹(1 − density/2) over the finite values; +inf when none is.
inline double gaussianKFirstThreshold(const Moments& m, double density) {
  if (m.finite == 0) return HUGE_VAL;
  const double mean = m.sum / (double)m.finite;
  const double var = m.sumSq / (double)m.finite - mean * mean;
  return gaussianThreshold(mean, var > 0 ? sqrt(var) : 0.0, density);
}

// Elements with |v| > t (NaN never is).
template <typename T>
size_t countAbove(const T* v, size_t n, typename AccumOf<T>::type t) {
  size_t count = 0;
  for (size_t i = 0; i < n; ++i) count += fabs(toAcc(v[i])) > t;
  return count;
}

// The first k positions (ascending) with |v| > t and their values; the slots after the
// last one found carry SPCCL_PAD_INDEX and 0. Returns how many were found.
template <typename T>
size_t compactAbove(const T* v, size_t n, typename AccumOf<T>::type t, size_t k, uint32_t* idx, T* val) {
  size_t o = 0;
  for (size_t i = 0; i < n && o < k; ++i) {
    if (fabs(toAcc(v[i])) > t) {
      idx[o] = (uint32_t)i;
      val[o++] = v[i];
    }
  }
  for (size_t j = o; j < k; ++j) {
    idx[j] = SPCCL_PAD_INDEX;
    val[j] = T();
  }
  return o;
}

// Gaussian-k of acc = g + e (written to acc): k slots of (index, value). Returns the number
// of real (unpadded) pairs.
template <typename T>
size_t gaussianK(const T* g, const T* e, T* acc, size_t n, size_t k, double density, uint32_t* idx, T* val) {
  using AccT = typename AccumOf<T>::type;
  const Moments m = feedbackMoments(g, e, acc, n);
  GaussianKSearch search = gaussianKSearchStart(gaussianKFirstThreshold(m, density), k);
  while (!search.done) gaussianKSearchCounted(&search, countAbove(acc, n, (AccT)search.next));
  return compactAbove(acc, n, (AccT)search.chosen, k, idx, val);
}

// ------------------------------------------------------------------------------ pairs

// The position of the first index that is neither padding (when allowed) nor below n;
// npairs when all are valid.
inline size_t firstBadIndex(const uint32_t* idx, size_t npairs, size_t n, bool padAllowed) {
  for (size_t j = 0; j < npairs; ++j)
    if (idx[j] >= n && !(padAllowed && idx[j] == SPCCL_PAD_INDEX)) return j;
  return npairs;
}

// out[idx[j]] += val[j], padding skipped; indices must have passed firstBadIndex.
template <typename T>
void scatterAdd(const uint32_t* idx, const T* val, size_t npairs, T* out) {
  for (size_t j = 0; j < npairs; ++j)
    if (idx[j] != SPCCL_PAD_INDEX) out[idx[j]] = fromAcc<T>(toAcc(out[idx[j]]) + toAcc(val[j]));
}

template <typename T>
void scale(T* v, size_t n, typename AccumOf<T>::type s) {
  for (size_t i = 0; i < n; ++i) v[i] = fromAcc<T>(toAcc(v[i]) * s);
}

// e = acc with the sent positions cleared: c + e_new == acc exactly, coordinate by coordinate.
template <typename T>
void residualCommit(T* e, const T* acc, size_t n, const uint32_t* idx, size_t npairs) {
  memcpy(static_cast<void*>(e), acc, n * sizeof(T));
  for (size_t j = 0; j < npairs; ++j)
    if (idx[j] != SPCCL_PAD_INDEX) e[idx[j]] = T();
}

// The union of two index-sorted pair lists; values at equal indices add in AccT and round
// once into T (a + b == b + a, so both partners of an exchange get the same list).
template <typename T>
size_t mergePairs(const uint32_t* ia, const T* va, size_t na, const uint32_t* ib, const T* vb, size_t nb,
                  uint32_t* io, T* vo) {
  size_t a = 0, b = 0, o = 0;
  while (a < na || b < nb) {
    if (b == nb || (a < na && ia[a] < ib[b])) {
      io[o] = ia[a];
      vo[o++] = va[a++];
    } else if (a == na || ib[b] < ia[a]) {
      io[o] = ib[b];
      vo[o++] = vb[b++];
    } else {
      io[o] = ia[a];
      vo[o++] = fromAcc<T>(toAcc(va[a++]) + toAcc(vb[b++]));
    }
  }
  return o;
}

}  // namespace cpu
}  // namespace spccl

#endif  // SPCCL_CPU_TOPK_KERNELS_H_
