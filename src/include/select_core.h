/* SPDX-License-Identifier: Apache-2.0
 *
 * The shared random stream of random-block selection, written once for the host and the
 * device (nvcc compiles this header too).
 *
 * Invariant: the same (seed, tensorKey, step, nblocks, nselected, pattern) selects the same
 * blocks in the same packed order on every rank and on every device. Only integer arithmetic
 * is used, because host compilers and nvcc may contract floating-point operations
 * differently and identical sets are the contract.
 *
 * A block b covers elements [b*B, min((b+1)*B, n)): aligned blocks, the last one may be short.
 * Slot i of the packed buffer holds block slotBlock(sel, i); blockSlot(sel, b) inverts it
 * (nselected for a block that was not chosen), so pack and unpack kernels each work from
 * their own index without a lookup table.
 */
#ifndef SPCCL_SELECT_CORE_H_
#define SPCCL_SELECT_CORE_H_

#include <stdint.h>

#if defined(__CUDACC__)
#define SPCCL_HD __host__ __device__ __forceinline__
#else
#define SPCCL_HD inline
#endif

namespace spccl {

// SplitMix64's finaliser: a bijective, well-mixed 64-bit hash.
SPCCL_HD uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// One key per (seed, tensor, step): every rank derives it without communicating.
SPCCL_HD uint64_t selectionKey(uint64_t seed, uint64_t tensorKey, uint64_t step) {
  return mix64(mix64(mix64(seed) ^ tensorKey) ^ step);
}

SPCCL_HD uint64_t ceilDiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

struct BlockSelection {
  uint64_t nblocks;    // ceil(n / B)
  uint64_t nselected;  // m
  uint64_t key;        // selectionKey(...)
  int scattered;       // spcclBlocksScattered
  // SCATTERED: keyed Feistel network on [0, 2^(2*halfBits)), cycle-walked into [0, nblocks).
  int halfBits;
  // CONTIGUOUS: the first block of the run.
  uint64_t start;
};

SPCCL_HD int feistelHalfBits(uint64_t nblocks) {
  int bits = 0;
  while (bits < 64 && (nblocks - 1) >> bits) ++bits;  // bits to hold nblocks - 1
  int half = (bits + 1) / 2;
  return half < 1 ? 1 : half;
}

SPCCL_HD BlockSelection makeBlockSelection(uint64_t nblocks, uint64_t nselected, int scattered, uint64_t key) {
  BlockSelection sel;
  sel.nblocks = nblocks;
  sel.nselected = nselected;
  sel.key = key;
  sel.scattered = scattered;
  sel.halfBits = feistelHalfBits(nblocks);
  sel.start = nblocks ? mix64(key ^ 0x636f6e7469677565ull) % nblocks : 0;
  return sel;
}

constexpr int kFeistelRounds = 4;

SPCCL_HD uint64_t feistelRound(uint64_t half, uint64_t key, int round, uint64_t mask) {
  return mix64(half ^ (key + 0x9e3779b97f4a7c15ull * (uint64_t)(round + 1))) & mask;
}

SPCCL_HD uint64_t feistelForward(uint64_t x, uint64_t key, int halfBits) {
  const uint64_t mask = (1ull << halfBits) - 1;
  uint64_t left = x >> halfBits, right = x & mask;
  for (int r = 0; r < kFeistelRounds; ++r) {
    uint64_t next = left ^ feistelRound(right, key, r, mask);
    left = right;
    right = next;
  }
  return (left << halfBits) | right;
}

SPCCL_HD uint64_t feistelInverse(uint64_t y, uint64_t key, int halfBits) {
  const uint64_t mask = (1ull << halfBits) - 1;
  uint64_t left = y >> halfBits, right = y & mask;
  for (int r = kFeistelRounds - 1; r >= 0; --r) {
    uint64_t prev = right ^ feistelRound(left, key, r, mask);
    right = left;
    left = prev;
  }
  return (left << halfBits) | right;
}

// Cycle-walking keeps the bijection inside [0, nblocks): the Feistel domain is < 4*nblocks,
// so fewer than four steps are expected.
SPCCL_HD uint64_t permuteBlock(const BlockSelection& sel, uint64_t i) {
  uint64_t x = i;
  do x = feistelForward(x, sel.key, sel.halfBits);
  while (x >= sel.nblocks);
  return x;
}

SPCCL_HD uint64_t unpermuteBlock(const BlockSelection& sel, uint64_t b) {
  uint64_t x = b;
  do x = feistelInverse(x, sel.key, sel.halfBits);
  while (x >= sel.nblocks);
  return x;
}

// The block stored in packed slot i (i < nselected).
SPCCL_HD uint64_t slotBlock(const BlockSelection& sel, uint64_t i) {
  if (sel.scattered) return permuteBlock(sel, i);
  uint64_t b = sel.start + i;
  return b >= sel.nblocks ? b - sel.nblocks : b;
}

// The packed slot of block b, or nselected when b was not chosen.
SPCCL_HD uint64_t blockSlot(const BlockSelection& sel, uint64_t b) {
  uint64_t slot = sel.scattered ? unpermuteBlock(sel, b) : (b >= sel.start ? b - sel.start : b + sel.nblocks - sel.start);
  return slot < sel.nselected ? slot : sel.nselected;
}

}  // namespace spccl

#endif  // SPCCL_SELECT_CORE_H_
