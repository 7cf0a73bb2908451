/* SPDX-License-Identifier: Apache-2.0
 *
 * What every cuda/dispatch_*.cu launcher shares: the stream cast and the grid size of a
 * grid-stride kernel (enough blocks to fill the device, no more). */
#ifndef SPCCL_CUDA_LAUNCH_H_
#define SPCCL_CUDA_LAUNCH_H_

#include <stdint.h>

#include "cuda_checks.h"

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

}  // namespace cuda
}  // namespace spccl

#endif  // SPCCL_CUDA_LAUNCH_H_
