// SPDX-License-Identifier: Apache-2.0
//
// Ranks that disagree (SPCCL_CHECK=1) or stop calling (SPCCL_TIMEOUT_MS) get an error on
// every rank, fast, instead of a hang. These run in their own ctest entries, which set the
// variable; elsewhere they skip with the reason.

#include <unistd.h>

#include <atomic>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <string>
#include <thread>

#include "mpi_test.h"

namespace spccl_test {
namespace {

bool envSet(const char* name) { return getenv(name) && *getenv(name) && std::string(getenv(name)) != "0"; }

double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Every rank reports how long its failure took; the slowest is printed for the closing note.
void reportSlowest(const char* what, double seconds) {
  double slowest = 0;
  MPI_Allreduce(&seconds, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  if (world().rank == 0) printf("[ reliability ] %s: slowest rank returned after %.3f s\n", what, slowest);
  EXPECT_LT(slowest, 5.0);
}

class ConsistencyCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!envSet("SPCCL_CHECK")) GTEST_SKIP() << "needs SPCCL_CHECK=1 (ctest entry mpi_check_np3)";
    if (world().nranks < 2) GTEST_SKIP() << "needs two ranks or more";
  }
  // Every rank calls with its own config/count; the last rank differs in one field.
  void expectDisagreement(size_t count, spcclConfig_t cfg, const std::string& field) {
    spcclState_t st;
    ASSERT_EQ(spcclStateCreate(&st, world().comm, &cfg, count, spcclFloat32), spcclSuccess);
    std::vector<float> g(count, 1.0f), out(count);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(spcclSparseAllReduce(g.data(), out.data(), count, spcclFloat32, spcclSum, st, world().comm, nullptr),
              spcclInvalidUsage);
    reportSlowest(field.c_str(), secondsSince(t0));
    const std::string msg = spcclGetLastError(world().comm);
    EXPECT_NE(msg.find("ranks disagree"), std::string::npos) << msg;
    EXPECT_NE(msg.find(field), std::string::npos) << msg;
    unsigned long long step = 9;
    spcclStateGetStep(st, &step);
    EXPECT_EQ(step, 0u);
    spcclStateDestroy(st);
  }
  bool last() const { return world().rank == world().nranks - 1; }
};

TEST_F(ConsistencyCheck, CountDensityMethodAndStep) {
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  expectDisagreement(last() ? 999 : 1000, cfg, "count 999");
  cfg.density = last() ? 0.5 : 0.25;
  expectDisagreement(1000, cfg, "density 0.5");
  cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = last() ? spcclMethodDense : spcclMethodRandomBlock;
  expectDisagreement(1000, cfg, "method 0");
  cfg.method = spcclMethodRandomBlock;
  cfg.seed = last() ? 2 : 1;
  expectDisagreement(1000, cfg, "seed 2");
  cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.hierarchical = last() ? 1 : 0;
  expectDisagreement(1000, cfg, "hierarchical 1");
}

TEST_F(ConsistencyCheck, DenseSwitchDisagreement) {
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = spcclMethodTopK;
  cfg.density = 0.9;  // switched to dense wherever the switch is allowed
  cfg.denseSwitch = last() ? 0 : 1;
  expectDisagreement(1000, cfg, "denseSwitch 0");
}

// A rank passing count 0 (a no-op alone) still takes part in the check, so its peers do not
// wait for it: everyone gets the error.
TEST_F(ConsistencyCheck, CountZeroOnOneRank) {
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  spcclState_t st;
  ASSERT_EQ(spcclStateCreate(&st, world().comm, &cfg, 1000, spcclFloat32), spcclSuccess);
  std::vector<float> g(1000, 1.0f), out(1000);
  const size_t count = last() ? 0 : 1000;
  EXPECT_EQ(spcclSparseAllReduce(g.data(), out.data(), count, spcclFloat32, spcclSum, st, world().comm, nullptr),
            spcclInvalidUsage);
  const std::string msg = spcclGetLastError(world().comm);
  EXPECT_NE(msg.find("ranks disagree"), std::string::npos) << msg;
  EXPECT_NE(msg.find("count 0"), std::string::npos) << msg;
  spcclStateDestroy(st);
}

TEST_F(ConsistencyCheck, AgreeingRanksPass) {
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  spcclState_t st;
  ASSERT_EQ(spcclStateCreate(&st, world().comm, &cfg, 100, spcclFloat32), spcclSuccess);
  std::vector<float> g(100, 1.0f);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(spcclSparseAllReduce(g.data(), g.data(), 100, spcclFloat32, spcclSum, st, world().comm, nullptr),
              spcclSuccess);
  spcclStateDestroy(st);
}

TEST(Timeout, RankThatStopsCallingTimesOutTheOthers) {
  if (!envSet("SPCCL_TIMEOUT_MS")) GTEST_SKIP() << "needs SPCCL_TIMEOUT_MS (ctest entry mpi_timeout_np3)";
  if (world().nranks < 2) GTEST_SKIP() << "needs two ranks or more";
  const double timeout = atof(getenv("SPCCL_TIMEOUT_MS")) * 1e-3;
  spcclComm_t comm;
  ASSERT_EQ(spcclCommInitMPI(&comm, MPI_COMM_WORLD), spcclSuccess);
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  spcclState_t st;
  ASSERT_EQ(spcclStateCreate(&st, comm, &cfg, 4096, spcclFloat32), spcclSuccess);
  std::vector<float> g(4096, 1.0f), out(4096);
  const bool stalled = world().rank == world().nranks - 1;
  if (stalled) {
    // Stops calling for longer than the timeout, then joins late so MPI can drain.
    usleep(useconds_t((timeout + 1.5) * 1e6));
  } else {
    float* residual;
    spcclStateGetResidual(st, reinterpret_cast<void**>(&residual));
    const std::vector<float> before(residual, residual + 4096);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(spcclSparseAllReduce(g.data(), out.data(), 4096, spcclFloat32, spcclSum, st, comm, nullptr),
              spcclTimeout);
    const double took = secondsSince(t0);
    EXPECT_GE(took, timeout * 0.9);
    EXPECT_LT(took, timeout + 2.0);
    EXPECT_TRUE(std::vector<float>(residual, residual + 4096) == before) << "a timed-out call changed the residual";
    spcclResult_t async = spcclSuccess;
    EXPECT_EQ(spcclCommGetAsyncError(comm, &async), spcclSuccess);
    EXPECT_EQ(async, spcclTimeout);
    // The comm is broken now: later calls refuse at once.
    EXPECT_EQ(spcclSparseAllReduce(g.data(), out.data(), 4096, spcclFloat32, spcclSum, st, comm, nullptr),
              spcclInvalidUsage);
    EXPECT_NE(std::string(spcclGetLastError(comm)).find("is broken"), std::string::npos);
    printf("[ reliability ] rank %d: timeout returned after %.3f s (SPCCL_TIMEOUT_MS %s)\n", world().rank, took,
           getenv("SPCCL_TIMEOUT_MS"));
  }
  if (stalled) {  // the late call finds its peers gone: it must return too, not hang
    const spcclResult_t late =
        spcclSparseAllReduce(g.data(), out.data(), 4096, spcclFloat32, spcclSum, st, comm, nullptr);
    EXPECT_TRUE(late == spcclSuccess || late == spcclTimeout) << spcclGetErrorString(late);
  }
  EXPECT_EQ(spcclCommAbort(comm), spcclSuccess);  // states still open: freed with the last one
  EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
  MPI_Barrier(MPI_COMM_WORLD);
}

// Without SPCCL_CHECK, ranks whose states differ in what sizes the messages (count, type,
// method, density, block size, dense switch) would hand MPI mismatched collectives, which
// ended the job (MPI_ERRORS_ARE_FATAL) or corrupted memory inside MPI. The first collective
// on a state compares the states, so every rank gets spcclInvalidUsage and a sentence.
// The Top-k family forms g + e in recvbuff and writes the residual only once its last
// exchange succeeded: a call that times out after its selection leaves the residual (not
// zero: one step ran) and the step as they were. In place, the gradient buffer then holds
// g + e, as README (Reliability) says.
TEST(Timeout, TopKFamilyCallThatFailsAfterSelectingLeavesTheResidual) {
  if (!envSet("SPCCL_TIMEOUT_MS")) GTEST_SKIP() << "needs SPCCL_TIMEOUT_MS (ctest entry mpi_timeout_np3)";
  if (world().nranks < 2) GTEST_SKIP() << "needs two ranks or more";
  const double timeout = atof(getenv("SPCCL_TIMEOUT_MS")) * 1e-3;
  const size_t n = 4096;
  for (int method : {spcclMethodTopK, spcclMethodGTopK, spcclMethodGaussianK}) {
    spcclComm_t comm;
    ASSERT_EQ(spcclCommInitMPI(&comm, MPI_COMM_WORLD), spcclSuccess);
    spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
    cfg.method = method;
    cfg.density = 0.05;
    cfg.feedback = spcclFeedbackEF;
    spcclState_t st;
    ASSERT_EQ(spcclStateCreate(&st, comm, &cfg, n, spcclFloat32), spcclSuccess);
    std::vector<float> g(n), out(n);
    for (size_t i = 0; i < n; ++i) g[i] = std::sin(0.37f * float(i) + float(world().rank));
    ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, spcclFloat32, spcclSum, st, comm, nullptr), spcclSuccess);
    const bool stalled = world().rank == world().nranks - 1;
    if (stalled) {
      usleep(useconds_t((timeout + 1.5) * 1e6));
      const spcclResult_t late = spcclSparseAllReduce(g.data(), g.data(), n, spcclFloat32, spcclSum, st, comm, nullptr);
      EXPECT_TRUE(late == spcclSuccess || late == spcclTimeout) << spcclGetErrorString(late);
    } else {
      float* residual;
      spcclStateGetResidual(st, reinterpret_cast<void**>(&residual));
      const std::vector<float> before(residual, residual + n);
      EXPECT_GT(n - std::count(before.begin(), before.end(), 0.0f), n / 2) << "the residual should hold the unsent";
      EXPECT_EQ(spcclSparseAllReduce(g.data(), g.data(), n, spcclFloat32, spcclSum, st, comm, nullptr), spcclTimeout);
      EXPECT_TRUE(std::vector<float>(residual, residual + n) == before)
          << spcclMethodName(method) << ": a call that failed after its selection changed the residual";
      unsigned long long step = 0;
      EXPECT_EQ(spcclStateGetStep(st, &step), spcclSuccess);
      EXPECT_EQ(step, 1u);
    }
    EXPECT_EQ(spcclCommAbort(comm), spcclSuccess);
    EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

TEST(StateAgreement, RanksWhoseStatesDifferAllGetAnError) {
  if (world().nranks < 2) GTEST_SKIP() << "needs two ranks or more";
  const bool last = world().rank == world().nranks - 1;
  struct Case {
    const char* field;
    int method;
    double density;
    int blockSize, denseSwitch;
    size_t count;
    spcclDataType_t datatype;
    int hierarchical;
  };
  const Case cases[] = {
      {"count", spcclMethodDense, 1, 16, 1, last ? 500u : 1000u, spcclFloat32},
      {"datatype", spcclMethodDense, 1, 16, 1, 1000, last ? spcclFloat64 : spcclFloat32},
      {"method", last ? spcclMethodTopK : spcclMethodRandomBlock, 0.1, 16, 1, 1000, spcclFloat32},
      {"density", spcclMethodRandomBlock, last ? 0.5 : 0.1, 16, 1, 1000, spcclFloat32},
      {"blockSize", spcclMethodRandomBlock, 0.1, last ? 32 : 16, 1, 1000, spcclFloat32},
      {"density", spcclMethodGTopK, last ? 0.05 : 0.01, 16, 1, 1000, spcclFloat32},
      {"denseSwitch", spcclMethodTopK, 0.9, 16, last ? 0 : 1, 1000, spcclFloat32},
      // Hierarchical mode changes every message (in-host stages, then shards across hosts).
      {"hierarchical", spcclMethodTopK, 0.1, 16, 1, 1000, spcclFloat32, last ? 1 : 0},
  };
  for (const Case& c : cases) {
    spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
    cfg.method = c.method;
    cfg.density = c.density;
    cfg.blockSize = c.blockSize;
    cfg.denseSwitch = c.denseSwitch;
    cfg.hierarchical = c.hierarchical;
    spcclState_t st;
    ASSERT_EQ(spcclStateCreate(&st, world().comm, &cfg, c.count, c.datatype), spcclSuccess) << spcclGetLastError(nullptr);
    std::vector<double> g(c.count, 1.0), out(c.count);
    EXPECT_EQ(spcclSparseAllReduce(g.data(), out.data(), c.count, c.datatype, spcclSum, st, world().comm, nullptr),
              spcclInvalidUsage)
        << c.field;
    const std::string msg = spcclGetLastError(world().comm);
    EXPECT_NE(msg.find("ranks disagree ("), std::string::npos) << msg;  // SPCCL_CHECK=1 finds it first
    EXPECT_NE(msg.find(c.field), std::string::npos) << msg;
    spcclStateDestroy(st);
  }
  // The comm is still usable: a disagreement is refused before anything moves.
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  spcclState_t st;
  ASSERT_EQ(spcclStateCreate(&st, world().comm, &cfg, 100, spcclFloat32), spcclSuccess);
  std::vector<float> g(100, 1.0f);
  EXPECT_EQ(spcclSparseAllReduce(g.data(), g.data(), 100, spcclFloat32, spcclSum, st, world().comm, nullptr),
            spcclSuccess);
  spcclStateDestroy(st);
}

// MPI reports a peer's mismatched message through MPI_COMM_WORLD's handler (fatal by default);
// spccl turns it into a code on the rank that sees it, and the job goes on.
TEST(TimeoutMpiError, MismatchedBroadcastReturnsAnErrorInsteadOfEndingTheJob) {
  if (!envSet("SPCCL_TIMEOUT_MS")) GTEST_SKIP() << "needs SPCCL_TIMEOUT_MS (ctest entry mpi_timeout_np3)";
  if (world().nranks < 2) GTEST_SKIP() << "needs two ranks or more";
  spcclComm_t comm;
  ASSERT_EQ(spcclCommInitMPI(&comm, MPI_COMM_WORLD), spcclSuccess);
  std::vector<float> buf(1000, 1.0f);
  const size_t count = world().rank == 0 ? 1000 : 10;  // the root sends more than the others take
  const spcclResult_t res = spcclBroadcast(buf.data(), buf.data(), count, spcclFloat32, 0, comm, nullptr);
  if (world().rank == 0) EXPECT_TRUE(res == spcclSuccess || res == spcclTimeout) << spcclGetErrorString(res);
  else EXPECT_EQ(res, spcclSystemError) << spcclGetLastError(comm);
  EXPECT_EQ(spcclCommAbort(comm), spcclSuccess);
  MPI_Barrier(MPI_COMM_WORLD);  // still alive, every rank
}

// After spcclTimeout the abandoned MPI operation completes when the late peer arrives; with
// SPCCL_TIMEOUT_MS it runs on the transport's staging memory, so the caller's buffers (freed
// or reused by then) are never written.
TEST(Timeout, AbandonedOperationNeverWritesTheCallersBuffers) {
  if (!envSet("SPCCL_TIMEOUT_MS")) GTEST_SKIP() << "needs SPCCL_TIMEOUT_MS (ctest entry mpi_timeout_np3)";
  if (world().nranks < 2) GTEST_SKIP() << "needs two ranks or more";
  const double timeout = atof(getenv("SPCCL_TIMEOUT_MS")) * 1e-3;
  const bool stalled = world().rank == world().nranks - 1;
  constexpr size_t n = 4096;
  for (int useState = 0; useState < 2; ++useState) {  // spcclAllReduce, then a dense-method state
    spcclComm_t comm;
    ASSERT_EQ(spcclCommInitMPI(&comm, MPI_COMM_WORLD), spcclSuccess);
    spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
    cfg.method = spcclMethodDense;
    spcclState_t st;
    ASSERT_EQ(spcclStateCreate(&st, comm, &cfg, n, spcclFloat32), spcclSuccess);
    if (useState) {  // the first collective on a state compares the states: done here, together
      std::vector<float> warm(n, 0.0f);
      ASSERT_EQ(spcclSparseAllReduce(warm.data(), warm.data(), n, spcclFloat32, spcclSum, st, comm, nullptr),
                spcclSuccess);
    }
    std::vector<float> send(n, 1.0f), recv(n, -7.0f);
    auto call = [&] {
      return useState ? spcclSparseAllReduce(send.data(), recv.data(), n, spcclFloat32, spcclSum, st, comm, nullptr)
                      : spcclAllReduce(send.data(), recv.data(), n, spcclFloat32, spcclSum, comm, nullptr);
    };
    if (stalled) {
      usleep(useconds_t((timeout + 1.0) * 1e6));
      const spcclResult_t late = call();  // completes the peers' abandoned operations
      EXPECT_TRUE(late == spcclSuccess || late == spcclTimeout) << spcclGetErrorString(late);
    } else {
      EXPECT_EQ(call(), spcclTimeout);
      // What a caller does after a timeout: the buffer is reused for something else.
      std::fill(recv.begin(), recv.end(), 42.0f);
    }
    MPI_Barrier(MPI_COMM_WORLD);  // the late peer has joined; MPI progresses the old operation
    if (!stalled)
      EXPECT_EQ(std::count(recv.begin(), recv.end(), 42.0f), (long)n) << "the abandoned operation wrote recvbuff";
    EXPECT_EQ(spcclCommAbort(comm), spcclSuccess);
    EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
  }
}

// Two threads on one comm: the second call is refused while the first is in flight, instead
// of the two interleaving their MPI traffic (which ended the job).
// The non-finite policy across ranks: one NaN, one Inf and an fp16 Sum that overflows on
// one rank at step 0, then finite data: later outputs are finite on every rank and no rank's
// feedback memory keeps a non-finite value (1-bit: worker and server residual, and no
// NaN scale reaches a peer).
TEST(NonFiniteAcrossRanks, OneBadStepDoesNotPoisonLaterSteps) {
  const World& w = world();
  const size_t n = 1500;
  for (int method : {spcclMethodRandomBlock, spcclMethodTopK, spcclMethodGaussianK, spcclMethodOneBit}) {
    for (spcclDataType_t type : {spcclFloat32, spcclFloat16}) {
      spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
      cfg.method = method;
      cfg.density = 0.05;
      cfg.blockSize = 16;
      cfg.feedback = spcclFeedbackEF;
      spcclState_t st;
      ASSERT_EQ(spcclStateCreate(&st, w.comm, &cfg, n, type), spcclSuccess);
      size_t feedback = 0;
      spcclStateGetResidualCount(st, &feedback);
      size_t badOut = 0, badFeedback = 0;
      for (unsigned long long step = 0; step < 20; ++step) {
        std::vector<float> g = inputs<float>(w.rank, step, n);
        if (step == 0 && w.rank == 0) {
          g[3] = NAN;
          g[700] = INFINITY;
          for (size_t i = 900; i < 1000; ++i) g[i] = 60000.0f;  // fp16: the sum over ranks overflows
        }
        std::vector<char> in(n * 4), out(n * 4);
        for (size_t i = 0; i < n; ++i) {
          if (type == spcclFloat32) reinterpret_cast<float*>(in.data())[i] = g[i];
          else reinterpret_cast<spccl::half_t*>(in.data())[i] = spccl::fromAcc<spccl::half_t>(g[i]);
        }
        ASSERT_EQ(spcclSparseAllReduce(in.data(), out.data(), n, type, spcclSum, st, w.comm, nullptr), spcclSuccess);
        void* e = nullptr;
        spcclStateGetResidual(st, &e);
        for (size_t i = 0; i < feedback; ++i) {
          const float v = type == spcclFloat32 ? static_cast<float*>(e)[i]
                                               : spccl::toAcc(static_cast<spccl::half_t*>(e)[i]);
          badFeedback += !std::isfinite(v);
        }
        for (size_t i = 0; step > 0 && i < n; ++i) {
          const float v = type == spcclFloat32 ? reinterpret_cast<float*>(out.data())[i]
                                               : spccl::toAcc(reinterpret_cast<spccl::half_t*>(out.data())[i]);
          badOut += !std::isfinite(v);
        }
      }
      EXPECT_EQ(badFeedback, 0u) << "method " << method << " type " << (int)type;
      EXPECT_EQ(badOut, 0u) << "method " << method << " type " << (int)type;
      spcclStateDestroy(st);
    }
  }
}

TEST(Threads, SecondThreadOnABusyCommIsRefused) {
  if (world().nranks < 2) GTEST_SKIP() << "needs two ranks or more";
  spcclComm_t comm;
  ASSERT_EQ(spcclCommInitMPI(&comm, MPI_COMM_WORLD), spcclSuccess);
  std::vector<float> a(1000, 1.0f), b(1000, 1.0f);
  if (world().rank == 0) {
    std::atomic<bool> started{false};
    spcclResult_t first = spcclInternalError;
    std::thread worker([&] {
      started = true;
      first = spcclAllReduce(a.data(), a.data(), a.size(), spcclFloat32, spcclSum, comm, nullptr);
    });
    while (!started) std::this_thread::yield();
    usleep(200000);  // the peers join only after 0.5 s: the worker is still waiting for them
    EXPECT_EQ(spcclAllReduce(b.data(), b.data(), b.size(), spcclFloat32, spcclSum, comm, nullptr), spcclInvalidUsage);
    EXPECT_NE(std::string(spcclGetLastError(comm)).find("is in use by another thread"), std::string::npos)
        << spcclGetLastError(comm);
    worker.join();
    EXPECT_EQ(first, spcclSuccess) << spcclGetLastError(comm);
  } else {
    usleep(500000);
    EXPECT_EQ(spcclAllReduce(a.data(), a.data(), a.size(), spcclFloat32, spcclSum, comm, nullptr), spcclSuccess);
  }
  EXPECT_EQ(spcclCommDestroy(comm), spcclSuccess);
}

// SPCCL_DEBUG_FILE is user text, not a printf format: "%s" or "%x" in it must neither crash
// spcclCommInitMPI (which ran in main) nor leak stack values into the name; only %d (pid) and
// %h (host) are expanded.
TEST(DebugFile, NameIsExpandedByHandOnly) {
  const char* pattern = getenv("SPCCL_DEBUG_FILE");
  if (!pattern || !*pattern) GTEST_SKIP() << "needs SPCCL_DEBUG_FILE (ctest entry mpi_debug_file_np2)";
  char host[256] = "";
  gethostname(host, sizeof(host) - 1);
  std::string expected;
  for (const char* p = pattern; *p; ++p) {
    if (p[0] == '%' && p[1] == 'd') expected += std::to_string(getpid()), ++p;
    else if (p[0] == '%' && p[1] == 'h') expected += host, ++p;
    else expected += *p;
  }
  spcclComm_t comm;  // one more comm, so this test writes a line of its own
  ASSERT_EQ(spcclCommInitMPI(&comm, MPI_COMM_WORLD), spcclSuccess) << spcclGetLastError(nullptr);
  EXPECT_EQ(spcclCommDestroy(comm), spcclSuccess);
  FILE* f = fopen(expected.c_str(), "r");
  ASSERT_NE(f, nullptr) << "no log file " << expected;
  char line[512] = "";
  const bool read = fgets(line, sizeof(line), f) != nullptr;
  fclose(f);
  EXPECT_TRUE(read);
  EXPECT_NE(std::string(line).find("SPCCL"), std::string::npos) << line;
  remove(expected.c_str());
}

}  // namespace
}  // namespace spccl_test
