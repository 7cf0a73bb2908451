/* SPDX-License-Identifier: Apache-2.0
 *
 * Several elements in flight per thread for the streaming passes. The top-k family's
 * histogram, moments and threshold counts: 16-byte vector loads and stores where the
 * address allows, element by element where it does not (a caller's buffer need only be
 * aligned to its elements), and kUnroll vectors loaded before any is used.
 *
 * Why: one scalar load per thread and iteration keeps about 4 KB in flight per SM at 4 CTAs
 * of 256 threads, an estimated 15-25 % of an H200's HBM bandwidth. Little's law asks for
 * about 25 KB per SM (4.8 TB/s x ~0.7 us latency / 132 SMs); kUnroll = 2 vectors of 16 bytes
 * per input and thread give 32 KB per SM for one input, 64 KB for g and e, so these passes
 * should run at >= 0.8 of device-to-device memcpy bandwidth.
 *
 * The element-wise passes (gridItems, below): several strided elements per thread and step.
 *
 * Invariant: the trip count of every loop is uniform across the CTA (the tile base, the
 * vector and the element index do not depend on the lane), so warp collectives called per
 * element (__match_any_sync) see every lane.
 */
#ifndef SPCCL_CUDA_VECTOR_IO_CUH_
#define SPCCL_CUDA_VECTOR_IO_CUH_

#include <stdint.h>
#include <string.h>

#include "dtype_core.h"
#include "tuning.h"

namespace spccl {
namespace cuda {

template <typename T, int Threads>
struct VectorTiles {
  static constexpr int kVec = 16 / (int)sizeof(T);  // 4 fp32, 8 fp16/bf16, 2 fp64
  static constexpr int kUnroll = 2;
  static constexpr uint64_t kTile = (uint64_t)Threads * kVec * kUnroll;  // elements per CTA and step
  // The first element of this thread's vector u in the tile at `base`: vectors of one warp
  // are adjacent, so each load instruction covers 512 contiguous bytes.
  static __device__ __forceinline__ uint64_t at(uint64_t base, int u) {
    return base + ((uint64_t)u * Threads + threadIdx.x) * kVec;
  }
};

// v[j] = p[i + j] for the j with i + j < n (the others keep their value).
template <typename T, int V>
__device__ __forceinline__ void loadVector(const T* __restrict__ p, uint64_t i, uint64_t n, T (&v)[V]) {
  static_assert(V * sizeof(T) == 16, "one 16-byte vector");
  if (i + V <= n && reinterpret_cast<uintptr_t>(p + i) % 16 == 0) {
    const uint4 raw = __ldg(reinterpret_cast<const uint4*>(p + i));
    memcpy(v, &raw, 16);
    return;
  }
#pragma unroll
  for (int j = 0; j < V; ++j)
    if (i + j < n) v[j] = p[i + j];
}

// p[i + j] = v[j] for the j with i + j < n.
template <typename T, int V>
__device__ __forceinline__ void storeVector(T* __restrict__ p, uint64_t i, uint64_t n, const T (&v)[V]) {
  static_assert(V * sizeof(T) == 16, "one 16-byte vector");
  if (i + V <= n && reinterpret_cast<uintptr_t>(p + i) % 16 == 0) {
    uint4 raw;
    memcpy(&raw, v, 16);
    *reinterpret_cast<uint4*>(p + i) = raw;
    return;
  }
#pragma unroll
  for (int j = 0; j < V; ++j)
    if (i + j < n) p[i + j] = v[j];
}

// Grid-stride over [0, n) by tiles: for every step, this thread's kUnroll vectors of `in`
// (loaded together), then f(value, valid) for each of their elements in order.
// valid is false past n (value then unspecified); f is called for those too, so that warp
// collectives inside it see every lane.
template <typename T, int Threads, typename F>
__device__ __forceinline__ void forEachLoaded(const T* __restrict__ in, uint64_t n, F f) {
  using Tiles = VectorTiles<T, Threads>;
  for (uint64_t base = blockIdx.x * Tiles::kTile; base < n; base += (uint64_t)gridDim.x * Tiles::kTile) {
    T v[Tiles::kUnroll][Tiles::kVec] = {};
#pragma unroll
    for (int u = 0; u < Tiles::kUnroll; ++u) loadVector(in, Tiles::at(base, u), n, v[u]);
#pragma unroll
    for (int u = 0; u < Tiles::kUnroll; ++u)
#pragma unroll
      for (int j = 0; j < Tiles::kVec; ++j) {
        f(v[u][j], Tiles::at(base, u) + j < n);
      }
  }
}

// The same over acc = g + e (e may be null), which is also stored: the feedback passes.
template <typename T, int Threads, typename F>
__device__ __forceinline__ void forEachFeedback(const T* __restrict__ g, const T* __restrict__ e, T* __restrict__ acc,
                                                uint64_t n, F f) {
  using Tiles = VectorTiles<T, Threads>;
  for (uint64_t base = blockIdx.x * Tiles::kTile; base < n; base += (uint64_t)gridDim.x * Tiles::kTile) {
    T a[Tiles::kUnroll][Tiles::kVec] = {}, r[Tiles::kUnroll][Tiles::kVec] = {};
#pragma unroll
    for (int u = 0; u < Tiles::kUnroll; ++u) {
      loadVector(g, Tiles::at(base, u), n, a[u]);
      if (e) loadVector(e, Tiles::at(base, u), n, r[u]);
    }
#pragma unroll
    for (int u = 0; u < Tiles::kUnroll; ++u) {
      if (e)
#pragma unroll
        for (int j = 0; j < Tiles::kVec; ++j) a[u][j] = addRounded(a[u][j], r[u][j]);
      storeVector(acc, Tiles::at(base, u), n, a[u]);
#pragma unroll
      for (int j = 0; j < Tiles::kVec; ++j) {
        f(a[u][j], Tiles::at(base, u) + j < n);
      }
    }
  }
}

// The element-wise passes: grid-stride over [0, n) with Items elements per thread and step,
// each group strided by the grid so every load instruction is coalesced. value(i) runs for all
// Items first, then store(i, v): Items independent loads in flight per thread (the grids of
// launch.h size a step as threads * itemsPerThread), where a loop of one load and one store
// per iteration keeps one, because stores to a pointer that may alias the input (in place)
// cannot be moved past the next load. In place stays safe: a thread reads all its elements
// before it writes any, and no two threads share an element. With Items = 4 and 8 CTAs of
// 256 threads per SM: 32 KB in flight per SM for 4-byte loads, >= 0.8 of memcpy expected.
// fp16/bf16 move 2 bytes per access here (a warp's request is 64 contiguous bytes): half the
// bytes in flight, so these passes may stay nearer 0.5 of memcpy for half types; the
// streaming passes above use 16-byte vectors for every type.
constexpr int kStreamItems = streamPolicy().itemsPerThread;  // as launch.h's gridFor assumes

template <int Items, typename Value, typename Store>
__device__ __forceinline__ void gridItems(uint64_t n, Value value, Store store) {
  const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
  for (uint64_t first = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; first < n; first += stride * Items) {
    decltype(value(first)) v[Items];
#pragma unroll
    for (int r = 0; r < Items; ++r)
      if (first + r * stride < n) v[r] = value(first + r * stride);
#pragma unroll
    for (int r = 0; r < Items; ++r)
      if (first + r * stride < n) store(first + r * stride, v[r]);
  }
}

}  // namespace cuda
}  // namespace spccl

#endif  // SPCCL_CUDA_VECTOR_IO_CUH_
