// SPDX-License-Identifier: Apache-2.0
//
// Top-k selection on the same data in one Google Benchmark run: the library's exact select
// (cpu/topk_kernels.h) against memcpy of the same bytes, std::nth_element and
// std::partial_sort, and Gaussian-k. perf/selection_ratios runs it next to torch.topk and
// prints every time as a multiple of Memcpy's.
// Data: n normal fp32 values (fixed seed), k = ceil(density * n). Every variant produces
// what the collective needs, the k chosen positions:
//   Memcpy          the baseline: one memcpy of the n values
//   RadixSelect     sampled threshold + one listing pass + radix select on the list (or the
//                   histogram path); exact, ties by lower index
//   NthElement      std::nth_element over a position array ordered by (|v| desc, index asc),
//                   the same exact answer (positions are reset each iteration, not timed)
//   NthElementValues  std::nth_element over a copy of |v| (copy timed): the k-th magnitude
//                   only, a lower bound for any nth_element-based exact selection
//   PartialSort     std::partial_sort of the position array, same order as NthElement
//   GaussianK       moments, up to three counts, compaction (fused with acc = g + e)
//   RadixSelectFeedback  acc = g + e formed in the listing pass, then the select
// Bytes processed: n * sizeof(float) read per selection (plus n read and n written for the
// feedback variants), so the bytes_per_second columns compare directly.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "cpu/topk_kernels.h"

namespace {

using namespace spccl;

struct Data {
  size_t n, k;
  std::vector<float> v, e, acc;
  std::vector<uint32_t> pos, keys, out;

  Data(size_t count, double density) : n(count), k(topkCount(count, density)) {
    std::mt19937_64 rng(2019);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    v.resize(n);
    e.resize(n);
    for (size_t i = 0; i < n; ++i) {
      v[i] = normal(rng);
      e[i] = 0.01f * normal(rng);
    }
    acc.resize(n);
    pos.resize(cpu::topKScratchCap(k));  // what the state allocates (pairs.cc)
    keys.resize(cpu::topKScratchCap(k));
    out.resize(k);
  }
  cpu::TopKScratch scratch() { return {pos.data(), keys.data(), pos.size()}; }
};

Data& data(size_t n, double density) {
  static std::vector<std::unique_ptr<Data>> cache;
  for (auto& d : cache)
    if (d->n == n && d->k == topkCount(n, density)) return *d;
  cache.emplace_back(new Data(n, density));
  return *cache.back();
}

double densityArg(const benchmark::State& state) { return state.range(1) / 1e6; }

void BM_RadixSelect(benchmark::State& state) {
  Data& d = data(state.range(0), densityArg(state));
  for (auto _ : state) {
    cpu::topK(d.v.data(), d.n, d.k, d.scratch(), d.out.data());
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * d.n * sizeof(float));
  state.counters["k"] = d.k;
}

void BM_RadixSelectFeedback(benchmark::State& state) {
  Data& d = data(state.range(0), densityArg(state));
  for (auto _ : state) {
    cpu::topKFeedback(d.v.data(), d.e.data(), d.acc.data(), d.n, d.k, d.scratch(), d.out.data());
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 3 * d.n * sizeof(float));
}

// The baseline: one memcpy of the tensor's bytes (read n, write n).
void BM_Memcpy(benchmark::State& state) {
  Data& d = data(state.range(0), densityArg(state));
  for (auto _ : state) {
    memcpy(d.acc.data(), d.v.data(), d.n * sizeof(float));
    benchmark::DoNotOptimize(d.acc.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * d.n * sizeof(float));
}

// Positions ordered by (|v| descending, index ascending): the library's contract.
struct MagnitudeOrder {
  const float* v;
  bool operator()(uint32_t a, uint32_t b) const { return magnitudeBefore(v[a], a, v[b], b); }
};

// A standard-library selection over a position array in the library's order; the positions
// are reset outside the timed region.
template <typename Select>
void positionSelect(benchmark::State& state, Select select) {
  Data& d = data(state.range(0), densityArg(state));
  std::vector<uint32_t> pos(d.n);
  for (auto _ : state) {
    state.PauseTiming();
    std::iota(pos.begin(), pos.end(), 0u);
    state.ResumeTiming();
    select(pos, d.k, MagnitudeOrder{d.v.data()});
    benchmark::DoNotOptimize(pos.data());
  }
  state.SetBytesProcessed(state.iterations() * d.n * sizeof(float));
}

void BM_NthElement(benchmark::State& state) {
  positionSelect(state, [](std::vector<uint32_t>& pos, size_t k, MagnitudeOrder order) {
    std::nth_element(pos.begin(), pos.begin() + (k - 1), pos.end(), order);
  });
}

void BM_PartialSort(benchmark::State& state) {
  positionSelect(state, [](std::vector<uint32_t>& pos, size_t k, MagnitudeOrder order) {
    std::partial_sort(pos.begin(), pos.begin() + k, pos.end(), order);
  });
}

void BM_NthElementValues(benchmark::State& state) {
  Data& d = data(state.range(0), densityArg(state));
  std::vector<float> mag(d.n);
  for (auto _ : state) {
    for (size_t i = 0; i < d.n; ++i) mag[i] = std::fabs(d.v[i]);
    std::nth_element(mag.begin(), mag.begin() + (d.k - 1), mag.end(), std::greater<float>());
    benchmark::DoNotOptimize(mag.data());
  }
  state.SetBytesProcessed(state.iterations() * d.n * sizeof(float));
}

void BM_GaussianK(benchmark::State& state) {
  Data& d = data(state.range(0), densityArg(state));
  std::vector<float> val(d.k);
  size_t found = 0;
  for (auto _ : state) {
    found = cpu::gaussianK(d.v.data(), d.e.data(), d.acc.data(), d.n, d.k, densityArg(state), d.out.data(),
                           val.data());
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 3 * d.n * sizeof(float));
  state.counters["found"] = found;
  state.counters["k"] = d.k;
}

// n, density * 10^6: 64 MiB of fp32 is the headline, 4 MiB shows the trend; densities 1/1000
// and 1/64, the ones the suite and the training runs use.
void Sizes(benchmark::internal::Benchmark* b) {
  for (long n : {1L << 20, 16L << 20})
    for (long density : {1000L, 15625L}) b->Args({n, density});
  b->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_Memcpy)->Apply(Sizes);
BENCHMARK(BM_RadixSelect)->Apply(Sizes);
BENCHMARK(BM_RadixSelectFeedback)->Apply(Sizes);
BENCHMARK(BM_NthElement)->Apply(Sizes);
BENCHMARK(BM_NthElementValues)->Apply(Sizes);
BENCHMARK(BM_PartialSort)->Apply(Sizes);
BENCHMARK(BM_GaussianK)->Apply(Sizes);

}  // namespace

BENCHMARK_MAIN();
