/* SPDX-License-Identifier: Apache-2.0
 *
 * CUDACHECK: the boundary where cudaError_t becomes spcclResult_t, as in NCCL. The failing
 * call and CUDA's text are WARNed once (so spcclGetLastError says what happened), the
 * sticky error is cleared so the next call does not fail for this one, and the caller gets
 * spcclUnhandledCudaError. */
#ifndef SPCCL_CUDA_CHECKS_H_
#define SPCCL_CUDA_CHECKS_H_

#include <cuda_runtime.h>

#include "checks.h"

#define CUDACHECK(call) \
  do { \
    cudaError_t err_ = (call); \
    if (err_ != cudaSuccess) { \
      (void)cudaGetLastError(); \
      WARN("CUDA failure in %s: %s (%s)", #call, cudaGetErrorString(err_), cudaGetErrorName(err_)); \
      return spcclUnhandledCudaError; \
    } \
  } while (0)

#endif  // SPCCL_CUDA_CHECKS_H_
