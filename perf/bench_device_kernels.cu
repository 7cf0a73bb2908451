// SPDX-License-Identifier: Apache-2.0
//
// The device kernels in one Google Benchmark run, timed with CUDA events (manual time).
// Bytes processed count every byte read plus every byte written, as in bench_block_kernels,
// and each benchmark also times a cudaMemcpy device-to-device moving the same traffic (half
// read, half written) and reports the ratio as `vs_memcpy` (goal: >= 0.8 for the fused
// random-block passes):
//   pack          m*B chosen elements of g and e read, m*B packed written
//   commit        EF: g and e read, e and out written over all n
//   topk          exact top-k of 64M fp32 at k = 1% (radix select), against
//   cub_sort_topk the same top-k from cub::DeviceRadixSort::SortPairsDescending of the
//                 magnitude keys with their indices (goal: topk >= 3x faster)
//   gaussiank     Gaussian-k on the same data (goal: >= 5x faster than topk)
//   topk_fp16     exact top-k of fp16 data (2 histogram passes: the fp32 key's low 13 bits
//                 are always clear)
//   scatter_lists the gathered lists of 8 ranks at k = n/64 added into out (fp32, fp16):
//                 8*k pairs read, n written, against memcpy of that traffic
//   sign_residual 1-bit's e = x - c over n (fp32, fp16): x and e read, e written
//   qtopk_compress quantized top-k of n (fp32, fp16) in chunks of 256 at k = 4, 2 bits: g
//                 read, acc written, the chunk's passes from L1/L2, the payload written
//   qtopk_unpack  8 payloads of the same layout added into out (fp32, fp16): the payloads
//                 read, out written (fp16: fp32 sums written and read back)
// Without a CUDA device it prints why and exits 0, so it can run anywhere the build runs.

#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <cub/device/device_radix_sort.cuh>
#include <cstdio>
#include <random>
#include <vector>

#include "device.h"
#include "dispatch.h"
#include "onebit_core.h"
#include "qtopk_core.h"
#include "topk_core.h"

namespace {

using namespace spccl;

constexpr size_t kBlock = 256;
constexpr uint64_t kDensityInverse = 64;

#define BENCH_CUDA(call) \
  do { \
    cudaError_t err_ = (call); \
    if (err_ != cudaSuccess) { \
      state.SkipWithError(cudaGetErrorString(err_)); \
      return; \
    } \
  } while (0)

template <typename T>
T* deviceArray(size_t n) {
  T* p = nullptr;
  if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) return nullptr;
  return p;
}

// Normal values, generated on the host once per size and uploaded.
void fillNormal(float* dst, size_t n, unsigned seed) {
  std::vector<float> v(n);
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (auto& x : v) x = dist(rng);
  cudaMemcpy(dst, v.data(), n * sizeof(float), cudaMemcpyHostToDevice);
}

// Normal values in the storage type of dt (fp32 or fp16 here), n elements.
void fillNormalAs(spcclDataType_t dt, void* dst, size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  withStorage(dt, [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> v(n);
    for (auto& x : v) x = fromAcc<T>(dist(rng));
    cudaMemcpy(dst, v.data(), n * sizeof(T), cudaMemcpyHostToDevice);
  });
}

spcclDataType_t benchType(int64_t arg) { return arg ? spcclFloat16 : spcclFloat32; }
size_t benchTypeSize(int64_t arg) { return arg ? 2 : 4; }

// Seconds of one call of f, averaged over `reps`, by CUDA events on the default stream.
template <typename F>
double timeIt(F&& f, int reps) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  f();  // warm-up
  cudaEventRecord(start);
  for (int r = 0; r < reps; ++r) f();
  cudaEventRecord(stop);
  cudaEventSynchronize(stop);
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / 1e3 / reps;
}

// Bandwidth (bytes read + written per second) of a device-to-device copy moving `traffic`.
double memcpyBandwidth(size_t traffic) {
  const size_t bytes = traffic / 2;
  char *a = deviceArray<char>(bytes), *b = deviceArray<char>(bytes);
  const double s = timeIt([&] { cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice); }, 20);
  cudaFree(a);
  cudaFree(b);
  return traffic / s;
}

void report(benchmark::State& state, size_t traffic, double seconds) {
  state.SetBytesProcessed((int64_t)(traffic * state.iterations()));
  state.counters["GB/s"] = traffic / seconds / 1e9;
  state.counters["vs_memcpy"] = (traffic / seconds) / memcpyBandwidth(traffic);
}

// Runs f once per iteration, timed on the device.
template <typename F>
double runTimed(benchmark::State& state, F&& f) {
  double total = 0;
  for (auto _ : state) {
    const double s = timeIt(f, 1);
    state.SetIterationTime(s);
    total += s;
  }
  return total / state.iterations();
}

void BM_MemcpyD2D(benchmark::State& state) {
  const size_t n = state.range(0), bytes = n * sizeof(float);
  char *a = deviceArray<char>(bytes), *b = deviceArray<char>(bytes);
  if (!a || !b) return state.SkipWithError("cudaMalloc failed");
  runTimed(state, [&] { cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice); });
  state.SetBytesProcessed((int64_t)(2 * bytes * state.iterations()));
  cudaFree(a);
  cudaFree(b);
}

struct BlockSetup {
  size_t n;
  uint64_t m;
  device::DeviceSelection ds;
  float *g, *e, *out, *packed;
  BlockSetup(size_t count, int scattered) : n(count) {
    const uint64_t nb = (n + kBlock - 1) / kBlock;
    m = std::max<uint64_t>(1, nb / kDensityInverse);
    ds = {makeBlockSelection(nb, m, scattered, selectionKey(1, 2, 3)), 1, 2, nullptr};
    g = deviceArray<float>(n);
    e = deviceArray<float>(n);
    out = deviceArray<float>(n);
    packed = deviceArray<float>(m * kBlock);
    if (g && e) {
      fillNormal(g, n, 1);
      fillNormal(e, n, 2);
    }
  }
  bool ok() const { return g && e && out && packed; }
  ~BlockSetup() {
    cudaFree(g);
    cudaFree(e);
    cudaFree(out);
    cudaFree(packed);
  }
};

void BM_RandomBlockPack(benchmark::State& state) {
  BlockSetup b(state.range(0), (int)state.range(1));
  if (!b.ok()) return state.SkipWithError("cudaMalloc failed");
  const double s = runTimed(state, [&] {
    device::randomBlockPack(spcclFloat32, b.g, b.e, b.n, kBlock, &b.ds, b.packed, nullptr);
  });
  report(state, 3 * b.m * kBlock * sizeof(float), s);
}

void BM_RandomBlockCommit(benchmark::State& state) {
  BlockSetup b(state.range(0), (int)state.range(1));
  if (!b.ok()) return state.SkipWithError("cudaMalloc failed");
  // The residual changes every call; the traffic does not depend on its values.
  const double s = runTimed(state, [&] {
    device::randomBlockCommit(spcclFloat32, b.g, b.e, b.packed, 1.0, b.n, kBlock, &b.ds, b.out, nullptr);
  });
  report(state, 4 * b.n * sizeof(float), s);
}

struct TopKSetup {
  size_t n, k;
  float *g, *acc, *values;
  uint32_t* indices;
  void* scratch;
  explicit TopKSetup(size_t count) : n(count), k(topkCount(count, 0.01)) {
    g = deviceArray<float>(n);
    acc = deviceArray<float>(n);
    values = deviceArray<float>(k);
    indices = deviceArray<uint32_t>(k);
    scratch = deviceArray<char>(device::topkScratchBytes(n));
    if (g) fillNormal(g, n, 3);
  }
  bool ok() const { return g && acc && values && indices && scratch; }
  ~TopKSetup() {
    cudaFree(g);
    cudaFree(acc);
    cudaFree(values);
    cudaFree(indices);
    cudaFree(scratch);
  }
};

void BM_TopK(benchmark::State& state) {
  TopKSetup t(state.range(0));
  if (!t.ok()) return state.SkipWithError("cudaMalloc failed");
  const double s = runTimed(state, [&] {
    device::topkSelect(spcclFloat32, t.g, nullptr, t.acc, t.n, t.k, t.indices, t.values, t.scratch, nullptr);
  });
  state.counters["k"] = (double)t.k;
  state.counters["Gelem/s"] = t.n / s / 1e9;
}

void BM_GaussianK(benchmark::State& state) {
  TopKSetup t(state.range(0));
  if (!t.ok()) return state.SkipWithError("cudaMalloc failed");
  const double s = runTimed(state, [&] {
    device::gaussiankSelect(spcclFloat32, t.g, nullptr, t.acc, t.n, t.k, 0.01, t.indices, t.values, t.scratch,
                            nullptr);
  });
  state.counters["k"] = (double)t.k;
  state.counters["Gelem/s"] = t.n / s / 1e9;
}

void BM_TopKFp16(benchmark::State& state) {
  const size_t n = state.range(0), k = topkCount(n, 0.01);
  void *g = deviceArray<char>(2 * n), *acc = deviceArray<char>(2 * n), *values = deviceArray<char>(2 * k);
  uint32_t* indices = deviceArray<uint32_t>(k);
  void* scratch = deviceArray<char>(device::topkScratchBytes(n));
  if (!g || !acc || !values || !indices || !scratch) return state.SkipWithError("cudaMalloc failed");
  fillNormalAs(spcclFloat16, g, n, 3);
  const double s = runTimed(state, [&] {
    device::topkSelect(spcclFloat16, g, nullptr, acc, n, k, indices, values, scratch, nullptr);
  });
  state.counters["Gelem/s"] = n / s / 1e9;
  for (void* p : {g, acc, values, (void*)indices, scratch}) cudaFree(p);
}

// 8 ranks' gathered blocks at k = n/64: ascending random indices, then values, per block.
void BM_ScatterSortedLists(benchmark::State& state) {
  const size_t n = state.range(0), k = n / 64, elem = benchTypeSize(state.range(1));
  const int lists = 8;
  const spcclDataType_t dt = benchType(state.range(1));
  const size_t stride = k * (sizeof(uint32_t) + elem);  // 8-byte aligned for these k
  std::vector<char> host(lists * stride);
  std::mt19937_64 rng(5);
  for (int l = 0; l < lists; ++l) {
    uint32_t* idx = reinterpret_cast<uint32_t*>(host.data() + l * stride);
    uint32_t at = 0;
    for (size_t j = 0; j < k; ++j) idx[j] = at += 1 + (uint32_t)(rng() % 126);  // mean gap 64
    for (size_t j = 0; j < k; ++j) idx[j] = idx[j] < n ? idx[j] : SPCCL_PAD_INDEX;
  }
  char* blocks = deviceArray<char>(host.size());
  void *out = deviceArray<char>(n * elem), *scratch = deviceArray<char>(device::scatterScratchBytes(n, lists));
  if (!blocks || !out || !scratch) return state.SkipWithError("cudaMalloc failed");
  cudaMemcpy(blocks, host.data(), host.size(), cudaMemcpyHostToDevice);
  for (int l = 0; l < lists; ++l) fillNormalAs(dt, blocks + l * stride + k * sizeof(uint32_t), k, 7 + l);
  const double s = runTimed(state, [&] {
    device::scatterSortedLists(dt, reinterpret_cast<const uint32_t*>(blocks), blocks + k * sizeof(uint32_t), k, lists,
                               stride, 1.0 / lists, n, out, scratch, nullptr, nullptr);
  });
  report(state, lists * k * (sizeof(uint32_t) + elem) + n * elem, s);
  for (void* p : {(void*)blocks, out, scratch}) cudaFree(p);
}

void BM_SignResidual(benchmark::State& state) {
  const size_t n = state.range(0), elem = benchTypeSize(state.range(1));
  const spcclDataType_t dt = benchType(state.range(1));
  const SignChunks c = signChunks(n, 8);
  void *x = deviceArray<char>(n * elem), *e = deviceArray<char>(n * elem);
  void *messages = deviceArray<char>(c.nchunks * c.messageBytes), *scratch = deviceArray<char>(device::signScratchBytes(c));
  if (!x || !e || !messages || !scratch) return state.SkipWithError("cudaMalloc failed");
  fillNormalAs(dt, x, n, 11);
  fillNormalAs(dt, e, n, 12);
  device::signCompress(dt, x, e, c, messages, scratch, nullptr);
  const double s = runTimed(state, [&] { device::signResidual(dt, x, e, c, messages, e, nullptr); });
  report(state, 3 * n * elem + c.nchunks * c.messageBytes, s);
  for (void* p : {x, e, messages, scratch}) cudaFree(p);
}

// The layout a qtopk state of n elements gets in chunks of 256 at density 1/64, 2 bits.
QuantLayout benchLayout(size_t n) {
  QuantLayout q;
  q.count = n;
  q.chunk = 256;
  q.nchunks = (uint32_t)((n + 255) / 256);
  q.k = (uint32_t)topkCount(256, 1.0 / kDensityInverse);
  q.offsetBits = 8;
  q.valueBits = 2;
  return q;
}

void BM_QTopKCompress(benchmark::State& state) {
  const size_t n = state.range(0), elem = benchTypeSize(state.range(1));
  const spcclDataType_t dt = benchType(state.range(1));
  const QuantLayout q = benchLayout(n);
  void *g = deviceArray<char>(n * elem), *acc = deviceArray<char>(n * elem);
  void *payload = deviceArray<char>(quantPayloadBytes(q)), *scratch = deviceArray<char>(device::quantScratchBytes(q));
  if (!g || !acc || !payload || !scratch) return state.SkipWithError("cudaMalloc failed");
  fillNormalAs(dt, g, n, 13);
  const double s = runTimed(state, [&] { device::quantCompress(dt, g, nullptr, acc, q, payload, scratch, nullptr); });
  report(state, 2 * n * elem + quantPayloadBytes(q), s);
  for (void* p : {g, acc, payload, scratch}) cudaFree(p);
}

void BM_QTopKUnpack(benchmark::State& state) {
  const size_t n = state.range(0), elem = benchTypeSize(state.range(1));
  const spcclDataType_t dt = benchType(state.range(1));
  const QuantLayout q = benchLayout(n);
  const int payloads = 8;
  const size_t stride = (quantPayloadBytes(q) + 7) / 8 * 8;
  void *g = deviceArray<char>(n * elem), *acc = deviceArray<char>(n * elem), *out = deviceArray<char>(n * elem);
  void *sums = deviceArray<char>(n * 4), *scratch = deviceArray<char>(device::quantScratchBytes(q));
  char* gathered = deviceArray<char>(payloads * stride);
  if (!g || !acc || !out || !sums || !scratch || !gathered) return state.SkipWithError("cudaMalloc failed");
  for (int r = 0; r < payloads; ++r) {
    fillNormalAs(dt, g, n, 17 + r);
    device::quantCompress(dt, g, nullptr, acc, q, gathered + r * stride, scratch, nullptr);
  }
  const double s = runTimed(state, [&] {
    device::quantUnpack(dt, q, gathered, payloads, stride, 1.0 / payloads, out, elem < 4 ? sums : out, nullptr,
                        nullptr);
  });
  report(state, payloads * stride + n * elem + (elem < 4 ? 8 * n : 0), s);
  for (void* p : {g, acc, out, sums, scratch, (void*)gathered}) cudaFree(p);
}

// The baseline: magnitude keys and indices, one full descending radix sort, the first k.
__global__ void magnitudeKeysKernel(const float* g, size_t n, uint32_t* keys, uint32_t* idx) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    keys[i] = magnitudeKey(g[i]);
    idx[i] = (uint32_t)i;
  }
}

void BM_CubSortTopK(benchmark::State& state) {
  const size_t n = state.range(0), k = topkCount(n, 0.01);
  float* g = deviceArray<float>(n);
  uint32_t *keys = deviceArray<uint32_t>(n), *keysOut = deviceArray<uint32_t>(n), *idx = deviceArray<uint32_t>(n),
           *idxOut = deviceArray<uint32_t>(n);
  size_t tempBytes = 0;
  cub::DeviceRadixSort::SortPairsDescending(nullptr, tempBytes, keys, keysOut, idx, idxOut, (int)n);
  void* temp = deviceArray<char>(tempBytes);
  if (!g || !keys || !keysOut || !idx || !idxOut || !temp) return state.SkipWithError("cudaMalloc failed");
  fillNormal(g, n, 3);
  runTimed(state, [&] {
    magnitudeKeysKernel<<<1024, 256>>>(g, n, keys, idx);
    cub::DeviceRadixSort::SortPairsDescending(temp, tempBytes, keys, keysOut, idx, idxOut, (int)n, 0, 31);
  });
  state.counters["k"] = (double)k;
  BENCH_CUDA(cudaGetLastError());
  for (void* p : {(void*)g, (void*)keys, (void*)keysOut, (void*)idx, (void*)idxOut, temp}) cudaFree(p);
}

constexpr int64_t k64M = int64_t(1) << 26;

BENCHMARK(BM_MemcpyD2D)->Arg(1 << 20)->Arg(k64M)->UseManualTime();
BENCHMARK(BM_RandomBlockPack)->ArgsProduct({{1 << 20, k64M}, {0, 1}})->UseManualTime();
BENCHMARK(BM_RandomBlockCommit)->ArgsProduct({{1 << 20, k64M}, {0, 1}})->UseManualTime();
BENCHMARK(BM_TopK)->Arg(1 << 20)->Arg(k64M)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CubSortTopK)->Arg(1 << 20)->Arg(k64M)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GaussianK)->Arg(1 << 20)->Arg(k64M)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TopKFp16)->Arg(k64M)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ScatterSortedLists)->ArgsProduct({{k64M}, {0, 1}})->UseManualTime();
BENCHMARK(BM_SignResidual)->ArgsProduct({{k64M}, {0, 1}})->UseManualTime();
BENCHMARK(BM_QTopKCompress)->ArgsProduct({{k64M}, {0, 1}})->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_QTopKUnpack)->ArgsProduct({{k64M}, {0, 1}})->UseManualTime();

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  const cudaError_t err = cudaGetDeviceCount(&devices);
  if (err != cudaSuccess || devices == 0) {
    printf("bench_device_kernels: skipped, no CUDA device: %s\n",
           err != cudaSuccess ? cudaGetErrorString(err) : "cudaGetDeviceCount found 0");
    return 0;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  benchmark::AddCustomContext("device", prop.name);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
