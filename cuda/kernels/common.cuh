/* SPDX-License-Identifier: Apache-2.0
 *
 * Device helpers the kernel headers share (topk_kernels.cuh, qtopk_kernels.cuh): all
 * __forceinline__, so any number of dispatch_*.cu may include them.
 */
#ifndef SPCCL_CUDA_COMMON_CUH_
#define SPCCL_CUDA_COMMON_CUH_

#include <stdint.h>

#include "device.h"
#include "dtype_core.h"

namespace spccl {
namespace cuda {

// Low bits that are zero in every magnitude key of T: half types are ranked by their fp32
// value (topk_core.h), whose mantissa has 10 (fp16, subnormals included) or 7 (bf16)
// significant bits of 23, so a radix selection needs no digit pass there.
template <typename T>
constexpr int kKeyZeroBits = 0;
template <>
constexpr int kKeyZeroBits<half_t> = 13;
template <>
constexpr int kKeyZeroBits<bfloat16_t> = 16;

// a * b rounded once, never contracted with a following add into an FMA.
__device__ __forceinline__ float mulRounded(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mulRounded(double a, double b) { return __dmul_rn(a, b); }

// One shared-histogram increment per distinct bin in the warp, by the lowest lane holding
// it: zeros and tied values would otherwise make 32 lanes collide on one bin.
__device__ __forceinline__ void warpAggregatedIncrement(unsigned* local, unsigned bin, bool counted) {
  const unsigned active = __activemask();
  const unsigned peers = __match_any_sync(active, counted ? bin : ~0u);
  if (counted && (threadIdx.x & 31) == (unsigned)(__ffs(peers) - 1)) atomicAdd(&local[bin], (unsigned)__popc(peers));
}

// gt in the high 32 bits, eq in the low: one 64-bit sum scans both (each total < 2^32).
__device__ __forceinline__ unsigned long long packCounts(unsigned gt, unsigned eq) {
  return ((unsigned long long)gt << 32) | eq;
}

// A corrupt pair list (or qtopk payload): the index, then the kind, into pinned host memory the host reads at a
// later call (device.h). Any one of several reports wins.
__device__ __forceinline__ void reportBadPair(device::BadPairReport* report, device::BadPairKind kind,
                                              uint32_t index) {
  if (!report) return;
  volatile device::BadPairReport* r = report;
  r->index = index;
  __threadfence_system();
  r->kind = kind;
}

}  // namespace cuda
}  // namespace spccl

#endif  // SPCCL_CUDA_COMMON_CUH_
