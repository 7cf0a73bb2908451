// SPDX-License-Identifier: Apache-2.0
//
// Bad input returns its code and message on every rank, without a hang, and leaves the
// residual and the step exactly as they were.

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

#include "mpi_test.h"

namespace spccl_test {
namespace {

constexpr size_t kCount = 1000;

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg_ = SPCCL_CONFIG_INITIALIZER;
    cfg_.density = 0.1;
    cfg_.blockSize = 16;
    configure(&cfg_);
    ASSERT_EQ(spcclStateCreate(&st_, world().comm, &cfg_, kCount, spcclFloat32), spcclSuccess);
    // One good step, so the residual is not trivially zero.
    std::vector<float> g = inputs<float>(world().rank, 0, kCount), out(kCount);
    ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), kCount, spcclFloat32, spcclSum, st_, world().comm, nullptr),
              spcclSuccess);
    snapshot_ = residual();
  }
  void TearDown() override { spcclStateDestroy(st_); }
  // A fixture for another method changes the config here.
  virtual void configure(spcclConfig_t*) {}

  std::vector<float> residual() {
    float* r = nullptr;
    spcclStateGetResidual(st_, reinterpret_cast<void**>(&r));
    return std::vector<float>(r, r + kCount);
  }
  // The call returns `code`, its message contains `text`, and the state did not move.
  void expectRejected(const std::function<spcclResult_t()>& call, spcclResult_t code, const std::string& text) {
    EXPECT_EQ(call(), code);
    EXPECT_NE(std::string(spcclGetLastError(world().comm)).find(text), std::string::npos)
        << "message was: " << spcclGetLastError(world().comm);
    unsigned long long step = 0;
    spcclStateGetStep(st_, &step);
    EXPECT_EQ(step, 1u);
    EXPECT_TRUE(residual() == snapshot_);
  }

  spcclConfig_t cfg_;
  spcclState_t st_ = nullptr;
  std::vector<float> snapshot_;
  std::vector<float> buf_ = std::vector<float>(kCount, 1.0f), out_ = std::vector<float>(kCount);
};

TEST_F(BadInput, SparseAllReduceArguments) {
  spcclComm_t comm = world().comm;
  auto call = [&](const void* s, void* r, size_t n, int dt, int op, spcclState_t st, spcclComm_t c) {
    return [=] { return spcclSparseAllReduce(s, r, n, (spcclDataType_t)dt, (spcclRedOp_t)op, st, c, nullptr); };
  };
  float* b = buf_.data();
  float* o = out_.data();
  expectRejected(call(nullptr, o, kCount, spcclFloat32, spcclSum, st_, comm), spcclInvalidArgument,
                 "spcclSparseAllReduce : sendbuff argument is NULL");
  expectRejected(call(b, nullptr, kCount, spcclFloat32, spcclSum, st_, comm), spcclInvalidArgument,
                 "recvbuff argument is NULL");
  expectRejected(call(b, o, kCount, spcclFloat32, spcclSum, st_, nullptr), spcclInvalidArgument,
                 "comm argument is NULL");
  expectRejected(call(b, o, kCount, spcclFloat32, spcclSum, nullptr, comm), spcclInvalidArgument,
                 "state argument is NULL");
  expectRejected(call(b, o, kCount - 1, spcclFloat32, spcclSum, st_, comm), spcclInvalidUsage,
                 "count 999 differs from the state's count 1000");
  expectRejected(call(b, o, kCount, spcclFloat64, spcclSum, st_, comm), spcclInvalidUsage,
                 "datatype double differs from the state's datatype float");
  expectRejected(call(b, o, kCount, 3, spcclSum, st_, comm), spcclInvalidArgument, "invalid datatype 3");
  expectRejected(call(b, o, kCount, 99, spcclSum, st_, comm), spcclInvalidArgument, "invalid datatype 99");
  expectRejected(call(b, o, kCount, spcclFloat32, 1, st_, comm), spcclInvalidArgument, "invalid reduction op 1");
  expectRejected(call(b, o, kCount, spcclFloat32, spcclSum, reinterpret_cast<spcclState_t>(b), comm),
                 spcclInvalidArgument, "is not a live spccl state");
  // A state used with another comm.
  spcclComm_t other = nullptr;
  ASSERT_EQ(spcclCommInitMPI(&other, MPI_COMM_WORLD), spcclSuccess);
  expectRejected(call(b, o, kCount, spcclFloat32, spcclSum, st_, other), spcclInvalidUsage, "was created on comm");
  EXPECT_EQ(spcclCommDestroy(other), spcclSuccess);
  // Partly overlapping buffers, or a buffer inside the state's own memory (its residual).
  expectRejected(call(b, b + 3, kCount, spcclFloat32, spcclSum, st_, comm), spcclInvalidArgument,
                 "overlap without being equal");
  float* residual = nullptr;
  spcclStateGetResidual(st_, reinterpret_cast<void**>(&residual));
  expectRejected(call(b, residual, kCount, spcclFloat32, spcclSum, st_, comm), spcclInvalidArgument,
                 "lies in the state's own memory");
  // count 0 is a successful no-op that does not advance the step.
  expectRejected(call(nullptr, nullptr, 0, spcclFloat32, spcclSum, st_, comm), spcclSuccess, "");
}

TEST_F(BadInput, StateCreateConfig) {
  spcclComm_t comm = world().comm;
  auto create = [&](spcclConfig_t c, size_t n = kCount, int dt = spcclFloat32) {
    return [=]() mutable {
      spcclState_t s = reinterpret_cast<spcclState_t>(0x1);
      spcclResult_t res = spcclStateCreate(&s, comm, &c, n, (spcclDataType_t)dt);
      EXPECT_EQ(s, res == spcclSuccess ? s : nullptr);
      if (res == spcclSuccess) spcclStateDestroy(s);
      return res;
    };
  };
  auto with = [](auto field, auto value) {
    spcclConfig_t c = SPCCL_CONFIG_INITIALIZER;
    c.*field = value;
    return c;
  };
  expectRejected(create(with(&spcclConfig_t::density, 1.5)), spcclInvalidArgument,
                 "spcclStateCreate : density 1.5 is outside (0, 1]");
  expectRejected(create(with(&spcclConfig_t::density, 0.0)), spcclInvalidArgument, "density 0 is outside (0, 1]");
  expectRejected(create(with(&spcclConfig_t::density, -0.5)), spcclInvalidArgument, "is outside (0, 1]");
  expectRejected(create(with(&spcclConfig_t::density, (double)NAN)), spcclInvalidArgument, "is outside (0, 1]");
  expectRejected(create(with(&spcclConfig_t::blockSize, 0)), spcclInvalidArgument, "block size 0 is not >= 1");
  expectRejected(create(with(&spcclConfig_t::blockSize, -4)), spcclInvalidArgument, "block size -4 is not >= 1");
  expectRejected(create(with(&spcclConfig_t::method, 17)), spcclInvalidArgument, "invalid method 17");
  expectRejected(create(with(&spcclConfig_t::blockPattern, 2)), spcclInvalidArgument, "invalid block pattern 2");
  expectRejected(create(with(&spcclConfig_t::feedback, 5)), spcclInvalidArgument, "invalid feedback 5");
  spcclConfig_t raw;
  memset(&raw, 0, sizeof(raw));
  expectRejected(create(raw), spcclInvalidArgument, "was not initialised with SPCCL_CONFIG_INITIALIZER");
  expectRejected(create(cfg_, kCount, 2), spcclInvalidArgument, "invalid datatype 2");
  expectRejected(create(cfg_, SIZE_MAX), spcclInvalidArgument, "is too large");
  expectRejected(create(cfg_, SIZE_MAX / 64), spcclSystemError, "failed to allocate");
  expectRejected([&] { return spcclStateCreate(nullptr, comm, &cfg_, kCount, spcclFloat32); }, spcclInvalidArgument,
                 "state argument is NULL");
  expectRejected(
      [&] {
        spcclState_t s;
        return spcclStateCreate(&s, comm, nullptr, kCount, spcclFloat32);
      },
      spcclInvalidArgument, "config argument is NULL");
}

TEST_F(BadInput, CompressionEntryPoints) {
  size_t n = 0;
  unsigned long long step = 0;
  expectRejected([&] { return spcclCompress(buf_.data(), out_.data(), nullptr, nullptr, &step, st_, nullptr); },
                 spcclInvalidArgument, "spcclCompress : nvalues argument is NULL");
  expectRejected([&] { return spcclCompress(nullptr, out_.data(), nullptr, &n, &step, st_, nullptr); },
                 spcclInvalidArgument, "sendbuff argument is NULL");
  expectRejected([&] { return spcclDecompress(out_.data(), nullptr, 3, 0, 1.0, buf_.data(), st_, nullptr); },
                 spcclInvalidArgument, "nvalues 3 is not the random-block payload size");
  expectRejected([&] { return spcclDecompress(out_.data(), nullptr, 3, 0, 1.0, nullptr, st_, nullptr); },
                 spcclInvalidArgument, "recvbuff argument is NULL");
  size_t blocks[1];
  size_t room = 1;
  expectRejected([&] { return spcclBlockSelection(st_, 0, blocks, &room); }, spcclInvalidArgument,
                 "blocks has room for 1 entries");
  spcclConfig_t dense = SPCCL_CONFIG_INITIALIZER;
  dense.method = spcclMethodDense;
  spcclState_t ds;
  ASSERT_EQ(spcclStateCreate(&ds, world().comm, &dense, 10, spcclFloat32), spcclSuccess);
  expectRejected([&] { return spcclBlockSelection(ds, 0, nullptr, &room); }, spcclInvalidUsage,
                 "the state's method is dense, not randomblock");
  spcclStateDestroy(ds);
  expectRejected([&] { return spcclCommDestroy(world().comm); }, spcclInvalidUsage, "states still use this comm");
}

TEST_F(BadInput, DenseCollectives) {
  spcclComm_t comm = world().comm;
  expectRejected([&] { return spcclBroadcast(buf_.data(), out_.data(), 10, spcclFloat32, world().nranks, comm, nullptr); },
                 spcclInvalidArgument, "invalid root");
  // count 0 is a no-op, but not one that hides a bad root.
  expectRejected([&] { return spcclBroadcast(nullptr, nullptr, 0, spcclFloat32, 99, comm, nullptr); },
                 spcclInvalidArgument, "invalid root 99");
  // In place is the same pointer; a partial overlap would read what it already wrote.
  expectRejected([&] { return spcclAllReduce(buf_.data(), buf_.data() + 1, 10, spcclFloat32, spcclSum, comm, nullptr); },
                 spcclInvalidArgument, "overlap without being equal");
  expectRejected([&] { return spcclAllReduce(buf_.data(), nullptr, 10, spcclFloat32, spcclSum, comm, nullptr); },
                 spcclInvalidArgument, "spcclAllReduce : recvbuff argument is NULL");
  expectRejected([&] { return spcclAllGather(buf_.data(), out_.data(), 10, (spcclDataType_t)0, comm, nullptr); },
                 spcclInvalidArgument, "invalid datatype 0");
  expectRejected([&] { return spcclAllReduce(buf_.data(), out_.data(), SIZE_MAX / 2, spcclFloat32, spcclSum, comm, nullptr); },
                 spcclInvalidArgument, "is too large");
}

// Communicator-level variables: a malformed one fails spcclCommInitMPI on every rank (each
// rank decides alone, before any communication, so nobody hangs) with a sentence naming it.
TEST(BadEnv, MalformedCommVariablesFailCommInit) {
  const struct { const char* name; const char* value; const char* why; } cases[] = {
      {"SPCCL_TIMEOUT_MS", "-1", "SPCCL_TIMEOUT_MS=-1 is out of range; expected a decimal integer in [0, 2147483647]"},
      {"SPCCL_TIMEOUT_MS", "1e3", "SPCCL_TIMEOUT_MS=1e3 is not a decimal integer (trailing characters)"},
      {"SPCCL_TIMEOUT_MS", "1000ms", "SPCCL_TIMEOUT_MS=1000ms is not a decimal integer (trailing characters)"},
      {"SPCCL_TIMEOUT_MS", "abc", "SPCCL_TIMEOUT_MS=abc is not a decimal integer"},
      {"SPCCL_CHECK", "yes", "SPCCL_CHECK=yes is not 0 or 1"},
      {"SPCCL_DEBUG", "LOUD", "SPCCL_DEBUG=LOUD is not one of the accepted values"},
      {"SPCCL_DEBUG_SUBSYS", "INIT,BOGUS", "SPCCL_DEBUG_SUBSYS=INIT,BOGUS names an unknown subsystem \"BOGUS\""},
  };
  for (const auto& c : cases) {
    const char* old = getenv(c.name);
    const std::string saved = old ? old : "";
    setenv(c.name, c.value, 1);
    spcclComm_t comm = reinterpret_cast<spcclComm_t>(0x1);
    EXPECT_EQ(spcclCommInitMPI(&comm, MPI_COMM_WORLD), spcclInvalidArgument) << c.name << "=" << c.value;
    EXPECT_EQ(comm, nullptr);
    const std::string msg = spcclGetLastError(nullptr);
    EXPECT_NE(msg.find(std::string("spcclCommInitMPI : ") + c.why), std::string::npos) << msg;
    if (old) setenv(c.name, saved.c_str(), 1);
    else unsetenv(c.name);
  }
}

// An intercommunicator's collectives combine two groups: refused, not mistaken for one group.
TEST(BadEnv, IntercommunicatorIsRefused) {
  if (world().nranks < 2) GTEST_SKIP() << "needs two ranks or more";
  MPI_Comm half, inter;
  const int color = world().rank % 2;
  MPI_Comm_split(MPI_COMM_WORLD, color, world().rank, &half);
  MPI_Intercomm_create(half, 0, MPI_COMM_WORLD, 1 - color, 77, &inter);
  spcclComm_t comm = reinterpret_cast<spcclComm_t>(0x1);
  EXPECT_EQ(spcclCommInitMPI(&comm, inter), spcclInvalidArgument);
  EXPECT_EQ(comm, nullptr);
  EXPECT_NE(std::string(spcclGetLastError(nullptr)).find("mpiComm is an intercommunicator"), std::string::npos)
      << spcclGetLastError(nullptr);
  MPI_Comm_free(&inter);
  MPI_Comm_free(&half);
}

// The same checks on the top-k family's states (TOPK, GAUSSIANK, GTOPK).
class BadInputTopK : public BadInput, public ::testing::WithParamInterface<int> {
 protected:
  void configure(spcclConfig_t* cfg) override { cfg->method = GetParam(); }
};

TEST_P(BadInputTopK, StateCreate) {
  spcclComm_t comm = world().comm;
  auto create = [&](double density, size_t n) {
    return [=] {
      spcclConfig_t c = cfg_;
      c.density = density;
      spcclState_t s = reinterpret_cast<spcclState_t>(0x1);
      spcclResult_t res = spcclStateCreate(&s, comm, &c, n, spcclFloat32);
      EXPECT_EQ(s, res == spcclSuccess ? s : nullptr);
      if (res == spcclSuccess) spcclStateDestroy(s);
      return res;
    };
  };
  expectRejected(create(1.5, kCount), spcclInvalidArgument, "spcclStateCreate : density 1.5 is outside (0, 1]");
  expectRejected(create(0.0, kCount), spcclInvalidArgument, "density 0 is outside (0, 1]");
  // 32-bit indices: count 2^32 and beyond is refused before anything is allocated.
  expectRejected(create(0.01, size_t(1) << 32), spcclInvalidArgument, "is too large for");
  expectRejected(create(0.01, (size_t(1) << 32) + 5), spcclInvalidArgument, "32-bit indices (count < 2^32)");
}

TEST_P(BadInputTopK, CompressionEntryPoints) {
  size_t n = 0;
  unsigned long long step = 0;
  size_t k = 0;
  ASSERT_EQ(spcclCompressedCount(st_, &k), spcclSuccess);
  EXPECT_EQ(k, 100u);
  std::vector<float> values(k);
  std::vector<uint32_t> indices(k, 0);
  expectRejected([&] { return spcclCompress(buf_.data(), values.data(), nullptr, &n, &step, st_, nullptr); },
                 spcclInvalidArgument, "spcclCompress : indices argument is NULL");
  expectRejected([&] { return spcclDecompress(values.data(), nullptr, 3, 0, 1.0, out_.data(), st_, nullptr); },
                 spcclInvalidArgument, "spcclDecompress : indices argument is NULL");
  // An index outside [0, count) that is not the padding index: refused, recvbuff untouched.
  std::fill(out_.begin(), out_.end(), 5.0f);
  indices[0] = 7;
  indices[1] = SPCCL_PAD_INDEX;
  indices[2] = (uint32_t)kCount;
  expectRejected([&] { return spcclDecompress(values.data(), indices.data(), 3, 0, 1.0, out_.data(), st_, nullptr); },
                 spcclRemoteError, "pair 2 of list 0 has index 1000, outside [0, 1000)");
  EXPECT_EQ(std::count(out_.begin(), out_.end(), 5.0f), (long)kCount);
  // 0 * inf is NaN where the header promises zero: a scale that is not a finite fp32 number
  // (the accumulation type of float) is refused, recvbuff untouched.
  indices[2] = 9;
  for (double scale : {(double)INFINITY, -(double)INFINITY, 1e300}) {
    expectRejected(
        [&] { return spcclDecompress(values.data(), indices.data(), 3, 0, scale, out_.data(), st_, nullptr); },
        spcclInvalidArgument, "is not a finite fp32 number");
    EXPECT_EQ(std::count(out_.begin(), out_.end(), 5.0f), (long)kCount);
  }
  size_t room = 1;
  expectRejected([&] { return spcclBlockSelection(st_, 0, nullptr, &room); }, spcclInvalidUsage,
                 "not randomblock");
}

TEST_P(BadInputTopK, SparseAllReduceArguments) {
  expectRejected([&] {
    return spcclSparseAllReduce(buf_.data(), nullptr, kCount, spcclFloat32, spcclSum, st_, world().comm, nullptr);
  }, spcclInvalidArgument, "recvbuff argument is NULL");
  expectRejected([&] {
    return spcclSparseAllReduce(buf_.data(), out_.data(), kCount, spcclFloat16, spcclSum, st_, world().comm, nullptr);
  }, spcclInvalidUsage, "differs from the state's datatype");
}

INSTANTIATE_TEST_SUITE_P(Methods, BadInputTopK,
                         ::testing::Values(spcclMethodTopK, spcclMethodGaussianK, spcclMethodGTopK));

// A Fortran handle that names no communicator is an error code, not a job abort (the
// caller's MPI_COMM_WORLD handler is MPI_ERRORS_ARE_FATAL here, and stays so).
TEST(CommInitFortran, BadHandleIsAnErrorNotAnAbort) {
  for (MPI_Fint handle : {(MPI_Fint)-1, (MPI_Fint)99999}) {
    spcclComm_t comm = reinterpret_cast<spcclComm_t>(&handle);
    EXPECT_EQ(spcclCommInitMPIFortran(&comm, handle), spcclInvalidArgument) << handle;
    EXPECT_EQ(comm, nullptr);
    EXPECT_NE(std::string(spcclGetLastError(nullptr)).find("is not a valid communicator"), std::string::npos)
        << spcclGetLastError(nullptr);
  }
  MPI_Errhandler handler;
  MPI_Comm_get_errhandler(MPI_COMM_WORLD, &handler);
  EXPECT_TRUE(handler == MPI_ERRORS_ARE_FATAL) << "the caller's handler was not put back";
  MPI_Errhandler_free(&handler);
  spcclComm_t comm = nullptr;
  ASSERT_EQ(spcclCommInitMPIFortran(&comm, MPI_Comm_c2f(MPI_COMM_WORLD)), spcclSuccess) << spcclGetLastError(nullptr);
  EXPECT_EQ(spcclCommDestroy(comm), spcclSuccess);
}

}  // namespace
}  // namespace spccl_test
