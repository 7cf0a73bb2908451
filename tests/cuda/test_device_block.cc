// SPDX-License-Identifier: Apache-2.0
//
// The random-block device kernels against the CPU kernels on the same inputs: the packed
// buffer, the output and the residual must be identical bit for bit in every type (both sides
// run dtype_core.h's addRounded / scaleRounded, one rounding per element, no contraction
// possible), the device must pick the blocks select_core.h picks on the host, and
// c + e_new == g + e_old must hold on the device.

#include <algorithm>
#include <vector>

#include "cpu/block_kernels.h"
#include "device.h"
#include "device_test.h"

namespace spccl_test {
namespace {

using namespace spccl;

struct Case {
  size_t n, blockSize, nselected;
  int scattered;
};

std::vector<Case> cases(std::mt19937_64& rng) {
  // Short last blocks, one block, blocks larger than a tile (4096 elements), B = 1.
  std::vector<Case> c = {{1, 1, 1, 0},        {1, 64, 1, 1},    {100, 256, 1, 0},   {1000, 7, 143, 0},
                         {70000, 5000, 3, 1}, {70000, 1, 700, 1}, {100003, 256, 50, 0}};
  for (int i = 0; i < 20; ++i) {
    const size_t n = 1 + rng() % 50000, B = 1 + rng() % 700, nb = (n + B - 1) / B;
    c.push_back({n, B, 1 + rng() % nb, int(rng() % 2)});
  }
  return c;
}

device::DeviceSelection hostStep(const BlockSelection& sel) { return {sel, 0, 0, nullptr}; }

TYPED_TEST_SUITE(DeviceTyped, DeviceStorageTypes);

// A whole single-rank sparse allreduce (pack, identity reduction, commit with a scale) on
// both sides, out of place and in place.
TYPED_TEST(DeviceTyped, RandomBlockMatchesCpu) {
  SPCCL_REQUIRE_DEVICE();
  using T = TypeParam;
  using AccT = typename AccumOf<T>::type;
  const spcclDataType_t dt = dataTypeOf<T>();
  std::mt19937_64 rng(11);
  for (const Case& c : cases(rng)) {
    for (int inPlace = 0; inPlace < 2; ++inPlace) {
      const uint64_t nb = (c.n + c.blockSize - 1) / c.blockSize;
      const BlockSelection sel = makeBlockSelection(nb, c.nselected, c.scattered, selectionKey(5, 2, rng()));
      const double scale = (rng() % 2) ? 1.0 : 0.25;
      std::vector<T> g = randomVector<T>(c.n, rng), e = randomVector<T>(c.n, rng);
      // CPU
      std::vector<T> packed(sel.nselected * c.blockSize), eCpu = e, outCpu(c.n), gCpu = g;
      std::vector<cpu::BlockSlot> order(sel.nselected);
      cpu::sortedSelection(sel, order.data());
      cpu::feedbackPack(g.data(), e.data(), c.n, c.blockSize, sel, packed.data());
      T* outPtr = inPlace ? gCpu.data() : outCpu.data();
      const cpu::CommitArgs<T> args = {gCpu.data(), eCpu.data(), eCpu.data(), packed.data(), (AccT)scale, outPtr};
      cpu::unpackCommit(args, c.n, c.blockSize, order.data(), sel.nselected);
      // Device
      DeviceArray<T> dg(g), de(e), dpacked(packed.size()), dout(c.n);
      const device::DeviceSelection ds = hostStep(sel);
      ASSERT_EQ(device::randomBlockPack(dt, dg.get(), de.get(), c.n, c.blockSize, &ds, dpacked.get(), nullptr),
                spcclSuccess);
      T* dOutPtr = inPlace ? dg.get() : dout.get();
      ASSERT_EQ(device::randomBlockCommit(dt, dg.get(), de.get(), dpacked.get(), scale, c.n, c.blockSize, &ds,
                                          dOutPtr, nullptr),
                spcclSuccess);
      CUDA_ASSERT(cudaDeviceSynchronize());
      SCOPED_TRACE(::testing::Message() << "n " << c.n << " B " << c.blockSize << " m " << c.nselected
                                        << " scattered " << c.scattered << " inPlace " << inPlace);
      EXPECT_TRUE(sameBits(dpacked.download(), packed));
      EXPECT_TRUE(sameBits(de.download(), eCpu));
      EXPECT_TRUE(sameBits(inPlace ? dg.download() : dout.download(), inPlace ? gCpu : outCpu));
    }
  }
}

// n = 16M with 256-element blocks: 65536 blocks, 8192 spans of 8 blocks, several per CTA
// (about 1056 CTAs on an H200), so the barriers between grid-stride iterations run (the span
// tables are rewritten while other warps may still read the previous span's).
template <typename T>
void randomBlockLoopsMatchCpu() {
  using AccT = typename AccumOf<T>::type;
  const size_t n = (size_t(1) << 24) + 3, B = 256, nb = (n + B - 1) / B, m = nb / 4;
  std::mt19937_64 rng(61);
  const BlockSelection sel = makeBlockSelection(nb, m, 1, selectionKey(7, 8, 9));
  const std::vector<T> g = randomVector<T>(n, rng), e = randomVector<T>(n, rng);
  std::vector<T> packed(m * B), eCpu = e, outCpu(n);
  std::vector<cpu::BlockSlot> order(m);
  cpu::sortedSelection(sel, order.data());
  cpu::feedbackPack(g.data(), e.data(), n, B, sel, packed.data());
  const cpu::CommitArgs<T> args = {g.data(), eCpu.data(), eCpu.data(), packed.data(), (AccT)0.25, outCpu.data()};
  cpu::unpackCommit(args, n, B, order.data(), m);
  DeviceArray<T> dg(g), de(e), dpacked(packed.size()), dout(n);
  const device::DeviceSelection ds = hostStep(sel);
  ASSERT_EQ(device::randomBlockPack(dataTypeOf<T>(), dg.get(), de.get(), n, B, &ds, dpacked.get(), nullptr),
            spcclSuccess);
  ASSERT_EQ(device::randomBlockCommit(dataTypeOf<T>(), dg.get(), de.get(), dpacked.get(), 0.25, n, B, &ds, dout.get(),
                                      nullptr),
            spcclSuccess);
  EXPECT_TRUE(sameBits(dpacked.download(), packed));
  EXPECT_TRUE(sameBits(de.download(), eCpu));
  EXPECT_TRUE(sameBits(dout.download(), outCpu));
}

TEST(DeviceRandomBlock, PassesLoopOverSpansAt16M) {
  SPCCL_REQUIRE_DEVICE();
  randomBlockLoopsMatchCpu<float>();
  randomBlockLoopsMatchCpu<half_t>();
}

// NaN, ±Inf, -0 and subnormals in g and e, and a scale of 1/3 (an avg over three ranks):
// the same values as the CPU, NaN payloads aside (sameValues). Blocks larger than a tile
// are cut into pieces: sizes on both sides of the tile are covered.
TYPED_TEST(DeviceTyped, SpecialValuesMatchCpu) {
  SPCCL_REQUIRE_DEVICE();
  using T = TypeParam;
  using AccT = typename AccumOf<T>::type;
  const spcclDataType_t dt = dataTypeOf<T>();
  std::mt19937_64 rng(13);
  for (const size_t B : {size_t(3), size_t(256), size_t(5000)}) {
    for (int scattered = 0; scattered < 2; ++scattered) {
      const size_t n = 40 * B + 7, nb = (n + B - 1) / B, m = nb / 3 + 1;
      const BlockSelection sel = makeBlockSelection(nb, m, scattered, selectionKey(3, 4, rng()));
      const double scale = 1.0 / 3;
      const std::vector<T> g = withSpecials(randomVector<T>(n, rng), 7, rng);
      const std::vector<T> e = withSpecials(randomVector<T>(n, rng), 7, rng);
      std::vector<T> packed(m * B), eCpu = e, outCpu(n);
      std::vector<cpu::BlockSlot> order(m);
      cpu::sortedSelection(sel, order.data());
      cpu::feedbackPack(g.data(), e.data(), n, B, sel, packed.data());
      const cpu::CommitArgs<T> args = {g.data(), eCpu.data(), eCpu.data(), packed.data(), (AccT)scale, outCpu.data()};
      cpu::unpackCommit(args, n, B, order.data(), m);
      DeviceArray<T> dg(g), de(e), dpacked(packed.size()), dout(n);
      const device::DeviceSelection ds = hostStep(sel);
      ASSERT_EQ(device::randomBlockPack(dt, dg.get(), de.get(), n, B, &ds, dpacked.get(), nullptr), spcclSuccess);
      ASSERT_EQ(device::randomBlockCommit(dt, dg.get(), de.get(), dpacked.get(), scale, n, B, &ds, dout.get(), nullptr),
                spcclSuccess);
      SCOPED_TRACE(::testing::Message() << "B " << B << " scattered " << scattered);
      EXPECT_TRUE(sameValues(dpacked.download(), packed));
      EXPECT_TRUE(sameValues(de.download(), eCpu));
      EXPECT_TRUE(sameValues(dout.download(), outCpu));
    }
  }
}

// Packing the block numbers themselves shows which block sits in each slot: it must be
// slotBlock() as the host computes it, for both patterns and many keys and steps. The device
// step counter path (graph replays) must give the same selection as the host step.
TEST(DeviceSelection, IdenticalToHost) {
  SPCCL_REQUIRE_DEVICE();
  std::mt19937_64 rng(3);
  const unsigned long long seed = 77, key = 5;
  DeviceArray<unsigned long long> dstep(1);
  for (int trial = 0; trial < 60; ++trial) {
    const size_t B = 1 + rng() % 8, nb = 1 + rng() % 20000, n = nb * B - rng() % B;
    const uint64_t m = 1 + rng() % nb;
    const int scattered = trial % 2;
    const unsigned long long step = rng() % 1000;
    std::vector<float> g(n);
    for (size_t i = 0; i < n; ++i) g[i] = float(i / B);  // exact below 2^24
    DeviceArray<float> dg(g), dpacked(m * B);
    const BlockSelection sel = makeBlockSelection(nb, m, scattered, selectionKey(seed, key, step));
    for (int onDevice = 0; onDevice < 2; ++onDevice) {
      device::DeviceSelection ds = {sel, seed, key, nullptr};
      if (onDevice) {
        dstep.upload({step});
        ds.sel.key = 0;  // must come from the counter, not from here
        ds.step = dstep.get();
      }
      ASSERT_EQ(device::randomBlockPack(spcclFloat32, dg.get(), nullptr, n, B, &ds, dpacked.get(), nullptr),
                spcclSuccess);
      const std::vector<float> packed = dpacked.download();
      for (uint64_t slot = 0; slot < m; ++slot)
        ASSERT_EQ((uint64_t)packed[slot * B], slotBlock(sel, slot))
            << "slot " << slot << " nb " << nb << " m " << m << " scattered " << scattered << " deviceStep "
            << onDevice;
    }
  }
}

// Compress (pack + residual update, no output) then decompress (output only) on the device:
// the contribution plus the new residual is g + e_old exactly, and no coordinate is split.
TEST(DeviceConservation, Fp32IsExact) {
  SPCCL_REQUIRE_DEVICE();
  std::mt19937_64 rng(19);
  for (const Case& c : cases(rng)) {
    const uint64_t nb = (c.n + c.blockSize - 1) / c.blockSize;
    const device::DeviceSelection ds =
        hostStep(makeBlockSelection(nb, c.nselected, c.scattered, selectionKey(1, 1, rng())));
    std::vector<float> g = randomVector<float>(c.n, rng), e0 = randomVector<float>(c.n, rng);
    DeviceArray<float> dg(g), de(e0), dpacked(c.nselected * c.blockSize), dc(c.n);
    ASSERT_EQ(device::randomBlockPack(spcclFloat32, dg.get(), de.get(), c.n, c.blockSize, &ds, dpacked.get(), nullptr),
              spcclSuccess);
    ASSERT_EQ(device::randomBlockCommit(spcclFloat32, dg.get(), de.get(), nullptr, 1.0, c.n, c.blockSize, &ds,
                                        nullptr, nullptr),
              spcclSuccess);
    ASSERT_EQ(device::randomBlockCommit(spcclFloat32, nullptr, nullptr, dpacked.get(), 1.0, c.n, c.blockSize, &ds,
                                        dc.get(), nullptr),
              spcclSuccess);
    const std::vector<float> cOut = dc.download(), e = de.download();
    for (size_t i = 0; i < c.n; ++i) {
      ASSERT_EQ(cOut[i] + e[i], g[i] + e0[i]) << "i " << i;
      ASSERT_TRUE(cOut[i] == 0 || e[i] == 0) << "coordinate " << i << " was split";
    }
  }
}

}  // namespace
}  // namespace spccl_test
