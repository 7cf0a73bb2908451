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

template <typename T, int Threads, int Tile>
__global__ void __launch_bounds__(Threads)
    randomBlockPackKernel(const T* __restrict__ g, const T* __restrict__ e, uint64_t n, uint32_t blockSize,
                          device::DeviceSelection ds, SpanShape shape, T* __restrict__ packed) {
  __shared__ uint64_t blockBegin[Tile];  // element offset of the block in each slot of the span
  const BlockSelection sel = resolveSelection(ds);
  for (uint64_t id = blockIdx.x; id < shape.nspans; id += gridDim.x) {
    const Span span = spanAt(shape, id, sel.nselected, blockSize);
    fillSpanTable<Threads>(blockBegin, span, [&](uint64_t slot) { return slotBlock(sel, slot) * blockSize; });
    for (uint32_t off = threadIdx.x; off < span.len; off += Threads) {
      const uint32_t local = span.pieceOff + off, u = local / blockSize, j = local - u * blockSize;
      const uint64_t i = blockBegin[u] + j;
      T v = T();  // the short last block packs zeros past n
      if (i < n) v = feedbackValue(g, e, i);
      packed[(span.first + u) * blockSize + j] = v;
    }
  }
}

template <typename T, int Threads, int Tile>
__global__ void __launch_bounds__(Threads)
    randomBlockCommitKernel(const T* g, T* e, const T* __restrict__ packed, typename AccumOf<T>::type scale,
                            uint64_t n, uint32_t blockSize, device::DeviceSelection ds, SpanShape shape, T* out) {
  __shared__ uint64_t blockSlots[Tile];  // the slot of each block of the span (>= m: not chosen)
  const BlockSelection sel = resolveSelection(ds);
  for (uint64_t id = blockIdx.x; id < shape.nspans; id += gridDim.x) {
    const Span span = spanAt(shape, id, sel.nblocks, blockSize);
    fillSpanTable<Threads>(blockSlots, span, [&](uint64_t b) { return blockSlot(sel, b); });
    for (uint32_t off = threadIdx.x; off < span.len; off += Threads) {
      const uint32_t local = span.pieceOff + off, u = local / blockSize, j = local - u * blockSize;
      const uint64_t i = (span.first + u) * blockSize + j;
      if (i >= n) break;  // the short last block
      const uint64_t slot = blockSlots[u];
      if (slot < sel.nselected) {  // chosen: sent, so nothing stays behind
        if (out) out[i] = scaleRounded(packed[slot * blockSize + j], scale);
        if (e) e[i] = T();
      } else {  // kept: the whole of acc stays in the residual, when finite
        if (g && e) e[i] = keptSum(g[i], e[i]);
        if (out) out[i] = T();
      }
    }
  }
}

}  // namespace cuda
}  // namespace spccl

#endif  // SPCCL_CUDA_BLOCK_KERNELS_CUH_
