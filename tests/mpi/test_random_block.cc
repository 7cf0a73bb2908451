// SPDX-License-Identifier: Apache-2.0
//
// spcclSparseAllReduce with random blocks against a reference that every rank computes from
// all ranks' deterministic inputs: output and residual after many steps, for both patterns,
// feedback NONE and EF, sum and avg, in-place and out-of-place, all types.

#include <climits>
#include <tuple>

#include "dispatch.h"
#include "mpi_test.h"
#include "select_core.h"

namespace spccl_test {
namespace {

using spccl::toAcc;

struct Params {
  spcclDataType_t datatype;
  int pattern, feedback;
  spcclRedOp_t op;
  bool inPlace;
};

class RandomBlockTest
    : public ::testing::TestWithParam<std::tuple<spcclDataType_t, int, int, spcclRedOp_t, bool>> {};

using spccl::withStorage;

// The reference model of DESIGN.md, Error feedback-4 for all ranks at once: residuals e_r, chosen blocks from
// the shared stream, out = sum_r acc_r on the chosen blocks.
struct Reference {
  size_t n, B;
  uint64_t nb, m;
  int pattern;
  bool ef;
  std::vector<std::vector<double>> residual;  // per rank

  std::vector<double> step(unsigned long long s, int nranks, const spcclConfig_t& cfg) {
    const auto sel = spccl::makeBlockSelection(nb, m, pattern, spccl::selectionKey(cfg.seed, cfg.tensorKey, s));
    std::vector<bool> chosenBlock(nb);
    for (uint64_t b = 0; b < nb; ++b) chosenBlock[b] = spccl::blockSlot(sel, b) != sel.nselected;
    std::vector<double> out(n, 0.0);
    for (int r = 0; r < nranks; ++r) {
      for (size_t i = 0; i < n; ++i) {
        const double acc = inputValue(r, s, i) + (ef ? residual[r][i] : 0.0);
        const bool chosen = chosenBlock[i / B];
        if (chosen) out[i] += acc;
        if (ef) residual[r][i] = chosen ? 0.0 : acc;
      }
    }
    return out;
  }
};

TEST_P(RandomBlockTest, MatchesReferenceOverManySteps) {
  const World& w = world();
  const auto [datatype, pattern, feedback, op, inPlace] = GetParam();
  withStorage(datatype, [&, datatype = datatype, pattern = pattern, feedback = feedback, op = op,
                         inPlace = inPlace](auto tag) {
    using T = decltype(tag);
    using AccT = typename spccl::AccumOf<T>::type;
    for (auto [n, pipeline] : {std::pair<size_t, int>{1, 0}, {1000, 0}, {4099, 0}, {1000, 1}, {300000, 1}}) {
      spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
      cfg.pipeline = pipeline;
      cfg.method = spcclMethodRandomBlock;
      cfg.density = 0.1;
      cfg.blockSize = 64;
      cfg.blockPattern = pattern;
      cfg.feedback = feedback;
      cfg.seed = 2024;
      cfg.tensorKey = n;
      spcclState_t st;
      ASSERT_EQ(spcclStateCreate(&st, w.comm, &cfg, n, datatype), spcclSuccess) << spcclGetLastError(w.comm);
      size_t nselected = 0;
      ASSERT_EQ(spcclBlockSelection(st, 0, nullptr, &nselected), spcclSuccess);
      Reference ref{n, 64, (n + 63) / 64, nselected, pattern, feedback == spcclFeedbackEF,
                    std::vector<std::vector<double>>(w.nranks, std::vector<double>(n, 0.0))};
      for (unsigned long long s = 0; s < 12; ++s) {
        std::vector<T> send = inputs<T>(w.rank, s, n), recv(n, spccl::fromAcc<T>(42.0f));
        T* out = inPlace ? send.data() : recv.data();
        ASSERT_EQ(spcclSparseAllReduce(send.data(), out, n, datatype, op, st, w.comm, nullptr), spcclSuccess)
            << spcclGetLastError(w.comm);
        const std::vector<double> want = ref.step(s, w.nranks, cfg);
        T* residual = nullptr;
        ASSERT_EQ(spcclStateGetResidual(st, reinterpret_cast<void**>(&residual)), spcclSuccess);
        size_t wrongOut = 0, wrongResidual = 0;
        for (size_t i = 0; i < n; ++i) {
          AccT expect = toAcc(spccl::fromAcc<T>((AccT)want[i]));
          if (op == spcclAvg) expect = toAcc(spccl::fromAcc<T>(expect * (AccT(1) / AccT(w.nranks))));
          wrongOut += toAcc(out[i]) != expect;
          wrongResidual += toAcc(residual[i]) != (AccT)ref.residual[w.rank][i];
        }
        ASSERT_EQ(wrongOut, 0u) << "n " << n << " step " << s << " pipeline " << pipeline;
        ASSERT_EQ(wrongResidual, 0u) << "n " << n << " step " << s << " pipeline " << pipeline;
      }
      unsigned long long step = 0;
      ASSERT_EQ(spcclStateGetStep(st, &step), spcclSuccess);
      EXPECT_EQ(step, 12u);
      ASSERT_EQ(spcclStateDestroy(st), spcclSuccess);
    }
  });
}

INSTANTIATE_TEST_SUITE_P(All, RandomBlockTest,
                         ::testing::Combine(::testing::ValuesIn(allTypes), ::testing::Values(0, 1),
                                            ::testing::Values(0, 1), ::testing::Values(spcclSum, spcclAvg),
                                            ::testing::Bool()));

// spcclCompress + an allreduce of the values + spcclDecompress is what a framework that
// communicates itself (Horovod) does; it must equal spcclSparseAllReduce.
TEST(RandomBlock, CompressAllReduceDecompressEqualsSparseAllReduce) {
  const World& w = world();
  const size_t n = 10000;
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = spcclMethodRandomBlock;
  cfg.blockPattern = spcclBlocksScattered;
  cfg.density = 0.05;
  cfg.blockSize = 32;
  spcclState_t a, b;
  ASSERT_EQ(spcclStateCreate(&a, w.comm, &cfg, n, spcclFloat32), spcclSuccess);
  ASSERT_EQ(spcclStateCreate(&b, w.comm, &cfg, n, spcclFloat32), spcclSuccess);
  size_t capacity = 0;
  ASSERT_EQ(spcclCompressedCount(b, &capacity), spcclSuccess);
  for (unsigned long long s = 0; s < 5; ++s) {
    std::vector<float> g = inputs<float>(w.rank, s, n), viaApi(n), viaParts(n), values(capacity);
    ASSERT_EQ(spcclSparseAllReduce(g.data(), viaApi.data(), n, spcclFloat32, spcclAvg, a, w.comm, nullptr),
              spcclSuccess);
    size_t nvalues = 0;
    unsigned long long used = 99;
    ASSERT_EQ(spcclCompress(g.data(), values.data(), nullptr, &nvalues, &used, b, nullptr), spcclSuccess);
    EXPECT_EQ(used, s);
    ASSERT_EQ(nvalues, capacity);
    ASSERT_EQ(spcclAllReduce(values.data(), values.data(), nvalues, spcclFloat32, spcclSum, w.comm, nullptr),
              spcclSuccess);
    ASSERT_EQ(spcclDecompress(values.data(), nullptr, nvalues, used, 1.0 / w.nranks, viaParts.data(), b, nullptr),
              spcclSuccess);
    ASSERT_EQ(0, memcmp(viaApi.data(), viaParts.data(), n * sizeof(float))) << "step " << s;
  }
  EXPECT_TRUE(sameResidual(a, b, n * sizeof(float)));
  spcclStateDestroy(a);
  spcclStateDestroy(b);
}

// A block larger than the tensor is clamped to it: no gigabyte workspace for 1000 elements,
// and the one block that covers the tensor is the exact dense sum.
TEST(RandomBlock, BlockSizeIsClampedToCount) {
  const World& w = world();
  const size_t n = 1000;
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = spcclMethodRandomBlock;
  cfg.blockSize = INT_MAX;
  spcclState_t st;
  ASSERT_EQ(spcclStateCreate(&st, w.comm, &cfg, n, spcclFloat32), spcclSuccess) << spcclGetLastError(w.comm);
  spcclConfig_t resolved;
  ASSERT_EQ(spcclStateGetConfig(st, &resolved), spcclSuccess);
  EXPECT_EQ(resolved.blockSize, (int)n);
  size_t bytes = 0;
  ASSERT_EQ(spcclStateGetMemoryFootprint(st, &bytes), spcclSuccess);
  EXPECT_LT(bytes, 4 * n * sizeof(float));
  std::vector<float> g = inputs<float>(w.rank, 0, n), out(n);
  ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, spcclFloat32, spcclSum, st, w.comm, nullptr), spcclSuccess);
  EXPECT_EQ(wrongDenseSums(out, w.nranks), 0u);
  spcclStateDestroy(st);
}

// Every rank chooses the same blocks: rank 0's selection, broadcast, equals everyone's.
TEST(RandomBlock, SelectionIsTheSameOnEveryRank) {
  const World& w = world();
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.blockPattern = spcclBlocksScattered;
  cfg.density = 0.01;
  cfg.blockSize = 16;
  spcclState_t st;
  ASSERT_EQ(spcclStateCreate(&st, w.comm, &cfg, 1 << 20, spcclFloat32), spcclSuccess);
  size_t m = 0;
  ASSERT_EQ(spcclBlockSelection(st, 0, nullptr, &m), spcclSuccess);
  for (unsigned long long s : {0ull, 1ull, 1000ull}) {
    std::vector<size_t> mine(m), root(m);
    size_t got = m;
    ASSERT_EQ(spcclBlockSelection(st, s, mine.data(), &got), spcclSuccess);
    root = mine;
    MPI_Bcast(root.data(), int(m * sizeof(size_t)), MPI_BYTE, 0, MPI_COMM_WORLD);
    EXPECT_TRUE(allRanks(root == mine));
  }
  spcclStateDestroy(st);
}

}  // namespace
}  // namespace spccl_test
