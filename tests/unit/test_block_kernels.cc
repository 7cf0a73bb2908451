// SPDX-License-Identifier: Apache-2.0
//
// CPU random-block kernels: pack/unpack round trip, and conservation c + e_new == g + e_old
// exactly (one rounding for half types) for random sizes, block sizes, densities and types.

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "cpu/block_kernels.h"

namespace spccl {
namespace {

template <typename T>
struct Typed : ::testing::Test {};
using StorageTypes = ::testing::Types<float, double, half_t, bfloat16_t>;
TYPED_TEST_SUITE(Typed, StorageTypes);

template <typename T>
std::vector<T> randomVector(size_t n, std::mt19937_64& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<T> v(n);
  for (auto& x : v) x = fromAcc<T>(dist(rng));
  return v;
}

struct Case {
  size_t n, blockSize, nselected;
  int scattered;
};

std::vector<Case> randomCases(std::mt19937_64& rng, int count = 40) {
  std::vector<Case> cases = {{1, 1, 1, 0}, {1, 64, 1, 1}, {100, 256, 1, 0}, {1000, 64, 16, 1}, {1000, 7, 143, 0}};
  for (int i = 0; i < count; ++i) {
    const size_t n = 1 + rng() % 5000, B = 1 + rng() % 300, nb = (n + B - 1) / B;
    cases.push_back({n, B, 1 + rng() % nb, int(rng() % 2)});
  }
  return cases;
}

// Conservation: compress (pack + residual update), then decompress the packed values; the
// contribution plus the new residual equals g + e_old, coordinate by coordinate. A property
// test: a thousand random (size, block size, blocks chosen, pattern, step) cases per type.
TYPED_TEST(Typed, ConservationIsExact) {
  using T = TypeParam;
  using AccT = typename AccumOf<T>::type;
  std::mt19937_64 rng(123);
  for (const Case& c : randomCases(rng, 1000)) {
    const BlockSelection sel = makeBlockSelection((c.n + c.blockSize - 1) / c.blockSize, c.nselected, c.scattered,
                                                  selectionKey(9, 1, rng()));
    std::vector<T> g = randomVector<T>(c.n, rng), e = randomVector<T>(c.n, rng), e0 = e;
    std::vector<T> packed(sel.nselected * c.blockSize), contribution(c.n);
    std::vector<cpu::BlockSlot> order(sel.nselected);
    cpu::sortedSelection(sel, order.data());
    cpu::feedbackPack(g.data(), e.data(), c.n, c.blockSize, sel, packed.data());
    cpu::unpackCommit<T>({g.data(), e.data(), e.data(), nullptr, 1, nullptr}, c.n, c.blockSize, order.data(),
                         sel.nselected);
    cpu::unpackCommit<T>({nullptr, nullptr, nullptr, packed.data(), 1, contribution.data()}, c.n, c.blockSize,
                         order.data(), sel.nselected);
    size_t moved = 0;
    for (size_t i = 0; i < c.n; ++i) {
      const AccT acc = toAcc(fromAcc<T>(toAcc(g[i]) + toAcc(e0[i])));  // acc rounded once into T
      ASSERT_EQ(toAcc(contribution[i]) + toAcc(e[i]), acc) << "n " << c.n << " B " << c.blockSize << " i " << i;
      ASSERT_TRUE(toAcc(contribution[i]) == 0 || toAcc(e[i]) == 0) << "a coordinate was split";
      moved += blockSlot(sel, i / c.blockSize) != sel.nselected;
    }
    size_t chosenElements = 0;  // m blocks, the short last one counted at its length
    for (uint64_t slot = 0; slot < sel.nselected; ++slot)
      chosenElements += std::min(c.blockSize, c.n - slotBlock(sel, slot) * c.blockSize);
    EXPECT_EQ(moved, chosenElements);
  }
}

// Without feedback: the residual is untouched, the output is g on the chosen blocks times
// the scale, zero elsewhere; the short last block's padding packs as zero.
TYPED_TEST(Typed, PackUnpackRoundTrip) {
  using T = TypeParam;
  std::mt19937_64 rng(7);
  for (const Case& c : randomCases(rng)) {
    const BlockSelection sel = makeBlockSelection((c.n + c.blockSize - 1) / c.blockSize, c.nselected, c.scattered,
                                                  selectionKey(5, 0, rng()));
    std::vector<T> g = randomVector<T>(c.n, rng), out(c.n, fromAcc<T>(99.0f));
    std::vector<T> packed(sel.nselected * c.blockSize, fromAcc<T>(77.0f));
    std::vector<cpu::BlockSlot> order(sel.nselected);
    cpu::sortedSelection(sel, order.data());
    cpu::feedbackPack<T>(g.data(), nullptr, c.n, c.blockSize, sel, packed.data());
    for (uint64_t slot = 0; slot < sel.nselected; ++slot) {
      const size_t begin = slotBlock(sel, slot) * c.blockSize;
      for (size_t j = 0; j < c.blockSize; ++j) {
        const float want = begin + j < c.n ? toAcc(g[begin + j]) : 0.0f;
        ASSERT_EQ(toAcc(packed[slot * c.blockSize + j]), want);
      }
    }
    cpu::unpackCommit<T>({nullptr, nullptr, nullptr, packed.data(), 0.5f, out.data()}, c.n, c.blockSize,
                         order.data(), sel.nselected);
    for (size_t i = 0; i < c.n; ++i) {
      const bool chosen = blockSlot(sel, i / c.blockSize) != sel.nselected;
      const float want = chosen ? toAcc(fromAcc<T>(toAcc(g[i]) * 0.5f)) : 0.0f;
      ASSERT_EQ(toAcc(out[i]), want) << i;
    }
  }
}

// In-place (out == g) with feedback: g is consumed before it is overwritten.
TEST(BlockKernels, InPlaceCommitReadsBeforeWriting) {
  const size_t n = 1000, B = 10;
  const BlockSelection sel = makeBlockSelection(100, 10, 1, selectionKey(1, 1, 1));
  std::vector<float> g(n), e(n, 0.5f), packed(sel.nselected * B);
  for (size_t i = 0; i < n; ++i) g[i] = float(i);
  std::vector<cpu::BlockSlot> order(sel.nselected);
  cpu::sortedSelection(sel, order.data());
  cpu::feedbackPack(g.data(), e.data(), n, B, sel, packed.data());
  cpu::unpackCommit<float>({g.data(), e.data(), e.data(), packed.data(), 1, g.data()}, n, B, order.data(),
                           sel.nselected);
  for (size_t i = 0; i < n; ++i) {
    const bool chosen = blockSlot(sel, i / B) != sel.nselected;
    ASSERT_EQ(g[i], chosen ? float(i) + 0.5f : 0.0f);
    ASSERT_EQ(e[i], chosen ? 0.0f : float(i) + 0.5f);
  }
}

// The overlapped path: the commit pass in slices into a second residual buffer, then the
// chosen blocks; the result equals one in-place pass, and the old residual is untouched.
TEST(BlockKernels, SlicedDoubleBufferedCommitEqualsOnePass) {
  std::mt19937_64 rng(3);
  for (const Case& c : randomCases(rng)) {
    const BlockSelection sel = makeBlockSelection((c.n + c.blockSize - 1) / c.blockSize, c.nselected, c.scattered,
                                                  selectionKey(2, 2, rng()));
    std::vector<float> g = randomVector<float>(c.n, rng), e = randomVector<float>(c.n, rng), e0 = e;
    std::vector<float> packed = randomVector<float>(sel.nselected * c.blockSize, rng);
    std::vector<cpu::BlockSlot> order(sel.nselected);
    cpu::sortedSelection(sel, order.data());
    std::vector<float> outOnce(c.n), outSliced(c.n), eNext(c.n);
    cpu::unpackCommit<float>({g.data(), e.data(), e.data(), packed.data(), 0.25f, outOnce.data()}, c.n, c.blockSize,
                             order.data(), sel.nselected);
    const size_t slice = c.blockSize * (1 + rng() % 5);
    for (size_t begin = 0; begin < c.n; begin += slice)
      cpu::unpackCommit<float>({g.data(), e0.data(), eNext.data(), nullptr, 0.25f, outSliced.data()}, c.n,
                               c.blockSize, order.data(), sel.nselected, begin, begin + slice);
    cpu::unpackChosen(packed.data(), 0.25f, c.n, c.blockSize, order.data(), sel.nselected, outSliced.data());
    ASSERT_EQ(outOnce, outSliced);
    ASSERT_EQ(e, eNext);
  }
}

}  // namespace
}  // namespace spccl
