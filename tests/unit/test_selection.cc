// SPDX-License-Identifier: Apache-2.0
//
// The shared random stream: deterministic, distinct, in range, m blocks, a bijection
// between slots and blocks, and uniform over many steps.

#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "select_core.h"

namespace spccl {
namespace {

std::vector<uint64_t> chosen(const BlockSelection& sel) {
  std::vector<uint64_t> blocks;
  for (uint64_t i = 0; i < sel.nselected; ++i) blocks.push_back(slotBlock(sel, i));
  return blocks;
}

class SelectionTest : public ::testing::TestWithParam<int> {};  // the pattern

TEST_P(SelectionTest, DeterministicDistinctInRange) {
  const int scattered = GetParam();
  for (uint64_t nb : std::vector<uint64_t>{1, 2, 3, 7, 64, 1000, 4097, 1 << 16}) {
    for (uint64_t m : {uint64_t(1), nb / 3 + 1, nb}) {
      for (uint64_t step = 0; step < 5; ++step) {
        const uint64_t key = selectionKey(42, 7, step);
        auto a = chosen(makeBlockSelection(nb, m, scattered, key));
        auto b = chosen(makeBlockSelection(nb, m, scattered, key));
        ASSERT_EQ(a, b);
        ASSERT_EQ(a.size(), m);
        std::set<uint64_t> distinct(a.begin(), a.end());
        ASSERT_EQ(distinct.size(), m) << "nb " << nb << " m " << m;
        ASSERT_LT(*distinct.rbegin(), nb);
      }
    }
  }
}

TEST_P(SelectionTest, SlotAndBlockAreInverse) {
  const int scattered = GetParam();
  for (uint64_t nb : {1ull, 5ull, 100ull, 1023ull, 1024ull, 1025ull}) {
    const BlockSelection sel = makeBlockSelection(nb, (nb + 2) / 3, scattered, selectionKey(1, 2, 3));
    uint64_t chosenCount = 0;
    for (uint64_t b = 0; b < nb; ++b) {
      const uint64_t slot = blockSlot(sel, b);
      if (slot == sel.nselected) continue;
      ++chosenCount;
      ASSERT_EQ(slotBlock(sel, slot), b);
    }
    ASSERT_EQ(chosenCount, sel.nselected);
  }
}

TEST_P(SelectionTest, FrequencyCloseToDensity) {
  const int scattered = GetParam();
  const uint64_t nb = 256, m = 4;  // density 1/64
  const int steps = 10000;
  std::vector<int> hits(nb, 0);
  for (int step = 0; step < steps; ++step)
    for (uint64_t b : chosen(makeBlockSelection(nb, m, scattered, selectionKey(0x5bcc1, 0, step)))) ++hits[b];
  const double expected = steps * double(m) / nb;  // 156.25 per block
  for (uint64_t b = 0; b < nb; ++b) {
    // Binomial sd is about 12.4: 5 sd is "a few percent of density" over 10,000 steps.
    EXPECT_NEAR(hits[b], expected, 5 * 12.5) << "block " << b;
  }
}

TEST_P(SelectionTest, DependsOnSeedKeyAndStep) {
  const int scattered = GetParam();
  auto pick = [&](uint64_t seed, uint64_t key, uint64_t step) {
    return chosen(makeBlockSelection(1 << 16, 64, scattered, selectionKey(seed, key, step)));
  };
  EXPECT_NE(pick(1, 0, 0), pick(2, 0, 0));
  EXPECT_NE(pick(1, 0, 0), pick(1, 1, 0));
  EXPECT_NE(pick(1, 0, 0), pick(1, 0, 1));
}

INSTANTIATE_TEST_SUITE_P(Patterns, SelectionTest, ::testing::Values(0, 1),
                         [](const auto& info) { return info.param ? "Scattered" : "Contiguous"; });

// 4 of 10 blocks, contiguous: one run of 4 from some start, wrapping past block 9 for some
// steps. The count is asserted first, so the run check below cannot pass vacuously.
TEST(Selection, ContiguousIsOneWrappingRun) {
  bool wrapped = false;
  for (uint64_t step = 0; step < 64; ++step) {
    const BlockSelection sel = makeBlockSelection(10, 4, 0, selectionKey(3, 0, step));
    ASSERT_EQ(sel.nselected, 4u) << "step " << step;
    const uint64_t first = slotBlock(sel, 0);
    ASSERT_LT(first, 10u);
    for (uint64_t i = 1; i < sel.nselected; ++i) EXPECT_EQ(slotBlock(sel, i), (first + i) % 10) << "step " << step;
    wrapped |= first + sel.nselected > 10;
  }
  EXPECT_TRUE(wrapped) << "no step's run wrapped past the last block";
}

}  // namespace
}  // namespace spccl
