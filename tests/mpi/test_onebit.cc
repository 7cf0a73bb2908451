// SPDX-License-Identifier: Apache-2.0
//
// The 1-bit method through the public API, against the rule written out here (docs/DESIGN.md,
// "1-bit"): conservation at the worker level (spcclCompress: c + e_new == g + e_old up to
// the one rounding of e_new), and at the server level: the collective's output over several
// steps equals a server that keeps e_s = (m + e_s) - c_s itself, fed with every rank's
// worker contribution.

#include <float.h>
#include <math.h>

#include <vector>

#include "common/onebit_reference.h"
#include "gtest/gtest.h"
#include "mpi_test.h"

using namespace spccl_test;

namespace {

// acc = x + e (float), then c = +-mean|acc| per chunk of len (the scale summed as DESIGN.md
// says, tests/common/onebit_reference.h); returns c, leaves e = acc - c.
std::vector<float> signCompressRule(const std::vector<float>& x, std::vector<float>* e, size_t len) {
  const size_t n = x.size();
  std::vector<float> acc(n), c(n);
  for (size_t i = 0; i < n; ++i) acc[i] = x[i] + (*e)[i];
  for (size_t b = 0; b < n; b += len) referenceSignCompress(acc, b, std::min(n, b + len), spcclFloat32, &c);
  for (size_t i = 0; i < n; ++i) (*e)[i] = acc[i] - c[i];
  return c;
}

spcclConfig_t oneBitConfig() {
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = spcclMethodOneBit;
  cfg.feedback = spcclFeedbackEF;
  return cfg;
}

std::vector<float> residualOf(spcclState_t st, size_t n) {
  float* e = nullptr;
  spcclStateGetResidual(st, reinterpret_cast<void**>(&e));
  return std::vector<float>(e, e + n);
}

TEST(OneBit, WorkerConservation) {
  const World& w = world();
  const size_t n = 1001;
  spcclConfig_t cfg = oneBitConfig();
  spcclState_t st;
  ASSERT_EQ(spcclStateCreate(&st, w.comm, &cfg, n, spcclFloat32), spcclSuccess);
  for (unsigned long long step = 0; step < 4; ++step) {
    const std::vector<float> g = inputs<float>(w.rank, step, n), eOld = residualOf(st, n);
    std::vector<float> c(n);
    size_t nvalues = 0;
    unsigned long long used = 0;
    ASSERT_EQ(spcclCompress(g.data(), c.data(), nullptr, &nvalues, &used, st, nullptr), spcclSuccess);
    ASSERT_EQ(nvalues, n);
    const std::vector<float> eNew = residualOf(st, n);
    size_t broken = 0;
    for (size_t i = 0; i < n; ++i) {
      const double acc = (double)(g[i] + eOld[i]);
      broken += fabs((double)c[i] + (double)eNew[i] - acc) > fabs((double)eNew[i]) * FLT_EPSILON;
    }
    EXPECT_EQ(broken, 0u) << "step " << step;
  }
  spcclStateDestroy(st);
}

TEST(OneBit, ServerResidualCarriesWhatTheServerDidNotSend) {
  const World& w = world();
  const size_t n = 1001, len = (n + w.nranks - 1) / w.nranks;
  spcclConfig_t cfg = oneBitConfig();
  spcclState_t collective, worker;
  ASSERT_EQ(spcclStateCreate(&collective, w.comm, &cfg, n, spcclFloat32), spcclSuccess);
  ASSERT_EQ(spcclStateCreate(&worker, w.comm, &cfg, n, spcclFloat32), spcclSuccess);
  std::vector<float> serverResidual(n, 0.0f);  // every chunk's, as its owner keeps it
  for (unsigned long long step = 0; step < 4; ++step) {
    const std::vector<float> g = inputs<float>(w.rank, step, n);
    std::vector<float> out(n), c(n), all(n * w.nranks);
    ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, spcclFloat32, spcclAvg, collective, w.comm, nullptr),
              spcclSuccess);
    size_t nvalues = 0;
    unsigned long long used = 0;
    ASSERT_EQ(spcclCompress(g.data(), c.data(), nullptr, &nvalues, &used, worker, nullptr), spcclSuccess);
    MPI_Allgather(c.data(), (int)n, MPI_FLOAT, all.data(), (int)n, MPI_FLOAT, MPI_COMM_WORLD);
    std::vector<float> mean(n);
    for (size_t i = 0; i < n; ++i) {
      float sum = 0;
      for (int r = 0; r < w.nranks; ++r) sum += all[r * n + i];
      mean[i] = sum * (float)(1.0 / w.nranks);
    }
    const std::vector<float> want = signCompressRule(mean, &serverResidual, len);
    size_t wrong = 0;
    for (size_t i = 0; i < n; ++i) wrong += out[i] != want[i];
    EXPECT_EQ(wrong, 0u) << "step " << step;
    EXPECT_TRUE(sameResidual(collective, worker, n * sizeof(float))) << "step " << step;
  }
  spcclStateDestroy(collective);
  spcclStateDestroy(worker);
}

// A checkpoint of the whole feedback memory (worker and server residual, exactly
// spcclStateGetResidualCount elements) resumes bit for bit: a restored state's outputs
// equal the uninterrupted state's, in every type.
TEST(OneBit, RestoredRunIsBitForBit) {
  const World& w = world();
  const size_t n = 3000, len = (n + w.nranks - 1) / w.nranks;
  const spcclConfig_t cfg = oneBitConfig();
  for (spcclDataType_t type : allTypes) {
    const size_t elem = type == spcclFloat64 ? 8 : type == spcclFloat32 ? 4 : 2;
    spcclState_t straight, resumed;
    ASSERT_EQ(spcclStateCreate(&straight, w.comm, &cfg, n, type), spcclSuccess);
    ASSERT_EQ(spcclStateCreate(&resumed, w.comm, &cfg, n, type), spcclSuccess);
    size_t feedback = 0;
    ASSERT_EQ(spcclStateGetResidualCount(straight, &feedback), spcclSuccess);
    ASSERT_EQ(feedback, n + len);
    std::vector<char> g(n * elem), out(n * elem), again(n * elem);
    auto gradient = [&](unsigned long long step) {
      const std::vector<float> v = inputs<float>(w.rank, step, n);
      for (size_t i = 0; i < n; ++i) {
        const float x = v[i] * (1.0f + 0.37f * (float)(step % 3));  // scales that do not cancel
        if (type == spcclFloat32) reinterpret_cast<float*>(g.data())[i] = x;
        else if (type == spcclFloat64) reinterpret_cast<double*>(g.data())[i] = x;
        else if (type == spcclFloat16) reinterpret_cast<spccl::half_t*>(g.data())[i] = spccl::fromAcc<spccl::half_t>(x);
        else reinterpret_cast<spccl::bfloat16_t*>(g.data())[i] = spccl::fromAcc<spccl::bfloat16_t>(x);
      }
    };
    for (unsigned long long step = 0; step < 3; ++step) {
      gradient(step);
      ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, type, spcclAvg, straight, w.comm, nullptr), spcclSuccess);
    }
    // The checkpoint: a copy of the feedback memory and the step, restored into a fresh state.
    void* memory = nullptr;
    ASSERT_EQ(spcclStateGetResidual(straight, &memory), spcclSuccess);
    const std::vector<char> saved(static_cast<char*>(memory), static_cast<char*>(memory) + feedback * elem);
    EXPECT_EQ(spcclStateSetResidual(resumed, saved.data(), n, type, nullptr), spcclInvalidUsage)
        << "a restore of the worker residual alone must be refused";
    ASSERT_EQ(spcclStateSetResidual(resumed, saved.data(), feedback, type, nullptr), spcclSuccess);
    ASSERT_EQ(spcclStateSetStep(resumed, 3), spcclSuccess);
    size_t differ = 0;
    for (unsigned long long step = 3; step < 8; ++step) {
      gradient(step);
      ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, type, spcclAvg, straight, w.comm, nullptr), spcclSuccess);
      ASSERT_EQ(spcclSparseAllReduce(g.data(), again.data(), n, type, spcclAvg, resumed, w.comm, nullptr), spcclSuccess);
      differ += memcmp(out.data(), again.data(), out.size()) != 0;
    }
    EXPECT_EQ(differ, 0u) << "datatype " << (int)type;
    EXPECT_TRUE(sameResidual(straight, resumed, feedback * elem)) << "datatype " << (int)type;
    spcclStateDestroy(straight);
    spcclStateDestroy(resumed);
  }
}

// Feedback NONE keeps no residual at either level: every call is the first call.
TEST(OneBit, NoFeedbackDropsBothResiduals) {
  const World& w = world();
  const size_t n = 777;
  spcclConfig_t cfg = oneBitConfig();
  cfg.feedback = spcclFeedbackNone;
  spcclState_t st;
  ASSERT_EQ(spcclStateCreate(&st, w.comm, &cfg, n, spcclFloat32), spcclSuccess);
  const std::vector<float> g = inputs<float>(w.rank, 3, n);
  std::vector<float> first(n), again(n);
  ASSERT_EQ(spcclSparseAllReduce(g.data(), first.data(), n, spcclFloat32, spcclSum, st, w.comm, nullptr), spcclSuccess);
  ASSERT_EQ(spcclSparseAllReduce(g.data(), again.data(), n, spcclFloat32, spcclSum, st, w.comm, nullptr), spcclSuccess);
  EXPECT_EQ(first, again);
  EXPECT_EQ(residualOf(st, n), std::vector<float>(n, 0.0f));
  spcclStateDestroy(st);
}

// Wire: (P-1) messages in the all-to-all and (P-1) in the allgather, one scale and
// ceil(len/32) words each, about 1/16 of a dense fp32 allreduce's per-rank bytes.
TEST(OneBit, WireIsTwoBitsPerElement) {
  const World& w = world();
  const size_t n = 1 << 16, len = (n + w.nranks - 1) / w.nranks;
  spcclConfig_t cfg = oneBitConfig();
  spcclState_t st;
  ASSERT_EQ(spcclStateCreate(&st, w.comm, &cfg, n, spcclFloat32), spcclSuccess);
  spcclStateInfo_t info = SPCCL_STATE_INFO_INITIALIZER;
  ASSERT_EQ(spcclStateGetInfo(st, &info), spcclSuccess);
  const size_t message = (8 + 4 * ((len + 31) / 32) + 7) / 8 * 8;
  EXPECT_EQ(info.wireBytes, 2 * (size_t)(w.nranks - 1) * message);
  EXPECT_EQ(info.selected, n);
  EXPECT_EQ(info.method, spcclMethodOneBit);
  if (w.nranks > 1) EXPECT_LE(info.wireBytes * 16, info.denseWireBytes * 11 / 10);
  spcclStateDestroy(st);
}

}  // namespace
