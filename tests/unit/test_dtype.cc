// SPDX-License-Identifier: Apache-2.0
//
// fp16 / bf16 conversions: exact round trips, round-to-nearest-even, specials.

#include <gtest/gtest.h>

#include <cmath>

#include "dtype_core.h"

namespace spccl {
namespace {

TEST(Dtype, HalfRoundTripsEveryPattern) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = halfToFloat((uint16_t)h);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(f))));
      continue;
    }
    ASSERT_EQ(floatToHalf(f), h) << std::hex << h;
  }
}

TEST(Dtype, BfloatRoundTripsEveryPattern) {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float f = bf16ToFloat((uint16_t)b);
    if (std::isnan(f)) continue;
    ASSERT_EQ(floatToBf16(f), b) << std::hex << b;
  }
}

TEST(Dtype, HalfRoundsToNearestEven) {
  EXPECT_EQ(halfToFloat(floatToHalf(1.0f + 1.0f / 2048)), 1.0f);            // tie -> even (down)
  EXPECT_EQ(halfToFloat(floatToHalf(1.0f + 3.0f / 2048)), 1.0f + 2.0f / 1024);  // tie -> even (up)
  EXPECT_EQ(halfToFloat(floatToHalf(65520.0f)), INFINITY);
  EXPECT_EQ(halfToFloat(floatToHalf(65519.0f)), 65504.0f);
  EXPECT_EQ(halfToFloat(floatToHalf(5.9604644775390625e-8f)), 5.9604644775390625e-8f);  // smallest subnormal
  EXPECT_EQ(halfToFloat(floatToHalf(2.9802322387695312e-8f)), 0.0f);                   // half of it: tie -> 0
  EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(NAN))));
}

TEST(Dtype, BfloatRoundsToNearestEven) {
  EXPECT_EQ(bf16ToFloat(floatToBf16(1.0f + 1.0f / 256)), 1.0f);
  EXPECT_EQ(bf16ToFloat(floatToBf16(1.0f + 3.0f / 256)), 1.0f + 2.0f / 128);
  EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(NAN))));
}

}  // namespace
}  // namespace spccl
