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
#include <stdint.h>
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
  for (size_t i = 0; i < len; ++i) dst[i] = addRounded(g[i], e[i]);
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

// What the commit pass reads and writes. Any pointer may be null: g in decompress (nothing
// to keep), eIn/eOut without feedback, packed when the chosen blocks of out are written
// later (unpackChosen, after an overlapped reduction), out when compressing.
// eOut == eIn updates the residual in place; a separate eOut keeps eIn intact until the
// caller commits (the overlapped path, whose reduction may still fail).
template <typename T>
struct CommitArgs {
  const T* g;
  const T* eIn;
  T* eOut;
  const T* packed;
  typename AccumOf<T>::type scale;
  T* out;
};

// eOut = g + eIn, kept when finite: the residual of elements that were not sent.
template <typename T>
inline void accumulate(T* eOut, const T* g, const T* eIn, size_t len) {
  for (size_t i = 0; i < len; ++i) eOut[i] = keptSum(g[i], eIn[i]);
}

// Elements [begin, end) were not chosen: residual keeps g + e (when finite), out is zero.
template <typename T>
inline void commitRun(const CommitArgs<T>& a, size_t begin, size_t end) {
  if (begin >= end) return;
  const size_t len = end - begin;
  if (a.g && a.eIn) {
    if (a.out == a.g) {  // in-place: read g before zeroing it
      for (size_t i = begin; i < end; ++i) {
        a.eOut[i] = keptSum(a.g[i], a.eIn[i]);
        a.out[i] = T();
      }
      return;
    }
    accumulate(a.eOut + begin, a.g + begin, a.eIn + begin, len);
  }
  if (a.out) memset(static_cast<void*>(a.out + begin), 0, len * sizeof(T));
}

template <typename T>
inline void unpackBlock(const T* packed, typename AccumOf<T>::type scale, T* out, size_t len) {
  if (scale == 1) {
    memcpy(out, packed, len * sizeof(T));
    return;
  }
  for (size_t i = 0; i < len; ++i) out[i] = scaleRounded(packed[i], scale);
}

// The commit pass over elements [begin, end) (multiples of blockSize; end is clipped to n),
// so an overlapped caller can run it in slices between progress calls.
template <typename T>
void unpackCommit(const CommitArgs<T>& a, size_t n, size_t blockSize, const BlockSlot* order, uint64_t nselected,
                  size_t begin = 0, size_t end = SIZE_MAX) {
  end = std::min(end, n);
  const BlockSlot* first = std::lower_bound(order, order + nselected, begin / blockSize,
                                            [](const BlockSlot& s, uint64_t b) { return s.block < b; });
  size_t pos = begin;
  for (const BlockSlot* c = first; c != order + nselected && c->block * blockSize < end; ++c) {
    const size_t blockBegin = c->block * blockSize;
    const size_t len = std::min(blockSize, n - blockBegin);
    commitRun(a, pos, blockBegin);
    if (a.eOut) memset(static_cast<void*>(a.eOut + blockBegin), 0, len * sizeof(T));
    if (a.out && a.packed) unpackBlock(a.packed + c->slot * blockSize, a.scale, a.out + blockBegin, len);
    pos = blockBegin + len;
  }
  commitRun(a, pos, end);
}

// The chosen blocks of out from the reduced packed buffer (the rest was written earlier).
template <typename T>
void unpackChosen(const T* packed, typename AccumOf<T>::type scale, size_t n, size_t blockSize,
                  const BlockSlot* order, uint64_t nselected, T* out) {
  for (uint64_t i = 0; i < nselected; ++i) {
    const size_t blockBegin = order[i].block * blockSize;
    unpackBlock(packed + order[i].slot * blockSize, scale, out + blockBegin, std::min(blockSize, n - blockBegin));
  }
}

}  // namespace cpu
}  // namespace spccl

#endif  // SPCCL_CPU_BLOCK_KERNELS_H_
