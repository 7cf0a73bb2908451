/* SPDX-License-Identifier: Apache-2.0
 *
 * Launch policies, as CUB's tuning headers: plain structs the kernels only read. Tuned for
 * sm_90 (H100/H200), the one architecture built by default; other architectures get the
 * same values, which are reasonable for any GPU with 48+ KiB of shared memory per block.
 */
#ifndef SPCCL_CUDA_TUNING_H_
#define SPCCL_CUDA_TUNING_H_

namespace spccl {
namespace cuda {

// Random block's element-wise passes (pack, commit). Memory bound: enough work per
// thread to hide latency, blocks per SM capped so grid-stride loops reuse resident blocks.
struct ElementwisePolicy {
  int threads;
  int itemsPerThread;
  int blocksPerSm;
};

template <typename T>
constexpr ElementwisePolicy elementwisePolicy() {
  return {256, sizeof(T) >= 8 ? 4 : 8, 8};
}

// Grid-stride passes of one element per thread and step over the whole tensor (g + e of a
// dense-switched state, the decompress scaling, 1-bit's residual, unpack and mean).
constexpr ElementwisePolicy streamPolicy() { return {256, 4, 8}; }

// Grid-stride passes over k pairs or slots (residual clearing, scatter-add, padding): k is
// small next to n, so fewer resident blocks.
constexpr ElementwisePolicy pairPolicy() { return {256, 1, 4}; }

// The sorted-list scatter: each block adds the lists' pairs of one chunk of the output into
// shared memory, then writes the chunk once.
struct ScatterListsPolicy {
  int threads;
  int chunkBytes;  // shared memory per block for its chunk of out (in the accumulation type)
  int blocksPerSm;
};

constexpr ScatterListsPolicy scatterListsPolicy() { return {256, 16 * 1024, 4}; }

// Warp-level passes (the 1-bit scale's summation tree: one warp per 32 sign words or per 32
// partial sums). Memory bound as the element-wise passes; each warp has 32 loads in flight.
struct WarpPolicy {
  int threads;
  int blocksPerSm;
};

constexpr WarpPolicy signFoldPolicy() { return {256, 8}; }

// Radix select (exact top-k) and the threshold passes of Gaussian-k. digitBits decides the
// number of histogram passes over the input: 11 bits gives 3 passes for 32-bit keys (fp32,
// fp16, bf16 ranked by their fp32 value) and 6 for fp64, with a 2048-bin shared histogram.
struct RadixPolicy {
  int threads;
  int itemsPerThread;  // per thread and tile in the counting and compaction passes
  int digitBits;
  int blocksPerSm;
  int chooseThreads;  // the one block that walks the 2^digitBits histogram bins
  int momentBlocks;   // upper bound of Gaussian-k's moments grid (its partials live in scratch)
};

constexpr RadixPolicy radixPolicy() { return {256, 8, 11, 4, 1024, 1024}; }

// Quantized top-k: one CTA per chunk (grid-stride over the chunks) runs the chunk's radix
// select in shared memory, digitBits per pass (256 bins: one per thread, so choosing the
// bucket is one block scan; chunks are small, 256 elements by default, so a wide histogram
// would cost more to clear and scan than to fill), then packs its slots. The unpack uses
// the same CTAs, one chunk of out each.
struct QuantChunkPolicy {
  int threads;
  int digitBits;
  int blocksPerSm;
};

constexpr QuantChunkPolicy quantChunkPolicy() { return {256, 8, 8}; }

}  // namespace cuda
}  // namespace spccl

#endif  // SPCCL_CUDA_TUNING_H_
