// SPDX-License-Identifier: Apache-2.0
//
// device.h in a build without CUDA (SPCCL_WITH_CUDA=OFF or no toolkit): every entry says so.
// Nothing reaches these through the public API unless a device communicator exists, which
// such a build cannot create; they keep the link whole and the message clear.

#include "checks.h"
#include "device.h"

namespace spccl {
namespace device {
namespace {
spcclResult_t noCuda(const char* what) {
  WARN("%s : spccl was built without CUDA (SPCCL_WITH_CUDA=OFF or no CUDA toolkit found)", what);
  return spcclInvalidUsage;
}
}  // namespace

spcclResult_t allocDevice(void** ptr, size_t, const StateSync&, const char* api) {
  *ptr = nullptr;
  return noCuda(api);
}
void freeDevice(void*, const StateSync&) {}
spcclResult_t allocPinned(void** ptr, size_t, const char* api) {
  *ptr = nullptr;
  return noCuda(api);
}
void freePinned(void*) {}
spcclResult_t zeroAsync(void*, size_t, spcclStream_t) { return noCuda("zeroAsync"); }
spcclResult_t copyAsync(void*, const void*, size_t, spcclStream_t) { return noCuda("copyAsync"); }
spcclResult_t streamSync(spcclStream_t) { return noCuda("streamSync"); }
spcclResult_t stateSyncCreate(StateSync*, const char* api) { return noCuda(api); }
void stateSyncDestroy(StateSync*) {}
spcclResult_t markWork(const StateSync&, spcclStream_t) { return noCuda("markWork"); }
spcclResult_t streamCapturing(spcclStream_t, bool* capturing) {
  *capturing = false;
  return noCuda("streamCapturing");
}
spcclResult_t zeroNow(const StateSync&, void*, size_t) { return noCuda("zeroNow"); }
spcclResult_t copyNow(const StateSync&, void*, const void*, size_t) { return noCuda("copyNow"); }
spcclResult_t pointerIsDevice(const void*, int* isDevice) {
  *isDevice = 0;
  return noCuda("pointerIsDevice");
}
spcclResult_t currentDevice(int* dev) {
  *dev = -1;
  return noCuda("a device communicator");
}
spcclResult_t advanceStep(unsigned long long*, spcclStream_t) { return noCuda("advanceStep"); }
spcclResult_t selectDevice(int, int* dev) {
  *dev = -1;
  return noCuda("selectDevice");
}
spcclResult_t randomBlockPack(spcclDataType_t, const void*, const void*, size_t, size_t, const DeviceSelection*, void*,
                              spcclStream_t) {
  return noCuda("randomBlockPack");
}
spcclResult_t randomBlockCommit(spcclDataType_t, const void*, void*, const void*, double, size_t, size_t,
                                const DeviceSelection*, void*, spcclStream_t) {
  return noCuda("randomBlockCommit");
}

size_t topkScratchBytes(size_t) { return 0; }
spcclResult_t topkSelect(spcclDataType_t, const void*, const void*, void*, size_t, size_t, uint32_t*, void*, void*,
                         spcclStream_t) {
  return noCuda("topkSelect");
}
spcclResult_t gaussiankSelect(spcclDataType_t, const void*, const void*, void*, size_t, size_t, double, uint32_t*,
                              void*, void*, spcclStream_t) {
  return noCuda("gaussiankSelect");
}
spcclResult_t residualCommit(spcclDataType_t, void*, const void*, size_t, const uint32_t*, size_t, spcclStream_t) {
  return noCuda("residualCommit");
}
spcclResult_t feedbackSum(spcclDataType_t, const void*, const void*, void*, size_t, spcclStream_t) {
  return noCuda("feedbackSum");
}
spcclResult_t scatterAdd(spcclDataType_t, const uint32_t*, const void*, size_t, double, size_t, void*,
                         BadPairReport*, spcclStream_t) {
  return noCuda("scatterAdd");
}
size_t scatterScratchBytes(size_t, int) { return 0; }
spcclResult_t scatterSortedLists(spcclDataType_t, const uint32_t*, const void*, size_t, int, size_t, double, size_t,
                                 void*, void*, BadPairReport*, spcclStream_t) {
  return noCuda("scatterSortedLists");
}

size_t quantScratchBytes(const QuantLayout&) { return 0; }
spcclResult_t quantCompress(spcclDataType_t, const void*, const void*, void*, const QuantLayout&, void*, void*,
                            spcclStream_t) {
  return noCuda("quantCompress");
}
spcclResult_t quantResidual(spcclDataType_t, const void*, const QuantLayout&, const void*, void*, spcclStream_t) {
  return noCuda("quantResidual");
}
spcclResult_t quantUnpack(spcclDataType_t, const QuantLayout&, const void*, int, size_t, double, void*, void*,
                          BadPairReport*, spcclStream_t) {
  return noCuda("quantUnpack");
}
spcclResult_t quantSlots(spcclDataType_t, const QuantLayout&, const void*, uint32_t*, void*, spcclStream_t) {
  return noCuda("quantSlots");
}

size_t signScratchBytes(const SignChunks&) { return 0; }
spcclResult_t signCompress(spcclDataType_t, const void*, const void*, const SignChunks&, void*, void*, spcclStream_t) {
  return noCuda("signCompress");
}
spcclResult_t signResidual(spcclDataType_t, const void*, const void*, const SignChunks&, const void*, void*,
                           spcclStream_t) {
  return noCuda("signResidual");
}
spcclResult_t signUnpack(spcclDataType_t, const SignChunks&, const void*, void*, spcclStream_t) {
  return noCuda("signUnpack");
}
spcclResult_t signMean(spcclDataType_t, const void*, size_t, int, size_t, double, void*, spcclStream_t) {
  return noCuda("signMean");
}
spcclResult_t scaleValues(spcclDataType_t, const void*, size_t, double, void*, spcclStream_t) {
  return noCuda("scaleValues");
}

}  // namespace device
}  // namespace spccl
