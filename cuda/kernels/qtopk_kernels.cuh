/* SPDX-License-Identifier: Apache-2.0
 *
 * Quantized Top-k on the device (DESIGN.md, "Quantized Top-k"): the passes of
 * cpu/qtopk_kernels.h, stream-ordered, with no host round trip (the payload has a fixed size).
 *
 *   compress   quantSelectKernel   one CTA per chunk: acc = g + e into acc, a radix select
 *                                  of the chunk's k-th magnitude key in shared memory (one
 *                                  histogram pass per digit), a stable compaction of the k
 *                                  chosen offsets in index order, the chunk's peak and
 *                                  exponent, then each slot's packed field into the scratch
 *              quantPackKernel     one thread per 64-bit word of the payload: ORs the fields
 *                                  that overlap it (no atomics: neighbouring chunks share
 *                                  words), and the exponents' padding
 *   residual   quantKeptKernel     e = acc (0 where not finite) over the whole tensor
 *              quantResidualKernel one thread per slot of the own payload: e = acc - c
 *   unpack     quantUnpackKernel   one CTA per chunk of out: the P payloads' c added into the
 *                                  chunk's sums in payload order (a barrier between
 *                                  payloads; a payload's slots of one chunk have distinct
 *                                  offsets), then out = scale * sums rounded once
 *   compress   quantSlotsKernel    the own payload as (index, value) slots
 *
 * Invariants: keys and ties are topk_core.h's (magnitudeKey, lower index first), exponents,
 * levels, fields and the receiver's check qtopk_core.h's, element arithmetic dtype_core.h's:
 * the payload, acc, the residual and the output equal the CPU kernels' bit for bit (NaN
 * payloads aside). Every sum is in a fixed order (no floating-point atomics).
 */
#ifndef SPCCL_CUDA_QTOPK_KERNELS_CUH_
#define SPCCL_CUDA_QTOPK_KERNELS_CUH_

#include <stdint.h>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "common.cuh"
#include "device.h"
#include "dtype_core.h"
#include "qtopk_core.h"
#include "topk_core.h"
#include "tuning.h"
#include "vector_io.cuh"

namespace spccl {
namespace cuda {

struct MaxOp {
  __device__ __forceinline__ double operator()(double a, double b) const { return a > b ? a : b; }
};

// Chunks per grid: blockIdx.x strides over them, so the loop trip counts are uniform per CTA.
template <typename T, int Threads, int DigitBits>
__global__ void __launch_bounds__(Threads)
    quantSelectKernel(const T* __restrict__ g, const T* __restrict__ e, T* __restrict__ acc, QuantLayout q,
                      int16_t* __restrict__ exponents, uint64_t* __restrict__ fields) {
  using Key = typename MagnitudeKeyOf<T>::type;
  constexpr int kBins = 1 << DigitBits;
  constexpr int kPerThread = (kBins + Threads - 1) / Threads;
  typedef cub::BlockScan<unsigned long long, Threads> Scan;
  typedef cub::BlockReduce<double, Threads> Reduce;
  __shared__ union {
    typename Scan::TempStorage scan;
    typename Reduce::TempStorage reduce;
  } temp;
  __shared__ unsigned hist[kBins];
  __shared__ unsigned long long prefix, mask, remaining;
  __shared__ int exponent;
  for (uint64_t c = blockIdx.x; c < q.nchunks; c += gridDim.x) {
    const uint64_t start = c * q.chunk;
    const uint32_t len = (uint32_t)quantChunkLength(q, (uint32_t)c), slots = quantChunkSlots(q, (uint32_t)c);
    T* a = acc + start;
    if (threadIdx.x == 0) {
      prefix = 0;
      mask = 0;
      remaining = slots;
    }
    // Radix select of the slots-th largest key, digits from the top (the sign bit of a
    // magnitude key is always clear). The first pass forms acc = g + e.
    int hi = (int)sizeof(Key) * 8 - 1;
    bool first = true;
    while (hi > kKeyZeroBits<T>) {
      const int width = hi - kKeyZeroBits<T> < DigitBits ? hi - kKeyZeroBits<T> : DigitBits;
      const int shift = hi - width, bins = 1 << width;
      for (int b = threadIdx.x; b < kBins; b += Threads) hist[b] = 0;
      __syncthreads();  // also: the previous pass's choice is visible
      const unsigned long long pfx = prefix, msk = mask;
      for (uint32_t base = 0; base < len; base += Threads) {  // uniform trip count
        const uint32_t i = base + threadIdx.x;
        const bool valid = i < len;
        T v = T();
        if (valid) {
          if (first) {
            v = feedbackValue(g + start, e ? e + start : nullptr, i);
            a[i] = v;
          } else {
            v = a[i];  // written by this very thread in the first pass
          }
        }
        const unsigned long long key = magnitudeKey(v);
        warpAggregatedIncrement(hist, (unsigned)(key >> shift) & (bins - 1), valid && (key & msk) == pfx);
      }
      __syncthreads();
      // The bucket where the running count from the top reaches `remaining`.
      const unsigned long long want = remaining;
      unsigned counts[kPerThread];
      unsigned long long sum = 0;
      for (int j = 0; j < kPerThread; ++j) {  // thread t owns descending positions t*kPerThread + j
        const int pos = threadIdx.x * kPerThread + j, bin = bins - 1 - pos;
        counts[j] = pos < bins ? hist[bin] : 0;
        sum += counts[j];
      }
      unsigned long long above = 0;
      Scan(temp.scan).ExclusiveSum(sum, above);
      // Every thread has read prefix, mask and remaining (pfx, msk, want) before the one that
      // finds the bucket writes them: not left to the scan's own barriers.
      __syncthreads();
      for (int j = 0; j < kPerThread; ++j) {
        const int pos = threadIdx.x * kPerThread + j, bin = bins - 1 - pos;
        if (pos < bins && above < want && want <= above + counts[j]) {
          remaining = want - above;
          prefix = pfx | ((unsigned long long)bin << shift);
          mask = msk | ((unsigned long long)(bins - 1) << shift);
        }
        above += counts[j];
      }
      first = false;
      hi = shift;
      __syncthreads();  // temp and hist are reused
    }
    // The k-th key K: every key above it is taken, and the first `needEq` equal to it by index.
    const unsigned long long kth = prefix, needEq = remaining;
    unsigned long long taken = 0;  // packCounts(gt, eq) before this tile
    double peak = 0;
    uint64_t* slot = fields + c * q.k;
    for (uint32_t base = 0; base < len; base += Threads) {
      const uint32_t i = base + threadIdx.x;
      const bool valid = i < len;
      const T v = valid ? a[i] : T();
      const unsigned long long key = magnitudeKey(v);
      const unsigned gt = valid && key > kth, eq = valid && key == kth;
      unsigned long long before = 0, tile = 0;
      Scan(temp.scan).ExclusiveSum(packCounts(gt, eq), before, tile);
      before += taken;
      taken += tile;
      const unsigned long long gtRank = before >> 32, eqRank = before & 0xffffffffull;
      if (gt || (eq && eqRank < needEq)) {
        const unsigned long long pos = gtRank + (eqRank < needEq ? eqRank : needEq);
        if (pos < slots) {  // (the peak is over the sent slots only, as the host's)
          slot[pos] = i;
          const double m = fabs((double)toAcc(v));
          if (m <= largestFinite<T>() && m > peak) peak = m;
        }
      }
      __syncthreads();  // temp is reused
    }
    const double chunkPeak = Reduce(temp.reduce).Reduce(peak, MaxOp());
    if (threadIdx.x == 0) {
      exponent = quantExponent<T>(chunkPeak, q.valueBits);
      exponents[c] = (int16_t)exponent;
    }
    __syncthreads();  // the offsets in `slot` and the exponent are visible to every thread
    const int E = exponent;
    for (uint32_t j = threadIdx.x; j < q.k; j += Threads) {
      uint64_t field = 0;  // a short last chunk's spare slots stay zero
      if (j < slots) {
        const uint32_t offset = (uint32_t)slot[j];
        field = quantPackSlot(q, offset, quantLevel<T>((double)toAcc(a[offset]), E, q.valueBits));
      }
      slot[j] = field;
    }
    __syncthreads();  // the shared state is reset for the next chunk
  }
}

// Word w of the payload's fields: every field overlapping bits [64w, 64w + 64) ORed in, as
// quantPutField would leave it. Thread 0 also clears the exponents' padding.
// (A template only so that a second file may include this header without a duplicate symbol.)
template <int = 0>
__global__ void quantPackKernel(QuantLayout q, const uint64_t* __restrict__ fields, int16_t* __restrict__ exponents,
                                uint64_t* __restrict__ words) {
  const uint64_t nwords = quantFieldWords(q), nfields = (uint64_t)q.nchunks * q.k, bits = quantFieldBits(q);
  const uint64_t first = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x;
  if (first == 0)
    for (uint64_t p = q.nchunks; p < quantExponentBytes(q) / 2; ++p) exponents[p] = 0;
  for (uint64_t w = first; w < nwords; w += (uint64_t)gridDim.x * blockDim.x) {
    const uint64_t lo = w * 64, f0 = lo / bits, f1 = (lo + 63) / bits;
    uint64_t word = 0;
    for (uint64_t f = f0; f <= f1 && f < nfields; ++f) {
      const uint64_t at = f * bits;
      word |= at >= lo ? fields[f] << (at - lo) : fields[f] >> (lo - at);
    }
    words[w] = word;
  }
}

// e = acc where finite, 0 elsewhere (dtype_core.h, keptResidual).
template <typename T>
__global__ void quantKeptKernel(T* e, const T* acc, size_t n) {
  gridItems<kStreamItems>(n, [&](uint64_t i) { return keptResidual(acc[i]); }, [&](uint64_t i, T v) { e[i] = v; });
}

// The slots of this rank's own payload (which it wrote: they decode): e = acc - c where sent.
template <typename T>
__global__ void quantResidualKernel(const T* __restrict__ acc, QuantLayout q, const int16_t* __restrict__ exponents,
                                    const uint64_t* __restrict__ words, T* __restrict__ e) {
  using AccT = typename AccumOf<T>::type;
  const uint64_t nslots = (uint64_t)q.nchunks * q.k;
  const uint32_t bits = quantFieldBits(q);
  for (uint64_t s = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; s < nslots; s += (uint64_t)gridDim.x * blockDim.x) {
    const uint32_t c = (uint32_t)(s / q.k), j = (uint32_t)(s % q.k);
    if (j >= quantChunkSlots(q, c)) continue;
    const uint64_t field = quantGetField(words, s, bits);
    const int level = quantSlotLevel(q, field);
    if (level == 0) continue;
    const uint64_t i = (uint64_t)c * q.chunk + quantSlotOffset(q, field);
    e[i] = fromAcc<T>(toAcc(acc[i]) - (AccT)quantValue(level, exponents[c]));
  }
}

// One CTA per chunk of out. Per payload, in order: every slot of the chunk is checked first
// (quantSlotDecodes, the host's check); a chunk with a bad slot is skipped whole and reported,
// so the adds never leave the chunk and never meet twice on one element within a payload.
// The check's barrier (__syncthreads_or) also orders one payload's adds after the previous.
template <typename T, int Threads>
__global__ void __launch_bounds__(Threads)
    quantUnpackKernel(QuantLayout q, const char* __restrict__ payloads, int npayloads, size_t stride,
                      typename AccumOf<T>::type scale, bool scaled, typename AccumOf<T>::type* sums, T* out,
                      device::BadPairReport* report) {
  using AccT = typename AccumOf<T>::type;
  const uint32_t bits = quantFieldBits(q);
  for (uint64_t c = blockIdx.x; c < q.nchunks; c += gridDim.x) {
    const uint64_t start = c * q.chunk;
    const uint32_t len = (uint32_t)quantChunkLength(q, (uint32_t)c), slots = quantChunkSlots(q, (uint32_t)c);
    AccT* sum = sums + start;
    for (uint32_t i = threadIdx.x; i < len; i += Threads) sum[i] = AccT(0);
    for (int r = 0; r < npayloads; ++r) {
      const char* payload = payloads + (size_t)r * stride;
      const int E = quantExponents(payload)[c];
      const uint64_t* words = quantFields(q, payload);
      bool bad = false;
      for (uint32_t j = threadIdx.x; j < slots; j += Threads) {
        const uint64_t field = quantGetField(words, c * q.k + j, bits);
        const int64_t prev = j > 0 ? (int64_t)quantSlotOffset(q, quantGetField(words, c * q.k + j - 1, bits)) : -1;
        bad |= !quantSlotDecodes<T>(q, (uint32_t)c, prev, quantSlotOffset(q, field), quantSlotLevel(q, field), E);
      }
      if (__syncthreads_or(bad)) {
        if (threadIdx.x == 0) reportBadPair(report, device::kSlotUndecodable, (uint32_t)c);
        continue;
      }
      for (uint32_t j = threadIdx.x; j < slots; j += Threads) {
        const uint64_t field = quantGetField(words, c * q.k + j, bits);
        const int level = quantSlotLevel(q, field);
        if (level != 0) {
          const uint32_t offset = quantSlotOffset(q, field);
          sum[offset] = sum[offset] + (AccT)quantValue(level, E);
        }
      }
    }
    __syncthreads();  // every payload's adds are done
    for (uint32_t i = threadIdx.x; i < len; i += Threads) {
      const AccT s = sum[i];
      out[start + i] = fromAcc<T>(scaled ? mulRounded(s, scale) : s);
    }
    __syncthreads();  // sums may alias out: the next chunk starts after these writes
  }
}

// The own payload as (index, value) slots: spcclCompress's output.
template <typename T>
__global__ void quantSlotsKernel(QuantLayout q, const int16_t* __restrict__ exponents,
                                 const uint64_t* __restrict__ words, uint32_t* __restrict__ indices,
                                 T* __restrict__ values) {
  using AccT = typename AccumOf<T>::type;
  const uint64_t nslots = (uint64_t)q.nchunks * q.k;
  const uint32_t bits = quantFieldBits(q);
  for (uint64_t s = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; s < nslots; s += (uint64_t)gridDim.x * blockDim.x) {
    const uint32_t c = (uint32_t)(s / q.k), j = (uint32_t)(s % q.k);
    uint32_t index = SPCCL_PAD_INDEX;
    T value = fromAcc<T>(AccT(0));
    if (j < quantChunkSlots(q, c)) {
      const uint64_t field = quantGetField(words, s, bits);
      const int level = quantSlotLevel(q, field);
      if (level != 0) {
        index = (uint32_t)((uint64_t)c * q.chunk + quantSlotOffset(q, field));
        value = fromAcc<T>((AccT)quantValue(level, exponents[c]));
      }
    }
    indices[s] = index;
    values[s] = value;
  }
}

}  // namespace cuda
}  // namespace spccl

#endif  // SPCCL_CUDA_QTOPK_KERNELS_CUH_
