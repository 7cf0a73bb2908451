// SPDX-License-Identifier: Apache-2.0
//
// State lifetime. The residual and all workspace are sized and allocated here, once, so no
// collective allocates (and the device path can be captured in a CUDA graph).

#include <stdlib.h>
#include <string.h>

#include <initializer_list>
#include <memory>
#include <mutex>
#include <vector>

#include "argcheck.h"
#include "autoselect.h"
#include "checks.h"
#include "device.h"
#include "hierarchy.h"
#include "method.h"
#include "state.h"

namespace spccl {
namespace {

// Memory of the given kind; host memory comes zeroed, device memory is zeroed by
// zeroDeviceBuffers once everything is allocated.
spcclResult_t bufferAlloc(const spcclState& st, Buffer* buf, MemoryKind kind, size_t bytes, const char* api) {
  buf->bytes = bytes;
  buf->kind = kind;
  if (bytes == 0) return spcclSuccess;
  if (kind == kDeviceMemory) return device::allocDevice(&buf->ptr, bytes, st.deviceSync, api);
  if (kind == kPinnedMemory) return device::allocPinned(&buf->ptr, bytes, api);
  buf->ptr = calloc(1, bytes);
  SPCCL_REQUIRE(buf->ptr != nullptr, spcclSystemError, "%s : failed to allocate %zu bytes of host memory", api, bytes);
  INFO(kSubsysAlloc, "%s : allocated %zu bytes at %p", api, bytes, buf->ptr);
  return spcclSuccess;
}

void bufferFree(const spcclState& st, Buffer* buf) {
  if (buf->kind == kDeviceMemory) device::freeDevice(buf->ptr, st.deviceSync);
  else if (buf->kind == kPinnedMemory) device::freePinned(buf->ptr);
  else free(buf->ptr);
  buf->ptr = nullptr;
  buf->bytes = 0;
}

// A fresh state's residual and step are zero before any stream can read them: zeroed on the
// state's own stream, waited for here (state create may block).
spcclResult_t zeroDeviceBuffers(const spcclState& st) {
  for (const Buffer* buf : {&st.residual, &st.workspace, &st.deviceStep})
    if (buf->kind == kDeviceMemory) SPCCLCHECK(device::zeroNow(st.deviceSync, buf->ptr, buf->bytes));
  return spcclSuccess;
}

// Everything the state holds, in any state of construction.
void buffersFree(spcclState* st) {
  for (Buffer* buf : {&st->badIndex, &st->deviceStep, &st->staging, &st->workspace, &st->residualNext, &st->residual})
    bufferFree(*st, buf);
  device::stateSyncDestroy(&st->deviceSync);
}

// Destroyed states stay allocated (their buffers freed, their magic dead), so no later state
// ever takes the address of an earlier one: a stale handle is refused as "not a live spccl
// state" instead of acting on a newer state, and reading its magic is no use-after-free. It
// costs sizeof(spcclState) (416 bytes on x86-64) per destroyed state. The list keeps them
// reachable (no leak report).
std::vector<spcclState*>& graveyard() {
  static auto* states = new std::vector<spcclState*>();
  return *states;
}
std::mutex graveyardLock;

void stateFree(spcclState* st) {
  // Nothing to keep after a timeout: the MPI transport ran every operation on its own
  // staging memory (SPCCL_TIMEOUT_MS), which it abandons to the late peer instead.
  buffersFree(st);
  st->hier.reset();
  st->startMagic = st->endMagic = 0;
  const std::lock_guard<std::mutex> lock(graveyardLock);
  graveyard().push_back(st);
}

}  // namespace
}  // namespace spccl

using namespace spccl;

extern "C" {

spcclResult_t spcclStateCreate(spcclState_t* state, spcclComm_t comm, const spcclConfig_t* config, size_t count,
                               spcclDataType_t datatype) {
  const char* api = "spcclStateCreate";
  SPCCLCHECK(ptrCheck(state, api, "state"));
  *state = nullptr;
  SPCCLCHECK(commUsableCheck(comm, api));
  SPCCLCHECK(dataTypeCheck(datatype, api));
  spcclConfig_t resolved;
  SPCCLCHECK(configResolve(config, &resolved, api));
  SPCCLCHECK(resolveHierarchical(&resolved, comm, api));
  const MethodOps* method = methodOps(resolved.method);
  SPCCL_REQUIRE(method != nullptr, spcclInvalidArgument, "%s : method %s is not available in this build", api,
                methodName(resolved.method));
  const size_t elem = dataTypeSize(datatype);
  SPCCL_REQUIRE(count <= SIZE_MAX / elem / 4, spcclInvalidArgument, "%s : count %zu is too large", api, count);

  std::unique_ptr<spcclState> st(new spcclState());
  st->comm = comm;
  st->config = resolved;
  st->count = count;
  st->datatype = datatype;
  st->elemSize = elem;
  st->onDevice = comm->onDevice;
  st->method = method;
  spcclResult_t res;
  if (resolved.hierarchical && hierarchicalOnShards(*method)) {  // in an inner state (hierarchy.cc)
    st->residualCount = count;
    SPCCLCHECKGOTO(bufferAlloc(*st, &st->residual, kHostMemory, count * elem, api), res, fail);
    SPCCLCHECKGOTO(hierarchicalSetup(st.get(), api), res, fail);
  } else {
    SPCCLCHECK(method->setup(*st));
    const MemoryKind kind = st->onDevice ? kDeviceMemory : kHostMemory;
    const size_t workspace = method->workspaceBytes(*st);
    if (st->onDevice) SPCCLCHECKGOTO(device::stateSyncCreate(&st->deviceSync, api), res, fail);
    st->residualCount = count + (method->residualExtra ? method->residualExtra(*st) : 0);
    SPCCLCHECKGOTO(bufferAlloc(*st, &st->residual, kind, st->residualCount * elem, api), res, fail);
    SPCCLCHECKGOTO(bufferAlloc(*st, &st->workspace, kind, workspace, api), res, fail);
    if (method->spareResidual && method->spareResidual(*st))
      SPCCLCHECKGOTO(bufferAlloc(*st, &st->residualNext, kind, st->residualCount * elem, api), res, fail);
    if (st->onDevice)
      SPCCLCHECKGOTO(bufferAlloc(*st, &st->deviceStep, kDeviceMemory, sizeof(unsigned long long), api), res, fail);
    if (st->onDevice && !comm->transport->deviceBuffers())
      SPCCLCHECKGOTO(bufferAlloc(*st, &st->staging, kPinnedMemory, workspace, api), res, fail);
    if (st->onDevice) {
      const size_t reportBytes = kPairReportSlots * sizeof(device::BadPairReport);
      SPCCLCHECKGOTO(bufferAlloc(*st, &st->badIndex, kPinnedMemory, reportBytes, api), res, fail);
      memset(st->badIndex.ptr, 0, st->badIndex.bytes);
      SPCCLCHECKGOTO(zeroDeviceBuffers(*st), res, fail);
    }
    if (resolved.hierarchical) SPCCLCHECKGOTO(hierarchicalSetup(st.get(), api), res, fail);
  }
  comm->liveStates++;
  INFO(kSubsysInit, "%s : %s count %zu %s density %g block %d %s feedback %s seed %llu key %llu", api, method->name,
       count, dataTypeName(datatype), resolved.density, resolved.blockSize,
       resolved.blockPattern == spcclBlocksScattered ? "scattered" : "contiguous",
       resolved.feedback == spcclFeedbackEF ? "ef" : "none", resolved.seed, resolved.tensorKey);
  autoAnnounce(*st, api);
  *state = st.release();
  return spcclSuccess;
fail:
  buffersFree(st.get());
  return res;
}

spcclResult_t spcclStateDestroy(spcclState_t state) {
  SPCCLCHECK(stateCheck(state, "spcclStateDestroy"));
  // Taken for good: a call that starts now is refused as "in use", and one in flight
  // (another thread's) makes the destroy fail instead of freeing what it still uses.
  SPCCL_REQUIRE(!state->busy.exchange(true), spcclInvalidUsage,
                "spcclStateDestroy : state %p is in use by a call in flight on another thread; destroy it after the "
                "call returns",
                (void*)state);
  spcclComm* comm = state->comm;
  stateFree(state);
  if (--comm->liveStates == 0 && comm->aborted) {  // the last state of an aborted comm frees it
    comm->startMagic = comm->endMagic = 0;
    delete comm;
  }
  return spcclSuccess;
}

spcclResult_t spcclStateReset(spcclState_t state) {
  SPCCLCHECK(stateCheck(state, "spcclStateReset"));
  if (state->onDevice) {  // after this state's queued work only (device.h: StateSync)
    SPCCLCHECK(device::zeroNow(state->deviceSync, state->residual.ptr, state->residual.bytes));
    SPCCLCHECK(device::zeroNow(state->deviceSync, state->deviceStep.ptr, state->deviceStep.bytes));
    memset(state->badIndex.ptr, 0, state->badIndex.bytes);  // the state's kernels are done
  } else if (state->residual.bytes) {
    memset(state->residual.ptr, 0, state->residual.bytes);
  }
  state->step = 0;
  state->residualEmptyAtStep = 0;
  if (state->hier) hierarchicalReset(*state);
  return spcclSuccess;
}

spcclResult_t spcclStateGetResidual(spcclState_t state, void** residual) {
  SPCCLCHECK(stateCheck(state, "spcclStateGetResidual"));
  SPCCLCHECK(ptrCheck(residual, "spcclStateGetResidual", "residual"));
  *residual = state->residual.ptr;
  state->residualShared = true;  // the caller may write it in place from now on
  return spcclSuccess;
}

spcclResult_t spcclStateGetResidualCount(spcclState_t state, size_t* count) {
  SPCCLCHECK(stateCheck(state, "spcclStateGetResidualCount"));
  SPCCLCHECK(ptrCheck(count, "spcclStateGetResidualCount", "count"));
  *count = state->residualCount;
  return spcclSuccess;
}

spcclResult_t spcclStateGetStep(spcclState_t state, unsigned long long* step) {
  SPCCLCHECK(stateCheck(state, "spcclStateGetStep"));
  SPCCLCHECK(ptrCheck(step, "spcclStateGetStep", "step"));
  // A device state's counter may have been advanced by graph replays the host never saw.
  if (state->deviceStep.ptr)
    SPCCLCHECK(device::copyNow(state->deviceSync, &state->step, state->deviceStep.ptr, sizeof(*step)));
  *step = state->step;
  return spcclSuccess;
}

spcclResult_t spcclStateSetStep(spcclState_t state, unsigned long long step) {
  SPCCLCHECK(stateCheck(state, "spcclStateSetStep"));
  if (state->deviceStep.ptr)
    SPCCLCHECK(device::copyNow(state->deviceSync, state->deviceStep.ptr, &step, sizeof(step)));
  state->step = step;
  state->residualEmptyAtStep = kResidualNotKnownEmpty;  // a method call may have written it since
  return spcclSuccess;
}

spcclResult_t spcclStateSetResidual(spcclState_t state, const void* residual, size_t count, spcclDataType_t datatype,
                                    spcclStream_t stream) {
  const char* api = "spcclStateSetResidual";
  SPCCLCHECK(stateCheck(state, api));
  // The whole feedback memory or nothing: a restore of the worker residual alone would leave
  // 1-bit's server residual as it was, and a run resumed from it would not be the saved one.
  SPCCL_REQUIRE(count == state->residualCount, spcclInvalidUsage,
                "%s : count %zu differs from the state's feedback memory, %zu elements (spcclStateGetResidualCount)",
                api, count, state->residualCount);
  SPCCL_REQUIRE(datatype == state->datatype, spcclInvalidUsage, "%s : datatype %s differs from the state's datatype %s",
                api, dataTypeName(datatype), dataTypeName(state->datatype));
  SPCCL_REQUIRE(state->config.feedback == spcclFeedbackEF, spcclInvalidUsage,
                "%s : the state's feedback is none, so it keeps no residual", api);
  if (count == 0) return spcclSuccess;
  SPCCLCHECK(ptrCheck(residual, api, "residual"));
  SPCCLCHECK(alignCheck(residual, state->elemSize, api, "residual"));
  SPCCLCHECK(memoryCheck(state->comm, residual, api, "residual"));
  if (state->hier) SPCCLCHECK(hierarchicalResidualCheck(*state, residual, api));
  state->residualEmptyAtStep = kResidualNotKnownEmpty;
  if (state->residual.kind != kDeviceMemory) {
    memmove(state->residual.ptr, residual, state->residual.bytes);
    return spcclSuccess;
  }
  SPCCLCHECK(device::copyAsync(state->residual.ptr, residual, state->residual.bytes, stream));
  return device::streamSync(stream);
}

spcclResult_t spcclStateGetMemoryFootprint(spcclState_t state, size_t* bytes) {
  SPCCLCHECK(stateCheck(state, "spcclStateGetMemoryFootprint"));
  SPCCLCHECK(ptrCheck(bytes, "spcclStateGetMemoryFootprint", "bytes"));
  *bytes = state->residual.bytes + state->residualNext.bytes + state->workspace.bytes + state->staging.bytes +
           state->deviceStep.bytes + hierarchicalFootprint(*state);
  return spcclSuccess;
}

spcclResult_t spcclStateGetConfig(spcclState_t state, spcclConfig_t* config) {
  SPCCLCHECK(stateCheck(state, "spcclStateGetConfig"));
  SPCCLCHECK(ptrCheck(config, "spcclStateGetConfig", "config"));
  *config = state->config;
  return spcclSuccess;
}

}  // extern "C"
