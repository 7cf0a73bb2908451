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
 * Work is cut into spans of whole spccl blocks (about one tile of threads * items elements,
 * or one spccl block when blocks are larger), so offsets inside a span fit 32 bits and each
 * thread recomputes a slot only when it crosses into another block.
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

// Spans of whole blocks: blocksPerSpan blocks of `blockSize` elements each.
struct SpanShape {
  uint64_t blocksPerSpan;
  uint64_t nspans;
};

inline SpanShape spanShape(uint64_t nblocks, uint64_t blockSize, int tile) {
  SpanShape s;
  s.blocksPerSpan = blockSize >= (uint64_t)tile ? 1 : (uint64_t)tile / blockSize;
  s.nspans = (nblocks + s.blocksPerSpan - 1) / s.blocksPerSpan;
  return s;
}

template <typename T, int Threads>
__global__ void __launch_bounds__(Threads)
    randomBlockPackKernel(const T* __restrict__ g, const T* __restrict__ e, uint64_t n, uint32_t blockSize,
                          device::DeviceSelection ds, SpanShape shape, T* __restrict__ packed) {
  const BlockSelection sel = resolveSelection(ds);
  const uint32_t spanLen = (uint32_t)(shape.blocksPerSpan * blockSize);
  for (uint64_t span = blockIdx.x; span < shape.nspans; span += gridDim.x) {
    const uint64_t firstSlot = span * shape.blocksPerSpan;
    uint64_t cachedSlot = ~0ull, begin = 0;
    for (uint32_t off = threadIdx.x; off < spanLen; off += Threads) {
      const uint64_t slot = firstSlot + off / blockSize;
      if (slot >= sel.nselected) break;
      if (slot != cachedSlot) {
        cachedSlot = slot;
        begin = slotBlock(sel, slot) * blockSize;
      }
      const uint64_t i = begin + off % blockSize;
      T v = T();  // the short last block packs zeros past n
      if (i < n) v = feedbackValue(g, e, i);
      packed[slot * blockSize + off % blockSize] = v;
    }
  }
}

template <typename T, int Threads>
__global__ void __launch_bounds__(Threads)
    randomBlockCommitKernel(const T* g, T* e, const T* __restrict__ packed, typename AccumOf<T>::type scale,
                            uint64_t n, uint32_t blockSize, device::DeviceSelection ds, SpanShape shape, T* out) {
  const BlockSelection sel = resolveSelection(ds);
  const uint32_t spanLen = (uint32_t)(shape.blocksPerSpan * blockSize);
  for (uint64_t span = blockIdx.x; span < shape.nspans; span += gridDim.x) {
    const uint64_t firstBlock = span * shape.blocksPerSpan;
    const uint64_t spanBegin = firstBlock * blockSize;
    uint64_t cachedBlock = ~0ull, slot = 0;
    for (uint32_t off = threadIdx.x; off < spanLen; off += Threads) {
      const uint64_t i = spanBegin + off;
      if (i >= n) break;
      const uint64_t b = firstBlock + off / blockSize;
      if (b != cachedBlock) {
        cachedBlock = b;
        slot = blockSlot(sel, b);
      }
      if (slot < sel.nselected) {  // chosen: sent, so nothing stays behind
        if (out) out[i] = scaleRounded(packed[slot * blockSize + (i - b * blockSize)], scale);
        if (e) e[i] = T();
      } else {  // kept: the whole of acc stays in the residual
        if (g && e) e[i] = addRounded(g[i], e[i]);
        if (out) out[i] = T();
      }
    }
  }
}

}  // namespace cuda
}  // namespace spccl

#endif  // SPCCL_CUDA_BLOCK_KERNELS_CUH_
