// SPDX-License-Identifier: Apache-2.0
//
// The 1-bit device kernels against the CPU kernels on the same inputs, in every type: the
// messages (scale and sign words), the residual, the unpacked values, the server mean and the
// decompress scaling must be identical bit for bit (onebit_core.h: the same summation tree
// and one rounding per stored value on both sides). NaN inputs compare NaN-for-NaN (the GPU
// returns the canonical NaN, device_test.h). The sizes cross every edge of the tree: a
// partial last word, exactly one word, one group (1024), more than one level of folds
// (32^3 = 32768), empty chunks (n < P).

#include <vector>

#include "common/onebit_reference.h"
#include "cpu/onebit_kernels.h"
#include "device.h"
#include "device_test.h"

namespace spccl_test {
namespace {

using namespace spccl;

struct Case {
  size_t n;
  uint32_t nchunks;
};

std::vector<Case> cases(std::mt19937_64& rng) {
  std::vector<Case> c = {{0, 1},    {1, 1},     {31, 1},    {32, 1},      {33, 1},      {1000, 1}, {1024, 1},
                         {1025, 1}, {3, 5},     {100, 7},   {32768, 1},   {32769, 1},   {70001, 3}, {100003, 5},
                         {1 << 20, 1}, {(1 << 20) + 17, 4}, {2000000, 2}};
  for (int i = 0; i < 12; ++i) c.push_back({1 + rng() % 200000, 1 + uint32_t(rng() % 9)});
  return c;
}

// The parts of each message that carry information: the scale, and the words of its chunk.
::testing::AssertionResult sameMessages(const std::vector<char>& a, const std::vector<char>& b, const SignChunks& c) {
  for (uint32_t j = 0; j < c.nchunks; ++j) {
    const SignMessageView ma = signMessage(a.data(), c.messageBytes, j), mb = signMessage(b.data(), c.messageBytes, j);
    const bool bothNan = std::isnan(*ma.scale) && std::isnan(*mb.scale);
    if (!bothNan && memcmp(ma.scale, mb.scale, sizeof(double)) != 0)
      return ::testing::AssertionFailure() << "chunk " << j << " scale " << *ma.scale << " != " << *mb.scale;
    for (size_t w = 0; w < signWords(chunkSize(c, j)); ++w)
      if (ma.words[w] != mb.words[w])
        return ::testing::AssertionFailure() << "chunk " << j << " word " << w << ": " << std::hex << ma.words[w]
                                             << " != " << mb.words[w];
  }
  return ::testing::AssertionSuccess();
}

TYPED_TEST_SUITE(DeviceTyped, DeviceStorageTypes);

// Worker level (P chunks of x = g + e, e null or not) and server level (one chunk), then the
// residual commit in place and the unpack, on both sides.
TYPED_TEST(DeviceTyped, OneBitKernelsMatchCpu) {
  SPCCL_REQUIRE_DEVICE();
  using T = TypeParam;
  const spcclDataType_t dt = dataTypeOf<T>();
  std::mt19937_64 rng(21);
  for (const Case& k : cases(rng)) {
    for (int withFeedback = 0; withFeedback < 2; ++withFeedback) {
      for (int specials = 0; specials < 2; ++specials) {
        const SignChunks c = signChunks(k.n, k.nchunks);
        SCOPED_TRACE(::testing::Message() << "n " << k.n << " chunks " << k.nchunks << " feedback " << withFeedback
                                          << " specials " << specials);
        std::vector<T> g = randomVector<T>(k.n, rng), e = randomVector<T>(k.n, rng);
        if (specials) g = withSpecials(g, 97, rng);
        const T* eHost = withFeedback ? e.data() : nullptr;
        // CPU
        std::vector<char> messages(c.nchunks * c.messageBytes, 0);
        cpu::signCompress(g.data(), eHost, c, messages.data());
        std::vector<T> eCpu = e, outCpu(k.n);
        if (withFeedback) cpu::signResidual(g.data(), eCpu.data(), c, messages.data(), eCpu.data());
        cpu::signUnpack(c, messages.data(), outCpu.data());
        // Device
        DeviceArray<T> dg(g), de(e), dout(k.n);
        DeviceArray<char> dmessages(messages.size()), dscratch(device::signScratchBytes(c));
        ASSERT_EQ(device::signCompress(dt, dg.get(), withFeedback ? de.get() : nullptr, c, dmessages.get(),
                                       dscratch.get(), nullptr),
                  spcclSuccess);
        if (withFeedback)
          ASSERT_EQ(device::signResidual(dt, dg.get(), de.get(), c, dmessages.get(), de.get(), nullptr), spcclSuccess);
        ASSERT_EQ(device::signUnpack(dt, c, dmessages.get(), dout.get(), nullptr), spcclSuccess);
        CUDA_ASSERT(cudaDeviceSynchronize());
        EXPECT_TRUE(sameMessages(dmessages.download(), messages, c));
        EXPECT_TRUE(sameValues(de.download(), eCpu));
        EXPECT_TRUE(sameValues(dout.download(), outCpu));
        if (!specials) {  // the scale is the tree's sum over the length, as the reference states it
          std::vector<typename AccumOf<T>::type> ref(k.n);
          std::vector<T> x(k.n);
          for (size_t i = 0; i < k.n; ++i) x[i] = feedbackValue(g.data(), eHost, i);
          for (uint32_t j = 0; j < c.nchunks; ++j) {
            const double s = referenceSignCompress(x, chunkBegin(c, j), chunkBegin(c, j) + chunkSize(c, j), dt, &ref);
            EXPECT_EQ(*signMessage(messages.data(), c.messageBytes, j).scale, s) << "chunk " << j;
          }
        }
      }
    }
  }
}

// The server's mean over P messages of equal chunks (sum and avg factors), and the decompress
// scaling, in place and out of place.
TYPED_TEST(DeviceTyped, OneBitMeanAndScaleMatchCpu) {
  SPCCL_REQUIRE_DEVICE();
  using T = TypeParam;
  using AccT = typename AccumOf<T>::type;
  const spcclDataType_t dt = dataTypeOf<T>();
  std::mt19937_64 rng(22);
  for (size_t len : {1, 31, 32, 1000, 70001}) {
    for (int P : {1, 3, 8}) {
      for (double factor : {1.0, 1.0 / P}) {
        SCOPED_TRACE(::testing::Message() << "len " << len << " P " << P << " factor " << factor);
        const SignChunks c = signChunks(len * P, P);
        const std::vector<T> g = randomVector<T>(len * P, rng);
        std::vector<char> messages(P * c.messageBytes, 0);
        cpu::signCompress(g.data(), (const T*)nullptr, c, messages.data());
        std::vector<T> meanCpu(len), scaledCpu(len);
        cpu::signMean(messages.data(), c.messageBytes, P, len, (AccT)factor, meanCpu.data());
        for (size_t i = 0; i < len; ++i) scaledCpu[i] = scaleRounded(g[i], (AccT)factor);
        DeviceArray<char> dmessages(messages.size());
        dmessages.upload(messages);
        DeviceArray<T> dmean(len), dg(g), dscaled(len);
        ASSERT_EQ(device::signMean(dt, dmessages.get(), c.messageBytes, P, len, factor, dmean.get(), nullptr),
                  spcclSuccess);
        ASSERT_EQ(device::scaleValues(dt, dg.get(), len, factor, dscaled.get(), nullptr), spcclSuccess);
        ASSERT_EQ(device::scaleValues(dt, dg.get(), len, factor, dg.get(), nullptr), spcclSuccess);  // in place
        CUDA_ASSERT(cudaDeviceSynchronize());
        EXPECT_TRUE(sameBits(dmean.download(), meanCpu));
        EXPECT_TRUE(sameBits(dscaled.download(), scaledCpu));
        std::vector<T> inPlace = dg.download();
        inPlace.resize(len);
        EXPECT_TRUE(sameBits(inPlace, scaledCpu));
      }
    }
  }
}

}  // namespace
}  // namespace spccl_test
