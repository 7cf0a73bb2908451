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
#include <type_traits>

#include "dtype_core.h"
#include "spccl.h"
#include "topk_core.h"

namespace spccl {
namespace cpu {

constexpr int kRadixBits = 11;
constexpr uint32_t kRadixBins = 1u << kRadixBits;

// The first digit is the 11 bits below the sign bit, which magnitudeKey() always clears:
// for fp32 the exponent and the top three mantissa bits.
template <typename Key>
constexpr int topDigitShift() {
  return int(sizeof(Key) * 8) - 1 - kRadixBits;
}

// Scratch of the exact selection: room for `cap` listed elements, each a position and a
// magnitude key of the element type (MagnitudeKeyOf), so later passes read the short list
// and not the tensor. topKScratchCap(k) holds every candidate of smooth data at any density;
// when they do not fit, the selection refines over the full array: slower, same answer.
struct TopKScratch {
  uint32_t* pos;
  void* keys;
  size_t cap;
};
constexpr size_t topKScratchCap(size_t k) { return 2 * k + kRadixBins; }
inline size_t topKScratchBytes(size_t k, size_t keyBytes) { return topKScratchCap(k) * (sizeof(uint32_t) + keyBytes); }

namespace detail {

// Separate counters per lane: runs of equal digits (most of a smooth tensor falls in a few
// buckets) would otherwise wait on the previous increment of the same counter.
constexpr int kHistLanes = 4;

// hist (kRadixBins entries) counts the top digit of keyOf(i), i in [0, n).
template <typename Key, typename KeyOf>
void laneHistogram(size_t n, uint32_t* hist, KeyOf keyOf) {
  uint32_t lanes[kHistLanes][kRadixBins] = {};
  size_t i = 0;
  for (; i + kHistLanes <= n; i += kHistLanes)
    for (int l = 0; l < kHistLanes; ++l) lanes[l][keyOf(i + l) >> topDigitShift<Key>()]++;
  for (; i < n; ++i) lanes[0][keyOf(i) >> topDigitShift<Key>()]++;
  for (uint32_t b = 0; b < kRadixBins; ++b) hist[b] = lanes[0][b] + lanes[1][b] + lanes[2][b] + lanes[3][b];
}

// The bucket, walking down from the top, in which the need-th largest falls; *need becomes
// the rank inside it.
inline uint32_t radixBucket(const uint32_t* hist, size_t* need) {
  uint32_t b = kRadixBins - 1;
  while (hist[b] < *need) *need -= hist[b--];
  return b;
}

// Lists (position, key) of the elements whose key is at least `low`, in ascending position,
// the first cap of them; returns how many there are (more than cap: the list is cut).
// value(i) is called once per element, in order (it may form acc[i]). Blocks without a
// listed element (nearly all, at small density) cost one vectorized comparison.
template <typename T, typename Key, typename Value>
size_t listAtLeast(size_t n, Key low, Value value, const TopKScratch& s) {
  constexpr size_t kBlock = 16;
  // Keys never have the sign bit set, so a signed comparison (what SSE2 has) is exact.
  using SignedKey = typename std::make_signed<Key>::type;
  Key* keys = static_cast<Key*>(s.keys);
  size_t m = 0;
  auto list = [&](size_t i, Key key) {
    if (key < low) return;
    if (m < s.cap) {
      s.pos[m] = (uint32_t)i;
      keys[m] = key;
    }
    ++m;
  };
  size_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    Key block[kBlock];
    int hits = 0;
#pragma GCC unroll 1  // unrolled whole, the comparisons would not be vectorized
    for (size_t j = 0; j < kBlock; ++j) {
      block[j] = magnitudeKey(value(i + j));
      hits += SignedKey(block[j]) >= SignedKey(low);
    }
    if (!hits) continue;
    if (m + kBlock > s.cap) {
      for (size_t j = 0; j < kBlock; ++j) list(i + j, block[j]);
      continue;
    }
    for (size_t j = 0; j < kBlock; ++j) {  // without a branch to mispredict: m moves past a listed one only
      s.pos[m] = (uint32_t)(i + j);
      keys[m] = block[j];
      m += block[j] >= low;
    }
  }
  for (; i < n; ++i) list(i, magnitudeKey(value(i)));
  return m;
}

// The exact top-k among candidates, k <= their number. members(f) calls f(position, key) for
// each candidate in ascending position; hist is the top-digit histogram of the candidates
// (or of a superset whose extra elements all rank below the k-th candidate). Refines digit
// by digit until the prefix pins the k-th key, then emits by position every candidate above
// it and the first ones equal to it.
template <typename Key, typename Members>
void refineAndEmit(Members members, const uint32_t* hist, size_t k, uint32_t* out) {
  size_t need = k;
  Key prefix = radixBucket(hist, &need);
  size_t bucketCount = hist[prefix];
  int shift = topDigitShift<Key>();
  uint32_t hist2[kRadixBins];
  while (shift > 0 && need < bucketCount) {
    const int bits = shift < kRadixBits ? shift : kRadixBits;
    const int next = shift - bits;
    const Key mask = (Key(1) << bits) - 1;
    memset(hist2, 0, sizeof(hist2));
    // The bucket's smallest and largest keys too: when they are equal (constant or
    // few-valued data) the k-th key is known.
    Key lo = ~Key(0), hi = 0;
    members([&](uint32_t, Key key) {
      if ((key >> shift) != prefix) return;
      hist2[(key >> next) & mask]++;
      lo = key < lo ? key : lo;
      hi = key > hi ? key : hi;
    });
    if (lo == hi) {
      prefix = hi;
      shift = 0;
      break;
    }
    const uint32_t b = radixBucket(hist2, &need);
    bucketCount = hist2[b];
    prefix = (prefix << bits) | b;
    shift = next;
  }
  size_t o = 0, taken = 0;
  members([&](uint32_t i, Key key) {
    const Key high = key >> shift;
    if (high > prefix || (high == prefix && taken++ < need)) out[o++] = i;
  });
}

// Candidates: the m listed elements of s.
template <typename Key>
auto listedMembers(const TopKScratch& s, size_t m) {
  return [&s, m](auto&& f) {
    const Key* keys = static_cast<const Key*>(s.keys);
    for (size_t j = 0; j < m; ++j) f(s.pos[j], keys[j]);
  };
}

// A key that somewhat more than k elements reach, for data without structure at the sample's
// stride: the key of rank k·samples/n + `sigmas` standard deviations + 2 among samples taken
// at an even stride (sorted into keys), but aiming no higher than halfway from k to `cap`
// (a small sample's margin would overshoot). Fewer than k, or more than cap, and the caller
// tries again or falls back to the histogram; a bad guess costs time, never exactness.
template <typename Key, typename Value>
Key sampledThreshold(size_t n, size_t k, size_t cap, size_t samples, double sigmas, Key* keys, Value value) {
  for (size_t j = 0; j < samples; ++j) keys[j] = magnitudeKey(value((size_t)((uint64_t)j * n / samples)));
  const double perElement = (double)samples / (double)n, expected = (double)k * perElement;
  const double halfway = 0.5 * (double)(k + cap) * perElement;
  const size_t rank = (size_t)std::min(expected + sigmas * sqrt(expected) + 2.0, halfway);
  if (rank >= samples) return 0;
  std::nth_element(keys, keys + rank, keys + samples, [](Key a, Key b) { return a > b; });
  return keys[rank];
}

// Below this many elements the two-pass histogram path is as fast and the sample not worth it.
constexpr size_t kSampledMinCount = 1u << 16;
constexpr size_t kMaxSamples = 1u << 16;

}  // namespace detail

// hist (kRadixBins entries) counts the top digit of each magnitude key of v[0, n).
template <typename T>
void magnitudeHistogram(const T* v, size_t n, uint32_t* hist) {
  using Key = typename MagnitudeKeyOf<T>::type;
  detail::laneHistogram<Key>(n, hist, [v](size_t i) { return magnitudeKey(v[i]); });
}

// The k positions of v[0, n) of largest magnitude (lower position on ties), in ascending
// order, into out[0, k). hist is v's magnitudeHistogram. Requires 1 <= k <= n < 2^32.
// Lists every element at or above the bucket of the k-th key when they fit the scratch.
template <typename T>
void topKFromHistogram(const T* v, size_t n, size_t k, const uint32_t* hist, const TopKScratch& s, uint32_t* out) {
  using Key = typename MagnitudeKeyOf<T>::type;
  if (k >= n) {
    for (size_t i = 0; i < n; ++i) out[i] = (uint32_t)i;
    return;
  }
  size_t need = k;
  const Key b1 = detail::radixBucket(hist, &need);
  size_t atLeast = 0;
  for (uint32_t b = b1; b < kRadixBins; ++b) atLeast += hist[b];
  if (atLeast <= s.cap) {
    detail::listAtLeast<T>(n, Key(b1) << topDigitShift<Key>(), [v](size_t i) { return v[i]; }, s);
    detail::refineAndEmit<Key>(detail::listedMembers<Key>(s, atLeast), hist, k, out);
    return;
  }
  auto everyElement = [v, n](auto&& f) {
    for (size_t i = 0; i < n; ++i) f((uint32_t)i, magnitudeKey(v[i]));
  };
  detail::refineAndEmit<Key>(everyElement, hist, k, out);
}

// Exact top-k of acc = g + e (e null: acc = g, and acc may be g itself), acc written whole:
// positions into out[0, k), ascending, lower position on ties. Requires 1 <= k <= n < 2^32.
// One pass when a sampled threshold lists between k and s.cap elements (the usual case):
// it forms acc and lists the candidates, and the exact select runs on the list. A threshold
// that lists fewer than k, or more than fit, is moved once (one more listing pass); after
// that, a histogram pass over acc and topKFromHistogram.
template <typename T>
void topKFeedback(const T* g, const T* e, T* acc, size_t n, size_t k, const TopKScratch& s, uint32_t* out) {
  using Key = typename MagnitudeKeyOf<T>::type;
  const size_t samples = std::min(detail::kMaxSamples, s.cap);
  if (k < n && n >= detail::kSampledMinCount && samples > 0 && samples * 8 <= n) {
    Key* keys = static_cast<Key*>(s.keys);
    auto sample = [=](size_t i) { return feedbackValue(g, e, i); };
    auto formed = [=](size_t i) { return acc[i] = feedbackValue(g, e, i); };
    auto kept = [=](size_t i) { return acc[i]; };
    const Key low = detail::sampledThreshold(n, k, s.cap, samples, 3.0, keys, sample);
    size_t m = acc == g && !e ? detail::listAtLeast<T>(n, low, kept, s) : detail::listAtLeast<T>(n, low, formed, s);
    if (m < k || m > s.cap) {  // once more, on the acc now formed: lower, or higher
      const Key again = detail::sampledThreshold(n, k, s.cap, samples, m < k ? 8.0 : 0.5, keys, kept);
      if (m < k ? again < low : again > low) m = detail::listAtLeast<T>(n, again, kept, s);
    }
    if (m >= k && m <= s.cap) {
      uint32_t hist[kRadixBins];
      detail::laneHistogram<Key>(m, hist, [keys](size_t j) { return keys[j]; });
      detail::refineAndEmit<Key>(detail::listedMembers<Key>(s, m), hist, k, out);
      return;
    }
  } else if (acc != g || e) {
    for (size_t i = 0; i < n; ++i) acc[i] = feedbackValue(g, e, i);
  }
  uint32_t hist[kRadixBins];
  magnitudeHistogram(acc, n, hist);
  topKFromHistogram(acc, n, k, hist, s, out);
}

template <typename T>
void topK(const T* v, size_t n, size_t k, const TopKScratch& s, uint32_t* out) {
  topKFeedback(v, static_cast<const T*>(nullptr), const_cast<T*>(v), n, k, s, out);
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

// Elements with |v| > t, NaN included (aboveThreshold).
template <typename T>
size_t countAbove(const T* v, size_t n, typename AccumOf<T>::type t) {
  size_t count = 0;
  for (size_t i = 0; i < n; ++i) count += aboveThreshold(toAcc(v[i]), t);
  return count;
}

// The first k positions (ascending) with |v| > t and their values; the slots after the
// last one found carry SPCCL_PAD_INDEX and 0. Returns how many were found.
template <typename T>
size_t compactAbove(const T* v, size_t n, typename AccumOf<T>::type t, size_t k, uint32_t* idx, T* val) {
  size_t o = 0;
  for (size_t i = 0; i < n && o < k; ++i) {
    if (aboveThreshold(toAcc(v[i]), t)) {
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

// e = acc with the sent positions cleared: c + e_new == acc exactly, coordinate by coordinate,
// except where acc is not finite: the residual keeps 0 there (keptResidual).
// acc may be e itself (spcclCompress forms acc in the residual).
template <typename T>
void residualCommit(T* e, const T* acc, size_t n, const uint32_t* idx, size_t npairs) {
  for (size_t i = 0; i < n; ++i) e[i] = keptResidual(acc[i]);
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
