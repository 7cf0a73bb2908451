// SPDX-License-Identifier: Apache-2.0
//
// TOPK, GAUSSIANK and GTOPK under mpirun against a reference every rank computes from all
// ranks' deterministic inputs (brute-force selections of tests/common/topk_reference.h and
// an independent model of the gTop-k merge tree): output and residual over many steps, all
// types, feedback NONE and EF, sum and avg, in place or not. Also conservation through
// spcclCompress, compress + allgather + decompress against the collective, and the dense
// switch. Tests named *GTopK* also run on 5..8 ranks.

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <tuple>

#include "common/topk_reference.h"
#include "dispatch.h"
#include "mpi_test.h"

namespace spccl_test {
namespace {

using spccl::fromAcc;
using spccl::toAcc;

template <typename T>
using AccOf = typename spccl::AccumOf<T>::type;

// a + b as the library adds two values of T: in the accumulation type, rounded once.
template <typename T>
T addT(T a, T b) {
  return fromAcc<T>(toAcc(a) + toAcc(b));
}

// The model of DESIGN.md, Error feedback and §5 for all ranks at once.
template <typename T>
struct Model {
  int method;
  size_t n, k;
  double density;
  bool ef;
  int P;
  std::vector<std::vector<T>> residual;  // per rank

  Model(int method, size_t n, double density, bool ef, int P)
      : method(method), n(n), k(spccl::topkCount(n, density)), density(density), ef(ef), P(P),
        residual(P, std::vector<T>(n, T())) {}

  std::vector<T> acc(int r, unsigned long long s) const {
    std::vector<T> a = inputs<T>(r, s, n);
    if (ef)
      for (size_t i = 0; i < n; ++i) a[i] = addT(a[i], residual[r][i]);
    return a;
  }

  // The global set S of gTop-k, the same on every rank.
  std::vector<uint32_t> gtopkSet(const std::vector<std::vector<T>>& accs) const {
    std::vector<std::map<uint32_t, T>> lists(P);
    for (int r = 0; r < P; ++r)
      for (uint32_t i : referenceTopK(accs[r].data(), n, k)) lists[r][i] = accs[r][i];
    return referenceGTopKSet(lists, k, [](const T* v, size_t m, size_t kk) { return referenceTopK(v, m, kk); });
  }

  // One call: the expected recvbuff (sum, before any avg scaling); residuals advance.
  std::vector<T> step(unsigned long long s) {
    std::vector<std::vector<T>> accs(P);
    for (int r = 0; r < P; ++r) accs[r] = acc(r, s);
    std::vector<std::vector<uint32_t>> sent(P);
    if (method == spcclMethodGTopK) {
      sent.assign(P, gtopkSet(accs));
    } else {
      for (int r = 0; r < P; ++r)
        sent[r] = method == spcclMethodTopK ? referenceTopK(accs[r].data(), n, k)
                                            : referenceGaussianK(accs[r].data(), n, k, density);
    }
    std::vector<T> out(n, T());
    for (int r = 0; r < P; ++r) {
      if (ef) residual[r] = accs[r];
      for (uint32_t i : sent[r]) {
        if (i == SPCCL_PAD_INDEX) continue;
        out[i] = addT(out[i], accs[r][i]);  // rank order, as the scatter-add and the tests' sums
        if (ef) residual[r][i] = T();
      }
    }
    return out;
  }
};

spcclConfig_t topkConfig(int method, double density, int feedback, int denseSwitch) {
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = method;
  cfg.density = density;
  cfg.feedback = feedback;
  cfg.denseSwitch = denseSwitch;
  return cfg;
}

class TopKFamilyTest
    : public ::testing::TestWithParam<std::tuple<int, spcclDataType_t, int, spcclRedOp_t, bool>> {};

void runAgainstModel(int method, spcclDataType_t datatype, int feedback, spcclRedOp_t op, bool inPlace) {
  const World& w = world();
  spccl::withType(datatype, [&](auto tag) {
    using T = decltype(tag);
    using AccT = AccOf<T>;
    // Few calls per case: the suite runs oversubscribed on 1..8 ranks, where every call costs.
    constexpr unsigned long long kSteps = 6;
    for (size_t n : {size_t(1), size_t(3001)}) {
      const double density = 0.05;
      spcclConfig_t cfg = topkConfig(method, density, feedback, 0);
      spcclState_t st;
      EXPECT_EQ(spcclStateCreate(&st, w.comm, &cfg, n, datatype), spcclSuccess) << spcclGetLastError(w.comm);
      if (!st) return spcclInternalError;
      Model<T> model(method, n, density, feedback == spcclFeedbackEF, w.nranks);
      for (unsigned long long s = 0; s < kSteps; ++s) {
        std::vector<T> send = inputs<T>(w.rank, s, n), recv(n, fromAcc<T>(42.0f));
        T* out = inPlace ? send.data() : recv.data();
        EXPECT_EQ(spcclSparseAllReduce(send.data(), out, n, datatype, op, st, w.comm, nullptr), spcclSuccess)
            << spcclGetLastError(w.comm);
        const std::vector<T> want = model.step(s);
        T* residual = nullptr;
        spcclStateGetResidual(st, reinterpret_cast<void**>(&residual));
        size_t wrongOut = 0, wrongResidual = 0;
        for (size_t i = 0; i < n; ++i) {
          AccT expect = toAcc(want[i]);
          if (op == spcclAvg) expect = toAcc(fromAcc<T>(expect * (AccT)(1.0 / w.nranks)));
          wrongOut += !(toAcc(out[i]) == expect);
          wrongResidual += !(toAcc(residual[i]) == toAcc(model.residual[w.rank][i]));
        }
        EXPECT_TRUE(allRanks(wrongOut == 0 && wrongResidual == 0))
            << "n " << n << " step " << s << ": " << wrongOut << " outputs and " << wrongResidual
            << " residuals differ on rank " << w.rank;
        if (wrongOut || wrongResidual) break;
      }
      unsigned long long step = 0;
      spcclStateGetStep(st, &step);
      EXPECT_EQ(step, kSteps);
      spcclStateDestroy(st);
    }
    return spcclSuccess;
  });
}

TEST_P(TopKFamilyTest, MatchesReferenceOverManySteps) {
  const auto [method, datatype, feedback, op, inPlace] = GetParam();
  runAgainstModel(method, datatype, feedback, op, inPlace);
}

INSTANTIATE_TEST_SUITE_P(TopKAndGaussianK, TopKFamilyTest,
                         ::testing::Combine(::testing::Values(spcclMethodTopK, spcclMethodGaussianK),
                                            ::testing::ValuesIn(allTypes), ::testing::Values(0, 1),
                                            ::testing::Values(spcclSum, spcclAvg), ::testing::Bool()));

// gTop-k: every rank's output equals the reference merge tree's on any number of ranks.
class GTopKTest : public TopKFamilyTest {};
TEST_P(GTopKTest, MatchesReferenceMergeTree) {
  const auto [method, datatype, feedback, op, inPlace] = GetParam();
  runAgainstModel(method, datatype, feedback, op, inPlace);
}

INSTANTIATE_TEST_SUITE_P(GTopK, GTopKTest,
                         ::testing::Combine(::testing::Values(spcclMethodGTopK), ::testing::ValuesIn(allTypes),
                                            ::testing::Values(0, 1), ::testing::Values(spcclSum, spcclAvg),
                                            ::testing::Bool()));

// All ranks hold bit-identical gTop-k output.
TEST(GTopK, OutputIdenticalOnAllRanks) {
  const World& w = world();
  const size_t n = 50000;
  spcclConfig_t cfg = topkConfig(spcclMethodGTopK, 0.01, spcclFeedbackEF, 0);
  spcclState_t st;
  ASSERT_EQ(spcclStateCreate(&st, w.comm, &cfg, n, spcclFloat32), spcclSuccess);
  std::vector<float> g(n), out(n), root(n);
  for (unsigned long long s = 0; s < 4; ++s) {
    for (size_t i = 0; i < n; ++i) g[i] = std::sin(0.001f * i * (w.rank + 1) + s) * (1 + w.rank);
    ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, spcclFloat32, spcclSum, st, w.comm, nullptr),
              spcclSuccess);
    root = out;
    MPI_Bcast(root.data(), int(n), MPI_FLOAT, 0, MPI_COMM_WORLD);
    EXPECT_TRUE(allRanks(memcmp(root.data(), out.data(), n * sizeof(float)) == 0)) << "step " << s;
    size_t nonzero = 0;
    for (float x : out) nonzero += x != 0;
    EXPECT_LE(nonzero, spccl::topkCount(n, 0.01));
  }
  spcclStateDestroy(st);
}

// Conservation through spcclCompress: the returned pairs plus the new residual equal
// g + e_old exactly, coordinate by coordinate, for every method and type.
TEST(TopKFamily, ConservationIsExact) {
  const World& w = world();
  for (int method : {spcclMethodTopK, spcclMethodGaussianK, spcclMethodGTopK}) {
    for (spcclDataType_t datatype : allTypes) {
      spccl::withType(datatype, [&](auto tag) {
        using T = decltype(tag);
        const size_t n = 3001;
        spcclConfig_t cfg = topkConfig(method, 0.02, spcclFeedbackEF, 1);
        spcclState_t st;
        EXPECT_EQ(spcclStateCreate(&st, w.comm, &cfg, n, datatype), spcclSuccess);
        size_t capacity = 0;
        spcclCompressedCount(st, &capacity);
        EXPECT_EQ(capacity, spccl::topkCount(n, 0.02));
        T* residual = nullptr;
        spcclStateGetResidual(st, reinterpret_cast<void**>(&residual));
        for (unsigned long long s = 0; s < 6; ++s) {
          const std::vector<T> g = inputs<T>(w.rank, s, n), eOld(residual, residual + n);
          std::vector<T> values(capacity), c(n, T());
          std::vector<uint32_t> indices(capacity);
          size_t nvalues = 0;
          unsigned long long used = 0;
          EXPECT_EQ(spcclCompress(g.data(), values.data(), indices.data(), &nvalues, &used, st, nullptr),
                    spcclSuccess);
          EXPECT_EQ(used, s);
          EXPECT_EQ(nvalues, capacity);
          for (size_t j = 0; j < nvalues; ++j)
            if (indices[j] != SPCCL_PAD_INDEX) c.at(indices[j]) = values[j];
          size_t wrong = 0;
          for (size_t i = 0; i < n; ++i)
            wrong += !(toAcc(c[i]) + toAcc(residual[i]) == toAcc(addT(g[i], eOld[i])) &&
                       (toAcc(c[i]) == 0 || toAcc(residual[i]) == 0));
          EXPECT_EQ(wrong, 0u) << "method " << method << " datatype " << datatype << " step " << s;
        }
        spcclStateDestroy(st);
        return spcclSuccess;
      });
    }
  }
}

// spcclCompress forms g + e in the residual itself; without feedback that is scratch, and
// the residual reads zero again after (the pairs are g's own top-k).
TEST(TopKFamily, CompressWithoutFeedbackLeavesTheResidualZero) {
  const World& w = world();
  const size_t n = 3001;
  for (int method : {spcclMethodTopK, spcclMethodGaussianK, spcclMethodGTopK}) {
    spcclConfig_t cfg = topkConfig(method, 0.02, spcclFeedbackNone, 1);
    spcclState_t st;
    ASSERT_EQ(spcclStateCreate(&st, w.comm, &cfg, n, spcclFloat32), spcclSuccess);
    size_t capacity = 0, nvalues = 0;
    unsigned long long used = 0;
    spcclCompressedCount(st, &capacity);
    const std::vector<float> g = inputs<float>(w.rank, 0, n);
    std::vector<float> values(capacity);
    std::vector<uint32_t> indices(capacity);
    ASSERT_EQ(spcclCompress(g.data(), values.data(), indices.data(), &nvalues, &used, st, nullptr), spcclSuccess);
    size_t wrongValues = 0;
    for (size_t j = 0; j < nvalues; ++j) wrongValues += indices[j] != SPCCL_PAD_INDEX && values[j] != g.at(indices[j]);
    EXPECT_EQ(wrongValues, 0u) << "method " << method;
    if (method != spcclMethodGaussianK) EXPECT_EQ(indices, referenceTopK(g.data(), n, capacity)) << "method " << method;
    float* residual = nullptr;
    spcclStateGetResidual(st, reinterpret_cast<void**>(&residual));
    EXPECT_EQ(std::count(residual, residual + n, 0.0f), (long)n) << "method " << method;
    spcclStateDestroy(st);
  }
}

// Misaligned indices (compress, decompress) and values (decompress) are refused with a
// sentence, before anything is read or written: the residual and the step stay as they were.
TEST(TopKFamily, CompressAndDecompressCheckAlignment) {
  const World& w = world();
  const size_t n = 1000;
  spcclConfig_t cfg = topkConfig(spcclMethodTopK, 0.05, spcclFeedbackEF, 1);
  spcclState_t st = nullptr;
  ASSERT_EQ(spcclStateCreate(&st, w.comm, &cfg, n, spcclFloat32), spcclSuccess);
  size_t k = 0, nvalues = 0;
  unsigned long long step = 0;
  spcclCompressedCount(st, &k);
  const std::vector<float> g = inputs<float>(w.rank, 0, n);
  std::vector<float> values(k + 1), out(n, 7.0f);
  std::vector<uint32_t> indices(k + 1);
  uint32_t* misIdx = reinterpret_cast<uint32_t*>(reinterpret_cast<char*>(indices.data()) + 2);
  EXPECT_EQ(spcclCompress(g.data(), values.data(), misIdx, &nvalues, &step, st, nullptr), spcclInvalidArgument);
  EXPECT_NE(std::string(spcclGetLastError(w.comm)).find("indices"), std::string::npos) << spcclGetLastError(w.comm);
  EXPECT_NE(std::string(spcclGetLastError(w.comm)).find("is not aligned"), std::string::npos);
  EXPECT_EQ(spcclDecompress(values.data(), misIdx, k, 0, 1.0, out.data(), st, nullptr), spcclInvalidArgument);
  EXPECT_NE(std::string(spcclGetLastError(w.comm)).find("indices"), std::string::npos) << spcclGetLastError(w.comm);
  const float* misValues = reinterpret_cast<const float*>(reinterpret_cast<const char*>(values.data()) + 1);
  EXPECT_EQ(spcclDecompress(misValues, indices.data(), k, 0, 1.0, out.data(), st, nullptr), spcclInvalidArgument);
  EXPECT_NE(std::string(spcclGetLastError(w.comm)).find("values"), std::string::npos) << spcclGetLastError(w.comm);
  EXPECT_EQ(out, std::vector<float>(n, 7.0f)) << "a refused decompress wrote recvbuff";
  ASSERT_EQ(spcclStateGetStep(st, &step), spcclSuccess);
  EXPECT_EQ(step, 0u);
  void* residual = nullptr;
  spcclStateGetResidual(st, &residual);
  const float* e = static_cast<const float*>(residual);
  EXPECT_EQ(std::vector<float>(e, e + n), std::vector<float>(n, 0.0f));
  spcclStateDestroy(st);
}

// A framework that communicates itself: compress, allgather the pairs, decompress all
// ranks' pairs back to back; equals spcclSparseAllReduce (TOPK, GAUSSIANK).
TEST(TopKFamily, CompressAllGatherDecompressEqualsSparseAllReduce) {
  const World& w = world();
  const size_t n = 20000;
  for (int method : {spcclMethodTopK, spcclMethodGaussianK}) {
    spcclConfig_t cfg = topkConfig(method, 0.01, spcclFeedbackEF, 0);
    spcclState_t a, b;
    ASSERT_EQ(spcclStateCreate(&a, w.comm, &cfg, n, spcclFloat32), spcclSuccess);
    ASSERT_EQ(spcclStateCreate(&b, w.comm, &cfg, n, spcclFloat32), spcclSuccess);
    size_t k = 0;
    spcclCompressedCount(b, &k);
    for (unsigned long long s = 0; s < 5; ++s) {
      std::vector<float> g(n), viaApi(n), viaParts(n), values(k), allValues(k * w.nranks);
      for (size_t i = 0; i < n; ++i) g[i] = std::cos(0.01f * i + s + w.rank);
      std::vector<uint32_t> indices(k), allIndices(k * w.nranks);
      ASSERT_EQ(spcclSparseAllReduce(g.data(), viaApi.data(), n, spcclFloat32, spcclAvg, a, w.comm, nullptr),
                spcclSuccess);
      size_t nvalues = 0;
      unsigned long long used = 0;
      ASSERT_EQ(spcclCompress(g.data(), values.data(), indices.data(), &nvalues, &used, b, nullptr), spcclSuccess);
      MPI_Allgather(values.data(), int(k), MPI_FLOAT, allValues.data(), int(k), MPI_FLOAT, MPI_COMM_WORLD);
      MPI_Allgather(indices.data(), int(k), MPI_UINT32_T, allIndices.data(), int(k), MPI_UINT32_T, MPI_COMM_WORLD);
      ASSERT_EQ(spcclDecompress(allValues.data(), allIndices.data(), k * w.nranks, used, 1.0 / w.nranks,
                                viaParts.data(), b, nullptr),
                spcclSuccess);
      EXPECT_EQ(0, memcmp(viaApi.data(), viaParts.data(), n * sizeof(float)))
          << "method " << method << " step " << s;
    }
    EXPECT_TRUE(sameResidual(a, b, n * sizeof(float)));
    spcclStateDestroy(a);
    spcclStateDestroy(b);
  }
}

// When the pairs would cost more than a dense allreduce, the state runs dense (the wire
// bytes say so) and the output is the exact sum of acc with an empty residual; with
// denseSwitch 0 it stays sparse.
TEST(TopKFamily, DenseSwitch) {
  const World& w = world();
  const size_t n = 1000;
  for (int method : {spcclMethodTopK, spcclMethodGaussianK, spcclMethodGTopK}) {
    for (int denseSwitch : {1, 0}) {
      spcclConfig_t cfg = topkConfig(method, 0.9, spcclFeedbackEF, denseSwitch);
      spcclState_t st;
      ASSERT_EQ(spcclStateCreate(&st, w.comm, &cfg, n, spcclFloat32), spcclSuccess);
      const size_t dense = w.nranks > 1 ? 2 * (w.nranks - 1) * n * sizeof(float) / w.nranks : 0;
      spcclStateInfo_t info = SPCCL_STATE_INFO_INITIALIZER;
      ASSERT_EQ(spcclStateGetInfo(st, &info), spcclSuccess);
      const size_t wire = info.wireBytes;
      EXPECT_EQ(info.denseWireBytes, dense);
      // 900 pairs of 8 bytes per peer always cost more than a dense allreduce of 4000 bytes.
      const bool switched = denseSwitch && w.nranks > 1;
      EXPECT_EQ(info.denseSwitched, switched) << "method " << method;
      if (switched) EXPECT_EQ(wire, dense);
      if (!switched && w.nranks > 1) EXPECT_GT(wire, dense);
      if (switched) {
        std::vector<float> g = inputs<float>(w.rank, 0, n), out(n);
        ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, spcclFloat32, spcclSum, st, w.comm, nullptr),
                  spcclSuccess);
        EXPECT_EQ(wrongDenseSums(out, w.nranks), 0u);
        float* residual = nullptr;
        spcclStateGetResidual(st, reinterpret_cast<void**>(&residual));
        EXPECT_EQ(std::count(residual, residual + n, 0.0f), (long)n);
        // spcclCompress on a switched state still selects k pairs: its scratch must be in the
        // workspace (it once overflowed the heap, caught by the sanitized build).
        size_t k = 0, nvalues = 0;
        unsigned long long step = 0;
        ASSERT_EQ(spcclCompressedCount(st, &k), spcclSuccess);
        std::vector<float> values(k);
        std::vector<uint32_t> indices(k);
        ASSERT_EQ(spcclCompress(g.data(), values.data(), indices.data(), &nvalues, &step, st, nullptr), spcclSuccess);
        EXPECT_EQ(nvalues, k);
        std::vector<float> c(n, 0.0f);
        for (size_t j = 0; j < k; ++j)
          if (indices[j] != SPCCL_PAD_INDEX) c[indices[j]] += values[j];
        size_t lost = 0;
        for (size_t i = 0; i < n; ++i) lost += c[i] + residual[i] != g[i];
        EXPECT_EQ(lost, 0u) << "c + e_new == g + e_old after a compress on a switched state";
      }
      spcclStateDestroy(st);
    }
  }
}

}  // namespace
}  // namespace spccl_test
