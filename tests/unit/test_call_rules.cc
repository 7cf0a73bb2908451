// SPDX-License-Identifier: Apache-2.0
//
// The host-side rules of the device path, on the CPU build (enqueue.h): they decide when a
// call is committed, which step it uses and when a corrupt-pair report comes back, and none
// of them needs a GPU to be checked.
//  - A corrupt-pair report never skips a collective: the call joins its collective first
//    (peers would otherwise wait in NCCL for this rank), then returns spcclRemoteError, and
//    the comm stays usable.
//  - spcclDecompress has its own report: a caller's bad list never fails a collective.
//  - The state agreement runs on a device transport too (NCCL comms skipped it).
//  - endCall: a method that succeeded is committed even when the bookkeeping after it fails;
//    a captured call leaves the host step alone and marks it stale; compress reads the
//    device counter of a state with captured calls, and refuses to be captured.
// The transports are fakes over host memory, so the checks see exactly what reached them.

#include <gtest/gtest.h>

#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

#include "comm.h"
#include "enqueue.h"
#include "spccl.h"
#include "state.h"

namespace {

using namespace spccl;

// Every rank holds this rank's data (a gather copies its block into every slot). Optionally
// reports device buffers (the NCCL transport's ordering rules), and one peer whose state
// differs in its count (the first field of what the agreement exchanges).
class FakeTransport final : public Transport {
 public:
  FakeTransport(int nranks, bool device, bool peerDiffers) : nranks_(nranks), device_(device), peerDiffers_(peerDiffers) {}
  const char* name() const override { return "fake"; }
  bool deviceBuffers() const override { return device_; }
  spcclResult_t allReduce(const void* s, void* r, size_t count, spcclDataType_t dt, spcclRedOp_t op,
                          spcclStream_t) override {
    collectives++;
    lastOp = op;
    if (s != r) memmove(r, s, count * (dt == spcclFloat64 ? 8 : dt == spcclFloat32 ? 4 : 2));
    return spcclSuccess;
  }
  spcclResult_t reduceScatter(const void*, void*, size_t, spcclDataType_t, spcclRedOp_t, spcclStream_t) override {
    return spcclInternalError;
  }
  spcclResult_t allGather(const void* s, void* r, size_t bytes, spcclStream_t) override {
    collectives++;
    for (int p = 0; p < nranks_; ++p) memmove(static_cast<char*>(r) + p * bytes, s, bytes);
    return spcclSuccess;
  }
  spcclResult_t allGatherHost(const void* s, void* r, size_t bytes) override {
    exchanges++;
    for (int p = 0; p < nranks_; ++p) memcpy(static_cast<char*>(r) + p * bytes, s, bytes);
    if (peerDiffers_ && nranks_ > 1) ++*reinterpret_cast<uint64_t*>(static_cast<char*>(r) + bytes);
    return spcclSuccess;
  }
  spcclResult_t broadcast(const void*, void*, size_t, int, spcclStream_t) override { return spcclInternalError; }
  spcclResult_t sendRecv(const void*, size_t, int, void*, size_t, int, spcclStream_t) override {
    return spcclInternalError;
  }
  spcclResult_t barrier() override { return spcclSuccess; }

  int collectives = 0;
  int exchanges = 0;
  spcclRedOp_t lastOp = spcclNumOps;

 private:
  int nranks_;
  bool device_, peerDiffers_;
};

struct FakeComm {
  spcclComm* comm = new spcclComm();
  FakeTransport* transport;
  FakeComm(int nranks, bool device, bool peerDiffers = false)
      : transport(new FakeTransport(nranks, device, peerDiffers)) {
    comm->nranks = nranks;
    comm->transport.reset(transport);
  }
  ~FakeComm() { delete comm; }
};

spcclState_t topkState(spcclComm* comm, size_t n) {
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = spcclMethodTopK;
  cfg.density = 0.01;
  cfg.feedback = spcclFeedbackEF;
  spcclState_t st = nullptr;
  EXPECT_EQ(spcclStateCreate(&st, comm, &cfg, n, spcclFloat32), spcclSuccess) << spcclGetLastError(comm);
  return st;
}

// A host state with the two report slots a device state has (state.h), in host memory.
device::BadPairReport* giveReports(spcclState_t st) {
  st->badIndex.bytes = kPairReportSlots * sizeof(device::BadPairReport);
  st->badIndex.ptr = calloc(1, st->badIndex.bytes);
  st->badIndex.kind = kHostMemory;
  return static_cast<device::BadPairReport*>(st->badIndex.ptr);
}

unsigned long long stepOf(spcclState_t st) {
  unsigned long long step = ~0ull;
  EXPECT_EQ(spcclStateGetStep(st, &step), spcclSuccess);
  return step;
}

// A one-rank top-k state with both report slots.
class PairReport : public ::testing::Test {
 protected:
  void SetUp() override {
    st = topkState(fc.comm, n);
    ASSERT_NE(st, nullptr);
    reports = giveReports(st);
  }
  void TearDown() override { EXPECT_EQ(spcclStateDestroy(st), spcclSuccess); }
  FakeComm fc{1, false};
  const size_t n = 1000;
  spcclState_t st = nullptr;
  device::BadPairReport* reports = nullptr;
};

TEST_F(PairReport, CollectiveRunsBeforeItReports) {
  reports[kCollectivePairs] = {device::kPairOutOfRange, 5000};
  std::vector<float> g(n, 1.0f), out(n, -1.0f);
  g[7] = 3.0f;
  EXPECT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, spcclFloat32, spcclSum, st, fc.comm, nullptr),
            spcclRemoteError);
  EXPECT_NE(std::string(spcclGetLastError(fc.comm)).find("5000"), std::string::npos) << spcclGetLastError(fc.comm);
  EXPECT_EQ(fc.transport->collectives, 1) << "the collective was skipped: peers would wait for this rank";
  EXPECT_EQ(out[7], 3.0f) << "the collective's output";
  EXPECT_EQ(stepOf(st), 1u) << "the call ran and counts";
  EXPECT_EQ(reports[kCollectivePairs].kind, (uint32_t)device::kPairsClean) << "reported once";
  // Not broken: the next call runs and succeeds.
  EXPECT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, spcclFloat32, spcclSum, st, fc.comm, nullptr),
            spcclSuccess)
      << spcclGetLastError(fc.comm);
  EXPECT_EQ(fc.transport->collectives, 2);
  reports[kCollectivePairs] = {device::kPairsUnordered, 17};
  EXPECT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, spcclFloat32, spcclSum, st, fc.comm, nullptr),
            spcclRemoteError);
  EXPECT_NE(std::string(spcclGetLastError(fc.comm)).find("not ascending"), std::string::npos);
}

TEST_F(PairReport, DecompressHasItsOwn) {
  const std::vector<uint32_t> idx = {1, 2};
  const std::vector<float> val = {1.0f, 2.0f};
  std::vector<float> g(n, 1.0f), out(n);
  reports[kDecompressPairs] = {device::kPairOutOfRange, 4000};
  EXPECT_EQ(spcclDecompress(val.data(), idx.data(), 2, 0, 1.0, out.data(), st, nullptr), spcclRemoteError);
  EXPECT_NE(std::string(spcclGetLastError(nullptr)).find("4000"), std::string::npos);
  EXPECT_EQ(fc.comm->brokenBy.load(), (int)spcclSuccess) << "a caller's list broke the comm";
  EXPECT_EQ(spcclDecompress(val.data(), idx.data(), 2, 0, 1.0, out.data(), st, nullptr), spcclSuccess);
  // A decompress report is not the collective's, and the reverse.
  reports[kDecompressPairs] = {device::kPairOutOfRange, 4000};
  EXPECT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, spcclFloat32, spcclSum, st, fc.comm, nullptr),
            spcclSuccess);
  reports[kCollectivePairs] = {device::kPairOutOfRange, 5000};
  EXPECT_EQ(spcclDecompress(val.data(), idx.data(), 2, 0, 1.0, out.data(), st, nullptr), spcclRemoteError);
  EXPECT_EQ(reports[kCollectivePairs].kind, (uint32_t)device::kPairOutOfRange) << "left for the collective";
}

// A device transport (NCCL's rules) and a peer whose state differs: refused before anything
// is gathered, as on a host transport.
TEST(StateAgreement, RunsOnDeviceTransports) {
  for (bool device : {false, true}) {
    FakeComm fc(2, device, true);
    const size_t n = 1000;
    spcclState_t st = topkState(fc.comm, n);
    ASSERT_NE(st, nullptr);
    std::vector<float> g(n, 1.0f), out(n);
    EXPECT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, spcclFloat32, spcclSum, st, fc.comm, nullptr),
              spcclInvalidUsage)
        << "device transport " << device;
    EXPECT_NE(std::string(spcclGetLastError(fc.comm)).find("count"), std::string::npos) << spcclGetLastError(fc.comm);
    EXPECT_EQ(fc.transport->exchanges, 1);
    EXPECT_EQ(fc.transport->collectives, 0);
    EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
  }
}

// Random block's fp16/bf16 average goes to every transport as an average (MPI divides in
// fp32, NCCL's ncclAvg multiplies by 1/P before it sums), never as a sum scaled afterwards: a
// half-precision sum over P ranks overflows at 65504 where the average fits. fp32 and fp64
// sum and scale in the commit pass.
TEST(HalfPrecision, RandomBlockAverageIsTheTransports) {
  for (bool device : {false, true}) {
    for (spcclDataType_t dt : {spcclFloat16, spcclBfloat16, spcclFloat32}) {
      FakeComm fc(2, device);
      spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
      cfg.method = spcclMethodRandomBlock;
      cfg.blockSize = 16;
      cfg.density = 0.25;
      spcclState_t st = nullptr;
      const size_t n = 256;
      ASSERT_EQ(spcclStateCreate(&st, fc.comm, &cfg, n, dt), spcclSuccess) << spcclGetLastError(fc.comm);
      std::vector<double> g(n, 0.0), out(n);  // 8 bytes per element: room for every type
      ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, dt, spcclAvg, st, fc.comm, nullptr), spcclSuccess)
          << spcclGetLastError(fc.comm);
      const bool half = dt != spcclFloat32;
      EXPECT_EQ(fc.transport->lastOp, half ? spcclAvg : spcclSum) << "device transport " << device << " type " << dt;
      EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
    }
  }
}

// Device calls replaced by fakes over a host step counter.
struct FakeDevice {
  static bool capturing;
  static spcclResult_t markResult;
  static int marks, advances;
  static spcclResult_t capture(spcclStream_t, bool* c) {
    *c = capturing;
    return spcclSuccess;
  }
  static spcclResult_t advance(unsigned long long* step, spcclStream_t) {
    ++*step;
    advances++;
    return spcclSuccess;
  }
  static spcclResult_t mark(const device::StateSync&, spcclStream_t) {
    marks++;
    return markResult;
  }
  static spcclResult_t read(spcclState& st) {
    st.step = *static_cast<unsigned long long*>(st.deviceStep.ptr);
    return spcclSuccess;
  }
  static constexpr DeviceCallOps ops = {capture, advance, mark, read};
};
bool FakeDevice::capturing = false;
spcclResult_t FakeDevice::markResult = spcclSuccess;
int FakeDevice::marks = 0, FakeDevice::advances = 0;
constexpr DeviceCallOps FakeDevice::ops;

// A host state dressed as a device state: the step counter in host memory.
struct PretendDevice {
  FakeComm fc{1, true};
  spcclState_t st = topkState(fc.comm, 100);
  unsigned long long* counter = nullptr;
  PretendDevice() {
    st->onDevice = true;
    st->deviceStep.bytes = sizeof(unsigned long long);
    st->deviceStep.ptr = counter = static_cast<unsigned long long*>(calloc(1, sizeof(unsigned long long)));
    FakeDevice::capturing = false;
    FakeDevice::markResult = spcclSuccess;
    FakeDevice::marks = FakeDevice::advances = 0;
  }
  ~PretendDevice() { EXPECT_EQ(spcclStateDestroy(st), spcclSuccess); }
};

TEST(EndCall, FailedMethodCommitsNothing) {
  PretendDevice d;
  EXPECT_EQ(endCall(*d.st, spcclRemoteError, nullptr, FakeDevice::ops), spcclRemoteError);
  EXPECT_EQ(d.st->step, 0u);
  EXPECT_EQ(*d.counter, 0u);
  EXPECT_EQ(FakeDevice::marks, 1) << "queued work is still marked for the blocking calls";
}

TEST(EndCall, MarkWorkFailingAfterSuccessStillCounts) {
  PretendDevice d;
  FakeDevice::markResult = spcclUnhandledCudaError;
  EXPECT_EQ(endCall(*d.st, spcclSuccess, nullptr, FakeDevice::ops), spcclUnhandledCudaError);
  EXPECT_EQ(d.st->step, 1u) << "enqueued work must be counted";
  EXPECT_EQ(*d.counter, 1u) << "host and device steps must agree";
  EXPECT_NE(std::string(spcclGetLastError(nullptr)).find("enqueued and counted"), std::string::npos);
}

TEST(EndCall, CapturedCallLeavesTheHostStepStale) {
  PretendDevice d;
  ASSERT_EQ(endCall(*d.st, spcclSuccess, nullptr, FakeDevice::ops), spcclSuccess);  // eager: step 0
  FakeDevice::capturing = true;
  ASSERT_EQ(endCall(*d.st, spcclSuccess, nullptr, FakeDevice::ops), spcclSuccess);  // captured
  EXPECT_EQ(d.st->step, 1u) << "a capture runs nothing";
  EXPECT_TRUE(d.st->stepOnDeviceOnly);
  // Three replays advance the device counter the host never sees.
  *d.counter += 3;
  FakeDevice::capturing = false;
  ASSERT_EQ(compressStep(*d.st, nullptr, "test", FakeDevice::ops), spcclSuccess);
  EXPECT_EQ(d.st->step, *d.counter) << "compress must use the step the replays reached";
  // Compress inside a capture is refused: its step could not name each replay's.
  FakeDevice::capturing = true;
  EXPECT_EQ(compressStep(*d.st, nullptr, "spcclCompress", FakeDevice::ops), spcclInvalidUsage);
  EXPECT_NE(std::string(spcclGetLastError(nullptr)).find("captured"), std::string::npos);
}

TEST(EndCall, EagerStepsNeedNoDeviceRead) {
  PretendDevice d;
  *d.counter = 42;  // would show if compressStep read it
  ASSERT_EQ(compressStep(*d.st, nullptr, "test", FakeDevice::ops), spcclSuccess);
  EXPECT_EQ(d.st->step, 0u);
}

// The public compress on a host state: the step it returns is the one it used, then counted.
TEST(EndCall, CompressReturnsTheStepItUsed) {
  FakeComm fc(1, false);
  spcclState_t st = topkState(fc.comm, 100);
  ASSERT_NE(st, nullptr);
  std::vector<float> g(100, 1.0f), values(1);
  std::vector<uint32_t> idx(1);
  for (unsigned long long want = 0; want < 3; ++want) {
    size_t nvalues = 0;
    unsigned long long step = ~0ull;
    ASSERT_EQ(spcclCompress(g.data(), values.data(), idx.data(), &nvalues, &step, st, nullptr), spcclSuccess);
    EXPECT_EQ(step, want);
    EXPECT_EQ(nvalues, 1u);
  }
  EXPECT_EQ(stepOf(st), 3u);
  EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
}

}  // namespace
