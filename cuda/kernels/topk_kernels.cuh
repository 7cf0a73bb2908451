/* SPDX-License-Identifier: Apache-2.0
 *
 * The top-k family on the device (DESIGN.md, Top-k family), every step stream-ordered with no host round
 * trip: k is fixed, so the output is always k slots.
 *
 *   exact top-k   feedbackHistogramKernel  acc = g + e into the workspace, histogram of the
 *                                          top digit of magnitudeKey(acc)
 *                 radixHistogramKernel     histogram of the next digit among the keys that
 *                                          match the digits chosen so far
 *                 radixChooseKernel        one block: the bucket holding the k-th largest key
 *                 -> after the last digit: the k-th key K, how many keys are > K, and how
 *                    many equal to K must be taken (needEq: the lowest indices win)
 *   Gaussian-k    feedbackMomentsKernel    acc = g + e, per-block sums of finite values
 *                 gaussianThresholdsKernel one block: t0 = |mu| + sigma * z, and the five
 *                                          thresholds the search can reach from it
 *                 thresholdCountKernel     the counts of all six in one pass
 *                 gaussianSearchKernel     one thread: topk_core.h's GaussianKSearch on
 *                                          those counts, so the device takes exactly the
 *                                          host's decisions (at most three counts, a
 *                                          measured threshold only)
 *   both          tileCountKernel, tileScanKernel, compactKernel: a stable compaction of the
 *                 selected positions into k slots in index order; padKernel fills unused
 *                 slots with SPCCL_PAD_INDEX and 0
 *   pairs         residualCommitKernel e = acc, scatterClearKernel clears the sent slots;
 *                 scatterAddKernel out[idx] += val (one list per launch, so adds at the same
 *                 index from different ranks happen in rank order, as on the CPU), scaleKernel
 *
 * Invariants: keys, tie-breaking and the threshold search come from topk_core.h, element
 * arithmetic from dtype_core.h, so the exact top-k equals the CPU's bit for bit; Gaussian-k
 * equals it whenever the two mean/std reductions (summed in different orders) put the same
 * elements on each side of the threshold. Every reduction is in a fixed order (no floating
 * point atomics), so results do not change from run to run.
 */
#ifndef SPCCL_CUDA_TOPK_KERNELS_CUH_
#define SPCCL_CUDA_TOPK_KERNELS_CUH_

#include <stdint.h>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "dtype_core.h"
#include "topk_core.h"

namespace spccl {
namespace cuda {

constexpr int kMaxDigitBits = 11;
constexpr int kMaxBins = 1 << kMaxDigitBits;
constexpr int kChooseThreads = 1024;
constexpr int kMomentBlocks = 1024;  // upper bound of the moments grid (partials in scratch)
constexpr int kGaussianCandidates = 6;

// Where the selection stands; lives in the scratch, written by the one-block kernels.
struct SelectState {
  unsigned long long prefix;     // digits chosen so far (exact top-k)
  unsigned long long mask;       // the bits they cover
  unsigned long long remaining;  // keys still to take inside the current bucket
  unsigned long long greater;    // keys above the current bucket
  double threshold;              // Gaussian-k: the chosen, measured threshold
  unsigned long long total;      // selected positions found (<= k after capping)
};

// Fresh selection state; the first histogram must start from zero too.
__global__ void selectInitKernel(unsigned* __restrict__ hist, int bins, SelectState* __restrict__ state,
                                 unsigned long long remaining) {
  for (int b = threadIdx.x; b < bins; b += blockDim.x) hist[b] = 0;
  if (threadIdx.x == 0) *state = SelectState{0, 0, remaining, 0, 0.0, 0};
}

// ------------------------------------------------------------------ exact top-k: radix select

template <typename T, int Threads>
__global__ void __launch_bounds__(Threads)
    feedbackHistogramKernel(const T* __restrict__ g, const T* __restrict__ e, T* __restrict__ acc, size_t n,
                            int shift, int bins, unsigned* __restrict__ hist) {
  __shared__ unsigned local[kMaxBins];
  for (int b = threadIdx.x; b < bins; b += Threads) local[b] = 0;
  __syncthreads();
  for (size_t i = blockIdx.x * (size_t)Threads + threadIdx.x; i < n; i += (size_t)gridDim.x * Threads) {
    const T a = feedbackValue(g, e, i);
    acc[i] = a;
    atomicAdd(&local[(unsigned)(magnitudeKey(a) >> shift) & (bins - 1)], 1u);
  }
  __syncthreads();
  for (int b = threadIdx.x; b < bins; b += Threads)
    if (local[b]) atomicAdd(&hist[b], local[b]);
}

template <typename T, int Threads>
__global__ void __launch_bounds__(Threads)
    radixHistogramKernel(const T* __restrict__ acc, size_t n, const SelectState* __restrict__ state, int shift,
                         int bins, unsigned* __restrict__ hist) {
  __shared__ unsigned local[kMaxBins];
  for (int b = threadIdx.x; b < bins; b += Threads) local[b] = 0;
  __syncthreads();
  const unsigned long long prefix = state->prefix, mask = state->mask;
  for (size_t i = blockIdx.x * (size_t)Threads + threadIdx.x; i < n; i += (size_t)gridDim.x * Threads) {
    const unsigned long long key = magnitudeKey(acc[i]);
    if ((key & mask) == prefix) atomicAdd(&local[(unsigned)(key >> shift) & (bins - 1)], 1u);
  }
  __syncthreads();
  for (int b = threadIdx.x; b < bins; b += Threads)
    if (local[b]) atomicAdd(&hist[b], local[b]);
}

// Walks the bins from the top: the bucket where the running count reaches `remaining`. Zeroes
// the histogram for the next pass, so no memset is launched between passes.
__global__ void __launch_bounds__(kChooseThreads)
    radixChooseKernel(unsigned* __restrict__ hist, int shift, int bins, SelectState* __restrict__ state) {
  typedef cub::BlockScan<unsigned long long, kChooseThreads> Scan;
  __shared__ typename Scan::TempStorage temp;
  constexpr int kPerThread = kMaxBins / kChooseThreads;
  // Read before the scan's barriers: the thread that finds the bucket updates it afterwards.
  const unsigned long long remaining = state->remaining;
  unsigned counts[kPerThread];
  unsigned long long sum = 0;
  for (int j = 0; j < kPerThread; ++j) {  // thread t owns descending positions t*kPerThread + j
    const int pos = threadIdx.x * kPerThread + j, bin = bins - 1 - pos;
    counts[j] = pos < bins ? hist[bin] : 0;
    sum += counts[j];
  }
  unsigned long long above = 0;
  Scan(temp).ExclusiveSum(sum, above);
  for (int j = 0; j < kPerThread; ++j) {
    const int pos = threadIdx.x * kPerThread + j, bin = bins - 1 - pos;
    if (pos < bins && above < remaining && remaining <= above + counts[j]) {
      state->greater += above;
      state->remaining = remaining - above;
      state->prefix |= (unsigned long long)bin << shift;
      state->mask |= (unsigned long long)(bins - 1) << shift;
    }
    above += counts[j];
  }
  __syncthreads();
  for (int pos = threadIdx.x; pos < bins; pos += kChooseThreads) hist[pos] = 0;
}

// ------------------------------------------------------------------ Gaussian-k: threshold search

// Sums over the finite values of acc; double, so the threshold does not depend on the order
// of summation beyond the last bits.
struct Moments {
  double sum, sq, finite;
};
struct MomentsSum {
  __device__ __forceinline__ Moments operator()(const Moments& a, const Moments& b) const {
    return {a.sum + b.sum, a.sq + b.sq, a.finite + b.finite};
  }
};

// The block's total, in a fixed order (cub::BlockReduce), in thread 0.
template <int Threads>
__device__ __forceinline__ Moments blockMoments(Moments m) {
  typedef cub::BlockReduce<Moments, Threads> Reduce;
  __shared__ typename Reduce::TempStorage temp;
  return Reduce(temp).Reduce(m, MomentsSum());
}

template <typename T, int Threads>
__global__ void __launch_bounds__(Threads)
    feedbackMomentsKernel(const T* __restrict__ g, const T* __restrict__ e, T* __restrict__ acc, size_t n,
                          Moments* __restrict__ partials) {
  Moments m = {0, 0, 0};
  for (size_t i = blockIdx.x * (size_t)Threads + threadIdx.x; i < n; i += (size_t)gridDim.x * Threads) {
    const T a = feedbackValue(g, e, i);
    acc[i] = a;
    const double x = (double)toAcc(a);
    if (isfinite(x)) {
      m.sum += x;
      m.sq += x * x;
      m.finite += 1;
    }
  }
  m = blockMoments<Threads>(m);
  if (threadIdx.x == 0) partials[blockIdx.x] = m;
}

// The six thresholds the search can visit, each computed with the search's own operations:
// t0/4, t0/2, 0.75 t0 (either way round: halving is exact), t0, 1.5 t0, 2.25 t0.
__device__ __forceinline__ void gaussianCandidates(double t0, double* t) {
  t[0] = t0 * 0.5 * 0.5;
  t[1] = t0 * 0.5;
  t[2] = t0 * 0.5 * 1.5;
  t[3] = t0;
  t[4] = t0 * 1.5;
  t[5] = t0 * 1.5 * 1.5;
}

template <int Threads>
__global__ void __launch_bounds__(Threads)
    gaussianThresholdsKernel(const Moments* __restrict__ partials, int nblocks, double density,
                             double* __restrict__ thresholds, unsigned long long* __restrict__ counts) {
  Moments m = {0, 0, 0};
  for (int b = threadIdx.x; b < nblocks; b += Threads) m = MomentsSum()(m, partials[b]);
  m = blockMoments<Threads>(m);
  if (threadIdx.x == 0) {
    double t0 = HUGE_VAL;  // nothing finite: nothing passes
    if (m.finite > 0) {
      const double mean = m.sum / m.finite, var = m.sq / m.finite - mean * mean;
      t0 = gaussianThreshold(mean, var > 0 ? sqrt(var) : 0.0, density);
    }
    gaussianCandidates(t0, thresholds);
    for (int j = 0; j < kGaussianCandidates; ++j) counts[j] = 0;
  }
}

template <typename T, int Threads>
__global__ void __launch_bounds__(Threads)
    thresholdCountKernel(const T* __restrict__ acc, size_t n, const double* __restrict__ thresholds,
                         unsigned long long* __restrict__ counts) {
  using AccT = typename AccumOf<T>::type;
  AccT t[kGaussianCandidates];
  unsigned long long c[kGaussianCandidates];
  for (int j = 0; j < kGaussianCandidates; ++j) {
    t[j] = (AccT)thresholds[j];  // compared in AccT, as the CPU compares
    c[j] = 0;
  }
  for (size_t i = blockIdx.x * (size_t)Threads + threadIdx.x; i < n; i += (size_t)gridDim.x * Threads) {
    const AccT a = fabs(toAcc(acc[i]));
    for (int j = 0; j < kGaussianCandidates; ++j) c[j] += a > t[j];
  }
  typedef cub::BlockReduce<unsigned long long, Threads> Reduce;
  __shared__ typename Reduce::TempStorage temp;
  for (int j = 0; j < kGaussianCandidates; ++j) {
    const unsigned long long total = Reduce(temp).Sum(c[j]);
    __syncthreads();
    if (threadIdx.x == 0 && total) atomicAdd(&counts[j], total);  // integers: order does not matter
  }
}

__global__ void gaussianSearchKernel(const double* __restrict__ thresholds, const unsigned long long* __restrict__ counts,
                                     size_t k, SelectState* __restrict__ state) {
  GaussianKSearch s = gaussianKSearchStart(thresholds[3], k);
  while (!s.done) {
    size_t count = 0;
    for (int j = 0; j < kGaussianCandidates; ++j)
      if (thresholds[j] == s.next) count = (size_t)counts[j];
    gaussianKSearchCounted(&s, count);
  }
  state->threshold = s.chosen;
}

// ------------------------------------------------------------------ stable compaction into k slots

// Exact top-k: above the k-th key, or equal to it and among the first needEq by index.
struct TopKClass {
  unsigned long long kth, needEq;
  template <typename T>
  __device__ __forceinline__ void classify(T v, unsigned* gt, unsigned* eq) const {
    const unsigned long long key = magnitudeKey(v);
    *gt = key > kth;
    *eq = key == kth;
  }
  static __device__ __forceinline__ TopKClass from(const SelectState& s) { return {s.prefix, s.remaining}; }
};

// Gaussian-k: |v| > t in AccT (NaN never passes), as cpu::compactAbove.
struct ThresholdClass {
  double t;
  unsigned long long needEq;
  template <typename T>
  __device__ __forceinline__ void classify(T v, unsigned* gt, unsigned* eq) const {
    using AccT = typename AccumOf<T>::type;
    *gt = fabs(toAcc(v)) > (AccT)t;
    *eq = 0;
  }
  static __device__ __forceinline__ ThresholdClass from(const SelectState& s) { return {s.threshold, 0}; }
};

// gt in the high 32 bits, eq in the low: one 64-bit sum scans both (each total < 2^32).
__device__ __forceinline__ unsigned long long packCounts(unsigned gt, unsigned eq) {
  return ((unsigned long long)gt << 32) | eq;
}

template <typename T, typename Class, int Threads, int Items>
__global__ void __launch_bounds__(Threads)
    tileCountKernel(const T* __restrict__ acc, size_t n, const SelectState* __restrict__ state,
                    unsigned long long* __restrict__ tileCounts) {
  const Class cls = Class::from(*state);
  const size_t base = (size_t)blockIdx.x * Threads * Items;
  unsigned gt = 0, eq = 0;
  for (int j = 0; j < Items; ++j) {
    const size_t i = base + (size_t)j * Threads + threadIdx.x;  // coalesced: order is irrelevant here
    if (i < n) {
      unsigned a, b;
      cls.classify(acc[i], &a, &b);
      gt += a;
      eq += b;
    }
  }
  typedef cub::BlockReduce<unsigned long long, Threads> Reduce;
  __shared__ typename Reduce::TempStorage temp;
  const unsigned long long total = Reduce(temp).Sum(packCounts(gt, eq));
  if (threadIdx.x == 0) tileCounts[blockIdx.x] = total;
}

// One block: exclusive prefix of the tile counts, in place; the grand total goes to state.
__global__ void __launch_bounds__(kChooseThreads)
    tileScanKernel(unsigned long long* __restrict__ tileCounts, size_t ntiles, size_t k,
                   SelectState* __restrict__ state) {
  typedef cub::BlockScan<unsigned long long, kChooseThreads> Scan;
  __shared__ typename Scan::TempStorage temp;
  const size_t per = (ntiles + kChooseThreads - 1) / kChooseThreads;
  const size_t begin = threadIdx.x * per, end = begin + per < ntiles ? begin + per : ntiles;
  unsigned long long sum = 0;
  for (size_t t = begin; t < end; ++t) sum += tileCounts[t];
  unsigned long long running = 0, total = 0;
  Scan(temp).ExclusiveSum(sum, running, total);
  for (size_t t = begin; t < end; ++t) {
    const unsigned long long c = tileCounts[t];
    tileCounts[t] = running;
    running += c;
  }
  if (threadIdx.x == 0) {
    const unsigned long long gt = total >> 32, eq = total & 0xffffffffull;
    const unsigned long long taken = gt + (eq < state->remaining ? eq : state->remaining);
    state->total = taken < k ? taken : k;
  }
}

// Each thread takes Items consecutive positions, so a block scan gives every position its
// rank among the selected ones in index order.
template <typename T, typename Class, int Threads, int Items>
__global__ void __launch_bounds__(Threads)
    compactKernel(const T* __restrict__ acc, size_t n, const SelectState* __restrict__ state,
                  const unsigned long long* __restrict__ tilePrefix, size_t k, uint32_t* __restrict__ indices,
                  T* __restrict__ values) {
  const Class cls = Class::from(*state);
  const size_t base = (size_t)blockIdx.x * Threads * Items + (size_t)threadIdx.x * Items;
  T v[Items];
  unsigned gtFlags = 0, eqFlags = 0, gt = 0, eq = 0;
  for (int j = 0; j < Items; ++j) {
    unsigned a = 0, b = 0;
    if (base + j < n) {
      v[j] = acc[base + j];
      cls.classify(v[j], &a, &b);
    }
    gtFlags |= a << j;
    eqFlags |= b << j;
    gt += a;
    eq += b;
  }
  typedef cub::BlockScan<unsigned long long, Threads> Scan;
  __shared__ typename Scan::TempStorage temp;
  unsigned long long before = 0;
  Scan(temp).ExclusiveSum(packCounts(gt, eq), before);
  before += tilePrefix[blockIdx.x];
  unsigned long long gtRank = before >> 32, eqRank = before & 0xffffffffull;
  for (int j = 0; j < Items; ++j) {
    const bool isGt = (gtFlags >> j) & 1u, isEq = (eqFlags >> j) & 1u;
    if (isGt || (isEq && eqRank < cls.needEq)) {
      const unsigned long long pos = gtRank + (eqRank < cls.needEq ? eqRank : cls.needEq);
      if (pos < k) {
        indices[pos] = (uint32_t)(base + j);
        values[pos] = v[j];
      }
    }
    gtRank += isGt;
    eqRank += isEq;
  }
}

template <typename T>
__global__ void padKernel(const SelectState* __restrict__ state, size_t k, uint32_t* __restrict__ indices,
                          T* __restrict__ values) {
  for (size_t s = state->total + blockIdx.x * (size_t)blockDim.x + threadIdx.x; s < k;
       s += (size_t)gridDim.x * blockDim.x) {
    indices[s] = SPCCL_PAD_INDEX;
    values[s] = T();
  }
}

// ------------------------------------------------------------------ pairs: residual and scatter-add

template <typename T>
__global__ void scatterClearKernel(T* __restrict__ e, size_t n, const uint32_t* __restrict__ idx, size_t npairs) {
  for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < npairs; j += (size_t)gridDim.x * blockDim.x)
    if (idx[j] < n) e[idx[j]] = T();
}

// out[idx] += v, rounded once per add into T as on the CPU. Indices of one list are distinct
// for every selection spccl makes; the atomics only keep a list with repeats (a caller's
// decompress input) correct, in some order.
__device__ __forceinline__ void atomicAddRounded(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomicAddRounded(double* p, double v) { atomicAdd(p, v); }
template <typename H>
__device__ __forceinline__ void atomicAddRounded(H* p, H v) {  // 16-bit: CAS on the 32-bit word
  unsigned* word = reinterpret_cast<unsigned*>(reinterpret_cast<uintptr_t>(p) & ~uintptr_t(3));
  const unsigned shift = (reinterpret_cast<uintptr_t>(p) & 2) ? 16 : 0;
  unsigned old = *word, assumed;
  do {
    assumed = old;
    H cur;
    cur.bits = (uint16_t)(assumed >> shift);
    const H sum = addRounded(cur, v);
    const unsigned next = (assumed & ~(0xffffu << shift)) | ((unsigned)sum.bits << shift);
    old = atomicCAS(word, assumed, next);
  } while (old != assumed);
}

template <typename T>
__global__ void scatterAddKernel(const uint32_t* __restrict__ idx, const T* __restrict__ val, size_t npairs, size_t n,
                                 T* __restrict__ out) {
  for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < npairs; j += (size_t)gridDim.x * blockDim.x)
    if (idx[j] < n) atomicAddRounded(out + idx[j], val[j]);  // padding (and anything invalid) skipped
}

template <typename T>
__global__ void scaleKernel(T* __restrict__ v, size_t n, typename AccumOf<T>::type s) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    v[i] = scaleRounded(v[i], s);
}

}  // namespace cuda
}  // namespace spccl

#endif  // SPCCL_CUDA_TOPK_KERNELS_CUH_
