/* SPDX-License-Identifier: Apache-2.0
 *
 * Random-block sparsification on the device: the two passes of src/cpu/block_kernels.h.
 *   randomBlockPackKernel    packed[slot*B + j] = g + e over the m chosen blocks
 *   randomBlockCommitKernel  per element: chosen -> out = scale * packed, e = 0;
 *                                         not chosen -> e = g + e, out = 0
 * The collective runs between them, so the residual changes only in the commit pass.
 *
 * Invariants:
 *  - selection comes from select_core.h (slotBlock / blockSlot), evaluated by each thread for
 *    the blocks it touches: no lookup table, and the same blocks as the CPU for the same key;
 *  - per-element arithmetic is dtype_core.h's addRounded / scaleRounded, so fp32 and fp64
 *    results equal the CPU's bit for bit, and half types round once, as on the CPU;
 *  - in-place (out == g) is safe: each thread reads g[i] before it writes out[i].
 *
 * Work is cut into spans of about one tile (threads * items elements): whole spccl blocks
 * when blocks are smaller than a tile, tile-sized pieces of one block when they are larger,
 * so a few huge blocks still spread over every SM. A CTA works out the slot (or block) of each
 * block in its span once, into shared memory (the SCATTERED permutation costs four Feistel
 * rounds per block), and then streams the span's elements with coalesced accesses.
 */
#ifndef SPCCL_CUDA_BLOCK_KERNELS_CUH_
#define SPCCL_CUDA_BLOCK_KERNELS_CUH_

#include <stdint.h>

#include "device.h"
#include "dtype_core.h"
#include "select_core.h"

namespace spccl {
namespace cuda {

// The selection of this launch: from the device step counter when there is one (graph
// replays), else as the host computed it. Every thread derives it the same way.
__device__ __forceinline__ BlockSelection resolveSelection(const device::DeviceSelection& ds) {
  if (!ds.step) return ds.sel;
  return makeBlockSelection(ds.sel.nblocks, ds.sel.nselected, ds.sel.scattered,
                            selectionKey(ds.seed, ds.tensorKey, *ds.step));
}

__global__ void advanceStepKernel(unsigned long long* step) { ++*step; }

// How the work is cut: spans of blocksPerSpan whole blocks (blocks smaller than a tile), or
// piecesPerBlock tile-sized pieces of one block (blocks larger than a tile).
struct SpanShape {
  uint64_t blocksPerSpan;
  uint64_t piecesPerBlock;
  uint32_t spanLen;  // elements of one span at most (<= tile)
  uint64_t nspans;
};

inline SpanShape spanShape(uint64_t nunits, uint64_t blockSize, int tile) {
  SpanShape s;
  if (blockSize >= (uint64_t)tile) {
    s.blocksPerSpan = 1;
    s.piecesPerBlock = (blockSize + tile - 1) / tile;
    s.spanLen = (uint32_t)tile;
  } else {
    s.blocksPerSpan = (uint64_t)tile / blockSize;
    s.piecesPerBlock = 1;
    s.spanLen = (uint32_t)(s.blocksPerSpan * blockSize);
  }
  s.nspans = (nunits + s.blocksPerSpan - 1) / s.blocksPerSpan * s.piecesPerBlock;
  return s;
}

// One span: units [first, first + units) (blocks, or packed slots), and the elements
// [pieceOff, pieceOff + len) of their concatenation.
struct Span {
  uint64_t first;
  uint32_t units, pieceOff, len;
};

__device__ __forceinline__ Span spanAt(const SpanShape& shape, uint64_t span, uint64_t nunits, uint32_t blockSize) {
  Span s;
  s.first = span / shape.piecesPerBlock * shape.blocksPerSpan;
  const uint64_t left = nunits - s.first;
  s.units = (uint32_t)(left < shape.blocksPerSpan ? left : shape.blocksPerSpan);
  s.pieceOff = (uint32_t)(span % shape.piecesPerBlock) * shape.spanLen;
  const uint32_t rest = s.units * blockSize - s.pieceOff;  // a piece of one block, or whole blocks
  s.len = rest < shape.spanLen ? rest : shape.spanLen;
  return s;
}

// Fills table[u] = f(first + u) for the span's units, visible to the whole CTA on return.
// The leading barrier keeps the previous span's readers ahead of the writers.
template <int Threads, typename F>
__device__ __forceinline__ void fillSpanTable(uint64_t* table, const Span& span, F f) {
  __syncthreads();
  for (uint32_t u = threadIdx.x; u < span.units; u += Threads) table[u] = f(span.first + u);
  __syncthreads();
}

// Both passes handle a span (at most Tile = Threads * Items elements) as Items elements per
// thread, all loaded before any is stored (the elements of one step are Threads apart, so
// every access instruction is coalesced): Items independent loads in flight per thread (8
// for fp32 and the half types, 4 for fp64) instead of one, since a store to `out`, which may
// be g (in place), could not move past the next iteration's loads. With 8 CTAs of 256
// threads per SM, >= 32 KB in flight per SM: the fused passes should reach >= 0.8 of
// device-to-device memcpy (the target of README's device goals). fp16 still moves 2-byte
// elements per thread: a span's elements are contiguous only within a block, so 16-byte
// vectors would need B to be a multiple of 8 and aligned buffers.
template <typename T, int Threads, int Tile>
__global__ void __launch_bounds__(Threads)
    randomBlockPackKernel(const T* __restrict__ g, const T* __restrict__ e, uint64_t n, uint32_t blockSize,
                          device::DeviceSelection ds, SpanShape shape, T* __restrict__ packed) {
  constexpr int kItems = Tile / Threads;
  __shared__ uint64_t blockBegin[Tile];  // element offset of the block in each slot of the span
  const BlockSelection sel = resolveSelection(ds);
  for (uint64_t id = blockIdx.x; id < shape.nspans; id += gridDim.x) {
    const Span span = spanAt(shape, id, sel.nselected, blockSize);
    fillSpanTable<Threads>(blockBegin, span, [&](uint64_t slot) { return slotBlock(sel, slot) * blockSize; });
    T v[kItems];
#pragma unroll
    for (int r = 0; r < kItems; ++r) {
      const uint32_t off = threadIdx.x + r * Threads;
      if (off >= span.len) continue;
      const uint32_t local = span.pieceOff + off, u = local / blockSize, j = local - u * blockSize;
      const uint64_t i = blockBegin[u] + j;
      v[r] = i < n ? feedbackValue(g, e, i) : T();  // the short last block packs zeros past n
    }
#pragma unroll
    for (int r = 0; r < kItems; ++r) {
      const uint32_t off = threadIdx.x + r * Threads;
      if (off >= span.len) continue;
      const uint32_t local = span.pieceOff + off, u = local / blockSize, j = local - u * blockSize;
      packed[(span.first + u) * blockSize + j] = v[r];
    }
  }
}

// e and packed never alias anything (the residual and the workspace); g and out may be one
// buffer (in place), which the load-all-then-store order of each step keeps safe.
template <typename T, int Threads, int Tile>
__global__ void __launch_bounds__(Threads)
    randomBlockCommitKernel(const T* g, T* __restrict__ e, const T* __restrict__ packed,
                            typename AccumOf<T>::type scale, uint64_t n, uint32_t blockSize,
                            device::DeviceSelection ds, SpanShape shape, T* out) {
  constexpr int kItems = Tile / Threads;
  __shared__ uint64_t blockSlots[Tile];  // the slot of each block of the span (>= m: not chosen)
  const BlockSelection sel = resolveSelection(ds);
  for (uint64_t id = blockIdx.x; id < shape.nspans; id += gridDim.x) {
    const Span span = spanAt(shape, id, sel.nblocks, blockSize);
    fillSpanTable<Threads>(blockSlots, span, [&](uint64_t b) { return blockSlot(sel, b); });
    T outV[kItems], eV[kItems];
#pragma unroll
    for (int r = 0; r < kItems; ++r) {
      const uint32_t off = threadIdx.x + r * Threads;
      if (off >= span.len) continue;
      const uint32_t local = span.pieceOff + off, u = local / blockSize, j = local - u * blockSize;
      const uint64_t i = (span.first + u) * blockSize + j, slot = blockSlots[u];
      if (i >= n) continue;  // the short last block
      if (slot < sel.nselected) {  // chosen: sent, so nothing stays behind
        outV[r] = out ? scaleRounded(packed[slot * blockSize + j], scale) : T();
        eV[r] = T();
      } else {  // kept: the whole of acc stays in the residual, when finite
        eV[r] = g && e ? keptSum(g[i], e[i]) : T();
        outV[r] = T();
      }
    }
#pragma unroll
    for (int r = 0; r < kItems; ++r) {
      const uint32_t off = threadIdx.x + r * Threads;
      if (off >= span.len) continue;
      const uint32_t local = span.pieceOff + off, u = local / blockSize, j = local - u * blockSize;
      const uint64_t i = (span.first + u) * blockSize + j;
      if (i >= n) continue;
      if (out) out[i] = outV[r];
      if (e && (g || blockSlots[u] < sel.nselected)) e[i] = eV[r];
    }
  }
}

}  // namespace cuda
}  // namespace spccl

#endif  // SPCCL_CUDA_BLOCK_KERNELS_CUH_
