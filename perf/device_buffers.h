/* SPDX-License-Identifier: Apache-2.0
 *
 * The device buffers of `-g 1`, through the CUDA runtime as nccl-tests does (spccl's own
 * launchers are internal). In a build without CUDA every call prints why and fails. Each
 * call returns true on success, else prints the CUDA error on stderr. */
#ifndef SPCCL_PERF_DEVICE_BUFFERS_H_
#define SPCCL_PERF_DEVICE_BUFFERS_H_

#include <stddef.h>

namespace spccl_perf {

// Makes GPU (rank % device count) current for this process.
bool selectDevice(int rank);
bool allocDevice(void** ptr, size_t bytes);
void freeDevice(void* ptr);
// A copy in any direction on the legacy stream, complete when it returns.
bool copyAndWait(void* dst, const void* src, size_t bytes);
// Waits for the work queued on the legacy stream, where perf runs every call (NCCL calls
// return once enqueued).
bool deviceWait();

}  // namespace spccl_perf

#endif  // SPCCL_PERF_DEVICE_BUFFERS_H_
