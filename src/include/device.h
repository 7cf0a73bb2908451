/* SPDX-License-Identifier: Apache-2.0
 *
 * What src/ sees of the CUDA side: host-callable launchers in plain C types (no CUDA header),
 * implemented by cuda/dispatch_*.cu, or by src/device_stub.cc in a build without CUDA, where
 * every call returns spcclInvalidUsage ("built without CUDA").
 *
 * Every launcher switches on the datatype, enqueues its kernels on `stream` and returns
 * without synchronising the host (so it can be captured in a CUDA graph), unless it says
 * otherwise. CUDA failures come back as spcclUnhandledCudaError with a WARN.
 */
#ifndef SPCCL_DEVICE_H_
#define SPCCL_DEVICE_H_

#include <stddef.h>
#include <stdint.h>

#include "onebit_core.h"
#include "qtopk_core.h"
#include "select_core.h"
#include "spccl.h"

namespace spccl {
namespace device {

// ---------------------------------------------------------------- memory and streams
struct StateSync;
// A state's device memory, not initialised (zero it with zeroNow): stream-ordered on the
// state's own stream (cudaMallocAsync), waited for before returning (state create blocks).
spcclResult_t allocDevice(void** ptr, size_t bytes, const StateSync& sync, const char* api);
// Freed on the state's own stream after its last marked work (cudaFreeAsync): no device-wide
// synchronisation, which cudaFree would be (it would also wait for NCCL kernels of other
// comms that wait for their peers).
void freeDevice(void* ptr, const StateSync& sync);
// Page-locked host memory for staging device payloads through a host transport.
spcclResult_t allocPinned(void** ptr, size_t bytes, const char* api);
void freePinned(void* ptr);
spcclResult_t zeroAsync(void* ptr, size_t bytes, spcclStream_t stream);
// Copies in any direction (cudaMemcpyDefault), stream-ordered.
spcclResult_t copyAsync(void* dst, const void* src, size_t bytes, spcclStream_t stream);
spcclResult_t streamSync(spcclStream_t stream);
// *isDevice = 1 for device or managed memory, 0 for host memory (registered or not).
spcclResult_t pointerIsDevice(const void* ptr, int* isDevice);
// The calling thread's current CUDA device.
spcclResult_t currentDevice(int* dev);
// Makes device (index % device count) current for the calling thread; *dev receives it.
spcclResult_t selectDevice(int index, int* dev);

// ---------------------------------------------------------------- a state's own ordering
// The blocking state calls (create, reset, step query) must wait for the state's work and
// nothing else: a cudaDeviceSynchronize would also wait for NCCL kernels of other comms that
// are waiting for their peers, and the legacy stream does not order work on the
// cudaStreamNonBlocking streams PyTorch and NCCL use. So each device state owns a private
// non-blocking stream for its blocking work, and an event recorded after every call that
// touched its memory (inside a graph capture the record becomes a node of the graph, so
// replays record it too).
struct StateSync {
  void* stream = nullptr;    // cudaStream_t
  void* lastWork = nullptr;  // cudaEvent_t
};
spcclResult_t stateSyncCreate(StateSync* sync, const char* api);
void stateSyncDestroy(StateSync* sync);
// Marks the end of the state's work queued so far on `stream`.
spcclResult_t markWork(const StateSync& sync, spcclStream_t stream);
// *capturing = whether `stream` is being captured into a CUDA graph (work queued now runs
// at each replay, not now).
spcclResult_t streamCapturing(spcclStream_t stream, bool* capturing);
// After the state's marked work: zeroes device memory and returns once it is zero.
spcclResult_t zeroNow(const StateSync& sync, void* ptr, size_t bytes);
// After the state's marked work: copies in any direction and returns once copied.
spcclResult_t copyNow(const StateSync& sync, void* dst, const void* src, size_t bytes);

// Adds one to a device step counter, after the work queued before it on `stream`.
spcclResult_t advanceStep(unsigned long long* step, spcclStream_t stream);

// ---------------------------------------------------------------- random block (cuda/kernels/block_kernels.cuh)
// A random-block selection as the kernels see it. With `step` null, `sel` is used as is (its
// key from a host-known step). With `step` pointing at the state's device step counter, the
// kernels derive the key from (seed, tensorKey, *step) when they run, so a CUDA graph that
// captured the collective selects new blocks at every replay instead of repeating one step.
struct DeviceSelection {
  BlockSelection sel;
  unsigned long long seed;
  unsigned long long tensorKey;
  const unsigned long long* step;
};

// packed[slot * B + j] = g + e over the chosen blocks (e may be null: no feedback); the
// short last block's tail packs as zero. Reads only the m*B chosen elements.
spcclResult_t randomBlockPack(spcclDataType_t datatype, const void* g, const void* e, size_t n, size_t blockSize,
                              const DeviceSelection* sel, void* packed, spcclStream_t stream);
// One pass over the n elements: chosen -> out = scale * packed, e = 0; not chosen -> e = g + e,
// out = 0. g and e are null to only unpack (decompress), out is null to only update the
// residual (compress). In-place (out == g) allowed.
spcclResult_t randomBlockCommit(spcclDataType_t datatype, const void* g, void* e, const void* packed, double scale,
                                size_t n, size_t blockSize, const DeviceSelection* sel, void* out,
                                spcclStream_t stream);

// ---------------------------------------------------------------- top-k family (cuda/kernels/topk_kernels.cuh)
// Scratch the selections need for n elements (histogram, selection state, per-tile counts).
size_t topkScratchBytes(size_t n);
// Exact top-k of acc = g + e (e may be null): acc (n elements) receives g + e; indices/values
// receive the k positions of largest magnitude (lower index on ties, topk_core.h) in
// ascending index order. 1 <= k <= n < 2^32.
spcclResult_t topkSelect(spcclDataType_t datatype, const void* g, const void* e, void* acc, size_t n, size_t k,
                         uint32_t* indices, void* values, void* scratch, spcclStream_t stream);
// Gaussian-k of acc = g + e: the first k positions (ascending) with |acc| > t, t from the
// mean/std threshold search of topk_core.h; unused slots get SPCCL_PAD_INDEX and 0.
spcclResult_t gaussiankSelect(spcclDataType_t datatype, const void* g, const void* e, void* acc, size_t n, size_t k,
                              double density, uint32_t* indices, void* values, void* scratch, spcclStream_t stream);
// acc = g + e (e may be null), n elements: the dense path of a dense-switched state.
spcclResult_t feedbackSum(spcclDataType_t datatype, const void* g, const void* e, void* acc, size_t n,
                          spcclStream_t stream);
// e = acc with the npairs sent positions cleared (padding and out-of-range indices skipped).
spcclResult_t residualCommit(spcclDataType_t datatype, void* e, const void* acc, size_t n, const uint32_t* indices,
                             size_t npairs, spcclStream_t stream);
// A corrupt pair list, as a scatter kernel found it. The device cannot fail the call that
// received it without a host round trip, so it writes the index, then the kind, into pinned
// host memory (`report`, may be null), and a later host call reports it (enqueue.h).
enum BadPairKind : uint32_t {
  kPairsClean = 0,
  kPairOutOfRange = 1,  // an index >= n that is not padding
  kPairsUnordered = 2,  // a list that should be ascending is not (repeats included)
  kSlotUndecodable = 3, // a qtopk payload's chunk (index: the chunk) that does not decode
};
struct BadPairReport {
  uint32_t kind;   // BadPairKind; written last
  uint32_t index;  // the offending index
};

// Both scatters skip indices that are padding or >= n, and report the others
// (kPairOutOfRange); the sorted-list scatter also skips and reports pairs out of order.
//
// out = scale * (the pairs of one list, in any order, repeats adding up), zero elsewhere
// (spcclDecompress).
spcclResult_t scatterAdd(spcclDataType_t datatype, const uint32_t* indices, const void* values, size_t npairs,
                         double scale, size_t n, void* out, BadPairReport* report, spcclStream_t stream);
// out = scale * (sum of nlists pair lists), zero elsewhere, in one pass that writes out once;
// list l starts strideBytes after list l-1 (indices and values alike). Each list must be
// ascending with distinct indices, as every selection above writes them (padding sorts
// last). Equal indices from different lists add as on the CPU (methods/pairs.cc): in list
// order, and for fp16/bf16 with several lists in fp32 with one rounding. A list that is not
// ascending cannot write out of bounds: its pairs outside their chunk are skipped, and it is
// reported (kPairsUnordered). `scratch` holds scatterScratchBytes(n, nlists) bytes.
size_t scatterScratchBytes(size_t n, int nlists);
spcclResult_t scatterSortedLists(spcclDataType_t datatype, const uint32_t* indices, const void* values,
                                 size_t npairs, int nlists, size_t strideBytes, double scale, size_t n, void* out,
                                 void* scratch, BadPairReport* report, spcclStream_t stream);

// ---------------------------------------------------------------- quantized top-k (cuda/kernels/qtopk_kernels.cuh)
// The passes of cpu/qtopk_kernels.h with the same bits: the per-element rules and the payload
// layout are qtopk_core.h's, `q` the state's layout (q.count < 2^32).
// Scratch quantCompress needs: one 64-bit field per slot (nchunks * k).
size_t quantScratchBytes(const QuantLayout& q);
// acc = g + e (e may be null, count elements) and this rank's payload (quantPayloadBytes(q)
// bytes, 8-byte aligned): per chunk the k largest magnitudes of acc (lower index on ties),
// their offsets ascending and levels, and the chunk's exponent; every payload byte is written.
spcclResult_t quantCompress(spcclDataType_t datatype, const void* g, const void* e, void* acc, const QuantLayout& q,
                            void* payload, void* scratch, spcclStream_t stream);
// e = acc - c for this rank's own payload: acc where nothing was sent (0 where acc is not
// finite), acc - c (exact) on the sent slots.
spcclResult_t quantResidual(spcclDataType_t datatype, const void* acc, const QuantLayout& q, const void* payload,
                            void* e, spcclStream_t stream);
// out = scale * (the sum over npayloads payloads, strideBytes apart, of their c), added in the
// accumulation type in payload order and rounded once; zero where none sent anything. `sums`:
// count elements of the accumulation type, or out itself for fp32/fp64. A chunk of a payload
// that does not decode (qtopk_core.h, quantSlotDecodes) is skipped and reported
// (kSlotUndecodable, the chunk), as the host refuses it.
spcclResult_t quantUnpack(spcclDataType_t datatype, const QuantLayout& q, const void* payloads, int npayloads,
                          size_t strideBytes, double scale, void* out, void* sums, BadPairReport* report,
                          spcclStream_t stream);
// This rank's c as nchunks * k (index, value) slots (spcclCompress): a slot that sends nothing
// and a short last chunk's spare slots carry SPCCL_PAD_INDEX and 0.
spcclResult_t quantSlots(spcclDataType_t datatype, const QuantLayout& q, const void* payload, uint32_t* indices,
                         void* values, spcclStream_t stream);

// ---------------------------------------------------------------- 1-bit (cuda/kernels/onebit_kernels.cuh)
// The tensor cut as `c` says (onebit_core.h): chunk j of n elements, its message at
// messages + j * c.messageBytes (8-byte aligned). The same bits as cpu/onebit_kernels.h.
// Scratch signCompress needs for the scale's summation tree.
size_t signScratchBytes(const SignChunks& c);
// Every chunk of x = in + e (e may be null) into its message: signs and scale.
spcclResult_t signCompress(spcclDataType_t datatype, const void* in, const void* e, const SignChunks& c,
                           void* messages, void* scratch, spcclStream_t stream);
// eOut = x - c, what the messages did not carry (eIn may be eOut, or null).
spcclResult_t signResidual(spcclDataType_t datatype, const void* in, const void* eIn, const SignChunks& c,
                           const void* messages, void* eOut, spcclStream_t stream);
// out = c, the n values the messages stand for.
spcclResult_t signUnpack(spcclDataType_t datatype, const SignChunks& c, const void* messages, void* out,
                         spcclStream_t stream);
// out[i] = factor * (the nmessages messages' values at i, added in message order), i < len.
spcclResult_t signMean(spcclDataType_t datatype, const void* messages, size_t messageBytes, int nmessages,
                       size_t len, double factor, void* out, spcclStream_t stream);
// out = scale * in, n elements, rounded once (dtype_core.h's scaleRounded); in-place allowed.
spcclResult_t scaleValues(spcclDataType_t datatype, const void* in, size_t n, double scale, void* out,
                          spcclStream_t stream);

}  // namespace device
}  // namespace spccl

#endif  // SPCCL_DEVICE_H_
