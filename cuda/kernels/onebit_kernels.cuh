/* SPDX-License-Identifier: Apache-2.0
 *
 * The 1-bit method on the device: the passes of src/cpu/onebit_kernels.h, with the rules,
 * the scale's summation tree and the message layout of onebit_core.h, so the results equal
 * the CPU's bit for bit.
 *   signPackKernel      one warp per group of 32 words (1024 elements) of a chunk: each word's
 *                       signs by ballot and its magnitudes folded by xor shuffles, then the
 *                       group's 32 word sums folded the same way into partials
 *   signFoldKernel      one warp per 32 partials: the next level of the tree
 *   signScaleKernel     one thread per chunk: the last level's sum into the message's scale
 *   signResidualKernel  per element: e = x - c
 *   signUnpackKernel    per element: out = c
 *   signMeanKernel      per element: the server's mean of the received chunks
 *   scaledCopyKernel    per element: out = scale * in (spcclDecompress of 1-bit values)
 *
 * Invariants:
 *  - the fold of 32 values by xor shuffles adds, at step h, lane i and lane i^h; for i < h
 *    that is the CPU's v[i] + v[i + h], and IEEE addition is commutative, so lane 0 (in
 *    fact every lane) ends with the CPU's fold; no other addition order is used;
 *  - the warp-level kernels give every warp whole units of work (the loops are warp-uniform),
 *    so all 32 lanes reach each __ballot_sync / __shfl_xor_sync with the full mask;
 *  - positions past a chunk's end contribute +0 and a clear sign bit, as on the CPU;
 *  - in signResidualKernel eIn may be eOut: each thread reads its elements of e before it
 *    writes any (gridItems).
 */
#ifndef SPCCL_CUDA_ONEBIT_KERNELS_CUH_
#define SPCCL_CUDA_ONEBIT_KERNELS_CUH_

#include <stdint.h>

#include "dtype_core.h"
#include "onebit_core.h"
#include "vector_io.cuh"

namespace spccl {
namespace cuda {

constexpr unsigned kFullWarp = 0xffffffffu;
constexpr unsigned kWarp = 32;
static_assert(kSignFold == kWarp, "a fold is one warp's worth of values");

// Elements under one group (32 words), the unit of signPackKernel.
constexpr uint64_t kGroupElems = (uint64_t)kSignFold * kSignFold;

template <typename AccT>
__device__ __forceinline__ AccT warpFold(AccT v) {
#pragma unroll
  for (unsigned h = kWarp / 2; h > 0; h /= 2) v += __shfl_xor_sync(kFullWarp, v, h);
  return v;
}

// This thread's warp among all warps of the grid, and their number.
template <int Threads>
__device__ __forceinline__ uint64_t globalWarp() {
  return ((uint64_t)blockIdx.x * Threads + threadIdx.x) / kWarp;
}
template <int Threads>
__device__ __forceinline__ uint64_t gridWarps() {
  return (uint64_t)gridDim.x * (Threads / kWarp);
}

// partials[j * groups + q] = the fold of group q of chunk j; the chunk's words into its message.
template <typename T, int Threads>
__global__ void __launch_bounds__(Threads)
    signPackKernel(const T* __restrict__ in, const T* __restrict__ e, SignChunks c, uint64_t groups,
                   void* __restrict__ messages, typename AccumOf<T>::type* __restrict__ partials) {
  using AccT = typename AccumOf<T>::type;
  static_assert(Threads % kWarp == 0, "whole warps");
  const unsigned lane = threadIdx.x % kWarp;
  const uint64_t units = (uint64_t)c.nchunks * groups;
  for (uint64_t u = globalWarp<Threads>(); u < units; u += gridWarps<Threads>()) {  // warp-uniform
    const uint64_t j = u / groups, q = u - j * groups;
    const uint64_t begin = chunkBegin(c, j), len = chunkSize(c, j);
    const SignMessage m = signMessage(messages, c.messageBytes, j);
    uint32_t myWord = 0;  // lane w keeps word q*32 + w and its sum
    AccT mySum = 0;
#pragma unroll 4
    for (unsigned w = 0; w < kWarp; ++w) {
      const uint64_t i = (q * kWarp + w) * kSignFold + lane;  // within the chunk
      const bool valid = i < len;
      AccT x = 0;
      if (valid) x = signInput(in, e, begin + i);
      const uint32_t word = __ballot_sync(kFullWarp, valid && signPositive(x));
      const AccT sum = warpFold(valid ? signMagnitude(x) : AccT(0));
      if (lane == w) {
        myWord = word;
        mySum = sum;
      }
    }
    const uint64_t wordIndex = q * kWarp + lane;
    if (wordIndex < signWords(len)) m.words[wordIndex] = myWord;
    const AccT groupSum = warpFold(mySum);  // words past the chunk hold +0
    if (lane == 0) partials[u] = groupSum;
  }
}

// out[j * countOut + k] = the fold of in[j * countIn + 32k ...] (+0 past countIn), per chunk.
template <typename AccT, int Threads>
__global__ void __launch_bounds__(Threads)
    signFoldKernel(const AccT* __restrict__ in, uint64_t countIn, uint32_t nchunks, AccT* __restrict__ out) {
  const unsigned lane = threadIdx.x % kWarp;
  const uint64_t countOut = ceilDiv(countIn, kSignFold);
  const uint64_t units = (uint64_t)nchunks * countOut;
  for (uint64_t u = globalWarp<Threads>(); u < units; u += gridWarps<Threads>()) {  // warp-uniform
    const uint64_t j = u / countOut, k = u - j * countOut;
    const uint64_t i = k * kSignFold + lane;
    const AccT sum = warpFold(i < countIn ? in[j * countIn + i] : AccT(0));
    if (lane == 0) out[u] = sum;
  }
}

// The per-chunk and element-wise kernels: grid-stride loops, one item per thread and step.
__device__ __forceinline__ uint64_t firstElement() { return (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ uint64_t elementStride() { return (uint64_t)gridDim.x * blockDim.x; }

// The scale of each chunk from its sum (the tree's last level: one value per chunk).
template <typename T>
__global__ void signScaleKernel(const typename AccumOf<T>::type* __restrict__ sums, SignChunks c,
                                void* __restrict__ messages) {
  for (uint64_t j = firstElement(); j < c.nchunks; j += elementStride())
    *signMessage(messages, c.messageBytes, j).scale = signScale<T>(sums[j], chunkSize(c, j));
}

// The per-chunk element-wise passes: blockIdx.y picks the chunk, blockIdx.x strides through
// it, so no thread divides its element index by the chunk length (a 64-bit divide per element
// is a long instruction sequence that kept these passes from memory speed). gridDim.y is at
// most 65535; more chunks loop. Within a chunk, gridItems keeps kStreamItems elements per
// thread in flight (>= 0.8 of memcpy expected).
template <typename T>
__global__ void signResidualKernel(const T* in, const T* eIn, SignChunks c, const void* __restrict__ messages,
                                   T* eOut) {
  for (uint64_t j = blockIdx.y; j < c.nchunks; j += gridDim.y) {
    const uint64_t b = chunkBegin(c, j);
    const T* x = in + b;
    const T* e = eIn ? eIn + b : nullptr;
    T* out = eOut + b;
    const SignMessageView m = signMessage(messages, c.messageBytes, j);
    gridItems<kStreamItems>(chunkSize(c, j), [&](uint64_t i) { return signResidualAt(x, e, m, i); },
                            [&](uint64_t i, T v) { out[i] = v; });
  }
}

template <typename T>
__global__ void signUnpackKernel(SignChunks c, const void* __restrict__ messages, T* __restrict__ out) {
  using AccT = typename AccumOf<T>::type;
  for (uint64_t j = blockIdx.y; j < c.nchunks; j += gridDim.y) {
    T* o = out + chunkBegin(c, j);
    const SignMessageView m = signMessage(messages, c.messageBytes, j);
    gridItems<kStreamItems>(chunkSize(c, j), [&](uint64_t i) { return fromAcc<T>(signValue<AccT>(m, i)); },
                            [&](uint64_t i, T v) { o[i] = v; });
  }
}

template <typename T>
__global__ void signMeanKernel(const void* __restrict__ messages, uint64_t messageBytes, int nmessages, uint64_t len,
                               typename AccumOf<T>::type factor, T* __restrict__ out) {
  gridItems<kStreamItems>(len, [&](uint64_t i) { return signMeanAt<T>(messages, messageBytes, nmessages, i, factor); },
                          [&](uint64_t i, T v) { out[i] = v; });
}

// in == out allowed: each thread reads all its elements before it writes any.
template <typename T>
__global__ void scaledCopyKernel(const T* in, uint64_t n, typename AccumOf<T>::type scale, T* out) {
  gridItems<kStreamItems>(n, [&](uint64_t i) { return scaleRounded(in[i], scale); },
                          [&](uint64_t i, T v) { out[i] = v; });
}

}  // namespace cuda
}  // namespace spccl

#endif  // SPCCL_CUDA_ONEBIT_KERNELS_CUH_
