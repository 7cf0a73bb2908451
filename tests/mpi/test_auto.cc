// SPDX-License-Identifier: Apache-2.0
//
// config.autoSelect across ranks: the calibration runs the method and dense in turn, then every
// rank takes the same decision; whatever each call runs, error feedback stays exact
// (c + e_new == g + e_old, and the output is the sum of every rank's c), and a dense call
// sends g + e and empties the residual.

#include <string.h>

#include <string>
#include <vector>

#include "autoselect.h"
#include "hosts.h"
#include "mpi_test.h"

namespace spccl_test {
namespace {

spcclStateInfo_t infoOf(spcclState_t st) {
  spcclStateInfo_t info = SPCCL_STATE_INFO_INITIALIZER;
  EXPECT_EQ(spcclStateGetInfo(st, &info), spcclSuccess);
  return info;
}

std::vector<float> residualOf(spcclState_t st, size_t n) {
  void* e = nullptr;
  EXPECT_EQ(spcclStateGetResidual(st, &e), spcclSuccess);
  const float* p = static_cast<const float*>(e);
  return std::vector<float>(p, p + n);
}

void exactAcrossSwitches(int method) {
  World& w = world();
  const size_t n = 4096;
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = method;
  cfg.density = 1.0 / 16;
  cfg.blockSize = 32;
  cfg.feedback = spcclFeedbackEF;
  cfg.autoSelect = 1;
  spcclState_t st = nullptr;
  ASSERT_EQ(spcclStateCreate(&st, w.comm, &cfg, n, spcclFloat32), spcclSuccess) << spcclGetLastError(nullptr);
  const unsigned calibration = spccl::kAutoCalibrationCalls;
  for (unsigned step = 0; step < calibration + 3; ++step) {
    const bool dense = infoOf(st).denseSwitched != 0;
    if (step < calibration) EXPECT_EQ(dense, spccl::autoCalibrationRunsDense(step)) << "calibration call " << step;
    const std::vector<float> g = inputs<float>(w.rank, step, n), before = residualOf(st, n);
    std::vector<float> out(n);
    ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, spcclFloat32, spcclSum, st, w.comm, nullptr),
              spcclSuccess);
    const std::vector<float> after = residualOf(st, n);
    std::vector<float> sent(n);  // c = g + e_old - e_new: whole coordinates, exact
    size_t kept = 0;
    for (size_t i = 0; i < n; ++i) {
      sent[i] = after[i] != 0 ? 0 : g[i] + before[i];
      kept += after[i] != 0;
      if (after[i] != 0) EXPECT_EQ(after[i], g[i] + before[i]) << "call " << step << " element " << i;
    }
    if (dense) EXPECT_EQ(kept, 0u) << "a dense call empties the residual (call " << step << ")";
    std::vector<float> total(n);
    MPI_Allreduce(sent.data(), total.data(), (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    size_t wrong = 0;
    for (size_t i = 0; i < n; ++i) wrong += out[i] != total[i];
    EXPECT_EQ(wrong, 0u) << "call " << step << (dense ? " (dense)" : " (method)");
  }
  // Every rank took the same decision.
  const int mine = infoOf(st).denseSwitched;
  int lo = 0, hi = 0;
  MPI_Allreduce(&mine, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&mine, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_EQ(lo, hi);
  EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
}

TEST(Auto, TopKFeedbackIsExactAcrossSwitches) {
  if (world().nranks < 2) GTEST_SKIP() << "auto needs several ranks";
  exactAcrossSwitches(spcclMethodTopK);
}

TEST(Auto, RandomBlockFeedbackIsExactAcrossSwitches) {
  if (world().nranks < 2) GTEST_SKIP() << "auto needs several ranks";
  exactAcrossSwitches(spcclMethodRandomBlock);
}

// The exact sum over ranks of v (inputs are quarters: every order gives the same bits).
std::vector<float> sumOverRanks(const std::vector<float>& v) {
  std::vector<float> total(v.size());
  MPI_Allreduce(v.data(), total.data(), (int)v.size(), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  return total;
}

size_t wrongSums(const std::vector<float>& out, const std::vector<float>& g, const std::vector<float>& e) {
  std::vector<float> sent(g.size());
  for (size_t i = 0; i < g.size(); ++i) sent[i] = g[i] + e[i];
  const std::vector<float> want = sumOverRanks(sent);
  size_t wrong = 0;
  for (size_t i = 0; i < g.size(); ++i) wrong += out[i] != want[i];
  return wrong;
}

// A dense call skips reading an empty residual only while nothing can have written it: every
// library call that writes it (spcclStateSetResidual, spcclCompress) makes the next dense call
// send g + e, and once a caller holds the residual's address its bytes are read every call.
// Flat, and as the library chooses (hierarchical across hosts: the shards' inner states run
// the dense switch on slices of the residual that the outer state's calls write).
class DenseCalls : public ::testing::TestWithParam<int> {};

TEST_P(DenseCalls, AnEmptyResidualIsTrustedOnlyUntilSomethingWritesIt) {
  World& w = world();
  if (w.nranks < 2) GTEST_SKIP() << "the dense switch needs several ranks";
  const size_t n = 4096;
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = spcclMethodTopK;
  cfg.density = 0.75;  // pairs cost more than the tensor: every collective runs dense
  cfg.feedback = spcclFeedbackEF;
  cfg.denseSwitch = 1;
  cfg.hierarchical = GetParam();
  spcclState_t st = nullptr;
  ASSERT_EQ(spcclStateCreate(&st, w.comm, &cfg, n, spcclFloat32), spcclSuccess) << spcclGetLastError(nullptr);
  ASSERT_EQ(infoOf(st).denseSwitched, 1);
  spcclConfig_t resolved;
  ASSERT_EQ(spcclStateGetConfig(st, &resolved), spcclSuccess);
  // A hierarchical state's residual holds this rank's shard only (zero elsewhere).
  size_t offset = 0, mine = n;
  spccl_perf::Hosts hosts;
  spccl_perf::findHosts(MPI_COMM_WORLD, &hosts);
  if (resolved.hierarchical) hosts.shard(n, &offset, &mine);
  auto onShard = [&](std::vector<float> v) {
    for (size_t i = 0; i < n; ++i)
      if (i < offset || i >= offset + mine) v[i] = 0;
    return v;
  };
  const std::vector<float> zero(n, 0.0f);
  std::vector<float> out(n);
  auto call = [&](unsigned step, const std::vector<float>& e, const char* after) {
    const std::vector<float> g = inputs<float>(w.rank, step, n);
    ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, spcclFloat32, spcclSum, st, w.comm, nullptr),
              spcclSuccess);
    EXPECT_EQ(wrongSums(out, g, e), 0u) << "the dense call after " << after;
  };
  call(0, zero, "creation");
  const std::vector<float> restored = onShard(inputs<float>(w.rank, 7, n));
  if (mine < n) {  // feedback outside the shard would never be sent: refused, nothing changed
    const std::vector<float> full = inputs<float>(w.rank, 7, n);
    EXPECT_EQ(spcclStateSetResidual(st, full.data(), n, spcclFloat32, nullptr), spcclInvalidArgument);
    EXPECT_NE(std::string(spcclGetLastError(nullptr)).find("shard"), std::string::npos) << spcclGetLastError(nullptr);
    call(1, zero, "a refused spcclStateSetResidual");
  }
  ASSERT_EQ(spcclStateSetResidual(st, restored.data(), n, spcclFloat32, nullptr), spcclSuccess);
  call(1, restored, "spcclStateSetResidual");
  call(2, zero, "a dense call");
  if (!resolved.hierarchical) {  // (a hierarchical state on shards has no spcclCompress)
    // spcclCompress keeps what it did not select: e = g - c.
    const std::vector<float> g3 = inputs<float>(w.rank, 3, n);
    size_t capacity = 0, nvalues = 0;
    ASSERT_EQ(spcclCompressedCount(st, &capacity), spcclSuccess);
    std::vector<float> values(capacity);
    std::vector<uint32_t> indices(capacity);
    unsigned long long used = 0;
    ASSERT_EQ(spcclCompress(g3.data(), values.data(), indices.data(), &nvalues, &used, st, nullptr), spcclSuccess);
    std::vector<float> kept = g3;
    for (size_t j = 0; j < nvalues; ++j)
      if (indices[j] != SPCCL_PAD_INDEX) kept[indices[j]] = g3[indices[j]] - values[j];
    // Back to the step at which the residual was last known empty: it is not, any more.
    ASSERT_EQ(spcclStateSetStep(st, used), spcclSuccess);
    call(4, kept, "spcclCompress and spcclStateSetStep back to its step");
  }
  // A caller with the residual's address writes it in place.
  void* e = nullptr;
  ASSERT_EQ(spcclStateGetResidual(st, &e), spcclSuccess);
  call(5, zero, "spcclStateGetResidual");
  const std::vector<float> written = onShard(std::vector<float>(n, 0.5f));
  memcpy(e, written.data(), n * sizeof(float));
  call(6, written, "a write through spcclStateGetResidual's pointer");
  EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
}

INSTANTIATE_TEST_SUITE_P(DenseCallsFlatAndLibrarysChoice, DenseCalls, ::testing::Values(0, SPCCL_CONFIG_UNDEF_INT),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(info.param == 0 ? "Flat" : "LibrarysChoice");
                         });

}  // namespace
}  // namespace spccl_test
