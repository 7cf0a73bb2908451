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
// Invariants: c + e_w == g + e_w_old on every rank and c_s + e_s == m + e_s_old on the
// chunk's owner, each up to the one rounding of the subtraction into T; both residuals
// change only after the last exchange succeeded. The server residual (len elements) lives
// after the count elements of the state's residual, so spcclStateReset clears it too.
// Host buffers only for now: a device state is refused at creation.

#include <algorithm>

#include "checks.h"
#include "cpu/onebit_kernels.h"
#include "dispatch.h"
#include "feedback.h"
#include "method.h"
#include "staging.h"
#include "workspace.h"

namespace spccl {
namespace {

size_t chunkLen(const spcclState& st) { return ceilDiv(st.count, (size_t)st.comm->nranks); }
size_t chunkBegin(const spcclState& st, int j) { return std::min(st.count, (size_t)j * chunkLen(st)); }
size_t chunkSize(const spcclState& st, int j) { return chunkBegin(st, j + 1) - chunkBegin(st, j); }

// One compressed chunk on the wire: its scale (a value of T, as a double), then its signs.
size_t messageBytes(const spcclState& st) { return alignUp(sizeof(double) + cpu::signWords(chunkLen(st)) * 4, 8); }
struct Message {
  double* scale;
  uint32_t* words;
};
Message messageAt(const spcclState& st, char* messages, int j) {
  char* m = messages + (size_t)j * messageBytes(st);
  return {reinterpret_cast<double*>(m), reinterpret_cast<uint32_t*>(m + sizeof(double))};
}

// The workspace: this rank's P worker chunks, the P chunks received for its own chunk, the
// P allgathered server chunks, and the chunk mean m.
struct Workspace {
  char* sent;
  char* received;
  char* gathered;
  void* mean;
};

Workspace carve(const spcclState& st, WorkspaceCarver& c) {
  const size_t messages = st.comm->nranks * messageBytes(st);
  Workspace ws;
  ws.sent = static_cast<char*>(c.takeBytes(messages));
  ws.received = static_cast<char*>(c.takeBytes(messages));
  ws.gathered = static_cast<char*>(c.takeBytes(messages));
  ws.mean = c.takeBytes(chunkLen(st) * st.elemSize);
  return ws;
}

Workspace workspaceOf(const spcclState& st) { return carveAt(st, st.workspace.ptr, carve); }
size_t workspaceBytes(const spcclState& st) { return carvedBytes(st, carve); }

spcclResult_t setup(spcclState& st) {
  SPCCL_REQUIRE(!st.onDevice, spcclInvalidUsage,
                "spcclStateCreate : onebit runs on host buffers only in this version (use topk or randomblock on "
                "device buffers)");
  return spcclSuccess;
}

size_t residualExtra(const spcclState& st) { return chunkLen(st); }
size_t compressedCount(const spcclState& st) { return st.count; }

void describe(const spcclState& st, spcclStateInfo_t* info) {
  info->selected = st.count;
  // The all-to-all and the ring allgather each send P-1 messages.
  info->wireBytes = 2 * ringAllGatherBytes(st.comm->nranks, messageBytes(st));
}

// The server residual: after the count elements of the residual (null without feedback).
template <typename T>
T* serverResidual(const spcclState& st) {
  return feedbackOn(st) ? static_cast<T*>(st.residual.ptr) + st.count : nullptr;
}

// Worker level: every chunk of g + e_w compressed into `messages`.
template <typename T>
void compressChunks(const spcclState& st, const T* g, char* messages) {
  const T* e = static_cast<const T*>(feedbackIn(st));
  for (int j = 0; j < st.comm->nranks; ++j) {
    const Message m = messageAt(st, messages, j);
    const size_t b = chunkBegin(st, j);
    *m.scale = cpu::signCompress(g + b, e ? e + b : nullptr, chunkSize(st, j), m.words);
  }
}

// Worker residual commit: e_w = (g + e_w) - c, chunk by chunk.
template <typename T>
void commitWorker(const spcclState& st, const T* g, char* messages) {
  T* e = static_cast<T*>(feedbackOut(st));
  if (!e) return;
  for (int j = 0; j < st.comm->nranks; ++j) {
    const Message m = messageAt(st, messages, j);
    const size_t b = chunkBegin(st, j);
    cpu::signResidual(g + b, e + b, chunkSize(st, j), *m.scale, m.words, e + b);
  }
}

// Every rank's chunk `rank` into `received`, slot r from rank r: P-1 shifted exchanges.
spcclResult_t allToAll(const spcclInfo& info, char* sent, char* received) {
  const spcclState& st = *info.state;
  const int P = info.comm->nranks, rank = info.comm->rank;
  const size_t bytes = messageBytes(st);
  memcpy(received + rank * bytes, sent + rank * bytes, bytes);
  for (int d = 1; d < P; ++d) {
    const int to = (rank + d) % P, from = (rank - d + P) % P;
    SPCCLCHECK(info.comm->transport->sendRecv(sent + to * bytes, bytes, to, received + from * bytes, bytes, from,
                                              info.stream));
  }
  return spcclSuccess;
}

// m = the sum over ranks of their chunk `rank` (times 1/P for avg), added in AccumOf<T> in
// rank order and rounded once into T.
template <typename T>
void chunkMean(const spcclInfo& info, char* received, T* mean) {
  using AccT = typename AccumOf<T>::type;
  const spcclState& st = *info.state;
  const int P = info.comm->nranks;
  const AccT factor = info.op == spcclAvg ? (AccT)(1.0 / P) : (AccT)1;
  for (size_t i = 0; i < chunkSize(st, info.comm->rank); ++i) {
    AccT sum = 0;
    for (int r = 0; r < P; ++r) {
      const Message m = messageAt(st, received, r);
      sum += cpu::signValue<T>(*m.scale, m.words, i);
    }
    mean[i] = fromAcc<T>(sum * factor);
  }
}

template <typename T>
spcclResult_t allReduceTyped(const spcclInfo& info) {
  const spcclState& st = *info.state;
  const int rank = info.comm->rank, P = info.comm->nranks;
  const Workspace ws = workspaceOf(st);
  const T* g = static_cast<const T*>(info.sendbuff);
  T* mean = static_cast<T*>(ws.mean);
  T* es = serverResidual<T>(st);
  compressChunks(st, g, ws.sent);
  SPCCLCHECK(allToAll(info, ws.sent, ws.received));
  chunkMean(info, ws.received, mean);
  const Message own = messageAt(st, ws.gathered, rank);
  const size_t mine = chunkSize(st, rank);
  *own.scale = cpu::signCompress(mean, es, mine, own.words);
  SPCCLCHECK(stateAllGather(st, own.scale, ws.gathered, messageBytes(st), info.stream));
  // Commit: nothing below can fail.
  commitWorker(st, g, ws.sent);
  if (es) cpu::signResidual(mean, es, mine, *own.scale, own.words, es);
  T* out = static_cast<T*>(info.recvbuff);
  for (int j = 0; j < P; ++j) {
    const Message m = messageAt(st, ws.gathered, j);
    cpu::signUnpack(*m.scale, m.words, chunkSize(st, j), out + chunkBegin(st, j));
  }
  return spcclSuccess;
}

spcclResult_t sparseAllReduce(const spcclInfo& info) {
  return withType(info.state->datatype, [&](auto tag) { return allReduceTyped<decltype(tag)>(info); });
}

// Without communication: this rank's worker-level contribution c, count values.
spcclResult_t compress(const spcclInfo& info, void* values, uint32_t*, size_t* nvalues) {
  const spcclState& st = *info.state;
  const Workspace ws = workspaceOf(st);
  SPCCLCHECK(withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    const T* g = static_cast<const T*>(info.sendbuff);
    compressChunks(st, g, ws.sent);
    commitWorker(st, g, ws.sent);
    for (int j = 0; j < st.comm->nranks; ++j) {
      const Message m = messageAt(st, ws.sent, j);
      cpu::signUnpack(*m.scale, m.words, chunkSize(st, j), static_cast<T*>(values) + chunkBegin(st, j));
    }
    return spcclSuccess;
  }));
  *nvalues = st.count;
  return spcclSuccess;
}

// recvbuff = scale * values: the contributions travel as plain values once compressed.
spcclResult_t decompress(const spcclState& st, const void* values, const uint32_t*, size_t nvalues,
                         unsigned long long, double scale, void* recvbuff, spcclStream_t) {
  SPCCL_REQUIRE(nvalues == st.count, spcclInvalidArgument,
                "spcclDecompress : nvalues %zu is not the onebit payload size %zu", nvalues, st.count);
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    using AccT = typename AccumOf<T>::type;
    for (size_t i = 0; i < st.count; ++i)
      static_cast<T*>(recvbuff)[i] = scaleRounded(static_cast<const T*>(values)[i], (AccT)scale);
    return spcclSuccess;
  });
}

}  // namespace

extern const MethodOps kOneBitMethod = {spcclMethodOneBit, "onebit", setup, workspaceBytes, compressedCount,
                                        describe, sparseAllReduce, compress, decompress, nullptr,
                                        residualExtra};

}  // namespace spccl
