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

spcclResult_t allocDevice(void** ptr, size_t bytes, const StateSync& sync, const char* api) {
  *ptr = nullptr;
  if (bytes == 0) return spcclSuccess;
  cudaStream_t own = static_cast<cudaStream_t>(sync.stream);
  cudaError_t err = cudaMallocAsync(ptr, bytes, own);
  if (err == cudaSuccess) err = cudaStreamSynchronize(own);  // usable from any stream on return
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    if (*ptr) cudaFreeAsync(*ptr, own);
    *ptr = nullptr;
    WARN("%s : failed to allocate %zu bytes of device memory: %s", api, bytes, cudaGetErrorString(err));
    return spcclUnhandledCudaError;
  }
  INFO(kSubsysAlloc, "%s : allocated %zu bytes of device memory at %p", api, bytes, *ptr);
  return spcclSuccess;
}

void freeDevice(void* ptr, const StateSync& sync) {
  if (!ptr) return;
  cudaStream_t own = static_cast<cudaStream_t>(sync.stream);
  // After the state's last marked work, on its own stream: nothing else waits.
  if (cudaStreamWaitEvent(own, static_cast<cudaEvent_t>(sync.lastWork), 0) != cudaSuccess ||
      cudaFreeAsync(ptr, own) != cudaSuccess)
    (void)cudaGetLastError();  // destroy cannot fail; the memory stays with the pool
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

spcclResult_t zeroAsync(void* ptr, size_t bytes, spcclStream_t stream) {
  if (bytes) CUDACHECK(cudaMemsetAsync(ptr, 0, bytes, toCuda(stream)));
  return spcclSuccess;
}

spcclResult_t copyAsync(void* dst, const void* src, size_t bytes, spcclStream_t stream) {
  if (bytes) CUDACHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, toCuda(stream)));
  return spcclSuccess;
}

spcclResult_t streamSync(spcclStream_t stream) {
  CUDACHECK(cudaStreamSynchronize(toCuda(stream)));
  return spcclSuccess;
}

spcclResult_t stateSyncCreate(StateSync* sync, const char* api) {
  cudaStream_t stream = nullptr;
  cudaEvent_t event = nullptr;
  cudaError_t err = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  if (err == cudaSuccess) err = cudaEventCreateWithFlags(&event, cudaEventDisableTiming);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    if (stream) cudaStreamDestroy(stream);
    WARN("%s : failed to create the state's stream and event: %s", api, cudaGetErrorString(err));
    return spcclUnhandledCudaError;
  }
  sync->stream = stream;
  sync->lastWork = event;
  return spcclSuccess;
}

void stateSyncDestroy(StateSync* sync) {
  if (sync->lastWork) cudaEventDestroy(static_cast<cudaEvent_t>(sync->lastWork));
  if (sync->stream) cudaStreamDestroy(static_cast<cudaStream_t>(sync->stream));
  *sync = StateSync();
}

spcclResult_t markWork(const StateSync& sync, spcclStream_t stream) {
  bool capturing = false;
  SPCCLCHECK(streamCapturing(stream, &capturing));
  // Captured: an external record node, so every replay of the graph records the event.
  const unsigned flags = capturing ? cudaEventRecordExternal : cudaEventRecordDefault;
  CUDACHECK(cudaEventRecordWithFlags(static_cast<cudaEvent_t>(sync.lastWork), toCuda(stream), flags));
  return spcclSuccess;
}

spcclResult_t streamCapturing(spcclStream_t stream, bool* capturing) {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  CUDACHECK(cudaStreamIsCapturing(toCuda(stream), &capture));
  *capturing = capture == cudaStreamCaptureStatusActive;
  return spcclSuccess;
}

namespace {
// The state's stream waits for its marked work (on the device, not the host).
spcclResult_t afterWork(const StateSync& sync, cudaStream_t* own) {
  *own = static_cast<cudaStream_t>(sync.stream);
  CUDACHECK(cudaStreamWaitEvent(*own, static_cast<cudaEvent_t>(sync.lastWork), 0));
  return spcclSuccess;
}
}  // namespace

spcclResult_t zeroNow(const StateSync& sync, void* ptr, size_t bytes) {
  if (bytes == 0) return spcclSuccess;
  cudaStream_t own = nullptr;
  SPCCLCHECK(afterWork(sync, &own));
  CUDACHECK(cudaMemsetAsync(ptr, 0, bytes, own));
  CUDACHECK(cudaStreamSynchronize(own));
  return spcclSuccess;
}

spcclResult_t copyNow(const StateSync& sync, void* dst, const void* src, size_t bytes) {
  cudaStream_t own = nullptr;
  SPCCLCHECK(afterWork(sync, &own));
  CUDACHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, own));
  CUDACHECK(cudaStreamSynchronize(own));
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
