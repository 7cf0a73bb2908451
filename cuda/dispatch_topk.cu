// SPDX-License-Identifier: Apache-2.0
//
// Launchers of the top-k family (cuda/kernels/topk_kernels.cuh): scratch layout, pass
// structure of the radix select, grid sizes. Everything is enqueued on the caller's stream;
// nothing is read back to the host.

#include <cub/device/device_scan.cuh>

#include "device.h"
#include "dispatch.h"
#include "kernels/topk_kernels.cuh"
#include "launch.h"
#include "tuning.h"

namespace spccl {
namespace device {

using cuda::toCuda;

namespace {

constexpr cuda::RadixPolicy kRadix = cuda::radixPolicy();
constexpr cuda::ElementwisePolicy kStream = cuda::streamPolicy();
constexpr cuda::ElementwisePolicy kPairs = cuda::pairPolicy();
constexpr cuda::ScatterListsPolicy kScatterLists = cuda::scatterListsPolicy();
constexpr size_t kTile = (size_t)kRadix.threads * kRadix.itemsPerThread;
static_assert(kRadix.digitBits <= cuda::kMaxDigitBits, "histogram larger than the shared array");
static_assert(kRadix.itemsPerThread <= 32, "compaction flags are one 32-bit word per thread");

size_t align256(size_t bytes) { return (bytes + 255) & ~size_t(255); }

size_t ntiles(size_t n) { return (n + kTile - 1) / kTile; }

// Temporary storage of the multi-CTA scan of the tile counts, as CUB sizes it (a host query).
size_t scanTempBytes(size_t n) {
  size_t bytes = 0;
  const cudaError_t err = cub::DeviceScan::InclusiveSum(nullptr, bytes, (const unsigned long long*)nullptr,
                                                        (unsigned long long*)nullptr, (int)ntiles(n));
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    WARN("cub::DeviceScan could not size its temporary storage: %s", cudaGetErrorString(err));
  }
  return bytes;  // 0 on failure: the scan then refuses to run, with an error
}

// The scratch, cut into its parts (CUB's alias_temporaries).
struct Scratch {
  unsigned* hist;
  cuda::SelectState* state;
  double* thresholds;
  unsigned long long* counts;
  cuda::Moments* partials;
  unsigned long long* tileCounts;
  unsigned long long* tileIncl;
  void* scanTemp;
  size_t scanTempBytes;
};

// Lays the parts out from `base` and returns the bytes they take (base 0: sizing only).
size_t carve(uintptr_t base, size_t n, Scratch* s) {
  uintptr_t p = base;
  auto take = [&p](size_t bytes) {
    void* at = reinterpret_cast<void*>(p);
    p += align256(bytes);
    return at;
  };
  s->hist = reinterpret_cast<unsigned*>(take(cuda::kMaxBins * sizeof(unsigned)));
  s->state = reinterpret_cast<cuda::SelectState*>(take(sizeof(cuda::SelectState)));
  s->thresholds = reinterpret_cast<double*>(take(8 * sizeof(double)));
  s->counts = reinterpret_cast<unsigned long long*>(take(8 * sizeof(unsigned long long)));
  s->partials = reinterpret_cast<cuda::Moments*>(take(cuda::kMomentBlocks * sizeof(cuda::Moments)));
  s->tileCounts = reinterpret_cast<unsigned long long*>(take(ntiles(n) * sizeof(unsigned long long)));
  s->tileIncl = reinterpret_cast<unsigned long long*>(take(ntiles(n) * sizeof(unsigned long long)));
  s->scanTempBytes = scanTempBytes(n);
  s->scanTemp = take(s->scanTempBytes);
  return (size_t)(p - base);
}

Scratch carve(void* scratch, size_t n) {
  Scratch s;
  carve(reinterpret_cast<uintptr_t>(scratch), n, &s);
  return s;
}

// Tile counts, their scan, the stable compaction and the padding: shared by both selections.
template <typename T, typename Class>
spcclResult_t compact(const T* acc, size_t n, size_t k, const Scratch& s, uint32_t* indices, T* values,
                      cudaStream_t stream) {
  const unsigned tiles = (unsigned)ntiles(n);
  cuda::tileCountKernel<T, Class, kRadix.threads, kRadix.itemsPerThread>
      <<<tiles, kRadix.threads, 0, stream>>>(acc, n, s.state, s.tileCounts);
  size_t tempBytes = s.scanTempBytes;
  CUDACHECK(cub::DeviceScan::InclusiveSum(s.scanTemp, tempBytes, s.tileCounts, s.tileIncl, (int)tiles, stream));
  cuda::compactKernel<T, Class, kRadix.threads, kRadix.itemsPerThread>
      <<<tiles, kRadix.threads, 0, stream>>>(acc, n, s.state, s.tileIncl, k, indices, values);
  unsigned grid = 0;
  SPCCLCHECK(cuda::gridFor(k, kPairs, &grid));
  cuda::padKernel<T><<<grid, kPairs.threads, 0, stream>>>(s.state, s.tileIncl, tiles, k, indices, values);
  CUDACHECK(cudaGetLastError());
  return spcclSuccess;
}

}  // namespace

size_t topkScratchBytes(size_t n) {
  Scratch sizing;
  return carve(0, n, &sizing);
}

spcclResult_t topkSelect(spcclDataType_t datatype, const void* g, const void* e, void* acc, size_t n, size_t k,
                         uint32_t* indices, void* values, void* scratch, spcclStream_t stream) {
  if (n == 0 || k == 0) return spcclSuccess;
  return withType(datatype, [&](auto tag) {
    using T = decltype(tag);
    using Key = typename MagnitudeKeyOf<T>::type;
    const cudaStream_t cs = toCuda(stream);
    const Scratch s = carve(scratch, n);
    unsigned grid = 0;
    SPCCLCHECK(cuda::gridSize((n + kTile - 1) / kTile, kRadix.blocksPerSm, &grid));
    cuda::selectInitKernel<<<1, kRadix.threads, 0, cs>>>(s.hist, cuda::kMaxBins, s.state, k);
    // Digits from the top: the sign bit is always clear in a magnitude key, so it is skipped,
    // and so are the low bits every key of T has clear (a half type's fp32 key): fp16 and
    // bf16 take 2 histogram passes instead of 3, a third less traffic.
    int hi = (int)sizeof(Key) * 8 - 1;
    const int lo = cuda::kKeyZeroBits<T>;
    bool first = true;
    while (hi > lo) {
      const int width = hi - lo < kRadix.digitBits ? hi - lo : kRadix.digitBits, shift = hi - width,
                bins = 1 << width;
      if (first)
        cuda::feedbackHistogramKernel<T, kRadix.threads><<<grid, kRadix.threads, 0, cs>>>(
            static_cast<const T*>(g), static_cast<const T*>(e), static_cast<T*>(acc), n, shift, bins, s.hist);
      else
        cuda::radixHistogramKernel<T, kRadix.threads>
            <<<grid, kRadix.threads, 0, cs>>>(static_cast<const T*>(acc), n, s.state, shift, bins, s.hist);
      cuda::radixChooseKernel<<<1, cuda::kChooseThreads, 0, cs>>>(s.hist, shift, bins, s.state);
      first = false;
      hi = shift;
    }
    CUDACHECK(cudaGetLastError());
    return compact<T, cuda::TopKClass>(static_cast<const T*>(acc), n, k, s, indices, static_cast<T*>(values), cs);
  });
}

spcclResult_t gaussiankSelect(spcclDataType_t datatype, const void* g, const void* e, void* acc, size_t n, size_t k,
                              double density, uint32_t* indices, void* values, void* scratch, spcclStream_t stream) {
  if (n == 0 || k == 0) return spcclSuccess;
  return withType(datatype, [&](auto tag) {
    using T = decltype(tag);
    const cudaStream_t cs = toCuda(stream);
    const Scratch s = carve(scratch, n);
    unsigned grid = 0;
    SPCCLCHECK(cuda::gridSize((n + kTile - 1) / kTile, kRadix.blocksPerSm, &grid));
    if (grid > (unsigned)cuda::kMomentBlocks) grid = cuda::kMomentBlocks;
    cuda::selectInitKernel<<<1, kRadix.threads, 0, cs>>>(s.hist, 0, s.state, 0);
    cuda::feedbackMomentsKernel<T, kRadix.threads><<<grid, kRadix.threads, 0, cs>>>(
        static_cast<const T*>(g), static_cast<const T*>(e), static_cast<T*>(acc), n, s.partials);
    cuda::gaussianThresholdsKernel<kRadix.threads>
        <<<1, kRadix.threads, 0, cs>>>(s.partials, (int)grid, density, s.thresholds, s.counts);
    cuda::thresholdCountKernel<T, kRadix.threads>
        <<<grid, kRadix.threads, 0, cs>>>(static_cast<const T*>(acc), n, s.thresholds, s.counts);
    cuda::gaussianSearchKernel<<<1, 1, 0, cs>>>(s.thresholds, s.counts, k, s.state);
    CUDACHECK(cudaGetLastError());
    return compact<T, cuda::ThresholdClass>(static_cast<const T*>(acc), n, k, s, indices, static_cast<T*>(values),
                                            cs);
  });
}

spcclResult_t feedbackSum(spcclDataType_t datatype, const void* g, const void* e, void* acc, size_t n,
                          spcclStream_t stream) {
  if (n == 0) return spcclSuccess;
  return withType(datatype, [&](auto tag) {
    using T = decltype(tag);
    unsigned grid = 0;
    SPCCLCHECK(cuda::gridFor(n, kStream, &grid));
    cuda::feedbackSumKernel<T><<<grid, kStream.threads, 0, toCuda(stream)>>>(
        static_cast<const T*>(g), static_cast<const T*>(e), static_cast<T*>(acc), n);
    CUDACHECK(cudaGetLastError());
    return spcclSuccess;
  });
}

// A full pass over acc, kept on purpose: acc lives in the workspace, not in the residual,
// because the residual may change only after the collective's last failable step (the
// staged MPI path checks the gathered pairs on the host after the selection), and a pointer
// swap instead of the copy would be baked into a captured graph. The compaction, which reads
// acc anyway, cannot write e for the same reason.
spcclResult_t residualCommit(spcclDataType_t datatype, void* e, const void* acc, size_t n, const uint32_t* indices,
                             size_t npairs, spcclStream_t stream) {
  return withType(datatype, [&](auto tag) {
    using T = decltype(tag);
    unsigned grid = 0;
    SPCCLCHECK(cuda::gridFor(n, kStream, &grid));
    cuda::keptCopyKernel<T><<<grid, kStream.threads, 0, toCuda(stream)>>>(static_cast<T*>(e), static_cast<const T*>(acc), n);
    CUDACHECK(cudaGetLastError());
    if (npairs == 0) return spcclSuccess;
    SPCCLCHECK(cuda::gridFor(npairs, kPairs, &grid));
    cuda::scatterClearKernel<T><<<grid, kPairs.threads, 0, toCuda(stream)>>>(static_cast<T*>(e), n, indices, npairs);
    CUDACHECK(cudaGetLastError());
    return spcclSuccess;
  });
}

spcclResult_t scatterAdd(spcclDataType_t datatype, const uint32_t* indices, const void* values, size_t npairs,
                         double scale, size_t n, void* out, BadPairReport* report, spcclStream_t stream) {
  return withType(datatype, [&](auto tag) {
    using T = decltype(tag);
    using AccT = typename AccumOf<T>::type;
    const cudaStream_t cs = toCuda(stream);
    CUDACHECK(cudaMemsetAsync(out, 0, n * sizeof(T), cs));
    unsigned grid = 0;
    SPCCLCHECK(cuda::gridFor(npairs, kPairs, &grid));
    if (npairs)
      cuda::scatterAddKernel<T><<<grid, kPairs.threads, 0, cs>>>(indices, static_cast<const T*>(values), npairs, n,
                                                                  static_cast<T*>(out), report);
    if (scale != 1.0) {
      SPCCLCHECK(cuda::gridFor(n, kStream, &grid));
      cuda::scaleKernel<T><<<grid, kStream.threads, 0, cs>>>(static_cast<T*>(out), n, (AccT)scale);
    }
    CUDACHECK(cudaGetLastError());
    return spcclSuccess;
  });
}

namespace {
// Chunks of the sorted-list scatter over n elements; the smallest chunk (fp64's) for sizing.
uint64_t scatterChunks(uint64_t n, uint64_t chunk) { return (n + chunk - 1) / chunk; }
}  // namespace

size_t scatterScratchBytes(size_t n, int nlists) {
  const uint64_t chunks = scatterChunks(n, cuda::kScatterChunk<double>);
  return (size_t)(chunks + 1) * (size_t)(nlists > 0 ? nlists : 0) * sizeof(uint32_t);
}

spcclResult_t scatterSortedLists(spcclDataType_t datatype, const uint32_t* indices, const void* values,
                                 size_t npairs, int nlists, size_t strideBytes, double scale, size_t n, void* out,
                                 void* scratch, BadPairReport* report, spcclStream_t stream) {
  if (n == 0) return spcclSuccess;
  return withType(datatype, [&](auto tag) {
    using T = decltype(tag);
    using AccT = typename AccumOf<T>::type;
    const cudaStream_t cs = toCuda(stream);
    const uint64_t chunk = cuda::kScatterChunk<AccT>, nchunks = scatterChunks(n, chunk);
    const bool wide = sizeof(T) < sizeof(AccT) && nlists > 1;  // as methods/pairs.cc adds them
    uint32_t* starts = static_cast<uint32_t*>(scratch);
    unsigned grid = 0;
    SPCCLCHECK(cuda::gridFor((uint64_t)(npairs + 1) * (uint64_t)nlists, kPairs, &grid));
    cuda::chunkStartsKernel<<<grid, kPairs.threads, 0, cs>>>(reinterpret_cast<const char*>(indices), npairs, nlists,
                                                            strideBytes, n, chunk, nchunks, starts, report);
    SPCCLCHECK(cuda::gridSize(nchunks, kScatterLists.blocksPerSm, &grid));
    cuda::scatterListsKernel<T, kScatterLists.threads><<<grid, kScatterLists.threads, 0, cs>>>(
        reinterpret_cast<const char*>(indices), static_cast<const char*>(values), npairs, nlists, strideBytes, starts,
        (AccT)scale, scale != 1.0, wide, n, static_cast<T*>(out));
    CUDACHECK(cudaGetLastError());
    return spcclSuccess;
  });
}

}  // namespace device
}  // namespace spccl
