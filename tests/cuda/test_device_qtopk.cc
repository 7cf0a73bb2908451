// SPDX-License-Identifier: Apache-2.0
//
// Quantized Top-k's device kernels (cuda/kernels/qtopk_kernels.cuh) against the CPU kernels
// (cpu/qtopk_kernels.h) on the same inputs, bit for bit, in every type:
//  - compress: the same acc = g + e and the same payload bytes (exponents, padding, packed
//    fields), with short last chunks, chunks of 1 element, one chunk of the whole tensor,
//    heavy ties (the lower index wins) and 2 to 8 bits;
//  - residual: the same e = acc - c, and c + e == acc on every coordinate;
//  - the slots spcclCompress returns;
//  - unpack: several payloads added in payload order (fp32 sums for 16-bit types), scaled by
//    an avg factor that is not a power of two;
//  - NaN, ±Inf, subnormals and the largest finite values in g and e (NaN payloads aside);
//  - corrupt payloads: a chunk that does not decode is skipped and reported, the rest added.

#include <algorithm>
#include <vector>

#include "cpu/qtopk_kernels.h"
#include "device.h"
#include "device_test.h"
#include "qtopk_core.h"
#include "topk_core.h"

namespace spccl_test {
namespace {

using namespace spccl;

// The layout spcclStateCreate gives a qtopk state (methods/qtopk.cc, setup).
QuantLayout makeLayout(size_t count, uint32_t chunk, double density, int bits) {
  QuantLayout q;
  q.count = count;
  q.chunk = (uint32_t)std::max<size_t>(1, std::min<size_t>(count, chunk));
  q.nchunks = (uint32_t)((count + q.chunk - 1) / q.chunk);
  q.k = (uint32_t)topkCount(q.chunk, density);
  q.offsetBits = 0;
  while (q.offsetBits < 32 && ((uint64_t)(q.chunk - 1) >> q.offsetBits) != 0) ++q.offsetBits;
  q.valueBits = (uint32_t)bits;
  return q;
}

size_t strideOf(const QuantLayout& q) { return (quantPayloadBytes(q) + 7) / 8 * 8; }

struct QuantCase {
  size_t count;
  uint32_t chunk;
  double density;
  int bits;
  bool ties;
};

std::vector<QuantCase> quantCases() {
  return {{1, 256, 0.1, 2, false},      {10, 1, 1.0, 2, false},       {300, 7, 0.5, 3, true},
          {1000, 96, 0.1, 2, false},    {4096, 256, 1.0 / 64, 2, false}, {5000, 5000, 0.02, 4, false},
          {100003, 256, 0.01, 3, false}, {100003, 256, 0.05, 8, true}, {70001, 4096, 0.05, 8, false},
          {20000, 1000, 1.0, 5, true}};
}

template <typename T>
std::vector<T> caseInput(const QuantCase& c, std::mt19937_64& rng) {
  std::vector<T> v(c.count);
  if (c.ties)
    for (auto& x : v) x = fromAcc<T>(float(int(rng() % 9) - 4) * 0.5f);
  else
    v = randomVector<T>(c.count, rng);
  return v;
}

// The host passes of one rank: acc, payload, residual, slots.
template <typename T>
struct HostCompress {
  std::vector<T> acc, e;
  std::vector<unsigned char> payload;
  std::vector<uint32_t> indices;
  std::vector<T> values;
  HostCompress(const QuantLayout& q, const std::vector<T>& g, const std::vector<T>* eIn)
      : acc(q.count), e(q.count), payload(quantPayloadBytes(q)) {
    std::vector<uint32_t> order(q.chunk);
    cpu::quantCompress(g.data(), eIn ? eIn->data() : nullptr, acc.data(), q, payload.data(), order.data());
    cpu::quantResidual(acc.data(), q, payload.data(), e.data());
    const size_t slots = (size_t)q.nchunks * q.k;
    indices.assign(slots, SPCCL_PAD_INDEX);
    values.assign(slots, fromAcc<T>(0.0f));
    cpu::quantForEachSlot(q, payload.data(), [&](uint32_t c, uint32_t j, uint32_t offset, int level, int E) {
      if (level == 0) return;
      indices[(size_t)c * q.k + j] = (uint32_t)((uint64_t)c * q.chunk + offset);
      values[(size_t)c * q.k + j] = fromAcc<T>((typename AccumOf<T>::type)quantValue(level, E));
    });
  }
};

// The device passes of one rank, compared with the host's.
template <typename T>
void compareCompress(const QuantLayout& q, const std::vector<T>& g, const std::vector<T>* e, bool nanPayloads) {
  const spcclDataType_t dt = dataTypeOf<T>();
  const HostCompress<T> host(q, g, e);
  DeviceArray<T> dg(g), de(e ? *e : std::vector<T>()), dacc(q.count), dres(q.count), dvalues((size_t)q.nchunks * q.k);
  DeviceArray<uint64_t> dpayload(strideOf(q) / 8);
  DeviceArray<uint32_t> didx((size_t)q.nchunks * q.k);
  DeviceArray<char> scratch(device::quantScratchBytes(q));
  // Garbage first: the kernels must write every payload byte.
  CUDA_ASSERT(cudaMemset(dpayload.get(), 0xA5, strideOf(q)));
  ASSERT_EQ(device::quantCompress(dt, dg.get(), e ? de.get() : nullptr, dacc.get(), q, dpayload.get(), scratch.get(),
                                  nullptr),
            spcclSuccess);
  ASSERT_EQ(device::quantResidual(dt, dacc.get(), q, dpayload.get(), dres.get(), nullptr), spcclSuccess);
  ASSERT_EQ(device::quantSlots(dt, q, dpayload.get(), didx.get(), dvalues.get(), nullptr), spcclSuccess);
  CUDA_ASSERT(cudaDeviceSynchronize());
  const std::vector<T> acc = dacc.download(), res = dres.download();
  if (nanPayloads) EXPECT_TRUE(sameValues(acc, host.acc)) << "acc";
  else EXPECT_TRUE(sameBits(acc, host.acc)) << "acc";
  std::vector<unsigned char> payload(quantPayloadBytes(q));
  const std::vector<uint64_t> words = dpayload.download();
  memcpy(payload.data(), words.data(), payload.size());
  ASSERT_TRUE(payload == host.payload) << "payload bytes differ";
  EXPECT_TRUE(sameBits(res, host.e)) << "residual";
  EXPECT_EQ(didx.download(), host.indices) << "slot indices";
  EXPECT_TRUE(sameBits(dvalues.download(), host.values)) << "slot values";
  // Conservation: c + e_new == acc where acc is finite.
  std::vector<double> c(q.count, 0.0);
  const std::vector<T> values = dvalues.download();
  const std::vector<uint32_t> idx = didx.download();
  for (size_t s = 0; s < idx.size(); ++s)
    if (idx[s] != SPCCL_PAD_INDEX) c[idx[s]] = (double)toAcc(values[s]);
  for (size_t i = 0; i < q.count; ++i) {
    const double a = (double)toAcc(acc[i]);
    if (std::isfinite(a)) ASSERT_EQ(c[i] + (double)toAcc(res[i]), a) << "coordinate " << i;
  }
}

TYPED_TEST_SUITE(DeviceTyped, DeviceStorageTypes);

TYPED_TEST(DeviceTyped, QuantCompressMatchesHost) {
  SPCCL_REQUIRE_DEVICE();
  using T = TypeParam;
  std::mt19937_64 rng(71);
  for (const QuantCase& c : quantCases()) {
    const QuantLayout q = makeLayout(c.count, c.chunk, c.density, c.bits);
    for (int feedback = 0; feedback < 2; ++feedback) {
      SCOPED_TRACE(::testing::Message() << "count " << c.count << " chunk " << c.chunk << " k " << q.k << " bits "
                                        << c.bits << " ties " << c.ties << " ef " << feedback);
      const std::vector<T> g = caseInput<T>(c, rng), e = caseInput<T>(c, rng);
      ASSERT_NO_FATAL_FAILURE(compareCompress(q, g, feedback ? &e : nullptr, false));
    }
  }
}

// Magnitudes over the whole range of T, and special values at about one position in 50.
TYPED_TEST(DeviceTyped, QuantCompressWithSpecialValues) {
  SPCCL_REQUIRE_DEVICE();
  using T = TypeParam;
  std::mt19937_64 rng(73);
  for (int bits : {2, 8}) {
    const QuantLayout q = makeLayout(30011, 128, 0.1, bits);
    std::vector<T> g = randomVector<T>(q.count, rng), e = randomVector<T>(q.count, rng);
    for (auto& x : g) x = fromAcc<T>((float)ldexp((double)toAcc(x), (int)(rng() % 60) - 40));
    g = withSpecials(g, 50, rng);
    e = withSpecials(e, 50, rng);
    SCOPED_TRACE(::testing::Message() << "bits " << bits);
    ASSERT_NO_FATAL_FAILURE(compareCompress(q, g, &e, true));
  }
}

// The unpack of `npayloads` gathered payloads on the host and the device.
template <typename T>
void compareUnpack(const QuantLayout& q, const std::vector<unsigned char>& gathered, int npayloads, double scale,
                   device::BadPairReport* report) {
  using AccT = typename AccumOf<T>::type;
  std::vector<T> want(q.count);
  std::vector<AccT> sums(q.count);
  cpu::quantUnpack(q, gathered.data(), npayloads, strideOf(q), scale, want.data(), sums.data());
  DeviceArray<unsigned char> dgathered(gathered);
  DeviceArray<T> dout(std::vector<T>(q.count, fromAcc<T>(5.0f)));  // every element is written
  DeviceArray<AccT> dsums(q.count);
  ASSERT_EQ(device::quantUnpack(dataTypeOf<T>(), q, dgathered.get(), npayloads, strideOf(q), scale, dout.get(),
                                sizeof(T) < sizeof(AccT) ? (void*)dsums.get() : (void*)dout.get(), report, nullptr),
            spcclSuccess);
  EXPECT_TRUE(sameBits(dout.download(), want));
}

template <typename T>
std::vector<unsigned char> gatherPayloads(const QuantLayout& q, int npayloads, std::mt19937_64& rng) {
  std::vector<unsigned char> gathered(npayloads * strideOf(q), 0);
  for (int r = 0; r < npayloads; ++r) {
    const std::vector<T> g = randomVector<T>(q.count, rng);
    const HostCompress<T> host(q, g, nullptr);
    memcpy(gathered.data() + r * strideOf(q), host.payload.data(), host.payload.size());
  }
  return gathered;
}

TYPED_TEST(DeviceTyped, QuantUnpackMatchesHost) {
  SPCCL_REQUIRE_DEVICE();
  using T = TypeParam;
  std::mt19937_64 rng(79);
  for (const QuantCase& c : quantCases()) {
    const QuantLayout q = makeLayout(c.count, c.chunk, std::max(c.density, 0.2), c.bits);  // overlapping slots
    for (int npayloads : {1, 3, 40}) {
      const std::vector<unsigned char> gathered = gatherPayloads<T>(q, npayloads, rng);
      for (double scale : {1.0, 1.0 / npayloads}) {
        SCOPED_TRACE(::testing::Message() << "count " << c.count << " chunk " << c.chunk << " bits " << c.bits
                                          << " payloads " << npayloads << " scale " << scale);
        ASSERT_NO_FATAL_FAILURE(compareUnpack<T>(q, gathered, npayloads, scale, nullptr));
      }
    }
  }
}

// Corrupt payloads (what a peer with a corrupt payload or a different layout sends): an
// offset outside its chunk, a repeated offset, a level on a chunk without a scale. The host
// check finds the first bad chunk; the device skips each bad (payload, chunk), adds the rest
// in order, stays in bounds, and reports one of them (kSlotUndecodable, the chunk).
TEST(DeviceQTopK, CorruptChunksAreSkippedAndReported) {
  SPCCL_REQUIRE_DEVICE();
  const QuantLayout q = makeLayout(1000, 100, 0.1, 3);  // 10 chunks of 10 slots, offsets of 7 bits
  ASSERT_EQ(q.k, 10u);
  std::mt19937_64 rng(83);
  const int npayloads = 3;
  std::vector<unsigned char> gathered = gatherPayloads<float>(q, npayloads, rng);
  const uint32_t bits = quantFieldBits(q);
  auto payloadOf = [&](int r) { return gathered.data() + r * strideOf(q); };
  auto setField = [&](int r, uint32_t c, uint32_t j, uint32_t offset, int level) {
    uint64_t* words = quantFields(q, payloadOf(r));
    const uint64_t slot = (uint64_t)c * q.k + j, bit = slot * bits, w = bit / 64, shift = bit % 64;
    const uint64_t mask = (1ull << bits) - 1;  // clear the field, then set it
    words[w] &= ~(mask << shift);
    if (shift + bits > 64) words[w + 1] &= ~(mask >> (64 - shift));
    quantPutField(words, slot, bits, quantPackSlot(q, offset, level));
  };
  const std::vector<std::pair<int, uint32_t>> bad = {{0, 3}, {1, 5}, {2, 8}};
  setField(0, 3, 4, 120, 1);  // offset 120 >= the chunk's 100
  {
    const uint64_t f = quantGetField(quantFields(q, payloadOf(1)), 5 * q.k + 2, bits);
    setField(1, 5, 3, quantSlotOffset(q, f), 1);  // slot 3 repeats slot 2's offset
  }
  quantExponents(payloadOf(2))[8] = SPCCL_QTOPK_NO_SCALE;  // levels without a scale
  setField(2, 8, 0, 0, 2);
  EXPECT_EQ(cpu::quantFirstBadChunk<float>(q, payloadOf(0)), 3u);
  EXPECT_EQ(cpu::quantFirstBadChunk<float>(q, payloadOf(1)), 5u);
  EXPECT_EQ(cpu::quantFirstBadChunk<float>(q, payloadOf(2)), 8u);
  // What the device adds: every decodable (payload, chunk), in payload order.
  std::vector<float> want(q.count, 0.0f);
  for (int r = 0; r < npayloads; ++r)
    cpu::quantForEachSlot(q, payloadOf(r), [&](uint32_t c, uint32_t, uint32_t offset, int level, int E) {
      if (std::find(bad.begin(), bad.end(), std::make_pair(r, c)) != bad.end() || level == 0) return;
      want[(size_t)c * q.chunk + offset] += (float)quantValue(level, E);
    });
  PinnedReport report;
  DeviceArray<unsigned char> dgathered(gathered);
  DeviceArray<float> dout(q.count);
  ASSERT_EQ(device::quantUnpack(spcclFloat32, q, dgathered.get(), npayloads, strideOf(q), 1.0, dout.get(), dout.get(),
                                report.get(), nullptr),
            spcclSuccess);
  EXPECT_TRUE(sameBits(dout.download(), want));
  CUDA_ASSERT(cudaGetLastError());
  EXPECT_EQ(report.get()->kind, (uint32_t)device::kSlotUndecodable);
  EXPECT_TRUE(report.get()->index == 3 || report.get()->index == 5 || report.get()->index == 8)
      << "chunk " << report.get()->index;
  // Clean payloads leave the report clear.
  report.clear();
  const std::vector<unsigned char> clean = gatherPayloads<float>(q, npayloads, rng);
  ASSERT_NO_FATAL_FAILURE(compareUnpack<float>(q, clean, npayloads, 1.0, report.get()));
  EXPECT_EQ(report.get()->kind, 0u);
}

}  // namespace
}  // namespace spccl_test
