// SPDX-License-Identifier: Apache-2.0
//
// Launchers of the quantized Top-k kernels (cuda/kernels/qtopk_kernels.cuh): switch on the
// datatype, size the grid from the policy, launch on the caller's stream. Nothing is read back
// to the host.

#include "device.h"
#include "dispatch.h"
#include "kernels/qtopk_kernels.cuh"
#include "launch.h"
#include "tuning.h"

namespace spccl {
namespace device {

using cuda::toCuda;

namespace {

constexpr cuda::QuantChunkPolicy kChunks = cuda::quantChunkPolicy();
constexpr cuda::ElementwisePolicy kStream = cuda::streamPolicy();
constexpr cuda::ElementwisePolicy kSlots = cuda::pairPolicy();
static_assert(kChunks.digitBits <= 11, "the chunk histogram lives in shared memory");

uint64_t slotCount(const QuantLayout& q) { return (uint64_t)q.nchunks * q.k; }

// One CTA per chunk, at most blocksPerSm per SM (the CTAs loop over further chunks).
spcclResult_t chunkGrid(const QuantLayout& q, unsigned* grid) { return cuda::gridSize(q.nchunks, kChunks.blocksPerSm, grid); }

}  // namespace

size_t quantScratchBytes(const QuantLayout& q) { return (size_t)slotCount(q) * sizeof(uint64_t); }

spcclResult_t quantCompress(spcclDataType_t datatype, const void* g, const void* e, void* acc, const QuantLayout& q,
                            void* payload, void* scratch, spcclStream_t stream) {
  if (q.nchunks == 0) return spcclSuccess;
  return withType(datatype, [&](auto tag) {
    using T = decltype(tag);
    const cudaStream_t cs = toCuda(stream);
    int16_t* exponents = quantExponents(payload);
    uint64_t* fields = static_cast<uint64_t*>(scratch);
    unsigned grid = 0;
    SPCCLCHECK(chunkGrid(q, &grid));
    cuda::quantSelectKernel<T, kChunks.threads, kChunks.digitBits><<<grid, kChunks.threads, 0, cs>>>(
        static_cast<const T*>(g), static_cast<const T*>(e), static_cast<T*>(acc), q, exponents, fields);
    SPCCLCHECK(cuda::gridFor(quantFieldWords(q), kSlots, &grid));
    cuda::quantPackKernel<<<grid, kSlots.threads, 0, cs>>>(q, fields, exponents, quantFields(q, payload));
    CUDACHECK(cudaGetLastError());
    return spcclSuccess;
  });
}

spcclResult_t quantResidual(spcclDataType_t datatype, const void* acc, const QuantLayout& q, const void* payload,
                            void* e, spcclStream_t stream) {
  if (q.count == 0) return spcclSuccess;
  return withType(datatype, [&](auto tag) {
    using T = decltype(tag);
    const cudaStream_t cs = toCuda(stream);
    unsigned grid = 0;
    SPCCLCHECK(cuda::gridFor(q.count, kStream, &grid));
    cuda::quantKeptKernel<T><<<grid, kStream.threads, 0, cs>>>(static_cast<T*>(e), static_cast<const T*>(acc), q.count);
    SPCCLCHECK(cuda::gridFor(slotCount(q), kSlots, &grid));
    cuda::quantResidualKernel<T><<<grid, kSlots.threads, 0, cs>>>(
        static_cast<const T*>(acc), q, quantExponents(payload), quantFields(q, payload), static_cast<T*>(e));
    CUDACHECK(cudaGetLastError());
    return spcclSuccess;
  });
}

spcclResult_t quantUnpack(spcclDataType_t datatype, const QuantLayout& q, const void* payloads, int npayloads,
                          size_t strideBytes, double scale, void* out, void* sums, BadPairReport* report,
                          spcclStream_t stream) {
  if (q.nchunks == 0) return spcclSuccess;
  return withType(datatype, [&](auto tag) {
    using T = decltype(tag);
    using AccT = typename AccumOf<T>::type;
    unsigned grid = 0;
    SPCCLCHECK(chunkGrid(q, &grid));
    cuda::quantUnpackKernel<T, kChunks.threads><<<grid, kChunks.threads, 0, toCuda(stream)>>>(
        q, static_cast<const char*>(payloads), npayloads, strideBytes, (AccT)scale, scale != 1.0,
        static_cast<AccT*>(sums), static_cast<T*>(out), report);
    CUDACHECK(cudaGetLastError());
    return spcclSuccess;
  });
}

spcclResult_t quantSlots(spcclDataType_t datatype, const QuantLayout& q, const void* payload, uint32_t* indices,
                         void* values, spcclStream_t stream) {
  if (slotCount(q) == 0) return spcclSuccess;
  return withType(datatype, [&](auto tag) {
    using T = decltype(tag);
    unsigned grid = 0;
    SPCCLCHECK(cuda::gridFor(slotCount(q), kSlots, &grid));
    cuda::quantSlotsKernel<T><<<grid, kSlots.threads, 0, toCuda(stream)>>>(
        q, quantExponents(payload), quantFields(q, payload), indices, static_cast<T*>(values));
    CUDACHECK(cudaGetLastError());
    return spcclSuccess;
  });
}

}  // namespace device
}  // namespace spccl
