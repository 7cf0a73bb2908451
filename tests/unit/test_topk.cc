// SPDX-License-Identifier: Apache-2.0
//
// Top-k family rules and CPU kernels: the k formula, Φ⁻¹, Gaussian-k's decision rule, exact
// top-k against a brute-force sort (ties, NaN/Inf, both refinement paths), Gaussian-k's
// count on several distributions with guard zones around every buffer, scatter-add and the
// index check, the gTop-k merge, and conservation c + e_new == g + e_old.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "common/topk_reference.h"
#include "cpu/topk_kernels.h"

namespace spccl {
namespace {

using spccl_test::referenceGaussianK;
using spccl_test::referenceTopK;

TEST(TopKCore, KFormula) {
  EXPECT_EQ(topkCount(0, 0.5), 0u);
  EXPECT_EQ(topkCount(1, 1e-9), 1u);
  EXPECT_EQ(topkCount(100, 0.01), 1u);
  EXPECT_EQ(topkCount(101, 0.01), 2u);
  EXPECT_EQ(topkCount(1000, 0.333), 333u);
  EXPECT_EQ(topkCount(1000, 1.0), 1000u);
  EXPECT_EQ(topkCount(7, 0.999), 7u);
  EXPECT_EQ(topkCount(16u << 20, 0.01), 167773u);
}

TEST(TopKCore, InverseNormalCdf) {
  const struct { double p, x; } known[] = {{0.5, 0.0},
                                           {0.975, 1.959963984540054},
                                           {0.995, 2.5758293035489004},
                                           {0.9995, 3.2905267314918945},
                                           {0.841344746068543, 1.0},
                                           {0.01, -2.3263478740408408},
                                           {1e-10, -6.361340902404056}};
  for (const auto& c : known) {
    EXPECT_NEAR(inverseNormalCdf(c.p), c.x, 2e-9 * std::max(1.0, fabs(c.x))) << "p " << c.p;
    EXPECT_NEAR(inverseNormalCdf(1 - c.p), -c.x, 1e-8 * std::max(1.0, fabs(c.x))) << "p " << c.p;
  }
  EXPECT_EQ(inverseNormalCdf(0.0), -HUGE_VAL);
  EXPECT_EQ(inverseNormalCdf(1.0), HUGE_VAL);
  EXPECT_TRUE(std::isnan(inverseNormalCdf(1.5)));
  EXPECT_TRUE(std::isnan(inverseNormalCdf(NAN)));
  EXPECT_NEAR(gaussianThreshold(-0.5, 2.0, 0.05), 0.5 + 2.0 * 1.959963984540054, 1e-8);
}

// Feeds `counts` to the search (k = 300, window [200, 400]) and checks the thresholds it asks
// for, how many counts it takes and the one it keeps.
void expectSearch(const std::vector<size_t>& counts, int expectCounts, double expectChosen, size_t expectCount) {
  GaussianKSearch s = gaussianKSearchStart(1.0, 300);
  std::vector<double> asked;
  size_t next = 0;
  while (!s.done) {
    ASSERT_LT(next, counts.size());
    asked.push_back(s.next);
    gaussianKSearchCounted(&s, counts[next++]);
  }
  EXPECT_EQ(s.counts, expectCounts);
  EXPECT_EQ(s.chosen, expectChosen);
  EXPECT_EQ(s.chosenCount, expectCount);
  // Each threshold asked is the previous one halved (too few) or times 1.5 (too many).
  for (size_t i = 1; i < asked.size(); ++i)
    EXPECT_EQ(asked[i], counts[i - 1] * 3 < 600 ? asked[i - 1] * 0.5 : asked[i - 1] * 1.5);
}

TEST(TopKCore, GaussianKDecisionRule) {
  expectSearch({300}, 1, 1.0, 300);
  expectSearch({200}, 1, 1.0, 200);                 // 2k/3 is inside
  expectSearch({400}, 1, 1.0, 400);                 // 4k/3 is inside
  expectSearch({199, 401, 5000}, 3, 0.5, 401);      // smallest above 4k/3
  expectSearch({100, 150, 50}, 3, 0.5, 150);        // all below: the largest
  expectSearch({1000, 100, 350}, 3, 0.75, 350);     // window found on the third count
  expectSearch({1000, 2000, 100}, 3, 1.0, 1000);    // never select with the uncounted 2.25
  expectSearch({1000, 100, 10}, 3, 1.0, 1000);      // too many beats too few
  expectSearch({0, 0, 0}, 3, 1.0, 0);
  expectSearch({5000, 250}, 2, 1.5, 250);
  EXPECT_TRUE(gaussianKPrefer(300, 401, 300));
  EXPECT_TRUE(gaussianKPrefer(401, 199, 300));
  EXPECT_FALSE(gaussianKPrefer(199, 401, 300));
}

template <typename T>
struct TopKTyped : ::testing::Test {};
using StorageTypes = ::testing::Types<float, double, half_t, bfloat16_t>;
TYPED_TEST_SUITE(TopKTyped, StorageTypes);

enum Shape { kNormal, kSmallIntegers, kAllEqual, kMostlyZero, kNonFinite, kNumShapes };

template <typename T>
std::vector<T> shaped(Shape shape, size_t n, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<T> v(n);
  for (size_t i = 0; i < n; ++i) {
    float x = normal(rng);
    switch (shape) {
      case kSmallIntegers: x = float(int(rng() % 9) - 4); break;
      case kAllEqual: x = (i % 2) ? -1.5f : 1.5f; break;
      case kMostlyZero: x = rng() % 10 ? 0.0f : x; break;
      case kNonFinite: {
        const int r = int(rng() % 50);
        if (r == 0) x = std::numeric_limits<float>::quiet_NaN();
        if (r == 1) x = std::numeric_limits<float>::infinity();
        if (r == 2) x = -std::numeric_limits<float>::infinity();
        break;
      }
      default: break;
    }
    v[i] = fromAcc<T>(x);
  }
  return v;
}

// The selection's scratch: cap listed entries, with a guard entry after each array.
template <typename T>
struct Scratch {
  std::vector<uint32_t> pos;
  std::vector<typename MagnitudeKeyOf<T>::type> keys;
  size_t cap;
  explicit Scratch(size_t c) : pos(c + 1, 0xdeadbeef), keys(c + 1, 0x5eed), cap(c) {}
  cpu::TopKScratch get() { return {pos.data(), keys.data(), cap}; }
  bool guardsIntact() const { return pos[cap] == 0xdeadbeef && keys[cap] == 0x5eed; }
};

// topK's result in k slots, checked for a write past k or past the scratch.
template <typename T>
std::vector<uint32_t> checkedTopK(const std::vector<T>& v, size_t k, size_t cap) {
  Scratch<T> s(cap);
  std::vector<uint32_t> got(k + 1, 0xdeadbeef);
  cpu::topK(v.data(), v.size(), k, s.get(), got.data());
  EXPECT_EQ(got[k], 0xdeadbeefu) << "wrote past k";
  EXPECT_TRUE(s.guardsIntact()) << "wrote past the scratch";
  got.resize(k);
  return got;
}

// Exact top-k equals the brute-force sort for every shape, k from 1 to n, through the listed
// candidates (the state's cap) and (cap 0) through the full-array refinement.
TYPED_TEST(TopKTyped, ExactMatchesSortReference) {
  using T = TypeParam;
  std::mt19937_64 rng(42);
  for (int trial = 0; trial < 60; ++trial) {
    const Shape shape = Shape(trial % kNumShapes);
    const size_t n = 1 + rng() % (trial < 20 ? 50 : 20000);
    const size_t k = trial % 7 == 0 ? n : 1 + rng() % n;
    const std::vector<T> v = shaped<T>(shape, n, rng);
    const std::vector<uint32_t> want = referenceTopK(v.data(), n, k);
    for (size_t cap : {cpu::topKScratchCap(k), size_t(0)})
      ASSERT_EQ(checkedTopK(v, k, cap), want) << "shape " << shape << " n " << n << " k " << k << " cap " << cap;
  }
}

// Large tensors take the sampled threshold: exact wherever the sample guesses right
// (smooth data), too low (the list overflows: constant or few-valued data) or too high
// (the big values sit on the sampled positions, so fewer than k are listed).
TYPED_TEST(TopKTyped, SampledThresholdStaysExact) {
  using T = TypeParam;
  std::mt19937_64 rng(17);
  for (int shape = 0; shape <= kNumShapes; ++shape) {
    const bool onSamples = shape == kNumShapes;
    const size_t n = onSamples ? 1 << 19 : 1 << 17;
    std::vector<T> v = shaped<T>(Shape(shape % kNumShapes), n, rng);
    if (onSamples)  // large on every 8th position (the sample's stride at k = n/3), the rest small
      for (size_t i = 0; i < n; ++i) v[i] = fromAcc<T>(i % 8 ? 0.001f * float(i % 5) : 100.0f + float(i % 7));
    const std::vector<size_t> ks = onSamples ? std::vector<size_t>{n / 3} : std::vector<size_t>{1, n / 1000, n / 64};
    for (size_t k : ks) {
      const std::vector<uint32_t> want = referenceTopK(v.data(), n, k);
      ASSERT_EQ(checkedTopK(v, k, cpu::topKScratchCap(k)), want) << "shape " << shape << " k " << k;
    }
  }
}

// acc = g + e rounded once, written whole, and the selection is acc's exact top-k, on both
// paths (n below and above the sampled threshold's minimum), with acc a separate buffer or
// e itself (spcclCompress forms acc in the residual).
TYPED_TEST(TopKTyped, FeedbackFusedSelection) {
  using T = TypeParam;
  std::mt19937_64 rng(5);
  for (size_t n : {size_t(30000), size_t(200000)}) {
    const size_t k = n / 100;
    const std::vector<T> g = shaped<T>(kSmallIntegers, n, rng), e0 = shaped<T>(kNormal, n, rng);
    for (bool inResidual : {false, true}) {
      std::vector<T> e = e0, separate(n);
      T* acc = inResidual ? e.data() : separate.data();
      Scratch<T> s(cpu::topKScratchCap(k));
      std::vector<uint32_t> got(k);
      cpu::topKFeedback(g.data(), e.data(), acc, n, k, s.get(), got.data());
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(toAcc(acc[i]), toAcc(fromAcc<T>(toAcc(g[i]) + toAcc(e0[i]))));
      EXPECT_EQ(got, referenceTopK(acc, n, k)) << "n " << n << " in residual " << inResidual;
      EXPECT_TRUE(s.guardsIntact());
    }
  }
}

// The perf harness's counting reference (perf/reference.h) agrees with the sort on few-valued data.
TYPED_TEST(TopKTyped, LevelReferenceMatchesSortReference) {
  using T = TypeParam;
  std::mt19937_64 rng(9);
  for (int trial = 0; trial < 20; ++trial) {
    const size_t n = 1 + rng() % 5000, k = 1 + rng() % n;
    const std::vector<T> v = shaped<T>(trial % 2 ? kSmallIntegers : kAllEqual, n, rng);
    std::vector<double> values(n);
    for (size_t i = 0; i < n; ++i) values[i] = spccl::toAcc(v[i]);
    EXPECT_EQ(spccl_perf::topkByLevels(values, k), referenceTopK(v.data(), n, k));
  }
}

// NaN ranks above Inf, which ranks above every finite value.
TEST(TopK, NonFiniteRankFirst) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<float> v = {1, -inf, 3, nan, -2, inf, 0, -nan};
  EXPECT_EQ(checkedTopK(v, 4, cpu::topKScratchCap(4)), (std::vector<uint32_t>{1, 3, 5, 7}));
}

enum Distribution { kGauss, kUniform, kLaplace, kStudentT3, kEqual };

std::vector<float> drawn(Distribution d, size_t n, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.1f, 2.0f);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::exponential_distribution<float> expo(1.0f);
  std::student_t_distribution<float> student(3.0f);
  std::vector<float> v(n);
  for (auto& x : v) {
    switch (d) {
      case kGauss: x = normal(rng); break;
      case kUniform: x = uniform(rng); break;
      case kLaplace: x = (rng() & 1 ? 1 : -1) * expo(rng); break;
      case kStudentT3: x = student(rng); break;
      case kEqual: x = 0.75f; break;
    }
  }
  return v;
}

template <typename T>
bool sameBytes(const T& a, const T& b) {
  return memcmp(&a, &b, sizeof(T)) == 0;
}

// Every element of v outside [begin, end) still holds `fill`.
template <typename T>
bool guardsIntact(const std::vector<T>& v, size_t begin, size_t end, const T& fill) {
  for (size_t i = 0; i < v.size(); ++i)
    if ((i < begin || i >= end) && !sameBytes(v[i], fill)) return false;
  return true;
}

// Gaussian-k sends between 2k/3 and k real pairs on normal, uniform, heavy-tailed and
// all-equal data, exactly the reference's slots, and writes nothing outside its buffers.
TYPED_TEST(TopKTyped, GaussianKCountAndBounds) {
  using T = TypeParam;
  std::mt19937_64 rng(11);
  constexpr size_t kGuard = 64;
  const T sentinel = fromAcc<T>(-777.0f);
  for (Distribution d : {kGauss, kUniform, kLaplace, kStudentT3, kEqual}) {
    for (double density : {0.001, 0.01, 0.05}) {
      const size_t n = 100000, k = topkCount(n, density);
      const std::vector<float> gf = drawn(d, n, rng), ef = drawn(kGauss, n, rng);
      std::vector<T> g(n), e(n);
      for (size_t i = 0; i < n; ++i) {
        g[i] = fromAcc<T>(gf[i]);
        e[i] = fromAcc<T>(d == kEqual ? 0.0f : ef[i] * 0.01f);
      }
      std::vector<T> acc(n + 2 * kGuard, sentinel), val(k + 2 * kGuard, sentinel);
      std::vector<uint32_t> idx(k + 2 * kGuard, 0xdeadbeef);
      const size_t found = cpu::gaussianK(g.data(), e.data(), acc.data() + kGuard, n, k, density,
                                          idx.data() + kGuard, val.data() + kGuard);
      const std::string what = "distribution " + std::to_string(d) + " density " + std::to_string(density);
      EXPECT_TRUE(guardsIntact(acc, kGuard, kGuard + n, sentinel)) << what;
      EXPECT_TRUE(guardsIntact(val, kGuard, kGuard + k, sentinel)) << what;
      EXPECT_TRUE(guardsIntact(idx, kGuard, kGuard + k, 0xdeadbeefu)) << what;
      EXPECT_GE(3 * found, 2 * k) << what;
      EXPECT_LE(found, k) << what;
      const T* a = acc.data() + kGuard;
      const std::vector<uint32_t> want = referenceGaussianK(a, n, k, density);
      ASSERT_EQ(std::vector<uint32_t>(idx.begin() + kGuard, idx.begin() + kGuard + k), want) << what;
      for (size_t j = 0; j < k; ++j) {
        const T expect = want[j] == SPCCL_PAD_INDEX ? T() : a[want[j]];
        ASSERT_TRUE(sameBytes(val[kGuard + j], expect)) << what << " slot " << j;
      }
    }
  }
}

// NaN and Inf neither crash nor hang Gaussian-k: NaN counts as above every threshold (so it
// passes once, as in exact top-k), Inf above every finite one; the moments skip both.
TYPED_TEST(TopKTyped, GaussianKNonFinite) {
  using T = TypeParam;
  std::mt19937_64 rng(3);
  for (Shape shape : {kNonFinite, kAllEqual, kMostlyZero}) {
    const size_t n = 5000, k = 50;
    std::vector<T> g = shaped<T>(shape, n, rng), acc(n), val(k);
    std::vector<uint32_t> idx(k);
    const size_t found = cpu::gaussianK<T>(g.data(), nullptr, acc.data(), n, k, 0.01, idx.data(), val.data());
    EXPECT_LE(found, k);
    // The first k positions above the threshold are sent: every NaN up to the last of them.
    size_t nans = 0, sentNaN = 0;
    for (size_t i = 0; found > 0 && i <= idx[found - 1]; ++i) nans += std::isnan((double)toAcc(g[i]));
    for (size_t j = 0; j < found; ++j) sentNaN += std::isnan((double)toAcc(val[j]));
    EXPECT_EQ(sentNaN, nans);
    if (shape == kNonFinite) EXPECT_GT(sentNaN, 0u);
  }
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<T> all(100, fromAcc<T>(nan)), acc(100), val(2);
  all[7] = fromAcc<T>(inf);
  std::vector<uint32_t> idx(2);
  // No finite value: the threshold is +inf, above which only the NaNs are, the first k of them.
  EXPECT_EQ(cpu::gaussianK<T>(all.data(), nullptr, acc.data(), 100, 2, 0.02, idx.data(), val.data()), 2u);
  EXPECT_EQ(idx, (std::vector<uint32_t>{0, 1}));
}

// Conservation of the kernels: sent values plus the committed residual equal acc exactly,
// with acc separate (a collective's recvbuff) or the residual itself (spcclCompress).
TYPED_TEST(TopKTyped, ConservationIsExact) {
  using T = TypeParam;
  std::mt19937_64 rng(8);
  const size_t n = 20000, k = 200;
  const std::vector<T> g = shaped<T>(kNormal, n, rng), e0 = shaped<T>(kSmallIntegers, n, rng);
  for (int variant = 0; variant < 4; ++variant) {
    const bool gaussian = variant & 1, inResidual = variant & 2;
    std::vector<T> separate(n), val(k), e = e0, c(n);
    T* acc = inResidual ? e.data() : separate.data();
    std::vector<uint32_t> idx(k);
    if (gaussian) {
      cpu::gaussianK(g.data(), e.data(), acc, n, k, 0.01, idx.data(), val.data());
    } else {
      Scratch<T> s(cpu::topKScratchCap(k));
      cpu::topKFeedback(g.data(), e.data(), acc, n, k, s.get(), idx.data());
      for (size_t j = 0; j < k; ++j) val[j] = acc[idx[j]];
    }
    cpu::residualCommit(e.data(), acc, n, idx.data(), k);
    cpu::scatterAdd(idx.data(), val.data(), k, c.data());
    for (size_t i = 0; i < n; ++i) {
      const auto want = toAcc(fromAcc<T>(toAcc(g[i]) + toAcc(e0[i])));
      ASSERT_EQ(toAcc(c[i]) + toAcc(e[i]), want) << "i " << i;
      ASSERT_TRUE(toAcc(c[i]) == 0 || toAcc(e[i]) == 0) << "a coordinate was split";
    }
  }
}

TEST(Pairs, IndexCheckAndScatterAdd) {
  const uint32_t pad = SPCCL_PAD_INDEX;
  const std::vector<uint32_t> good = {0, 3, pad, 3, 9}, bad = {0, 10, 2}, padOnly = {pad};
  EXPECT_EQ(cpu::firstBadIndex(good.data(), good.size(), 10, true), good.size());
  EXPECT_EQ(cpu::firstBadIndex(good.data(), good.size(), 10, false), 2u);  // padding not allowed
  EXPECT_EQ(cpu::firstBadIndex(bad.data(), bad.size(), 10, true), 1u);
  EXPECT_EQ(cpu::firstBadIndex(padOnly.data(), 1, 0xFFFFFFFFull, true), 1u);
  const std::vector<float> val = {1.5f, 2.0f, 100.0f, 0.25f, -1.0f};
  std::vector<float> out(10, 0.0f);
  cpu::scatterAdd(good.data(), val.data(), good.size(), out.data());
  EXPECT_EQ(out, (std::vector<float>{1.5f, 0, 0, 2.25f, 0, 0, 0, 0, 0, -1.0f}));
}

TEST(Pairs, MergeAddsEqualIndicesAndKeepsOrder) {
  std::mt19937_64 rng(4);
  for (int trial = 0; trial < 50; ++trial) {
    std::map<uint32_t, double> a, b;
    while (a.size() < 40) a[rng() % 200] = double(int(rng() % 17) - 8);
    while (b.size() < 40) b[rng() % 200] = double(int(rng() % 17) - 8);
    std::vector<uint32_t> ia, ib, io(80);
    std::vector<float> va, vb, vo(80);
    std::map<uint32_t, double> want = a;
    for (auto& [i, v] : a) ia.push_back(i), va.push_back(float(v));
    for (auto& [i, v] : b) ib.push_back(i), vb.push_back(float(v)), want[i] += v;
    const size_t m = cpu::mergePairs(ia.data(), va.data(), 40, ib.data(), vb.data(), 40, io.data(), vo.data());
    ASSERT_EQ(m, want.size());
    size_t j = 0;
    for (auto& [i, v] : want) {
      EXPECT_EQ(io[j], i);
      EXPECT_EQ(vo[j++], float(v));
    }
  }
}

}  // namespace
}  // namespace spccl
