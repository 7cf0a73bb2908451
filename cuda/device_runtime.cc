// SPDX-License-Identifier: Apache-2.0
//
// Device memory, pinned staging memory, copies and pointer queries behind device.h. Plain
// C++ against the CUDA runtime (no kernels), so the host compiler builds it.

#include "cuda_checks.h"
#include "device.h"
#include "launch.h"

namespace spccl {
namespace device {

using cuda::toCuda;

spcclResult_t allocDevice(void** ptr, size_t bytes, const char* api) {
  *ptr = nullptr;
  if (bytes == 0) return spcclSuccess;
  cudaError_t err = cudaMalloc(ptr, bytes);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    *ptr = nullptr;
    WARN("%s : failed to allocate %zu bytes of device memory: %s", api, bytes, cudaGetErrorString(err));
    return spcclUnhandledCudaError;
  }
  // cudaMemset is ordered before any later stream work on the device, so the residual is
  // zero by the time a collective reads it.
  err = cudaMemset(*ptr, 0, bytes);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    cudaFree(*ptr);
    *ptr = nullptr;
    WARN("%s : failed to zero %zu bytes of device memory: %s", api, bytes, cudaGetErrorString(err));
    return spcclUnhandledCudaError;
  }
  INFO(kSubsysAlloc, "%s : allocated %zu bytes of device memory at %p", api, bytes, *ptr);
  return spcclSuccess;
}

void freeDevice(void* ptr) {
  if (ptr) cudaFree(ptr);
}

spcclResult_t allocPinned(void** ptr, size_t bytes, const char* api) {
  *ptr = nullptr;
  if (bytes == 0) return spcclSuccess;
  cudaError_t err = cudaMallocHost(ptr, bytes);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    *ptr = nullptr;
    WARN("%s : failed to allocate %zu bytes of pinned host memory: %s", api, bytes, cudaGetErrorString(err));
    return spcclUnhandledCudaError;
  }
  INFO(kSubsysAlloc, "%s : allocated %zu bytes of pinned host memory at %p", api, bytes, *ptr);
  return spcclSuccess;
}

void freePinned(void* ptr) {
  if (ptr) cudaFreeHost(ptr);
}

spcclResult_t zeroSync(void* ptr, size_t bytes) {
  if (bytes == 0) return spcclSuccess;
  // Work already queued on any stream may still read or write the residual: wait for it.
  CUDACHECK(cudaDeviceSynchronize());
  CUDACHECK(cudaMemset(ptr, 0, bytes));
  CUDACHECK(cudaDeviceSynchronize());
  return spcclSuccess;
}

spcclResult_t zeroAsync(void* ptr, size_t bytes, spcclStream_t stream) {
  if (bytes) CUDACHECK(cudaMemsetAsync(ptr, 0, bytes, toCuda(stream)));
  return spcclSuccess;
}

spcclResult_t copyAsync(void* dst, const void* src, size_t bytes, spcclStream_t stream) {
  if (bytes) CUDACHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, toCuda(stream)));
  return spcclSuccess;
}

spcclResult_t copySync(void* dst, const void* src, size_t bytes) {
  CUDACHECK(cudaDeviceSynchronize());
  CUDACHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
  return spcclSuccess;
}

spcclResult_t streamSync(spcclStream_t stream) {
  CUDACHECK(cudaStreamSynchronize(toCuda(stream)));
  return spcclSuccess;
}

spcclResult_t pointerIsDevice(const void* ptr, int* isDevice) {
  cudaPointerAttributes attr;
  CUDACHECK(cudaPointerGetAttributes(&attr, ptr));
  *isDevice = attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
  return spcclSuccess;
}

spcclResult_t selectDevice(int index, int* dev) {
  int count = 0;
  CUDACHECK(cudaGetDeviceCount(&count));
  *dev = index % count;
  CUDACHECK(cudaSetDevice(*dev));
  return spcclSuccess;
}

spcclResult_t currentDevice(int* dev) {
  CUDACHECK(cudaGetDevice(dev));
  return spcclSuccess;
}

}  // namespace device
}  // namespace spccl
