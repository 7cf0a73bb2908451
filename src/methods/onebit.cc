// SPDX-License-Identifier: Apache-2.0
//
// ONEBIT: signs with worker and server error feedback, the compressed allreduce of
// DeepSpeed's 1-bit Adam and of DoubleSqueeze (docs/DESIGN.md, "1-bit").
//
// The tensor is cut into P chunks of len = ceil(n/P) (the last ones shorter, possibly
// empty). Worker level, every rank: each chunk of acc = g + e_w becomes one scale and its
// signs (cpu/onebit_kernels.h); e_w = acc - c. The chunks go all-to-all (P-1 sendRecv
// rounds), so rank j holds every rank's chunk j, and sums (or averages) them into m. Server
// level, rank j: m + e_s is compressed the same way, e_s = (m + e_s) - c_s, and the P
// server chunks are allgathered; every rank unpacks them into recvbuff.
// Wire per rank: (P-1) messages out in the all-to-all and (P-1) in the allgather, each
// 8 + 4*ceil(len/32) bytes: about 2 * n/32 * 4 bytes, against 2 (P-1)/P * 4n dense fp32.
// Device buffers run the same passes as CUDA kernels (device.h) with the same bits, through
// the NCCL transport (one grouped send/receive all-to-all, one allgather), stream-ordered.
// Invariants: c + e_w == g + e_w_old on every rank and c_s + e_s == m + e_s_old on the
// chunk's owner, each up to the one rounding of the subtraction into T; both residuals
// change only after the last exchange succeeded. The server residual (len elements) lives
// after the count elements of the state's residual, so spcclStateReset clears it too.

#include "checks.h"
#include "cpu/onebit_kernels.h"
#include "device.h"
#include "dispatch.h"
#include "feedback.h"
#include "method.h"
#include "staging.h"
#include "workspace.h"

namespace spccl {
namespace {

// The worker level cuts the tensor into P chunks, one message each.
SignChunks workerChunks(const spcclState& st) { return signChunks(st.count, (uint32_t)st.comm->nranks); }
// The server level on `rank`: its chunk as one chunk, in the exchange's message stride.
SignChunks serverChunks(const spcclState& st, int rank) {
  const SignChunks w = workerChunks(st);
  const uint64_t len = chunkSize(w, rank);
  return {len, len, 1, w.messageBytes};
}
size_t messageBytes(const spcclState& st) { return workerChunks(st).messageBytes; }

// The workspace: this rank's P worker messages, the P messages received for its own chunk,
// the P allgathered server messages, the chunk mean m, and (device) the scale's scratch.
struct Workspace {
  char* sent;
  char* received;
  char* gathered;
  void* mean;
  void* scratch;
};

Workspace carve(const spcclState& st, WorkspaceCarver& c) {
  const size_t messages = saturatingMul(st.comm->nranks, messageBytes(st));
  Workspace ws;
  ws.sent = static_cast<char*>(c.takeBytes(messages));
  ws.received = static_cast<char*>(c.takeBytes(messages));
  ws.gathered = static_cast<char*>(c.takeBytes(messages));
  ws.mean = c.takeBytes(workerChunks(st).chunkLen * st.elemSize);
  ws.scratch = st.onDevice ? c.takeBytes(device::signScratchBytes(workerChunks(st))) : nullptr;
  return ws;
}

Workspace workspaceOf(const spcclState& st) { return carveAt(st, st.workspace.ptr, carve); }
size_t workspaceBytes(const spcclState& st) { return carvedBytes(st, carve); }

spcclResult_t setup(spcclState&) { return spcclSuccess; }

size_t residualExtra(const spcclState& st) { return workerChunks(st).chunkLen; }
size_t compressedCount(const spcclState& st) { return st.count; }

void describe(const spcclState& st, spcclStateInfo_t* info) {
  info->selected = st.count;
  // The all-to-all and the ring allgather each send P-1 messages.
  info->methodWireBytes = saturatingMul(2, ringAllGatherBytes(st.comm->nranks, messageBytes(st)));
  info->rounds = 2 * ringAllGatherRounds(st.comm->nranks);
}

// The server residual: after the count elements of the residual (null without feedback).
void* serverResidual(const spcclState& st) {
  return feedbackOn(st) ? static_cast<char*>(st.residual.ptr) + st.count * st.elemSize : nullptr;
}

// ---- the passes, on the CPU (cpu/onebit_kernels.h) or the device (device.h): same bits.

// Every chunk of x = in + e into its message.
spcclResult_t compressPass(const spcclState& st, const void* in, const void* e, const SignChunks& c, void* messages,
                           spcclStream_t stream) {
  if (st.onDevice) return device::signCompress(st.datatype, in, e, c, messages, workspaceOf(st).scratch, stream);
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    cpu::signCompress(static_cast<const T*>(in), static_cast<const T*>(e), c, messages);
    return spcclSuccess;
  });
}

// e = (in + e) - c: the residual commit of either level (nothing without feedback).
spcclResult_t residualPass(const spcclState& st, const void* in, void* e, const SignChunks& c, const void* messages,
                           spcclStream_t stream) {
  if (!e) return spcclSuccess;
  if (st.onDevice) return device::signResidual(st.datatype, in, e, c, messages, e, stream);
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    cpu::signResidual(static_cast<const T*>(in), static_cast<const T*>(e), c, messages, static_cast<T*>(e));
    return spcclSuccess;
  });
}

// out = c.
spcclResult_t unpackPass(const spcclState& st, const SignChunks& c, const void* messages, void* out,
                         spcclStream_t stream) {
  if (st.onDevice) return device::signUnpack(st.datatype, c, messages, out, stream);
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    cpu::signUnpack(c, messages, static_cast<T*>(out));
    return spcclSuccess;
  });
}

// m = the sum over ranks of their chunk `rank` (times 1/P for avg), added in rank order and
// rounded once into T.
spcclResult_t meanPass(const spcclInfo& info, const void* received, void* mean) {
  const spcclState& st = *info.state;
  const int P = info.comm->nranks;
  const size_t len = chunkSize(workerChunks(st), info.comm->rank);
  const double factor = info.op == spcclAvg ? 1.0 / P : 1.0;
  if (st.onDevice) return device::signMean(st.datatype, received, messageBytes(st), P, len, factor, mean, info.stream);
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    using AccT = typename AccumOf<T>::type;
    cpu::signMean(received, messageBytes(st), P, len, (AccT)factor, static_cast<T*>(mean));
    return spcclSuccess;
  });
}

// Received messages hold scales a sender makes (finite, >= 0): a peer's NaN scale would turn
// every rank's chunk, and the server residual of its owner, into NaN. Host messages only
// (device messages are not read on the host; there a NaN mean is dropped by the server's
// compression, which keeps no non-finite residual).
spcclResult_t scalesCheck(const spcclInfo& info, const void* messages, const char* which) {
  const spcclState& st = *info.state;
  if (st.onDevice) return spcclSuccess;
  for (int r = 0; r < info.comm->nranks; ++r) {
    const double scale = *signMessage(messages, messageBytes(st), r).scale;
    SPCCL_REQUIRE(signScaleValid(scale), spcclRemoteError,
                  "%s : rank %d sent a %s message with scale %g, which no sender makes (its payload is corrupt)",
                  info.opName, r, which, scale);
  }
  return spcclSuccess;
}

spcclResult_t sparseAllReduce(const spcclInfo& info) {
  const spcclState& st = *info.state;
  const int rank = info.comm->rank;
  const Workspace ws = workspaceOf(st);
  const SignChunks worker = workerChunks(st), server = serverChunks(st, rank);
  void* own = signMessage(ws.gathered, worker.messageBytes, rank).scale;  // the server message, gathered in place
  void* es = serverResidual(st);
  SPCCLCHECK(compressPass(st, info.sendbuff, feedbackIn(st), worker, ws.sent, info.stream));
  SPCCLCHECK(stateAllToAll(st, ws.sent, ws.received, worker.messageBytes, info.stream));
  SPCCLCHECK(scalesCheck(info, ws.received, "worker"));
  SPCCLCHECK(meanPass(info, ws.received, ws.mean));
  SPCCLCHECK(compressPass(st, ws.mean, es, server, own, info.stream));
  SPCCLCHECK(stateAllGather(st, own, ws.gathered, worker.messageBytes, info.stream));
  SPCCLCHECK(scalesCheck(info, ws.gathered, "server"));
  // Commit: both residuals, then recvbuff (which may be sendbuff, read by the worker commit).
  SPCCLCHECK(residualPass(st, info.sendbuff, feedbackOut(st), worker, ws.sent, info.stream));
  SPCCLCHECK(residualPass(st, ws.mean, es, server, own, info.stream));
  return unpackPass(st, worker, ws.gathered, info.recvbuff, info.stream);
}

// Without communication: this rank's worker-level contribution c, count values.
spcclResult_t compress(const spcclInfo& info, void* values, uint32_t*, size_t* nvalues) {
  const spcclState& st = *info.state;
  const Workspace ws = workspaceOf(st);
  const SignChunks worker = workerChunks(st);
  SPCCLCHECK(compressPass(st, info.sendbuff, feedbackIn(st), worker, ws.sent, info.stream));
  SPCCLCHECK(residualPass(st, info.sendbuff, feedbackOut(st), worker, ws.sent, info.stream));
  SPCCLCHECK(unpackPass(st, worker, ws.sent, values, info.stream));
  *nvalues = st.count;
  return spcclSuccess;
}

// recvbuff = scale * values: the contributions travel as plain values once compressed.
spcclResult_t decompress(const spcclState& st, const void* values, const uint32_t*, size_t nvalues,
                         unsigned long long, double scale, void* recvbuff, spcclStream_t stream) {
  SPCCL_REQUIRE(nvalues == st.count, spcclInvalidArgument,
                "spcclDecompress : nvalues %zu is not the onebit payload size %zu", nvalues, st.count);
  if (st.onDevice) return device::scaleValues(st.datatype, values, st.count, scale, recvbuff, stream);
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    using AccT = typename AccumOf<T>::type;
    for (size_t i = 0; i < st.count; ++i)
      static_cast<T*>(recvbuff)[i] = scaleRounded(static_cast<const T*>(values)[i], (AccT)scale);
    return spcclSuccess;
  });
}

}  // namespace

// Rounds of its own (all-to-all, then allgather); passes: the scale and signs of acc, the
// residual, the unpacked output; no selection.
extern const MethodOps kOneBitMethod = {spcclMethodOneBit, "onebit", {spcclPayloadRounds, 8, 0}, setup,
                                        workspaceBytes, compressedCount,
                                        describe, sparseAllReduce, compress, decompress, nullptr,
                                        residualExtra};

}  // namespace spccl
