/* SPDX-License-Identifier: Apache-2.0
 *
 * CPU kernels of the 1-bit method (methods/onebit.cc, docs/DESIGN.md "1-bit"); the rules,
 * the scale's summation tree and the message layout are onebit_core.h's, shared with the CUDA
 * kernels (cuda/kernels/onebit_kernels.cuh), so both produce the same bits. The same kernels
 * serve both levels: the worker compresses x = g + e_w chunk by chunk, the server its chunk
 * x = m + e_s as one chunk.
 */
#ifndef SPCCL_CPU_ONEBIT_KERNELS_H_
#define SPCCL_CPU_ONEBIT_KERNELS_H_

#include <stddef.h>
#include <stdint.h>

#include "onebit_core.h"

namespace spccl {
namespace cpu {

// The fold by halves of 32 values (onebit_core.h); v is overwritten.
template <typename AccT>
AccT foldHalves(AccT* v) {
  for (unsigned h = kSignFold / 2; h > 0; h /= 2)
    for (unsigned i = 0; i < h; ++i) v[i] += v[i + h];
  return v[0];
}

// Node `node` of level `level` of the summation tree over the len values of x = in + e
// (level 1: the 32 values of word `node`, whose signs it stores): the fold of its 32
// children, +0 for those past len.
template <typename T>
typename AccumOf<T>::type foldNode(const T* in, const T* e, uint64_t len, unsigned level, uint64_t node,
                                   uint32_t* words) {
  using AccT = typename AccumOf<T>::type;
  AccT v[kSignFold];
  if (level == 1) {
    uint32_t word = 0;
    for (unsigned j = 0; j < kSignFold; ++j) {
      const uint64_t i = node * kSignFold + j;
      v[j] = 0;
      if (i >= len) continue;
      const AccT x = signInput(in, e, i);
      v[j] = signMagnitude(x);
      word |= signPositive(x) << j;
    }
    words[node] = word;
    return foldHalves(v);
  }
  uint64_t childSpan = 1;  // elements under one child: 32^(level-1)
  for (unsigned l = 1; l < level; ++l) childSpan *= kSignFold;
  for (unsigned j = 0; j < kSignFold; ++j) {
    const uint64_t child = node * kSignFold + j;
    v[j] = child * childSpan < len ? foldNode(in, e, len, level - 1, child, words) : AccT(0);
  }
  return foldHalves(v);
}

// One chunk of len values of x = in + e (e null: x = in) into message m: its signs and scale.
template <typename T>
void signCompressChunk(const T* in, const T* e, uint64_t len, const SignMessage& m) {
  unsigned levels = 1;
  for (uint64_t span = kSignFold; span < len; span *= kSignFold) ++levels;
  const auto sum = len ? foldNode(in, e, len, levels, 0, m.words) : 0;
  *m.scale = signScale<T>(sum, len);
}

// Every chunk of x = in + e into its message.
template <typename T>
void signCompress(const T* in, const T* e, const SignChunks& c, void* messages) {
  for (uint32_t j = 0; j < c.nchunks; ++j) {
    const uint64_t b = chunkBegin(c, j);
    signCompressChunk(in + b, e ? e + b : nullptr, chunkSize(c, j), signMessage(messages, c.messageBytes, j));
  }
}

// eOut = x - c, what the messages did not carry (x recomputed from in and eIn, which may be
// eOut: each position is read before it is written).
template <typename T>
void signResidual(const T* in, const T* eIn, const SignChunks& c, const void* messages, T* eOut) {
  for (uint32_t j = 0; j < c.nchunks; ++j) {
    const uint64_t b = chunkBegin(c, j), len = chunkSize(c, j);
    const SignMessageView m = signMessage(messages, c.messageBytes, j);
    for (uint64_t i = 0; i < len; ++i) eOut[b + i] = signResidualAt(in + b, eIn ? eIn + b : nullptr, m, i);
  }
}

// out = c.
template <typename T>
void signUnpack(const SignChunks& c, const void* messages, T* out) {
  using AccT = typename AccumOf<T>::type;
  for (uint32_t j = 0; j < c.nchunks; ++j) {
    const uint64_t b = chunkBegin(c, j), len = chunkSize(c, j);
    const SignMessageView m = signMessage(messages, c.messageBytes, j);
    for (uint64_t i = 0; i < len; ++i) out[b + i] = fromAcc<T>(signValue<AccT>(m, i));
  }
}

// out[i] = factor * (the nmessages messages' values at i, added in message order), i < len.
template <typename T>
void signMean(const void* messages, uint64_t messageBytes, int nmessages, uint64_t len,
              typename AccumOf<T>::type factor, T* out) {
  for (uint64_t i = 0; i < len; ++i) out[i] = signMeanAt<T>(messages, messageBytes, nmessages, i, factor);
}

}  // namespace cpu
}  // namespace spccl

#endif  // SPCCL_CPU_ONEBIT_KERNELS_H_
