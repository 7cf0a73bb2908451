// SPDX-License-Identifier: Apache-2.0
//
// The public API on a single-rank NCCL communicator (ncclCommInitAll with one device):
// spcclSparseAllReduce against the CPU kernels over several EF steps, CUDA graph capture and
// replay (each replay must take the next step's blocks, as eager calls do), and bad input:
// a host pointer, a misaligned pointer, a count that is not the state's. TOPK and GAUSSIANK
// against the references of tests/common/topk_reference.h, eager and replayed from a graph;
// ONEBIT and QTOPK against the CPU kernels, eager and replayed.

#include <nccl.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/topk_reference.h"
#include "cpu/block_kernels.h"
#include "cpu/onebit_kernels.h"
#include "cpu/qtopk_kernels.h"
#include "device_test.h"
#include "spccl.h"
#include "spccl_nccl.h"

namespace spccl_test {
namespace {

using namespace spccl;

class NcclComm : public ::testing::Test {
 protected:
  void SetUp() override {
    SPCCL_REQUIRE_DEVICE();
    int dev = 0;
    ASSERT_EQ(ncclCommInitAll(&nccl_, 1, &dev), ncclSuccess);
    ASSERT_EQ(spcclCommInitNccl(&comm_, nccl_), spcclSuccess) << spcclGetLastError(nullptr);
    CUDA_ASSERT(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  void TearDown() override {
    if (comm_) EXPECT_EQ(spcclCommDestroy(comm_), spcclSuccess) << spcclGetLastError(nullptr);
    if (nccl_) ncclCommDestroy(nccl_);
    if (stream_) cudaStreamDestroy(stream_);
  }
  spcclState_t makeState(size_t n, spcclDataType_t dt, int pattern, int blockSize = 64, double density = 0.1) {
    spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
    cfg.method = spcclMethodRandomBlock;
    cfg.density = density;
    cfg.blockSize = blockSize;
    cfg.blockPattern = pattern;
    cfg.feedback = spcclFeedbackEF;
    cfg.seed = 1234;
    cfg.tensorKey = 9;
    spcclState_t st = nullptr;
    EXPECT_EQ(spcclStateCreate(&st, comm_, &cfg, n, dt), spcclSuccess) << spcclGetLastError(nullptr);
    return st;
  }

  ncclComm_t nccl_ = nullptr;
  spcclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

// The CPU model of one rank: acc = g + e, out = scale * acc on the step's blocks, e = rest.
struct CpuRank {
  size_t n, B;
  uint64_t nb, m;
  int pattern;
  std::vector<float> e;
  std::vector<float> step(const std::vector<float>& g, unsigned long long s, float scale) {
    const BlockSelection sel = makeBlockSelection(nb, m, pattern, selectionKey(1234, 9, s));
    std::vector<float> packed(m * B), out(n);
    std::vector<cpu::BlockSlot> order(m);
    cpu::sortedSelection(sel, order.data());
    cpu::feedbackPack(g.data(), e.data(), n, B, sel, packed.data());
    const cpu::CommitArgs<float> args = {g.data(), e.data(), e.data(), packed.data(), scale, out.data()};
    cpu::unpackCommit(args, n, B, order.data(), m);
    return out;
  }
};

TEST_F(NcclComm, SparseAllReduceMatchesCpu) {
  for (int pattern = 0; pattern < 2; ++pattern) {
    for (spcclRedOp_t op : {spcclSum, spcclAvg}) {
      const size_t n = 100003, B = 64;
      spcclState_t st = makeState(n, spcclFloat32, pattern);
      ASSERT_NE(st, nullptr);
      size_t m = 0;
      ASSERT_EQ(spcclBlockSelection(st, 0, nullptr, &m), spcclSuccess);
      CpuRank ref{n, B, (n + B - 1) / B, m, pattern, std::vector<float>(n, 0.0f)};
      std::mt19937_64 rng(pattern * 10 + op);
      DeviceArray<float> dg(n, stream_), dout(n, stream_);
      for (unsigned long long s = 0; s < 5; ++s) {
        const std::vector<float> g = randomVector<float>(n, rng);
        dg.upload(g);
        ASSERT_EQ(spcclSparseAllReduce(dg.get(), dout.get(), n, spcclFloat32, op, st, comm_, stream_), spcclSuccess)
            << spcclGetLastError(comm_);
        CUDA_ASSERT(cudaStreamSynchronize(stream_));
        EXPECT_TRUE(sameBits(dout.download(), ref.step(g, s, 1.0f))) << "step " << s << " pattern " << pattern;
        void* residual = nullptr;
        ASSERT_EQ(spcclStateGetResidual(st, &residual), spcclSuccess);
        EXPECT_TRUE(sameBits(copyToHost<float>(residual, n, stream_), ref.e)) << "residual, step " << s;
      }
      unsigned long long step = 0;
      ASSERT_EQ(spcclStateGetStep(st, &step), spcclSuccess);
      EXPECT_EQ(step, 5u);
      ASSERT_EQ(spcclStateReset(st), spcclSuccess);
      ASSERT_EQ(spcclStateGetStep(st, &step), spcclSuccess);
      EXPECT_EQ(step, 0u);
      EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
    }
  }
}

// One captured collective, replayed: replay r must equal eager step r (new blocks each time,
// from the device step counter), and nothing may synchronise the host during capture.
TEST_F(NcclComm, GraphCaptureAndReplay) {
  const size_t n = 1 << 16, B = 128;
  spcclState_t eager = makeState(n, spcclFloat32, spcclBlocksScattered, B, 0.05);
  spcclState_t captured = makeState(n, spcclFloat32, spcclBlocksScattered, B, 0.05);
  ASSERT_TRUE(eager && captured);
  DeviceArray<float> dg(n, stream_), dout(n, stream_), dg2(n, stream_), dout2(n, stream_);
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  CUDA_ASSERT(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal));
  const spcclResult_t res = spcclSparseAllReduce(dg2.get(), dout2.get(), n, spcclFloat32, spcclSum, captured, comm_,
                                                 stream_);
  CUDA_ASSERT(cudaStreamEndCapture(stream_, &graph));
  ASSERT_EQ(res, spcclSuccess) << spcclGetLastError(comm_);
  CUDA_ASSERT(cudaGraphInstantiate(&exec, graph, 0));
  std::mt19937_64 rng(5);
  for (int r = 0; r < 4; ++r) {
    const std::vector<float> g = randomVector<float>(n, rng);
    dg.upload(g);
    dg2.upload(g);
    ASSERT_EQ(spcclSparseAllReduce(dg.get(), dout.get(), n, spcclFloat32, spcclSum, eager, comm_, stream_),
              spcclSuccess);
    CUDA_ASSERT(cudaGraphLaunch(exec, stream_));
    CUDA_ASSERT(cudaStreamSynchronize(stream_));
    EXPECT_TRUE(sameBits(dout2.download(), dout.download())) << "replay " << r;
  }
  unsigned long long step = 0;
  ASSERT_EQ(spcclStateGetStep(captured, &step), spcclSuccess);
  EXPECT_EQ(step, 4u) << "the device step counter counts replays";
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  EXPECT_EQ(spcclStateDestroy(eager), spcclSuccess);
  EXPECT_EQ(spcclStateDestroy(captured), spcclSuccess);
}

TEST_F(NcclComm, BadInputGetsAClearCode) {
  const size_t n = 1000;
  spcclState_t st = makeState(n, spcclFloat32, spcclBlocksContiguous);
  ASSERT_NE(st, nullptr);
  std::vector<float> host(n);
  DeviceArray<float> dg(n + 1, stream_);
  EXPECT_EQ(spcclSparseAllReduce(host.data(), dg.get(), n, spcclFloat32, spcclSum, st, comm_, stream_),
            spcclInvalidArgument);
  EXPECT_NE(std::string(spcclGetLastError(comm_)).find("is host memory, but comm"), std::string::npos)
      << spcclGetLastError(comm_);
  const float* misaligned = reinterpret_cast<const float*>(reinterpret_cast<const char*>(dg.get()) + 2);
  EXPECT_EQ(spcclSparseAllReduce(misaligned, dg.get(), n, spcclFloat32, spcclSum, st, comm_, stream_),
            spcclInvalidArgument);
  EXPECT_NE(std::string(spcclGetLastError(comm_)).find("is not aligned"), std::string::npos);
  EXPECT_EQ(spcclSparseAllReduce(dg.get(), dg.get(), n + 1, spcclFloat32, spcclSum, st, comm_, stream_),
            spcclInvalidUsage);
  EXPECT_NE(std::string(spcclGetLastError(comm_)).find("differs from the state's count"), std::string::npos);
  unsigned long long step = 1;
  ASSERT_EQ(spcclStateGetStep(st, &step), spcclSuccess);
  EXPECT_EQ(step, 0u) << "a failed call must not advance the step";
  EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
}

// spcclCompress and spcclDecompress check every pointer before a kernel can fault on it: a
// host or misaligned `indices`, misaligned `values`. Nothing changes when they refuse.
TEST_F(NcclComm, CompressChecksIndicesAndValues) {
  const size_t n = 1000;
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = spcclMethodTopK;
  cfg.density = 0.05;
  spcclState_t st = nullptr;
  ASSERT_EQ(spcclStateCreate(&st, comm_, &cfg, n, spcclFloat32), spcclSuccess) << spcclGetLastError(comm_);
  size_t k = 0, nvalues = 0;
  unsigned long long step = 0;
  ASSERT_EQ(spcclCompressedCount(st, &k), spcclSuccess);
  DeviceArray<float> dg(n, stream_), dvalues(k + 1, stream_), dout(n, stream_);
  DeviceArray<uint32_t> didx(k + 1, stream_);
  std::vector<uint32_t> hostIdx(k);
  auto expectRefused = [&](spcclResult_t res, const char* what) {
    EXPECT_EQ(res, spcclInvalidArgument) << what;
    EXPECT_NE(std::string(spcclGetLastError(comm_)).find(what), std::string::npos) << spcclGetLastError(comm_);
  };
  expectRefused(spcclCompress(dg.get(), dvalues.get(), hostIdx.data(), &nvalues, &step, st, stream_),
                "indices 0x");  // "... is host memory, but comm ..."
  EXPECT_NE(std::string(spcclGetLastError(comm_)).find("is host memory"), std::string::npos);
  uint32_t* misIdx = reinterpret_cast<uint32_t*>(reinterpret_cast<char*>(didx.get()) + 2);
  expectRefused(spcclCompress(dg.get(), dvalues.get(), misIdx, &nvalues, &step, st, stream_), "is not aligned");
  const float* misValues = reinterpret_cast<const float*>(reinterpret_cast<const char*>(dvalues.get()) + 1);
  expectRefused(spcclDecompress(misValues, didx.get(), k, 0, 1.0, dout.get(), st, stream_), "values");
  expectRefused(spcclDecompress(dvalues.get(), misIdx, k, 0, 1.0, dout.get(), st, stream_), "indices");
  expectRefused(spcclDecompress(dvalues.get(), hostIdx.data(), k, 0, 1.0, dout.get(), st, stream_), "host memory");
  ASSERT_EQ(spcclStateGetStep(st, &step), spcclSuccess);
  EXPECT_EQ(step, 0u) << "a refused compress must not advance the step";
  void* residual = nullptr;
  ASSERT_EQ(spcclStateGetResidual(st, &residual), spcclSuccess);
  EXPECT_TRUE(sameBits(copyToHost<float>(residual, n, stream_), std::vector<float>(n, 0.0f)));
  EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
}

// A pair index outside [0, count) given to spcclDecompress on a device comm cannot fail that
// call (it would need a host round trip): the pair is dropped, and the state's next call
// returns spcclRemoteError naming the index, once.
TEST_F(NcclComm, BadPairIndexIsReportedByTheNextCall) {
  const size_t n = 1000;
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = spcclMethodTopK;
  cfg.density = 0.01;
  spcclState_t st = nullptr;
  ASSERT_EQ(spcclStateCreate(&st, comm_, &cfg, n, spcclFloat32), spcclSuccess) << spcclGetLastError(comm_);
  DeviceArray<uint32_t> didx(std::vector<uint32_t>{1, 2, 7777}, stream_);
  DeviceArray<float> dvalues(std::vector<float>{1.0f, 2.0f, 3.0f}, stream_), dout(n, stream_);
  ASSERT_EQ(spcclDecompress(dvalues.get(), didx.get(), 3, 0, 1.0, dout.get(), st, stream_), spcclSuccess);
  const std::vector<float> out = dout.download();
  EXPECT_EQ(out[1] + out[2], 3.0f);
  EXPECT_EQ(spcclDecompress(dvalues.get(), didx.get(), 2, 0, 1.0, dout.get(), st, stream_), spcclRemoteError);
  EXPECT_NE(std::string(spcclGetLastError(comm_)).find("pair index 7777"), std::string::npos)
      << spcclGetLastError(comm_);
  EXPECT_EQ(spcclDecompress(dvalues.get(), didx.get(), 2, 0, 1.0, dout.get(), st, stream_), spcclSuccess)
      << "reported once";
  // A caller's bad list is never the collective's: the next collective succeeds.
  ASSERT_EQ(spcclDecompress(dvalues.get(), didx.get(), 3, 0, 1.0, dout.get(), st, stream_), spcclSuccess);
  CUDA_ASSERT(cudaStreamSynchronize(stream_));
  DeviceArray<float> dg(std::vector<float>(n, 1.0f), stream_);
  EXPECT_EQ(spcclSparseAllReduce(dg.get(), dout.get(), n, spcclFloat32, spcclSum, st, comm_, stream_), spcclSuccess)
      << spcclGetLastError(comm_);
  EXPECT_EQ(spcclDecompress(dvalues.get(), didx.get(), 2, 0, 1.0, dout.get(), st, stream_), spcclRemoteError);
  CUDA_ASSERT(cudaStreamSynchronize(stream_));
  EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
}

// After graph replays the host's step is stale: an eager spcclCompress reads the device
// counter (its blocks and the step it returns are those the replays reached), and a compress
// being captured is refused.
TEST_F(NcclComm, CompressAfterReplaysUsesTheDeviceStep) {
  const size_t n = 1 << 14, B = 64;
  spcclState_t st = makeState(n, spcclFloat32, spcclBlocksScattered, B, 0.1);
  ASSERT_NE(st, nullptr);
  DeviceArray<float> dg(std::vector<float>(n, 0.0f), stream_), dout(n, stream_), dvalues(n, stream_);
  // g = 0 until the compress: the residual stays zero, so the compress packs g alone.
  ASSERT_EQ(spcclSparseAllReduce(dg.get(), dout.get(), n, spcclFloat32, spcclSum, st, comm_, stream_), spcclSuccess);
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  CUDA_ASSERT(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal));
  const spcclResult_t captured =
      spcclSparseAllReduce(dg.get(), dout.get(), n, spcclFloat32, spcclSum, st, comm_, stream_);
  size_t nvalues = 0;
  unsigned long long step = 0;
  const spcclResult_t compressCaptured = spcclCompress(dg.get(), dvalues.get(), nullptr, &nvalues, &step, st, stream_);
  CUDA_ASSERT(cudaStreamEndCapture(stream_, &graph));
  ASSERT_EQ(captured, spcclSuccess) << spcclGetLastError(comm_);
  EXPECT_EQ(compressCaptured, spcclInvalidUsage);
  CUDA_ASSERT(cudaGraphInstantiate(&exec, graph, 0));
  for (int r = 0; r < 3; ++r) CUDA_ASSERT(cudaGraphLaunch(exec, stream_));
  // One eager call and three replays: the compress takes step 4, as the device counter says.
  std::vector<float> g(n);
  for (size_t i = 0; i < n; ++i) g[i] = float(i / B);  // each block holds its number
  dg.upload(g);
  ASSERT_EQ(spcclCompress(dg.get(), dvalues.get(), nullptr, &nvalues, &step, st, stream_), spcclSuccess)
      << spcclGetLastError(comm_);
  EXPECT_EQ(step, 4u);
  size_t m = 0;
  ASSERT_EQ(spcclBlockSelection(st, 4, nullptr, &m), spcclSuccess);
  std::vector<size_t> blocks(m);
  ASSERT_EQ(spcclBlockSelection(st, 4, blocks.data(), &m), spcclSuccess);
  const std::vector<float> values = dvalues.download();
  for (size_t slot = 0; slot < m; ++slot) ASSERT_EQ((size_t)values[slot * B], blocks[slot]) << "slot " << slot;
  unsigned long long after = 0;
  ASSERT_EQ(spcclStateGetStep(st, &after), spcclSuccess);
  EXPECT_EQ(after, 5u);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
}

// Reset and GetStep wait for the state's own work only. Another stream is held by a host
// function until the test releases it (as an NCCL kernel of another comm waits for its
// peers): a device-wide synchronisation would block until the watchdog releases it.
TEST_F(NcclComm, StateCallsWaitOnlyForTheirOwnWork) {
  const size_t n = 4096;
  spcclState_t st = makeState(n, spcclFloat32, spcclBlocksScattered);
  ASSERT_NE(st, nullptr);
  DeviceArray<float> dg(std::vector<float>(n, 1.0f), stream_), dout(n, stream_);
  ASSERT_EQ(spcclSparseAllReduce(dg.get(), dout.get(), n, spcclFloat32, spcclSum, st, comm_, stream_), spcclSuccess);
  cudaStream_t other = nullptr;
  CUDA_ASSERT(cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking));
  std::atomic<bool> released{false};
  auto holdUntilReleased = [](void* flag) {
    while (!static_cast<std::atomic<bool>*>(flag)->load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  };
  CUDA_ASSERT(cudaLaunchHostFunc(other, holdUntilReleased, &released));
  std::thread watchdog([&] {
    std::this_thread::sleep_for(std::chrono::seconds(20));
    released = true;
  });
  unsigned long long step = 0;
  EXPECT_EQ(spcclStateGetStep(st, &step), spcclSuccess);
  EXPECT_EQ(step, 1u);
  EXPECT_EQ(spcclStateReset(st), spcclSuccess);
  EXPECT_FALSE(released.load()) << "GetStep/Reset waited for another stream's work";
  released = true;
  watchdog.join();
  CUDA_ASSERT(cudaStreamSynchronize(other));
  cudaStreamDestroy(other);
  void* residual = nullptr;
  ASSERT_EQ(spcclStateGetResidual(st, &residual), spcclSuccess);
  EXPECT_TRUE(sameBits(copyToHost<float>(residual, n, stream_), std::vector<float>(n, 0.0f)));
  EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
}

// A nonblocking NCCL communicator (ncclConfig_t.blocking = 0, as PyTorch may create): its calls
// answer ncclInProgress, and spccl must wait until the collective is enqueued before the commit
// kernels follow it, so the results equal a blocking comm's.
TEST(NcclNonblocking, SparseAllReduceWaitsForTheCollective) {
  SPCCL_REQUIRE_DEVICE();
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t nccl = nullptr;
  ncclResult_t r = ncclCommInitRankConfig(&nccl, 1, id, 0, &config);
  while (r == ncclInProgress) ASSERT_EQ(ncclCommGetAsyncError(nccl, &r), ncclSuccess);
  ASSERT_EQ(r, ncclSuccess);
  spcclComm_t comm = nullptr;
  ASSERT_EQ(spcclCommInitNccl(&comm, nccl), spcclSuccess) << spcclGetLastError(nullptr);
  cudaStream_t stream = nullptr;
  CUDA_ASSERT(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const size_t n = 50000, B = 64;
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = spcclMethodRandomBlock;
  cfg.density = 0.1;
  cfg.blockSize = B;
  cfg.seed = 1234;
  cfg.tensorKey = 9;
  spcclState_t st = nullptr;
  ASSERT_EQ(spcclStateCreate(&st, comm, &cfg, n, spcclFloat32), spcclSuccess) << spcclGetLastError(comm);
  size_t m = 0;
  ASSERT_EQ(spcclBlockSelection(st, 0, nullptr, &m), spcclSuccess);
  CpuRank ref{n, B, (n + B - 1) / B, m, spcclBlocksContiguous, std::vector<float>(n, 0.0f)};
  std::mt19937_64 rng(8);
  DeviceArray<float> dg(n, stream), dout(n, stream);
  for (unsigned long long s = 0; s < 3; ++s) {
    const std::vector<float> g = randomVector<float>(n, rng);
    dg.upload(g);
    ASSERT_EQ(spcclSparseAllReduce(dg.get(), dout.get(), n, spcclFloat32, spcclSum, st, comm, stream), spcclSuccess)
        << spcclGetLastError(comm);
    EXPECT_TRUE(sameBits(dout.download(), ref.step(g, s, 1.0f))) << "step " << s;
  }
  spcclResult_t async = spcclInternalError;
  ASSERT_EQ(spcclCommGetAsyncError(comm, &async), spcclSuccess);
  EXPECT_TRUE(async == spcclSuccess || async == spcclInProgress) << spcclGetErrorString(async);
  EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
  EXPECT_EQ(spcclCommDestroy(comm), spcclSuccess);
  cudaStreamDestroy(stream);
  r = ncclCommDestroy(nccl);
  while (r == ncclInProgress) ncclCommGetAsyncError(nccl, &r);
}

// One collective per step: eager for the first `eagerSteps` steps, then captured once into a
// CUDA graph and replayed, so the replays must continue the eager run (the fixed-size
// payloads need no host round trip). run() reports through gtest assertions.
class EagerThenReplayed {
 public:
  EagerThenReplayed(spcclComm_t comm, cudaStream_t stream, int eagerSteps, std::function<spcclResult_t()> call)
      : comm_(comm), stream_(stream), eagerSteps_(eagerSteps), call_(std::move(call)) {}
  ~EagerThenReplayed() {
    if (exec_) cudaGraphExecDestroy(exec_);
    if (graph_) cudaGraphDestroy(graph_);
  }
  void run(int step) {
    if (step < eagerSteps_) {
      ASSERT_EQ(call_(), spcclSuccess) << spcclGetLastError(comm_);
      return;
    }
    if (!exec_) {
      CUDA_ASSERT(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal));
      const spcclResult_t res = call_();
      CUDA_ASSERT(cudaStreamEndCapture(stream_, &graph_));
      ASSERT_EQ(res, spcclSuccess) << spcclGetLastError(comm_);
      CUDA_ASSERT(cudaGraphInstantiate(&exec_, graph_, 0));
    }
    CUDA_ASSERT(cudaGraphLaunch(exec_, stream_));
  }

 private:
  spcclComm_t comm_;
  cudaStream_t stream_;
  int eagerSteps_;
  std::function<spcclResult_t()> call_;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

// The CPU model of one rank of TOPK or GAUSSIANK: acc = g + e, out = acc on the selected
// slots (P = 1: sum and avg alike), e = acc with them cleared.
struct CpuPairsRank {
  int method;
  size_t n, k;
  double density;
  std::vector<float> e;
  std::vector<float> step(const std::vector<float>& g) {
    std::vector<float> acc(n), out(n, 0.0f);
    for (size_t i = 0; i < n; ++i) acc[i] = addRounded(g[i], e[i]);
    const std::vector<uint32_t> sel = method == spcclMethodTopK ? referenceTopK(acc.data(), n, k)
                                                                : referenceGaussianK(acc.data(), n, k, density);
    for (uint32_t i : sel)
      if (i != SPCCL_PAD_INDEX) out[i] = acc[i];
    e = std::move(acc);
    for (uint32_t i : sel)
      if (i != SPCCL_PAD_INDEX) e[i] = 0.0f;
    return out;
  }
};

// Steps 0-2 eager, then one call captured in a graph and replayed for steps 3-5: the fixed
// k slots need no host round trip, so capture must succeed and replays continue the EF run.
TEST_F(NcclComm, TopKFamilyMatchesCpu) {
  for (int method : {spcclMethodTopK, spcclMethodGaussianK}) {
    const size_t n = 100003;
    const double density = 0.01;
    spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
    cfg.method = method;
    cfg.density = density;
    cfg.feedback = spcclFeedbackEF;
    spcclState_t st = nullptr;
    ASSERT_EQ(spcclStateCreate(&st, comm_, &cfg, n, spcclFloat32), spcclSuccess) << spcclGetLastError(comm_);
    CpuPairsRank ref{method, n, topkCount(n, density), density, std::vector<float>(n, 0.0f)};
    std::mt19937_64 rng(method);
    DeviceArray<float> dg(n, stream_), dout(n, stream_);
    EagerThenReplayed steps(comm_, stream_, 3, [&] {
      return spcclSparseAllReduce(dg.get(), dout.get(), n, spcclFloat32, spcclAvg, st, comm_, stream_);
    });
    for (int s = 0; s < 6; ++s) {
      const std::vector<float> g = randomVector<float>(n, rng);
      dg.upload(g);
      ASSERT_NO_FATAL_FAILURE(steps.run(s));
      CUDA_ASSERT(cudaStreamSynchronize(stream_));
      EXPECT_TRUE(sameBits(dout.download(), ref.step(g))) << "method " << method << " step " << s;
      void* residual = nullptr;
      ASSERT_EQ(spcclStateGetResidual(st, &residual), spcclSuccess);
      EXPECT_TRUE(sameBits(copyToHost<float>(residual, n, stream_), ref.e))
          << "residual, method " << method << " step " << s;
    }
    EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
  }
}

// The CPU model of 1-bit on one rank: worker level, the mean of the one message (sum and avg
// alike), server level, both residuals, the unpack, with the CPU kernels.
template <typename T>
struct CpuOneBitRank {
  size_t n;
  std::vector<T> ew, es;
  std::vector<T> step(const std::vector<T>& g) {
    using AccT = typename AccumOf<T>::type;
    const SignChunks c = signChunks(n, 1);
    std::vector<char> sent(c.messageBytes), own(c.messageBytes);
    std::vector<T> mean(n), out(n);
    cpu::signCompress(g.data(), ew.data(), c, sent.data());
    cpu::signMean(sent.data(), c.messageBytes, 1, n, (AccT)1, mean.data());
    cpu::signCompress(mean.data(), es.data(), c, own.data());
    cpu::signResidual(g.data(), ew.data(), c, sent.data(), ew.data());
    cpu::signResidual(mean.data(), es.data(), c, own.data(), es.data());
    cpu::signUnpack(c, own.data(), out.data());
    return out;
  }
};

// 1-bit through the NCCL transport (the grouped all-to-all and the allgather, here to the
// rank itself) against the CPU model over EF steps, steps 3-5 replayed from a captured graph:
// the output and the worker residual bit for bit, the server residual through the outputs.
template <typename T>
void oneBitMatchesCpu(spcclComm_t comm, cudaStream_t stream) {
  const size_t n = 100003;
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = spcclMethodOneBit;
  cfg.feedback = spcclFeedbackEF;
  spcclState_t st = nullptr;
  ASSERT_EQ(spcclStateCreate(&st, comm, &cfg, n, dataTypeOf<T>()), spcclSuccess) << spcclGetLastError(comm);
  CpuOneBitRank<T> ref{n, std::vector<T>(n, fromAcc<T>(0.0f)), std::vector<T>(n, fromAcc<T>(0.0f))};
  std::mt19937_64 rng(31);
  DeviceArray<T> dg(n, stream), dout(n, stream);
  EagerThenReplayed steps(comm, stream, 3, [&] {
    return spcclSparseAllReduce(dg.get(), dout.get(), n, dataTypeOf<T>(), spcclAvg, st, comm, stream);
  });
  for (int s = 0; s < 6; ++s) {
    const std::vector<T> g = randomVector<T>(n, rng);
    dg.upload(g);
    ASSERT_NO_FATAL_FAILURE(steps.run(s));
    CUDA_ASSERT(cudaStreamSynchronize(stream));
    EXPECT_TRUE(sameBits(dout.download(), ref.step(g))) << "step " << s;
    void* residual = nullptr;
    ASSERT_EQ(spcclStateGetResidual(st, &residual), spcclSuccess);
    EXPECT_TRUE(sameBits(copyToHost<T>(residual, n, stream), ref.ew)) << "worker residual, step " << s;
  }
  EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
}

TEST_F(NcclComm, OneBitMatchesCpu) {
  oneBitMatchesCpu<float>(comm_, stream_);
  oneBitMatchesCpu<bfloat16_t>(comm_, stream_);
}

// The CPU model of QTOPK on one rank (cpu/qtopk_kernels.h): compress, residual, and the
// unpack of the one payload (sum and avg alike); spcclCompress's slots from the same payload.
template <typename T>
struct CpuQTopKRank {
  QuantLayout q;
  std::vector<T> e;
  std::vector<uint32_t> indices;
  std::vector<T> values;
  std::vector<T> step(const std::vector<T>& g) {
    using AccT = typename AccumOf<T>::type;
    std::vector<T> acc(q.count), out(q.count);
    std::vector<uint64_t> payload(quantPayloadBytes(q) / 8);
    std::vector<uint32_t> order(q.chunk);
    std::vector<AccT> sums(q.count);
    cpu::quantCompress(g.data(), e.data(), acc.data(), q, payload.data(), order.data());
    cpu::quantResidual(acc.data(), q, payload.data(), e.data());
    cpu::quantUnpack(q, payload.data(), 1, payload.size() * 8, 1.0, out.data(), sums.data());
    indices.assign((size_t)q.nchunks * q.k, SPCCL_PAD_INDEX);
    values.assign(indices.size(), fromAcc<T>(0.0f));
    cpu::quantForEachSlot(q, payload.data(), [&](uint32_t c, uint32_t j, uint32_t offset, int level, int E) {
      if (level == 0) return;
      indices[(size_t)c * q.k + j] = (uint32_t)((uint64_t)c * q.chunk + offset);
      values[(size_t)c * q.k + j] = fromAcc<T>((AccT)quantValue(level, E));
    });
    return out;
  }
};

// QTOPK through the NCCL transport (the payload allgathered to the rank itself) against the
// CPU model over EF steps, steps 3-5 replayed from a captured graph: the output and the
// residual bit for bit. Then spcclCompress on a second state gives the model's slots.
template <typename T>
void qtopkMatchesCpu(spcclComm_t comm, cudaStream_t stream) {
  const size_t n = 100003;  // a short last chunk
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = spcclMethodQTopK;
  cfg.density = 1.0 / 64;
  cfg.blockSize = 512;
  cfg.valueBits = 3;
  cfg.feedback = spcclFeedbackEF;
  spcclState_t st = nullptr, cst = nullptr;
  ASSERT_EQ(spcclStateCreate(&st, comm, &cfg, n, dataTypeOf<T>()), spcclSuccess) << spcclGetLastError(comm);
  ASSERT_EQ(spcclStateCreate(&cst, comm, &cfg, n, dataTypeOf<T>()), spcclSuccess) << spcclGetLastError(comm);
  QuantLayout q;
  q.count = n;
  q.chunk = 512;
  q.nchunks = (uint32_t)((n + 511) / 512);
  q.k = (uint32_t)topkCount(512, cfg.density);
  q.offsetBits = 9;
  q.valueBits = 3;
  CpuQTopKRank<T> ref{q, std::vector<T>(n, fromAcc<T>(0.0f)), {}, {}};
  size_t cap = 0;
  ASSERT_EQ(spcclCompressedCount(cst, &cap), spcclSuccess);
  ASSERT_EQ(cap, (size_t)q.nchunks * q.k);
  std::mt19937_64 rng(37);
  DeviceArray<T> dg(n, stream), dout(n, stream), dvalues(cap, stream);
  DeviceArray<uint32_t> dindices(cap, stream);
  EagerThenReplayed steps(comm, stream, 3, [&] {
    return spcclSparseAllReduce(dg.get(), dout.get(), n, dataTypeOf<T>(), spcclAvg, st, comm, stream);
  });
  for (int s = 0; s < 6; ++s) {
    const std::vector<T> g = randomVector<T>(n, rng);
    dg.upload(g);
    ASSERT_NO_FATAL_FAILURE(steps.run(s));
    size_t nvalues = 0;
    unsigned long long step = 0;
    ASSERT_EQ(spcclCompress(dg.get(), dvalues.get(), dindices.get(), &nvalues, &step, cst, stream), spcclSuccess)
        << spcclGetLastError(comm);
    CUDA_ASSERT(cudaStreamSynchronize(stream));
    EXPECT_TRUE(sameBits(dout.download(), ref.step(g))) << "step " << s;
    void* residual = nullptr;
    ASSERT_EQ(spcclStateGetResidual(st, &residual), spcclSuccess);
    EXPECT_TRUE(sameBits(copyToHost<T>(residual, n, stream), ref.e)) << "residual, step " << s;
    ASSERT_EQ(nvalues, cap);
    EXPECT_EQ(dindices.download(), ref.indices) << "compress, step " << s;
    EXPECT_TRUE(sameBits(dvalues.download(), ref.values)) << "compress, step " << s;
  }
  EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
  EXPECT_EQ(spcclStateDestroy(cst), spcclSuccess);
}

TEST_F(NcclComm, QTopKMatchesCpu) {
  qtopkMatchesCpu<float>(comm_, stream_);
  qtopkMatchesCpu<half_t>(comm_, stream_);
}

// gTop-k's merge rounds need the host, which an NCCL comm must not wait for: a clear refusal.
TEST_F(NcclComm, GTopKIsRefusedOnDevice) {
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = spcclMethodGTopK;
  spcclState_t st = nullptr;
  EXPECT_EQ(spcclStateCreate(&st, comm_, &cfg, 1000, spcclFloat32), spcclInvalidUsage);
  EXPECT_NE(std::string(spcclGetLastError(comm_)).find("gtopk does not run on device buffers"), std::string::npos)
      << spcclGetLastError(comm_);
  EXPECT_EQ(st, nullptr);
}

// Abort with a state still open: ncclCommAbort runs, the comm refuses collectives, and the
// last spcclStateDestroy frees it.
TEST_F(NcclComm, AbortAndAsyncError) {
  spcclResult_t async = spcclInternalError;
  ASSERT_EQ(spcclCommGetAsyncError(comm_, &async), spcclSuccess);
  EXPECT_EQ(async, spcclSuccess);
  const size_t n = 4096;
  spcclState_t st = makeState(n, spcclFloat32, spcclBlocksContiguous);
  ASSERT_NE(st, nullptr);
  DeviceArray<float> buf(n, stream_);
  ASSERT_EQ(spcclAllReduce(buf.get(), buf.get(), n, spcclFloat32, spcclAvg, comm_, stream_), spcclSuccess);
  CUDA_ASSERT(cudaStreamSynchronize(stream_));
  ASSERT_EQ(spcclCommAbort(comm_), spcclSuccess);
  nccl_ = nullptr;  // ncclCommAbort freed it
  EXPECT_EQ(spcclSparseAllReduce(buf.get(), buf.get(), n, spcclFloat32, spcclSum, st, comm_, stream_),
            spcclInvalidUsage);
  EXPECT_NE(std::string(spcclGetLastError(comm_)).find("is broken"), std::string::npos) << spcclGetLastError(comm_);
  EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
  comm_ = nullptr;  // freed with its last state
}

}  // namespace
}  // namespace spccl_test
