// SPDX-License-Identifier: Apache-2.0
//
// The two random-block passes against memcpy, in one Google Benchmark run. Bytes processed
// count every byte read plus every byte written, for the kernels and for memcpy alike, so
// the bytes_per_second columns compare directly:
//   memcpy         n elements: reads n, writes n
//   feedbackPack   m*B chosen elements of g and e read, m*B packed written
//   unpackCommit   EF: g and e read, e and out written over all n (the dense output)

#include <benchmark/benchmark.h>
#include <string.h>

#include <vector>

#include "cpu/block_kernels.h"

namespace {

using namespace spccl;

constexpr size_t kBlock = 256;
constexpr uint64_t kDensityInverse = 64;

struct Buffers {
  size_t n;
  BlockSelection sel;
  std::vector<float> g, e, out, packed;
  std::vector<cpu::BlockSlot> order;

  explicit Buffers(size_t count, int scattered) : n(count) {
    const uint64_t nb = (n + kBlock - 1) / kBlock, m = std::max<uint64_t>(1, nb / kDensityInverse);
    sel = makeBlockSelection(nb, m, scattered, selectionKey(1, 2, 3));
    g.assign(n, 1.0f);
    e.assign(n, 0.5f);
    out.assign(n, 0.0f);
    packed.assign(m * kBlock, 0.0f);
    order.resize(m);
    cpu::sortedSelection(sel, order.data());
  }
};

void BM_Memcpy(benchmark::State& state) {
  const size_t n = state.range(0);
  std::vector<float> src(n, 1.0f), dst(n);
  for (auto _ : state) {
    memcpy(dst.data(), src.data(), n * sizeof(float));
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * n * sizeof(float));
}

void BM_FeedbackPack(benchmark::State& state) {
  Buffers b(state.range(0), state.range(1));
  for (auto _ : state) {
    cpu::feedbackPack(b.g.data(), b.e.data(), b.n, kBlock, b.sel, b.packed.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 3 * b.packed.size() * sizeof(float));
}

void BM_UnpackCommitEF(benchmark::State& state) {
  Buffers b(state.range(0), state.range(1));
  for (auto _ : state) {
    cpu::unpackCommit<float>({b.g.data(), b.e.data(), b.e.data(), b.packed.data(), 1.0f, b.out.data()}, b.n, kBlock,
                             b.order.data(), b.sel.nselected);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 4 * b.n * sizeof(float));
}

void BM_Unpack(benchmark::State& state) {  // no feedback: zero fill plus the chosen blocks
  Buffers b(state.range(0), state.range(1));
  for (auto _ : state) {
    cpu::unpackCommit<float>({nullptr, nullptr, nullptr, b.packed.data(), 1.0f, b.out.data()}, b.n, kBlock,
                             b.order.data(), b.sel.nselected);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * (b.n + b.packed.size()) * sizeof(float));
}

constexpr int64_t k1M = 1 << 20, k16M = 16 << 20;

BENCHMARK(BM_Memcpy)->Arg(k1M)->Arg(k16M)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_FeedbackPack)->ArgsProduct({{k1M, k16M}, {0, 1}})->ArgNames({"n", "scattered"})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_UnpackCommitEF)->ArgsProduct({{k1M, k16M}, {0, 1}})->ArgNames({"n", "scattered"})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Unpack)->ArgsProduct({{k1M, k16M}, {0, 1}})->ArgNames({"n", "scattered"})->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
