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
 *   both          tileCountKernel, cub::DeviceScan, compactKernel: a stable compaction of the
 *                 selected positions into k slots in index order; padKernel fills unused
 *                 slots with SPCCL_PAD_INDEX and 0
 *   pairs         keptCopyKernel + scatterClearKernel: e = acc (finite), sent slots cleared; scatterListsKernel
 *                 adds the gathered (ascending) lists of every rank, in rank order as on the
 *                 CPU, in one launch; scatterAddKernel + scaleKernel take a caller's list
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

#include <cub/block/block_load.cuh>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "common.cuh"
#include "device.h"
#include "dtype_core.h"
#include "topk_core.h"
#include "tuning.h"
#include "vector_io.cuh"

namespace spccl {
namespace cuda {

constexpr int kMaxDigitBits = 11;
constexpr int kMaxBins = 1 << kMaxDigitBits;
constexpr int kChooseThreads = radixPolicy().chooseThreads;
constexpr int kMomentBlocks = radixPolicy().momentBlocks;
constexpr int kGaussianCandidates = 6;

// Where the selection stands; lives in the scratch, written by the one-block kernels.
struct SelectState {
  unsigned long long prefix;     // digits chosen so far (exact top-k)
  unsigned long long mask;       // the bits they cover
  unsigned long long remaining;  // keys still to take inside the current bucket
  unsigned long long greater;    // keys above the current bucket
  double threshold;              // Gaussian-k: the chosen, measured threshold
};

// Fresh selection state; the first histogram must start from zero too.
__global__ void selectInitKernel(unsigned* __restrict__ hist, int bins, SelectState* __restrict__ state,
                                 unsigned long long remaining) {
  for (int b = threadIdx.x; b < bins; b += blockDim.x) hist[b] = 0;
  if (threadIdx.x == 0) *state = SelectState{0, 0, remaining, 0, 0.0};
}

// ------------------------------------------------------------------ exact top-k: radix select

// The histogram passes read with kUnroll 16-byte vectors per thread in flight (vector_io.cuh:
// >= 0.8 of memcpy bandwidth expected, from ~0.2 with one scalar load per iteration).
template <typename T, int Threads>
__global__ void __launch_bounds__(Threads)
    feedbackHistogramKernel(const T* __restrict__ g, const T* __restrict__ e, T* __restrict__ acc, size_t n,
                            int shift, int bins, unsigned* __restrict__ hist) {
  __shared__ unsigned local[kMaxBins];
  for (int b = threadIdx.x; b < bins; b += Threads) local[b] = 0;
  __syncthreads();
  forEachFeedback<T, Threads>(g, e, acc, n, [&](T a, bool valid) {
    warpAggregatedIncrement(local, (unsigned)(magnitudeKey(a) >> shift) & (bins - 1), valid);
  });
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
  forEachLoaded<T, Threads>(acc, n, [&](T a, bool valid) {
    const unsigned long long key = magnitudeKey(a);
    warpAggregatedIncrement(local, (unsigned)(key >> shift) & (bins - 1), valid && (key & mask) == prefix);
  });
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
  // kUnroll 16-byte vectors per thread in flight, as the histogram passes (>= 0.8 of memcpy).
  forEachFeedback<T, Threads>(g, e, acc, n, [&](T a, bool valid) {
    const double x = (double)toAcc(a);
    if (valid && isfinite(x)) {
      m.sum += x;
      m.sq += x * x;
      m.finite += 1;
    }
  });
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
  // kUnroll 16-byte vectors per thread in flight, as the histogram passes (>= 0.8 of memcpy).
  forEachLoaded<T, Threads>(acc, n, [&](T v, bool valid) {
    const AccT a = toAcc(v);
#pragma unroll
    for (int j = 0; j < kGaussianCandidates; ++j) c[j] += valid && aboveThreshold(a, t[j]);
  });
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

// Gaussian-k: |v| > t in AccT, NaN included (aboveThreshold), as cpu::compactAbove.
struct ThresholdClass {
  double t;
  unsigned long long needEq;
  template <typename T>
  __device__ __forceinline__ void classify(T v, unsigned* gt, unsigned* eq) const {
    using AccT = typename AccumOf<T>::type;
    *gt = aboveThreshold(toAcc(v), (AccT)t);
    *eq = 0;
  }
  static __device__ __forceinline__ ThresholdClass from(const SelectState& s) { return {s.threshold, 0}; }
};

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

// The selected count after the inclusive scan of the tile counts (cub::DeviceScan): every key
// above, the keys equal to the k-th that are needed, at most k.
__device__ __forceinline__ unsigned long long selectedTotal(const unsigned long long* __restrict__ tileIncl,
                                                            size_t ntiles, const SelectState& state, size_t k) {
  const unsigned long long total = tileIncl[ntiles - 1];
  const unsigned long long gt = total >> 32, eq = total & 0xffffffffull;
  const unsigned long long taken = gt + (eq < state.remaining ? eq : state.remaining);
  return taken < k ? taken : k;
}

// Each thread takes Items consecutive positions, so a block scan gives every position its
// rank among the selected ones in index order. The tile is read with coalesced loads and
// transposed to that arrangement through shared memory (cub::BlockLoad).
template <typename T, typename Class, int Threads, int Items>
__global__ void __launch_bounds__(Threads)
    compactKernel(const T* __restrict__ acc, size_t n, const SelectState* __restrict__ state,
                  const unsigned long long* __restrict__ tileIncl, size_t k, uint32_t* __restrict__ indices,
                  T* __restrict__ values) {
  typedef cub::BlockLoad<T, Threads, Items, cub::BLOCK_LOAD_WARP_TRANSPOSE> Load;
  typedef cub::BlockScan<unsigned long long, Threads> Scan;
  __shared__ union {
    typename Load::TempStorage load;
    typename Scan::TempStorage scan;
  } temp;
  const Class cls = Class::from(*state);
  const size_t tileBase = (size_t)blockIdx.x * Threads * Items, base = tileBase + (size_t)threadIdx.x * Items;
  const size_t left = n - tileBase;
  T v[Items];
  Load(temp.load).Load(acc + tileBase, v, (int)(left < (size_t)Threads * Items ? left : (size_t)Threads * Items), T());
  __syncthreads();  // temp is reused by the scan
  unsigned gtFlags = 0, eqFlags = 0, gt = 0, eq = 0;
  for (int j = 0; j < Items; ++j) {
    unsigned a = 0, b = 0;
    if (base + j < n) cls.classify(v[j], &a, &b);
    gtFlags |= a << j;
    eqFlags |= b << j;
    gt += a;
    eq += b;
  }
  unsigned long long before = 0;
  Scan(temp.scan).ExclusiveSum(packCounts(gt, eq), before);
  if (blockIdx.x > 0) before += tileIncl[blockIdx.x - 1];
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
__global__ void padKernel(const SelectState* __restrict__ state, const unsigned long long* __restrict__ tileIncl,
                          size_t ntiles, size_t k, uint32_t* __restrict__ indices, T* __restrict__ values) {
  const unsigned long long total = selectedTotal(tileIncl, ntiles, *state, k);
  for (size_t s = total + blockIdx.x * (size_t)blockDim.x + threadIdx.x; s < k; s += (size_t)gridDim.x * blockDim.x) {
    indices[s] = SPCCL_PAD_INDEX;
    values[s] = T();
  }
}

// ------------------------------------------------------------------ pairs: residual and scatter-add

// acc = g + e (e may be null): the dense path of a state the dense switch turned dense.
template <typename T>
__global__ void feedbackSumKernel(const T* __restrict__ g, const T* __restrict__ e, T* __restrict__ acc, size_t n) {
  gridItems<kStreamItems>(n, [&](uint64_t i) { return feedbackValue(g, e, i); }, [&](uint64_t i, T v) { acc[i] = v; });
}

// e = acc where finite, 0 elsewhere (dtype_core.h, keptResidual); acc may be e.
template <typename T>
__global__ void keptCopyKernel(T* e, const T* acc, size_t n) {
  gridItems<kStreamItems>(n, [&](uint64_t i) { return keptResidual(acc[i]); }, [&](uint64_t i, T v) { e[i] = v; });
}

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
__device__ __forceinline__ void atomicAddRounded(H* p, H v) {
  // 16-bit compare-and-swap (sm_70+) on the element itself: a 32-bit one would also touch the
  // neighbouring half-word, which lies past the allocation when p is its last element.
  unsigned short* word = reinterpret_cast<unsigned short*>(p);
  unsigned short old = *word, assumed;
  do {
    assumed = old;
    H cur;
    cur.bits = assumed;
    old = atomicCAS(word, assumed, addRounded(cur, v).bits);
  } while (old != assumed);
}

// One list in any order, repeats allowed (a caller's spcclDecompress input): atomics.
template <typename T>
__global__ void scatterAddKernel(const uint32_t* __restrict__ idx, const T* __restrict__ val, size_t npairs, size_t n,
                                 T* __restrict__ out, device::BadPairReport* report) {
  for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < npairs; j += (size_t)gridDim.x * blockDim.x) {
    if (idx[j] < n) atomicAddRounded(out + idx[j], val[j]);
    else if (idx[j] != SPCCL_PAD_INDEX) reportBadPair(report, device::kPairOutOfRange, idx[j]);  // skipped
  }
}

// Bytes of shared memory a CTA of scatterListsKernel accumulates its chunk of out in, and the
// chunk's length in elements of the accumulation type.
constexpr int kScatterChunkBytes = scatterListsPolicy().chunkBytes;
template <typename AccT>
constexpr uint64_t kScatterChunk = (uint64_t)kScatterChunkBytes / sizeof(AccT);

// The chunk an index falls in; padding and indices >= n all sort past the last chunk.
__device__ __forceinline__ uint64_t chunkOfIndex(uint32_t index, uint64_t n, uint64_t chunk, uint64_t nchunks) {
  return index < n ? index / chunk : nchunks;
}

// Where each list's pairs of each chunk start, in one pass over the pairs (no search):
// starts[l * (nchunks + 1) + c] = the first pair of list l whose index lies in chunk c or
// above, c <= nchunks. Pair p writes the entries from its predecessor's chunk (exclusive) to
// its own (inclusive), and p = npairs the rest, so an ascending list writes each entry once.
// The same pass checks the lists: an index >= n that is not padding, and a list that is not
// ascending (repeats, or a pair after padding), are reported. An unordered list leaves entries
// unwritten; the scatter clamps them, and skips every pair outside its chunk.
// Traffic: the lists' indices read once (4 B per pair, plus one neighbour from the same
// cache line) and 4 B per chunk and list written: under 1/16 of the scatter's own traffic at
// k = n/64, so the pass runs at the load bandwidth of the pair indices (~0.8 of HBM).
__global__ void chunkStartsKernel(const char* __restrict__ indices, size_t npairs, int nlists, size_t stride,
                                  uint64_t n, uint64_t chunk, uint64_t nchunks, uint32_t* __restrict__ starts,
                                  device::BadPairReport* report) {
  const uint64_t perList = (uint64_t)npairs + 1, total = perList * (uint64_t)nlists;
  for (uint64_t u = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; u < total; u += (uint64_t)gridDim.x * blockDim.x) {
    const uint64_t l = u / perList, p = u - l * perList;
    const uint32_t* idx = reinterpret_cast<const uint32_t*>(indices + l * stride);
    const uint32_t mine = p < npairs ? idx[p] : SPCCL_PAD_INDEX;
    const uint32_t prev = p > 0 ? idx[p - 1] : 0;
    if (p < npairs && mine >= n && mine != SPCCL_PAD_INDEX) reportBadPair(report, device::kPairOutOfRange, mine);
    if (p > 0 && p < npairs && mine != SPCCL_PAD_INDEX && (prev == SPCCL_PAD_INDEX || mine <= prev))
      reportBadPair(report, device::kPairsUnordered, mine);
    const uint64_t to = p < npairs ? chunkOfIndex(mine, n, chunk, nchunks) : nchunks;
    const uint64_t from = p > 0 ? chunkOfIndex(prev, n, chunk, nchunks) + 1 : 0;
    uint32_t* row = starts + l * (nchunks + 1);
    for (uint64_t c = from; c <= to; ++c) row[c] = (uint32_t)p;
  }
}

// nlists lists, each ascending with distinct indices (every selection spccl makes; the
// padding index sorts last), list l at l * stride bytes from the first, chunk bounds from
// chunkStartsKernel. Each CTA owns a chunk of out: it adds, list after list, the pairs that
// fall in the chunk into shared memory, then writes the whole chunk once, scaled. So one
// launch replaces the memset, the per-list launches and the scaling pass, and out is written
// exactly once. The arithmetic is the CPU's (methods/pairs.cc), in the same order, with no
// atomics:
//  - wide (fp16/bf16 with several lists): the sum in fp32 in list order, then one rounding
//    of 0 + sum * scale, so an average that fits in T never overflows on the way;
//  - otherwise: adds in list order rounded to T each time (fp32/fp64: the accumulation type
//    is T), then times scale when it is not 1.
// A pair outside the chunk its position says (an unordered list) is skipped, never written:
// shared memory stays in bounds whatever the lists hold.
template <typename T, int Threads>
__global__ void __launch_bounds__(Threads)
    scatterListsKernel(const char* __restrict__ indices, const char* __restrict__ values, size_t npairs, int nlists,
                       size_t stride, const uint32_t* __restrict__ starts, typename AccumOf<T>::type scale,
                       bool scaled, bool wide, size_t n, T* __restrict__ out) {
  using AccT = typename AccumOf<T>::type;
  constexpr uint64_t kChunk = kScatterChunk<AccT>;
  __shared__ AccT acc[kChunk];
  const uint64_t nchunks = (n + kChunk - 1) / kChunk;
  for (uint64_t chunk = blockIdx.x; chunk < nchunks; chunk += gridDim.x) {
    const uint64_t base = chunk * kChunk, len = base + kChunk < n ? kChunk : n - base;
    __syncthreads();  // the previous chunk's writers are done with acc
    for (uint32_t t = threadIdx.x; t < kChunk; t += Threads) acc[t] = AccT(0);
    __syncthreads();
    for (int l = 0; l < nlists; ++l) {
      const uint32_t* idx = reinterpret_cast<const uint32_t*>(indices + (size_t)l * stride);
      const T* val = reinterpret_cast<const T*>(values + (size_t)l * stride);
      const uint32_t* row = starts + (uint64_t)l * (nchunks + 1);
      const uint64_t lo = min((uint64_t)row[chunk], (uint64_t)npairs);
      const uint64_t hi = min(max((uint64_t)row[chunk + 1], lo), (uint64_t)npairs);
      for (uint64_t p = lo + threadIdx.x; p < hi; p += Threads) {
        const uint64_t at = (uint64_t)idx[p] - base;  // wraps above len when idx[p] < base
        if (at >= len) continue;  // not this chunk's: an unordered list (reported)
        acc[at] = wide ? acc[at] + toAcc(val[p]) : toAcc(addRounded(fromAcc<T>(acc[at]), val[p]));
      }
      __syncthreads();  // list order
    }
    for (uint64_t i = threadIdx.x; i < len; i += Threads) {
      const AccT a = acc[i];
      // 0 + a * scale as two roundings, as on the CPU: a contracted FMA would keep the sign
      // of a product that underflows (-0 where the CPU gets +0).
      if (wide) out[base + i] = fromAcc<T>(AccT(0) + mulRounded(a, scale));
      else out[base + i] = scaled ? scaleRounded(fromAcc<T>(a), scale) : fromAcc<T>(a);
    }
  }
}

template <typename T>
__global__ void scaleKernel(T* __restrict__ v, size_t n, typename AccumOf<T>::type s) {
  gridItems<kStreamItems>(n, [&](uint64_t i) { return scaleRounded(v[i], s); }, [&](uint64_t i, T x) { v[i] = x; });
}

}  // namespace cuda
}  // namespace spccl

#endif  // SPCCL_CUDA_TOPK_KERNELS_CUH_
