/* SPDX-License-Identifier: Apache-2.0
 *
 * What every cuda/dispatch_*.cu launcher shares: the stream cast and the grid size of a
 * grid-stride kernel (enough blocks to fill the device, no more). The numbers are in
 * tuning.h. */
#ifndef SPCCL_CUDA_LAUNCH_H_
#define SPCCL_CUDA_LAUNCH_H_

#include <stdint.h>

#include "cuda_checks.h"
#include "tuning.h"

namespace spccl {
namespace cuda {

inline cudaStream_t toCuda(spcclStream_t stream) { return reinterpret_cast<cudaStream_t>(stream); }

// min(work units, SMs * blocksPerSm), at least 1. Attribute queries do not synchronise.
inline spcclResult_t gridSize(uint64_t units, int blocksPerSm, unsigned* grid) {
  int dev = 0, sms = 0;
  CUDACHECK(cudaGetDevice(&dev));
  CUDACHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  const uint64_t cap = (uint64_t)sms * (uint64_t)blocksPerSm;
  *grid = (unsigned)(units < cap ? (units ? units : 1) : cap);
  return spcclSuccess;
}

// The grid of a grid-stride kernel over `items` under policy p: one tile of
// threads * itemsPerThread per block, capped at p.blocksPerSm per SM.
inline spcclResult_t gridFor(uint64_t items, const ElementwisePolicy& p, unsigned* grid) {
  const uint64_t tile = (uint64_t)p.threads * (uint64_t)p.itemsPerThread;
  return gridSize((items + tile - 1) / tile, p.blocksPerSm, grid);
}

}  // namespace cuda
}  // namespace spccl

#endif  // SPCCL_CUDA_LAUNCH_H_
