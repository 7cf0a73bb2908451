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
  ASSERT_EQ(device::scatterAdd(dt, didx.get(), dvalues.get(), k, 1, 0, 1.0, n, dout.get(), nullptr), spcclSuccess);
  const std::vector<T> e = de.download(), c = dout.download();
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(toAcc(c[i]) + toAcc(e[i]), toAcc(acc[i])) << "i " << i;
    ASSERT_TRUE(toAcc(c[i]) == 0 || toAcc(e[i]) == 0) << "coordinate " << i << " was split";
  }
}

// Several ranks' lists (overlapping indices) added in list order, then scaled: the CPU's
// sequence of roundings exactly.
TYPED_TEST(DeviceTyped, ScatterAddMatchesHost) {
  SPCCL_REQUIRE_DEVICE();
  using T = TypeParam;
  using AccT = typename AccumOf<T>::type;
  const spcclDataType_t dt = dataTypeOf<T>();
  std::mt19937_64 rng(31);
  const size_t n = 20000, k = 3000;
  const int lists = 4;
  const size_t stride = k * sizeof(uint32_t) > k * sizeof(T) ? k * sizeof(uint32_t) : k * sizeof(T);
  // Interleaved like the gathered blocks: list l's indices at l*stride, values at l*stride.
  std::vector<char> idxBytes(lists * stride), valBytes(lists * stride);
  std::vector<T> want(n, fromAcc<T>(0.0f));
  for (int l = 0; l < lists; ++l) {
    std::vector<uint32_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0u);
    std::shuffle(idx.begin(), idx.end(), rng);
    idx.resize(k);
    idx[l] = SPCCL_PAD_INDEX;
    const std::vector<T> val = randomVector<T>(k, rng);
    memcpy(idxBytes.data() + l * stride, idx.data(), k * sizeof(uint32_t));
    memcpy(valBytes.data() + l * stride, val.data(), k * sizeof(T));
    for (size_t j = 0; j < k; ++j)
      if (idx[j] != SPCCL_PAD_INDEX) want[idx[j]] = addRounded(want[idx[j]], val[j]);
  }
  const double scale = 1.0 / lists;
  for (auto& v : want) v = scaleRounded(v, (AccT)scale);
  DeviceArray<char> didx(idxBytes), dval(valBytes);
  DeviceArray<T> dout(n);
  ASSERT_EQ(device::scatterAdd(dt, reinterpret_cast<const uint32_t*>(didx.get()), dval.get(), k, lists, stride, scale,
                               n, dout.get(), nullptr),
            spcclSuccess);
  EXPECT_TRUE(sameBits(dout.download(), want));
}

}  // namespace
}  // namespace spccl_test
