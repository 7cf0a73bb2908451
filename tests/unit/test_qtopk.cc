// SPDX-License-Identifier: Apache-2.0
//
// Quantized Top-k (qtopk; docs/DESIGN.md, "Quantized Top-k") through the public calls on a
// one-rank comm, where the collective's output is this rank's c: the worked example of the
// rule, exact conservation c + e_new == g + e_old over many steps and magnitudes in every
// type, the levels on the wire, and the refused settings.

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "common/loopback_comm.h"
#include "cpu/qtopk_kernels.h"
#include "dtype_core.h"
#include "spccl.h"

namespace {

using spccl::bfloat16_t;
using spccl::half_t;

spcclState_t makeState(size_t n, spcclDataType_t t, int bits, double density, int chunk) {
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = spcclMethodQTopK;
  cfg.density = density;
  cfg.blockSize = chunk;
  cfg.valueBits = bits;
  cfg.feedback = spcclFeedbackEF;
  spcclState_t st = nullptr;
  EXPECT_EQ(spcclStateCreate(&st, spccl_fuzz::loopbackComm(), &cfg, n, t), spcclSuccess) << spcclGetLastError(nullptr);
  return st;
}

// One chunk of 8, density 1/2 (4 slots): the 4 largest magnitudes are 5, 3, -2.5 and 1.1.
// 4 bits (levels -7..7): the peak 5 needs 7 * 2^E >= 5, so E = 0 and c = 5, 3, -3 (|-2.5| + 1/2
// floors to 3) and 1. 2 bits (levels -1..1): E = 3 (scale 8); only 5 rounds to a level, 1.
TEST(QTopK, WorkedExample) {
  const std::vector<float> g = {3.0f, -0.4f, 1.1f, 0.2f, -2.5f, 0.9f, 0.0f, 5.0f};
  const std::vector<std::vector<float>> expected = {{0, 0, 0, 0, 0, 0, 0, 8}, {3, 0, 1, 0, -3, 0, 0, 5}};
  int which = 0;
  for (int bits : {2, 4}) {
    spcclState_t st = makeState(8, spcclFloat32, bits, 0.5, 8);
    std::vector<float> out(8);
    ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), 8, spcclFloat32, spcclSum, st, spccl_fuzz::loopbackComm(),
                                   nullptr),
              spcclSuccess);
    EXPECT_EQ(out, expected[which++]) << bits << " bits";
    void* e = nullptr;
    ASSERT_EQ(spcclStateGetResidual(st, &e), spcclSuccess);
    for (int i = 0; i < 8; ++i) EXPECT_EQ(out[i] + static_cast<float*>(e)[i], g[i]) << i;
    spcclStateInfo_t info = SPCCL_STATE_INFO_INITIALIZER;
    ASSERT_EQ(spcclStateGetInfo(st, &info), spcclSuccess);
    EXPECT_EQ(info.selected, 4u);
    spcclStateDestroy(st);
  }
}

template <typename T>
double value(const std::vector<T>& v, size_t i) {
  return (double)spccl::toAcc(v[i]);
}

// Many steps of gradients whose magnitudes span 2^-30 .. 2^30 (fp16: 2^-20 .. 2^12), with a
// short last chunk: on every coordinate the output c and the new residual add up to
// g + e_old exactly (acc rounded once into T), and every nonzero c is a level in [-L, L]
// times a power of two.
template <typename T>
void conservationHolds(spcclDataType_t t, int spread) {
  const size_t n = 1000;
  for (int bits : {2, 3, 4, 8}) {
    spcclState_t st = makeState(n, t, bits, 0.1, 96);
    std::mt19937 rng(bits);
    std::uniform_real_distribution<double> mantissa(-1.0, 1.0);
    std::uniform_int_distribution<int> exponent(-spread, spread / 2);
    std::vector<T> g(n), out(n), before(n);
    for (int step = 0; step < 30; ++step) {
      for (size_t i = 0; i < n; ++i) g[i] = spccl::fromAcc<T>(ldexp(mantissa(rng), exponent(rng)));
      void* e = nullptr;
      ASSERT_EQ(spcclStateGetResidual(st, &e), spcclSuccess);
      before.assign(static_cast<T*>(e), static_cast<T*>(e) + n);
      ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, t, spcclSum, st, spccl_fuzz::loopbackComm(), nullptr),
                spcclSuccess);
      const T* after = static_cast<const T*>(e);
      size_t sent = 0;
      for (size_t i = 0; i < n; ++i) {
        const double acc = (double)spccl::toAcc(spccl::addRounded(g[i], before[i]));
        const double c = value(out, i), enew = (double)spccl::toAcc(after[i]);
        ASSERT_EQ(c + enew, acc) << bits << " bits, step " << step << ", element " << i;
        if (c == 0) continue;
        ++sent;
        int ex;
        const double m = frexp(fabs(c), &ex);  // c = m * 2^ex: at most bits - 1 significant bits
        EXPECT_EQ(ldexp(m, bits - 1), floor(ldexp(m, bits - 1))) << c;
      }
      EXPECT_GT(sent, 0u);
    }
    spcclStateDestroy(st);
  }
}

TEST(QTopK, ConservationIsExactFloat) { conservationHolds<float>(spcclFloat32, 30); }
TEST(QTopK, ConservationIsExactDouble) { conservationHolds<double>(spcclFloat64, 30); }
TEST(QTopK, ConservationIsExactBfloat16) { conservationHolds<bfloat16_t>(spcclBfloat16, 30); }
TEST(QTopK, ConservationIsExactHalf) { conservationHolds<half_t>(spcclFloat16, 20); }

// spcclCompress returns c as (index, value) pairs, padding where a slot sends nothing, and
// spcclDecompress scatters them back: the same c as the collective.
TEST(QTopK, CompressMatchesTheCollective) {
  const size_t n = 300;
  spcclState_t a = makeState(n, spcclFloat32, 3, 0.05, 64), b = makeState(n, spcclFloat32, 3, 0.05, 64);
  size_t cap = 0, nvalues = 0;
  ASSERT_EQ(spcclCompressedCount(a, &cap), spcclSuccess);
  EXPECT_EQ(cap, 5u * 4);  // 5 chunks (the last one 44 long) of ceil(0.05 * 64) = 4 slots
  std::vector<float> g(n), direct(n), viaPairs(n), values(cap);
  std::vector<uint32_t> indices(cap);
  for (int step = 0; step < 5; ++step) {
    for (size_t i = 0; i < n; ++i) g[i] = (float)((int)((i * 37 + step * 11) % 101) - 50) / 7.0f;
    unsigned long long s = 0;
    ASSERT_EQ(spcclSparseAllReduce(g.data(), direct.data(), n, spcclFloat32, spcclSum, a, spccl_fuzz::loopbackComm(),
                                   nullptr),
              spcclSuccess);
    ASSERT_EQ(spcclCompress(g.data(), values.data(), indices.data(), &nvalues, &s, b, nullptr), spcclSuccess);
    ASSERT_EQ(nvalues, cap);
    ASSERT_EQ(spcclDecompress(values.data(), indices.data(), nvalues, s, 1.0, viaPairs.data(), b, nullptr),
              spcclSuccess);
    EXPECT_EQ(direct, viaPairs) << "step " << step;
  }
  spcclStateDestroy(a);
  spcclStateDestroy(b);
}

TEST(QTopK, ValueBitsOutsideTwoToEightAreRefused) {
  for (int bits : {0, 1, 9, -3}) {
    spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
    cfg.method = spcclMethodQTopK;
    cfg.valueBits = bits;
    spcclState_t st = nullptr;
    EXPECT_EQ(spcclStateCreate(&st, spccl_fuzz::loopbackComm(), &cfg, 64, spcclFloat32), spcclInvalidArgument);
    EXPECT_NE(std::string(spcclGetLastError(nullptr)).find("valueBits"), std::string::npos);
    EXPECT_EQ(st, nullptr);
  }
}

// The receiver's check (qtopk_core.h, quantSlotDecodes, shared with the device unpack): a
// sender writes each chunk's offsets strictly ascending, so a payload whose offsets repeat or
// go back in a chunk is corrupt, as is an offset outside the chunk or a level without a scale.
TEST(QTopK, ReceiverRefusesSlotsThatDoNotDecode) {
  spccl::QuantLayout q;
  q.count = 100;
  q.chunk = 20;
  q.nchunks = 5;
  q.k = 4;
  q.offsetBits = 5;
  q.valueBits = 3;
  std::vector<float> g(q.count), acc(q.count);
  for (size_t i = 0; i < q.count; ++i) g[i] = (float)((int)((i * 37) % 41) - 20) / 3.0f;
  std::vector<uint64_t> payload(spccl::quantPayloadBytes(q) / 8);
  std::vector<uint32_t> order(q.chunk);
  spccl::cpu::quantCompress(g.data(), (const float*)nullptr, acc.data(), q, payload.data(), order.data());
  ASSERT_EQ(spccl::cpu::quantFirstBadChunk<float>(q, payload.data()), q.nchunks);
  const uint32_t bits = spccl::quantFieldBits(q);
  // Rewrites slot j of chunk 2 (fields are zeroed, then ORed in).
  auto rewrite = [&](std::vector<uint64_t> p, uint32_t j, uint32_t offset, int level) {
    uint64_t* words = spccl::quantFields(q, p.data());
    const uint64_t slot = 2 * q.k + j, bit = slot * bits, mask = (1ull << bits) - 1;
    words[bit / 64] &= ~(mask << (bit % 64));
    if (bit % 64 + bits > 64) words[bit / 64 + 1] &= ~(mask >> (64 - bit % 64));
    spccl::quantPutField(words, slot, bits, spccl::quantPackSlot(q, offset, level));
    return p;
  };
  const uint64_t first = spccl::quantGetField(spccl::quantFields(q, payload.data()), 2 * q.k, bits);
  const uint32_t firstOffset = spccl::quantSlotOffset(q, first);
  EXPECT_EQ(spccl::cpu::quantFirstBadChunk<float>(q, rewrite(payload, 1, firstOffset, 1).data()), 2u) << "repeat";
  if (firstOffset > 0)
    EXPECT_EQ(spccl::cpu::quantFirstBadChunk<float>(q, rewrite(payload, 1, firstOffset - 1, 1).data()), 2u)
        << "descending";
  EXPECT_EQ(spccl::cpu::quantFirstBadChunk<float>(q, rewrite(payload, 3, 20, 1).data()), 2u) << "outside the chunk";
  std::vector<uint64_t> noScale = payload;
  spccl::quantExponents(noScale.data())[2] = SPCCL_QTOPK_NO_SCALE;
  EXPECT_EQ(spccl::cpu::quantFirstBadChunk<float>(q, noScale.data()), 2u) << "a level without a scale";
}

}  // namespace
