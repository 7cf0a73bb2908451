// SPDX-License-Identifier: Apache-2.0
//
// The top-k family's device kernels against the brute-force references of the host tests
// (tests/common/topk_reference.h: a full sort; plain loops and topk_core.h's search):
//  - exact top-k: the same k (index, value) pairs in the same (ascending index) order, and the
//    same acc = g + e, bit for bit, in every type, with heavy ties and k from 1 to n;
//  - Gaussian-k: the same slots as a host search fed with the same formulas (the two mean/std
//    reductions sum in different orders; with these inputs no element sits on a threshold);
//  - residual commit and scatter-add (lists added in order, padding skipped, scaled).

#include <algorithm>
#include <numeric>
#include <vector>

#include "device.h"
#include "device_test.h"
#include "common/topk_reference.h"
#include "cpu/topk_kernels.h"
#include "topk_core.h"

namespace spccl_test {
namespace {

using namespace spccl;

template <typename T>
std::vector<T> hostAcc(const std::vector<T>& g, const std::vector<T>& e) {
  std::vector<T> acc(g.size());
  for (size_t i = 0; i < g.size(); ++i) acc[i] = addRounded(g[i], e[i]);
  return acc;
}

template <typename T>
std::vector<T> tiedVector(size_t n, std::mt19937_64& rng) {  // magnitudes from a handful of values
  std::vector<T> v(n);
  for (auto& x : v) x = fromAcc<T>(float(int(rng() % 9) - 4) * 0.5f);
  return v;
}

struct TopKCase {
  size_t n, k;
  bool ties;
};

std::vector<TopKCase> topkCases() {
  return {{1, 1, false},       {7, 7, true},          {1000, 1, false},     {1000, 10, true},
          {4096, 4096, false}, {100003, 1000, false}, {100003, 1000, true}, {300000, 3, true},
          {262144, 2621, false}};
}

TYPED_TEST_SUITE(DeviceTyped, DeviceStorageTypes);

TYPED_TEST(DeviceTyped, ExactTopKMatchesHost) {
  SPCCL_REQUIRE_DEVICE();
  using T = TypeParam;
  const spcclDataType_t dt = dataTypeOf<T>();
  std::mt19937_64 rng(17);
  for (const TopKCase& c : topkCases()) {
    for (int feedback = 0; feedback < 2; ++feedback) {
      const std::vector<T> g = c.ties ? tiedVector<T>(c.n, rng) : randomVector<T>(c.n, rng);
      const std::vector<T> e = feedback ? randomVector<T>(c.n, rng) : std::vector<T>(c.n, fromAcc<T>(0.0f));
      const std::vector<T> acc = hostAcc(g, e);
      const std::vector<uint32_t> want = referenceTopK(acc.data(), c.n, c.k);
      DeviceArray<T> dg(g), de(e), dacc(c.n), dvalues(c.k);
      DeviceArray<uint32_t> didx(c.k);
      DeviceArray<char> scratch(device::topkScratchBytes(c.n));
      ASSERT_EQ(device::topkSelect(dt, dg.get(), feedback ? de.get() : nullptr, dacc.get(), c.n, c.k, didx.get(),
                                   dvalues.get(), scratch.get(), nullptr),
                spcclSuccess);
      CUDA_ASSERT(cudaDeviceSynchronize());
      SCOPED_TRACE(::testing::Message() << "n " << c.n << " k " << c.k << " ties " << c.ties << " ef " << feedback);
      EXPECT_TRUE(sameBits(dacc.download(), acc));
      const std::vector<uint32_t> got = didx.download();
      ASSERT_EQ(got, want);
      std::vector<T> wantValues(c.k);
      for (size_t j = 0; j < c.k; ++j) wantValues[j] = acc[want[j]];
      EXPECT_TRUE(sameBits(dvalues.download(), wantValues));
    }
  }
}

TYPED_TEST(DeviceTyped, GaussianKMatchesHost) {
  SPCCL_REQUIRE_DEVICE();
  using T = TypeParam;
  const spcclDataType_t dt = dataTypeOf<T>();
  std::mt19937_64 rng(23);
  for (size_t n : {size_t(1000), size_t(100003), size_t(1) << 20}) {
    for (double density : {0.001, 0.01, 0.1}) {
      const size_t k = topkCount(n, density);
      const std::vector<T> g = randomVector<T>(n, rng), e = randomVector<T>(n, rng);
      const std::vector<T> acc = hostAcc(g, e);
      const std::vector<uint32_t> want = referenceGaussianK(acc.data(), n, k, density);
      DeviceArray<T> dg(g), de(e), dacc(n), dvalues(k);
      DeviceArray<uint32_t> didx(k);
      DeviceArray<char> scratch(device::topkScratchBytes(n));
      ASSERT_EQ(device::gaussiankSelect(dt, dg.get(), de.get(), dacc.get(), n, k, density, didx.get(), dvalues.get(),
                                        scratch.get(), nullptr),
                spcclSuccess);
      CUDA_ASSERT(cudaDeviceSynchronize());
      SCOPED_TRACE(::testing::Message() << "n " << n << " density " << density);
      EXPECT_TRUE(sameBits(dacc.download(), acc));
      const std::vector<uint32_t> got = didx.download();
      ASSERT_EQ(got, want);
      const std::vector<T> values = dvalues.download();
      for (size_t j = 0; j < k; ++j) {
        const T expect = want[j] == SPCCL_PAD_INDEX ? fromAcc<T>(0.0f) : acc[want[j]];
        ASSERT_EQ(memcmp(&values[j], &expect, sizeof(T)), 0) << "slot " << j;
      }
    }
  }
}

// Gaussian-k on data whose first threshold t0 misses the window [2k/3, 4k/3]: a few huge
// outliers inflate sigma (too few above t0: t0/2 and t0/4 are counted), and sparse unit
// values among zeros keep it small (too many: 1.5 t0 and 2.25 t0). All values are exact
// multiples of 1/64, so both sides compute the same thresholds bit for bit.
TYPED_TEST(DeviceTyped, GaussianKSearchesBothWays) {
  SPCCL_REQUIRE_DEVICE();
  using T = TypeParam;
  const spcclDataType_t dt = dataTypeOf<T>();
  std::mt19937_64 rng(41);
  const size_t n = 100000;
  const double density = 0.01;
  const size_t k = topkCount(n, density);
  for (int tooMany = 0; tooMany < 2; ++tooMany) {
    std::vector<T> g(n);
    for (auto& x : g) {
      const int r = (int)(rng() % 1000);
      const float v = tooMany ? (r < 30 ? (r % 2 ? 1.0f : -1.0f) : 0.0f)
                              : (r < 2 ? (r % 2 ? 100.0f : -100.0f) : (float)((int)(rng() % 17) - 8) / 64);
      x = fromAcc<T>(v);
    }
    std::vector<double> visited;
    const std::vector<uint32_t> want = referenceGaussianK(g.data(), n, k, density, &visited);
    ASSERT_EQ(visited.size(), 3u);
    if (tooMany) {
      EXPECT_EQ(visited[1], visited[0] * 1.5);
      EXPECT_EQ(visited[2], visited[0] * 1.5 * 1.5);
    } else {
      EXPECT_EQ(visited[1], visited[0] * 0.5);
      EXPECT_EQ(visited[2], visited[0] * 0.5 * 0.5);
    }
    DeviceArray<T> dg(g), dacc(n), dvalues(k);
    DeviceArray<uint32_t> didx(k);
    DeviceArray<char> scratch(device::topkScratchBytes(n));
    ASSERT_EQ(device::gaussiankSelect(dt, dg.get(), nullptr, dacc.get(), n, k, density, didx.get(), dvalues.get(),
                                      scratch.get(), nullptr),
              spcclSuccess);
    EXPECT_EQ(didx.download(), want) << (tooMany ? "too many at t0" : "too few at t0");
  }
}

// NaN, ±Inf, -0 and subnormals in g and e: the exact top-k takes the same positions as the
// CPU (fewer NaN than k, so NaN payloads, which differ, cannot decide a slot) and the same
// values, NaN payloads aside; so does Gaussian-k, against the CPU kernel.
TYPED_TEST(DeviceTyped, TopKWithSpecialValues) {
  SPCCL_REQUIRE_DEVICE();
  using T = TypeParam;
  const spcclDataType_t dt = dataTypeOf<T>();
  std::mt19937_64 rng(43);
  const size_t n = 30000, k = 600;
  const std::vector<T> g = withSpecials(randomVector<T>(n, rng), 400, rng);
  const std::vector<T> e = withSpecials(randomVector<T>(n, rng), 400, rng);
  const std::vector<T> acc = hostAcc(g, e);
  const std::vector<uint32_t> want = referenceTopK(acc.data(), n, k);
  DeviceArray<T> dg(g), de(e), dacc(n), dvalues(k);
  DeviceArray<uint32_t> didx(k);
  DeviceArray<char> scratch(device::topkScratchBytes(n));
  ASSERT_EQ(device::topkSelect(dt, dg.get(), de.get(), dacc.get(), n, k, didx.get(), dvalues.get(), scratch.get(),
                               nullptr),
            spcclSuccess);
  EXPECT_TRUE(sameValues(dacc.download(), acc));
  ASSERT_EQ(didx.download(), want);
  std::vector<T> wantValues(k);
  for (size_t j = 0; j < k; ++j) wantValues[j] = acc[want[j]];
  EXPECT_TRUE(sameValues(dvalues.download(), wantValues));
  // Gaussian-k on the same values, against the CPU kernel itself: the moments leave the
  // non-finite values out, NaN counts above every threshold (topk_core.h, aboveThreshold).
  std::vector<T> gaussAcc(n), gaussValues(k);
  std::vector<uint32_t> gaussWant(k);
  cpu::gaussianK(g.data(), e.data(), gaussAcc.data(), n, k, 0.02, gaussWant.data(), gaussValues.data());
  ASSERT_EQ(device::gaussiankSelect(dt, dg.get(), de.get(), dacc.get(), n, k, 0.02, didx.get(), dvalues.get(),
                                    scratch.get(), nullptr),
            spcclSuccess);
  EXPECT_TRUE(sameValues(dacc.download(), gaussAcc));
  ASSERT_EQ(didx.download(), gaussWant) << "Gaussian-k";
  EXPECT_TRUE(sameValues(dvalues.download(), gaussValues));
}

// Residual commit then scatter-add of the same pairs: c + e_new == acc on every coordinate.
TYPED_TEST(DeviceTyped, CommitAndScatterConserve) {
  SPCCL_REQUIRE_DEVICE();
  using T = TypeParam;
  const spcclDataType_t dt = dataTypeOf<T>();
  std::mt19937_64 rng(29);
  const size_t n = 50000, k = 700;
  const std::vector<T> acc = randomVector<T>(n, rng);
  std::vector<uint32_t> idx = referenceTopK(acc.data(), n, k);
  idx[k - 1] = SPCCL_PAD_INDEX;  // padding is skipped
  std::vector<T> values(k);
  for (size_t j = 0; j < k; ++j) values[j] = idx[j] == SPCCL_PAD_INDEX ? T() : acc[idx[j]];
  DeviceArray<T> dacc(acc), de(n), dout(n), dvalues(values);
  DeviceArray<uint32_t> didx(idx);
  ASSERT_EQ(device::residualCommit(dt, de.get(), dacc.get(), n, didx.get(), k, nullptr), spcclSuccess);
  ASSERT_EQ(device::scatterAdd(dt, didx.get(), dvalues.get(), k, 1.0, n, dout.get(), nullptr, nullptr), spcclSuccess);
  const std::vector<T> e = de.download(), c = dout.download();
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(toAcc(c[i]) + toAcc(e[i]), toAcc(acc[i])) << "i " << i;
    ASSERT_TRUE(toAcc(c[i]) == 0 || toAcc(e[i]) == 0) << "coordinate " << i << " was split";
  }
}

// Several ranks' gathered lists (ascending, overlapping indices, padding at the end) added in
// list order and scaled by an avg scale that is not a power of two: the CPU's sequence of
// roundings exactly (methods/pairs.cc: per add for fp32/fp64, one rounding of the fp32 sum
// for fp16/bf16), over several chunks of the one-pass kernel.
TYPED_TEST(DeviceTyped, ScatterSortedListsMatchesHost) {
  SPCCL_REQUIRE_DEVICE();
  using T = TypeParam;
  using AccT = typename AccumOf<T>::type;
  const spcclDataType_t dt = dataTypeOf<T>();
  std::mt19937_64 rng(31);
  const size_t n = 70001, k = 9000;
  const int lists = 3;
  const size_t stride = k * sizeof(uint32_t) > k * sizeof(T) ? k * sizeof(uint32_t) : k * sizeof(T);
  // Interleaved like the gathered blocks: list l's indices at l*stride, values at l*stride.
  std::vector<char> idxBytes(lists * stride), valBytes(lists * stride);
  std::vector<T> want(n, fromAcc<T>(0.0f));
  std::vector<AccT> wideSum(n, AccT(0));
  const bool wide = sizeof(T) < sizeof(AccT);
  for (int l = 0; l < lists; ++l) {
    std::vector<uint32_t> idx(n / 4);  // a quarter of the range: lists overlap heavily
    std::iota(idx.begin(), idx.end(), 0u);
    std::shuffle(idx.begin(), idx.end(), rng);
    idx.resize(k);
    std::sort(idx.begin(), idx.end());
    for (int pad = 0; pad <= l; ++pad) idx[k - 1 - pad] = SPCCL_PAD_INDEX;
    const std::vector<T> val = randomVector<T>(k, rng);
    memcpy(idxBytes.data() + l * stride, idx.data(), k * sizeof(uint32_t));
    memcpy(valBytes.data() + l * stride, val.data(), k * sizeof(T));
    for (size_t j = 0; j < k; ++j) {
      if (idx[j] == SPCCL_PAD_INDEX) continue;
      want[idx[j]] = addRounded(want[idx[j]], val[j]);
      wideSum[idx[j]] += toAcc(val[j]);
    }
  }
  const double scale = 1.0 / lists;
  for (size_t i = 0; i < n; ++i)
    want[i] = wide ? fromAcc<T>(AccT(0) + wideSum[i] * (AccT)scale) : scaleRounded(want[i], (AccT)scale);
  DeviceArray<char> didx(idxBytes), dval(valBytes), scratch(device::scatterScratchBytes(n, lists));
  DeviceArray<T> dout(std::vector<T>(n, fromAcc<T>(5.0f)));  // every element is written
  ASSERT_EQ(device::scatterSortedLists(dt, reinterpret_cast<const uint32_t*>(didx.get()), dval.get(), k, lists, stride,
                                       scale, n, dout.get(), scratch.get(), nullptr, nullptr),
            spcclSuccess);
  EXPECT_TRUE(sameBits(dout.download(), want));
}

// A caller's list (spcclDecompress): any order, repeated indices add up, scale 1/3.
TYPED_TEST(DeviceTyped, ScatterAddTakesAnyOrder) {
  SPCCL_REQUIRE_DEVICE();
  using T = TypeParam;
  using AccT = typename AccumOf<T>::type;
  const spcclDataType_t dt = dataTypeOf<T>();
  std::mt19937_64 rng(37);
  const size_t n = 5000, npairs = 3000;
  std::vector<uint32_t> idx(npairs);
  for (auto& i : idx) i = (uint32_t)(rng() % (n / 2));  // repeats
  idx[7] = SPCCL_PAD_INDEX;
  // Multiples of 1/4 small enough that any order of adds is exact in every type.
  std::vector<T> val(npairs), want(n, fromAcc<T>(0.0f));
  for (size_t j = 0; j < npairs; ++j) val[j] = fromAcc<T>((float)((int)(rng() % 9) - 4) * 0.25f);
  for (size_t j = 0; j < npairs; ++j)
    if (idx[j] != SPCCL_PAD_INDEX) want[idx[j]] = addRounded(want[idx[j]], val[j]);
  const double scale = 1.0 / 3;
  for (auto& v : want) v = scaleRounded(v, (AccT)scale);
  DeviceArray<uint32_t> didx(idx);
  DeviceArray<T> dval(val), dout(n);
  ASSERT_EQ(device::scatterAdd(dt, didx.get(), dval.get(), npairs, scale, n, dout.get(), nullptr, nullptr),
            spcclSuccess);
  EXPECT_TRUE(sameBits(dout.download(), want));
}

// The one-pass scatter of nlists lists of float pairs (list l at l * stride bytes), with the
// scratch it needs.
std::vector<float> scatterLists(const std::vector<uint32_t>& idx, const std::vector<float>& val, size_t npairs,
                                int nlists, size_t n, device::BadPairReport* report) {
  const size_t stride = npairs * sizeof(uint32_t);  // 4-byte values and indices: one stride
  DeviceArray<uint32_t> didx(idx);
  DeviceArray<float> dval(val), dout(n);
  DeviceArray<char> scratch(device::scatterScratchBytes(n, nlists));
  EXPECT_EQ(device::scatterSortedLists(spcclFloat32, didx.get(), dval.get(), npairs, nlists, stride, 1.0, n,
                                       dout.get(), scratch.get(), report, nullptr),
            spcclSuccess);
  return dout.download();
}

// An index >= n that is not padding is dropped by both scatters and reported (index, then
// kind); clean lists leave the report clear.
TEST(DeviceScatter, BadIndexIsFlagged) {
  SPCCL_REQUIRE_DEVICE();
  const size_t n = 50000, k = 4;
  PinnedReport report;
  for (int sorted = 0; sorted < 2; ++sorted) {
    for (uint32_t last : {uint32_t(n - 1), uint32_t(n + 5)}) {
      report.clear();
      const std::vector<uint32_t> idx = {3, 40000, last, SPCCL_PAD_INDEX};
      std::vector<float> out;
      if (sorted) {
        out = scatterLists(idx, std::vector<float>(k, 1.0f), k, 1, n, report.get());
      } else {
        DeviceArray<uint32_t> didx(idx);
        DeviceArray<float> dval(std::vector<float>(k, 1.0f)), dout(n);
        ASSERT_EQ(device::scatterAdd(spcclFloat32, didx.get(), dval.get(), k, 1.0, n, dout.get(), report.get(),
                                     nullptr),
                  spcclSuccess);
        out = dout.download();
      }
      EXPECT_EQ(out[3] + out[40000], 2.0f);
      const bool bad = last >= n;
      EXPECT_EQ(report.get()->kind, bad ? (uint32_t)device::kPairOutOfRange : 0u)
          << "sorted " << sorted << " last " << last;
      if (bad) EXPECT_EQ(report.get()->index, last);
      else EXPECT_EQ(out[last], 1.0f);
    }
  }
}

// Lists that break the sorted scatter's contract (what a peer with a corrupt payload, or a
// different k or stride, would send): unsorted, repeated, padding in the middle, indices
// far apart. The kernel must stay in bounds (a shared-memory write out of bounds loses the
// CUDA context), keep every in-order pair it can place, and report the list. The context
// must still work afterwards.
TEST(DeviceScatter, UnsortedListsStayInBoundsAndAreReported) {
  SPCCL_REQUIRE_DEVICE();
  const size_t n = 3 * 4096 + 17;  // several chunks
  std::mt19937_64 rng(53);
  const std::vector<std::vector<uint32_t>> lists = {
      {9000, 3, 12000, 5, 4100, 1},                                     // descending jumps
      {10, 10, 20, 30, 40, 50},                                         // a repeat
      {7, SPCCL_PAD_INDEX, 8, 9, 4097, 8193},                           // padding in the middle
      {12288, 12290, 0, 1, 2, 3},                                       // last chunk first
      {(uint32_t)(rng() % n), (uint32_t)(rng() % n), (uint32_t)(rng() % n), (uint32_t)(rng() % n),
       (uint32_t)(rng() % n), (uint32_t)(rng() % n)}};                  // random order
  PinnedReport report;
  for (size_t c = 0; c < lists.size(); ++c) {
    report.clear();
    const std::vector<uint32_t>& idx = lists[c];
    const std::vector<float> out = scatterLists(idx, std::vector<float>(idx.size(), 1.0f), idx.size(), 1, n,
                                                report.get());
    CUDA_ASSERT(cudaGetLastError());
    double total = 0;
    for (float v : out) total += v;
    EXPECT_LE(total, (double)idx.size()) << "list " << c << ": a pair was added twice or out of place";
    const bool sorted = std::is_sorted(idx.begin(), idx.end()) &&
                        std::adjacent_find(idx.begin(), idx.end()) == idx.end();
    if (!sorted) EXPECT_EQ(report.get()->kind, (uint32_t)device::kPairsUnordered) << "list " << c;
  }
  // The context survived: a clean scatter still runs and is exact.
  report.clear();
  const std::vector<float> out = scatterLists({1, 5000, 9000}, {1.0f, 2.0f, 3.0f}, 3, 1, n, report.get());
  EXPECT_EQ(out[1] + out[5000] + out[9000], 6.0f);
  EXPECT_EQ(report.get()->kind, 0u);
}

// n = 16M: every CTA of the sorted-list scatter takes several chunks (the grid-stride loop's
// barriers run), with 40 lists (more than one warp's worth) against the CPU's order of adds.
TEST(DeviceScatter, BlocksLoopOverChunksAt16M) {
  SPCCL_REQUIRE_DEVICE();
  const size_t n = size_t(1) << 24, k = n / 256;
  const int nlists = 40;
  std::mt19937_64 rng(59);
  std::vector<uint32_t> idx(k * nlists);
  std::vector<float> val(k * nlists), want(n, 0.0f);
  for (int l = 0; l < nlists; ++l) {
    uint32_t at = (uint32_t)(rng() % 64);
    for (size_t j = 0; j < k; ++j) {
      idx[l * k + j] = at < n ? at : SPCCL_PAD_INDEX;
      at += 1 + (uint32_t)(rng() % 500);
    }
    for (size_t j = 0; j < k; ++j) {
      val[l * k + j] = (float)((int)(rng() % 2001) - 1000) / 64;
      if (idx[l * k + j] != SPCCL_PAD_INDEX) want[idx[l * k + j]] += val[l * k + j];  // list order, as the kernel
    }
  }
  PinnedReport report;
  EXPECT_TRUE(sameBits(scatterLists(idx, val, k, nlists, n, report.get()), want));
  EXPECT_EQ(report.get()->kind, 0u);
}

}  // namespace
}  // namespace spccl_test
