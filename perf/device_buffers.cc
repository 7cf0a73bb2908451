// SPDX-License-Identifier: Apache-2.0

#include "device_buffers.h"

#include <stdio.h>

#ifdef SPCCL_PERF_CUDA
#include <cuda_runtime.h>
#endif

namespace spccl_perf {

#ifdef SPCCL_PERF_CUDA
namespace {
bool cudaOk(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return true;
  fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(err));
  return false;
}
}  // namespace

bool selectDevice(int rank) {
  int count = 0;
  return cudaOk(cudaGetDeviceCount(&count), "cudaGetDeviceCount") &&
         cudaOk(cudaSetDevice(rank % count), "cudaSetDevice");
}
bool allocDevice(void** ptr, size_t bytes) { return cudaOk(cudaMalloc(ptr, bytes), "cudaMalloc"); }
void freeDevice(void* ptr) {
  if (ptr) cudaFree(ptr);
}
bool copyAndWait(void* dst, const void* src, size_t bytes) {
  return cudaOk(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault), "cudaMemcpy");
}
bool deviceWait() { return cudaOk(cudaStreamSynchronize(nullptr), "cudaStreamSynchronize"); }
#else
namespace {
bool noCuda() {
  fprintf(stderr, "-g: sparse_all_reduce_perf was built without CUDA\n");
  return false;
}
}  // namespace

bool selectDevice(int) { return noCuda(); }
bool allocDevice(void**, size_t) { return noCuda(); }
void freeDevice(void*) {}
bool copyAndWait(void*, const void*, size_t) { return noCuda(); }
bool deviceWait() { return noCuda(); }
#endif

}  // namespace spccl_perf
