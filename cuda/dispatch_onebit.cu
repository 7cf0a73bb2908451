// SPDX-License-Identifier: Apache-2.0
//
// Launchers of the 1-bit kernels (cuda/kernels/onebit_kernels.cuh): switch on the datatype,
// size the grid from the policy, launch on the caller's stream. The scale's summation tree
// runs as one pack pass (two levels) and then one fold pass per further level, ping-ponging
// between the two halves of the scratch; nothing is read back to the host.

#include <utility>

#include "device.h"
#include "dispatch.h"
#include "kernels/onebit_kernels.cuh"
#include "launch.h"
#include "tuning.h"

namespace spccl {
namespace device {

using cuda::toCuda;

namespace {

constexpr cuda::WarpPolicy kWarpPolicy = cuda::signFoldPolicy();
constexpr cuda::ElementwisePolicy kStream = cuda::streamPolicy();

// Partials per chunk after the pack pass (level 2 of the tree); one for an empty chunk (+0).
uint64_t groupsOf(uint64_t chunkLen) { return chunkLen ? ceilDiv(chunkLen, cuda::kGroupElems) : 1; }

// The scratch: two arrays of partials, the first for the pack pass's output and every
// second fold, the second for the others; 8 bytes per partial whatever AccT is.
struct Partials {
  void* even;
  void* odd;
};
Partials partialsOf(void* scratch, const SignChunks& c) {
  const uint64_t groups = groupsOf(c.chunkLen);
  char* base = static_cast<char*>(scratch);
  return {base, base + (uint64_t)c.nchunks * groups * sizeof(double)};
}

// Grid for `units` warp-sized work units.
spcclResult_t warpGrid(uint64_t units, unsigned* grid) {
  return cuda::gridSize(ceilDiv(units, kWarpPolicy.threads / cuda::kWarp), kWarpPolicy.blocksPerSm, grid);
}

// An element-wise pass over n elements (kStream blocks): the type switch, the grid and the
// launch check in one place; launch(tag, grid) enqueues the kernel.
template <typename Launch>
spcclResult_t perElement(spcclDataType_t datatype, uint64_t n, Launch launch) {
  if (n == 0) return spcclSuccess;
  return withType(datatype, [&](auto tag) {
    unsigned grid = 0;
    SPCCLCHECK(cuda::gridFor(n, kStream, &grid));
    launch(tag, grid);
    CUDACHECK(cudaGetLastError());
    return spcclSuccess;
  });
}

// The per-chunk passes' grid: the element-wise grid's blocks shared among the chunks
// (blockIdx.y is the chunk, at most 65535: more chunks loop in the kernel).
dim3 chunkGrid(unsigned grid, const SignChunks& c) {
  const unsigned chunks = c.nchunks < 65535u ? (c.nchunks ? c.nchunks : 1u) : 65535u;
  return dim3(grid / chunks ? grid / chunks : 1u, chunks);
}

}  // namespace

size_t signScratchBytes(const SignChunks& c) {
  const uint64_t groups = groupsOf(c.chunkLen);
  return (size_t)c.nchunks * (groups + ceilDiv(groups, kSignFold)) * sizeof(double);
}

spcclResult_t signCompress(spcclDataType_t datatype, const void* in, const void* e, const SignChunks& c,
                           void* messages, void* scratch, spcclStream_t stream) {
  if (c.nchunks == 0) return spcclSuccess;
  return withType(datatype, [&](auto tag) {
    using T = decltype(tag);
    using AccT = typename AccumOf<T>::type;
    constexpr int threads = kWarpPolicy.threads;
    const Partials parts = partialsOf(scratch, c);
    AccT* level = static_cast<AccT*>(parts.even);
    AccT* next = static_cast<AccT*>(parts.odd);
    uint64_t count = groupsOf(c.chunkLen);  // partials per chunk
    unsigned grid = 0;
    SPCCLCHECK(warpGrid(c.nchunks * count, &grid));
    cuda::signPackKernel<T, threads><<<grid, threads, 0, toCuda(stream)>>>(
        static_cast<const T*>(in), static_cast<const T*>(e), c, count, messages, level);
    CUDACHECK(cudaGetLastError());
    for (; count > 1; count = ceilDiv(count, kSignFold)) {
      SPCCLCHECK(warpGrid(c.nchunks * ceilDiv(count, kSignFold), &grid));
      cuda::signFoldKernel<AccT, threads><<<grid, threads, 0, toCuda(stream)>>>(level, count, c.nchunks, next);
      CUDACHECK(cudaGetLastError());
      std::swap(level, next);
    }
    SPCCLCHECK(cuda::gridSize(ceilDiv(c.nchunks, threads), kWarpPolicy.blocksPerSm, &grid));
    cuda::signScaleKernel<T><<<grid, threads, 0, toCuda(stream)>>>(level, c, messages);
    CUDACHECK(cudaGetLastError());
    return spcclSuccess;
  });
}

spcclResult_t signResidual(spcclDataType_t datatype, const void* in, const void* eIn, const SignChunks& c,
                           const void* messages, void* eOut, spcclStream_t stream) {
  return perElement(datatype, c.n, [&](auto tag, unsigned grid) {
    using T = decltype(tag);
    cuda::signResidualKernel<T><<<chunkGrid(grid, c), kStream.threads, 0, toCuda(stream)>>>(
        static_cast<const T*>(in), static_cast<const T*>(eIn), c, messages, static_cast<T*>(eOut));
  });
}

spcclResult_t signUnpack(spcclDataType_t datatype, const SignChunks& c, const void* messages, void* out,
                         spcclStream_t stream) {
  return perElement(datatype, c.n, [&](auto tag, unsigned grid) {
    using T = decltype(tag);
    cuda::signUnpackKernel<T>
        <<<chunkGrid(grid, c), kStream.threads, 0, toCuda(stream)>>>(c, messages, static_cast<T*>(out));
  });
}

spcclResult_t signMean(spcclDataType_t datatype, const void* messages, size_t messageBytes, int nmessages,
                       size_t len, double factor, void* out, spcclStream_t stream) {
  return perElement(datatype, len, [&](auto tag, unsigned grid) {
    using T = decltype(tag);
    using AccT = typename AccumOf<T>::type;
    cuda::signMeanKernel<T><<<grid, kStream.threads, 0, toCuda(stream)>>>(messages, messageBytes, nmessages, len,
                                                                         (AccT)factor, static_cast<T*>(out));
  });
}

spcclResult_t scaleValues(spcclDataType_t datatype, const void* in, size_t n, double scale, void* out,
                          spcclStream_t stream) {
  return perElement(datatype, n, [&](auto tag, unsigned grid) {
    using T = decltype(tag);
    using AccT = typename AccumOf<T>::type;
    cuda::scaledCopyKernel<T><<<grid, kStream.threads, 0, toCuda(stream)>>>(static_cast<const T*>(in), n,
                                                                            (AccT)scale, static_cast<T*>(out));
  });
}

}  // namespace device
}  // namespace spccl
