/* SPDX-License-Identifier: Apache-2.0
 *
 * CPU kernels of random-block sparsification. Two passes over memory:
 *   feedbackPack      packed[slot] = g + e on the m selected blocks (reads only m*B elements)
 *   unpackCommit      per block: chosen -> out = scale * reduced, e = 0;
 *                                not chosen -> e = g + e, out = 0
 * The communication happens between them, so a failed allreduce leaves the residual
 * untouched without a second residual buffer. The commit pass walks the blocks in address
 * order, treating the stretch between two chosen blocks as one long vectorisable run.
 * In-place (out == g) is safe: each element of g is read before out overwrites it.
 * Half types add in fp32 and round once.
 */
#ifndef SPCCL_CPU_BLOCK_KERNELS_H_
#define SPCCL_CPU_BLOCK_KERNELS_H_

#include <stddef.h>
#include <string.h>

#include <algorithm>

#include "dtype_core.h"
#include "select_core.h"

namespace spccl {
namespace cpu {

// A chosen block and the packed slot that holds it.
struct BlockSlot {
  uint64_t block;
  uint64_t slot;
};

// Fills order[0..m) with the chosen blocks in ascending block order.
inline void sortedSelection(const BlockSelection& sel, BlockSlot* order) {
  for (uint64_t slot = 0; slot < sel.nselected; ++slot) order[slot] = {slotBlock(sel, slot), slot};
  BlockSlot* end = order + sel.nselected;
  if (sel.scattered) {
    std::sort(order, end, [](const BlockSlot& a, const BlockSlot& b) { return a.block < b.block; });
  } else {  // a run that may wrap: one rotation sorts it
    BlockSlot* wrap = std::find_if(order, end, [](const BlockSlot& s) { return s.block == 0; });
    if (wrap != end) std::rotate(order, wrap, end);
  }
}

// acc = g + e (e may be null: feedback NONE).
template <typename T>
inline void addInto(T* __restrict dst, const T* __restrict g, const T* __restrict e, size_t len) {
  if (!e) {
    memcpy(dst, g, len * sizeof(T));
    return;
  }
  for (size_t i = 0; i < len; ++i) dst[i] = fromAcc<T>(toAcc(g[i]) + toAcc(e[i]));
}

template <typename T>
void feedbackPack(const T* g, const T* e, size_t n, size_t blockSize, const BlockSelection& sel, T* packed) {
  for (uint64_t slot = 0; slot < sel.nselected; ++slot) {
    const size_t begin = slotBlock(sel, slot) * blockSize;
    const size_t len = std::min(blockSize, n - begin);
    T* dst = packed + slot * blockSize;
    addInto(dst, g + begin, e ? e + begin : nullptr, len);
    if (len < blockSize) memset(static_cast<void*>(dst + len), 0, (blockSize - len) * sizeof(T));  // short last block
  }
}

// e += g, the residual of the elements that were not sent.
template <typename T>
inline void accumulate(T* __restrict e, const T* __restrict g, size_t len) {
  for (size_t i = 0; i < len; ++i) e[i] = fromAcc<T>(toAcc(g[i]) + toAcc(e[i]));
}

// Elements [begin, end) were not chosen: e += g, out = 0. g is null when there is nothing
// to keep (decompress), e is null without feedback, out is null when compressing.
template <typename T>
inline void commitRun(const T* g, T* e, T* out, size_t begin, size_t end) {
  if (begin >= end) return;
  const size_t len = end - begin;
  if (g && e) {
    if (out == g) {  // in-place: read g before zeroing it
      for (size_t i = begin; i < end; ++i) {
        e[i] = fromAcc<T>(toAcc(g[i]) + toAcc(e[i]));
        out[i] = T();
      }
      return;
    }
    accumulate(e + begin, g + begin, len);
  }
  if (out) memset(static_cast<void*>(out + begin), 0, len * sizeof(T));
}

template <typename T>
inline void unpackBlock(const T* packed, typename AccumOf<T>::type scale, T* out, size_t len) {
  if (scale == 1) {
    memcpy(out, packed, len * sizeof(T));
    return;
  }
  for (size_t i = 0; i < len; ++i) out[i] = fromAcc<T>(toAcc(packed[i]) * scale);
}

template <typename T>
void unpackCommit(const T* g, T* e, const T* packed, typename AccumOf<T>::type scale, size_t n, size_t blockSize,
                  const BlockSlot* order, uint64_t nselected, T* out) {
  size_t pos = 0;
  for (uint64_t i = 0; i < nselected; ++i) {
    const size_t begin = order[i].block * blockSize;
    const size_t len = std::min(blockSize, n - begin);
    commitRun(g, e, out, pos, begin);
    if (e) memset(static_cast<void*>(e + begin), 0, len * sizeof(T));
    if (out) unpackBlock(packed + order[i].slot * blockSize, scale, out + begin, len);
    pos = begin + len;
  }
  commitRun(g, e, out, pos, n);
}

}  // namespace cpu
}  // namespace spccl

#endif  // SPCCL_CPU_BLOCK_KERNELS_H_
