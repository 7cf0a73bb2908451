// SPDX-License-Identifier: Apache-2.0
//
// config.autoSelect across ranks: the calibration runs the method and dense in turn, then every
// rank takes the same decision; whatever each call runs, error feedback stays exact
// (c + e_new == g + e_old, and the output is the sum of every rank's c), and a dense call
// sends g + e and empties the residual.

#include <vector>

#include "autoselect.h"
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

}  // namespace
}  // namespace spccl_test
