// SPDX-License-Identifier: Apache-2.0
//
// Launchers of the random-block kernels (cuda/kernels/block_kernels.cuh): switch on the
// datatype, size the grid from the policy, launch on the caller's stream.

#include "device.h"
#include "dispatch.h"
#include "kernels/block_kernels.cuh"
#include "launch.h"
#include "tuning.h"

namespace spccl {
namespace device {

using cuda::toCuda;

spcclResult_t advanceStep(unsigned long long* step, spcclStream_t stream) {
  cuda::advanceStepKernel<<<1, 1, 0, toCuda(stream)>>>(step);
  CUDACHECK(cudaGetLastError());
  return spcclSuccess;
}

spcclResult_t randomBlockPack(spcclDataType_t datatype, const void* g, const void* e, size_t n, size_t blockSize,
                              const DeviceSelection* sel, void* packed, spcclStream_t stream) {
  if (sel->sel.nselected == 0) return spcclSuccess;
  return withType(datatype, [&](auto tag) {
    using T = decltype(tag);
    constexpr cuda::ElementwisePolicy p = cuda::elementwisePolicy<T>();
    constexpr int tile = p.threads * p.itemsPerThread;
    const cuda::SpanShape shape = cuda::spanShape(sel->sel.nselected, blockSize, tile);
    unsigned grid = 0;
    SPCCLCHECK(cuda::gridSize(shape.nspans, p.blocksPerSm, &grid));
    cuda::randomBlockPackKernel<T, p.threads, tile><<<grid, p.threads, 0, toCuda(stream)>>>(
        static_cast<const T*>(g), static_cast<const T*>(e), n, (uint32_t)blockSize, *sel, shape,
        static_cast<T*>(packed));
    CUDACHECK(cudaGetLastError());
    return spcclSuccess;
  });
}

spcclResult_t randomBlockCommit(spcclDataType_t datatype, const void* g, void* e, const void* packed, double scale,
                                size_t n, size_t blockSize, const DeviceSelection* sel, void* out,
                                spcclStream_t stream) {
  if (n == 0) return spcclSuccess;
  return withType(datatype, [&](auto tag) {
    using T = decltype(tag);
    using AccT = typename AccumOf<T>::type;
    constexpr cuda::ElementwisePolicy p = cuda::elementwisePolicy<T>();
    constexpr int tile = p.threads * p.itemsPerThread;
    const cuda::SpanShape shape = cuda::spanShape(sel->sel.nblocks, blockSize, tile);
    unsigned grid = 0;
    SPCCLCHECK(cuda::gridSize(shape.nspans, p.blocksPerSm, &grid));
    cuda::randomBlockCommitKernel<T, p.threads, tile><<<grid, p.threads, 0, toCuda(stream)>>>(
        static_cast<const T*>(g), static_cast<T*>(e), static_cast<const T*>(packed), (AccT)scale, n,
        (uint32_t)blockSize, *sel, shape, static_cast<T*>(out));
    CUDACHECK(cudaGetLastError());
    return spcclSuccess;
  });
}

}  // namespace device
}  // namespace spccl
