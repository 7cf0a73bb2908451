/* SPDX-License-Identifier: Apache-2.0
 *
 * The per-tensor state: the resolved config, the error-feedback residual and every buffer
 * the method needs, all sized and allocated at spcclStateCreate (CUB's size-first rule),
 * so no collective allocates and the device path can be graph-captured.
 */
#ifndef SPCCL_STATE_H_
#define SPCCL_STATE_H_

#include <stddef.h>
#include <stdint.h>

#include <atomic>
#include <memory>

#include "autoselect.h"
#include "comm.h"
#include "device.h"
#include "spccl.h"

namespace spccl {
constexpr uint64_t kStateMagic = 0x5bcc15a7e5a7e5a7ull;
constexpr size_t kMethodPrivateBytes = 64;
constexpr unsigned long long kResidualNotKnownEmpty = ~0ull;
struct MethodOps;

enum MemoryKind { kHostMemory = 0, kDeviceMemory = 1, kPinnedMemory = 2 };

// Host, device or pinned host memory, freed with the state.
struct Buffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  MemoryKind kind = kHostMemory;
};
}  // namespace spccl

struct spcclState {
  uint64_t startMagic = spccl::kStateMagic;
  spcclComm* comm = nullptr;
  spcclConfig_t config;  // resolved: no undefined fields
  size_t count = 0;
  spcclDataType_t datatype = spcclFloat32;
  size_t elemSize = 0;
  bool onDevice = false;
  const spccl::MethodOps* method = nullptr;
  unsigned long long step = 0;

  // The feedback memory: residualCount elements, the count of the tensor's worker residual
  // and then whatever feedback the method keeps beyond it (1-bit's server residual). This one
  // extent is what spcclStateGetResidual shows, spcclStateSetResidual restores and
  // spcclStateReset zeroes; all zero while feedback is NONE.
  spccl::Buffer residual;
  size_t residualCount = 0;
  // config.pipeline with EF: the next residual is written here while the reduction is in
  // flight, and swapped with `residual` only when the call succeeds.
  spccl::Buffer residualNext;
  spccl::Buffer workspace;  // method-sized scratch (packed blocks, pairs, ...)
  // Device buffers on a host transport (MPI): a pinned mirror of the workspace, so any
  // workspace region can cross the network at the same offset (see staging.h).
  spccl::Buffer staging;
  // Device states: the step counter as the kernels read it. spcclSparseAllReduce advances it
  // on the stream, so replays of a captured CUDA graph step through new selections; `step`
  // above mirrors it for calls made eagerly.
  spccl::Buffer deviceStep;
  // Device states: the private stream and the last-work event their blocking calls wait on.
  spccl::device::StateSync deviceSync;
  // Device states: the corrupt-pair reports the scatter kernels write (device.h), pinned:
  // one for the collective, one for spcclDecompress (a caller's list), read by later calls.
  spccl::Buffer badIndex;
  // Device states: a call on this state was captured into a CUDA graph, so replays advance
  // the device step counter where the host cannot see it, and `step` above may be stale: the
  // calls that return or use a step read the counter first (enqueue.h).
  bool stepOnDeviceOnly = false;

  // The method's own fields (random block's block counts, the top-k family's k, ...): set by
  // its setup, read and written only by its files, through methodState<T> (method.h).
  alignas(16) unsigned char methodPrivate[spccl::kMethodPrivateBytes] = {};
  // config.autoSelect: the calibration and the decision (autoselect.h).
  spccl::AutoSelect autoSelect;
  // The step at which the residual is known to be all zero: a dense call emptied it, for the
  // step after its own (spcclStateReset: step 0). Every other library call that writes the
  // residual (a method's collective, spcclCompress) advances the step past it, and
  // spcclStateSetResidual and spcclStateSetStep forget it (kResidualNotKnownEmpty). Trusted
  // only while no caller holds the residual's address (residualShared: a caller with
  // spcclStateGetResidual's pointer may write it in place), else its bytes are read.
  unsigned long long residualEmptyAtStep = 0;
  bool residualShared = false;
  // Every rank's state was found equal to this one (enqueue.cc, the first collective).
  bool agreed = false;
  // A call is running on the state (enqueue.h, InUse): a second call, and spcclStateDestroy,
  // are refused meanwhile.
  std::atomic<bool> busy{false};

  // Hierarchical mode (hierarchy.h): the inner state and stage buffers; null when flat.
  std::shared_ptr<spccl::HierState> hier;

  uint64_t endMagic = spccl::kStateMagic;
};

namespace spccl {

// Which of a device state's two corrupt-pair reports a scatter writes.
enum PairReportSlot { kCollectivePairs = 0, kDecompressPairs = 1, kPairReportSlots = 2 };
inline device::BadPairReport* badPairReport(const spcclState& st, PairReportSlot slot) {
  return st.badIndex.ptr ? static_cast<device::BadPairReport*>(st.badIndex.ptr) + slot : nullptr;
}

size_t dataTypeSize(spcclDataType_t datatype);  // 0 for an unsupported type
const char* dataTypeName(int datatype);
const char* methodName(int method);  // "unknown" for a value that names no method
const char* opName(int op);

}  // namespace spccl

#endif  // SPCCL_STATE_H_
