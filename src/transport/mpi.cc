// SPDX-License-Identifier: Apache-2.0
//
// The MPI transport: host buffers, blocking calls. Which wire it uses (shared memory, TCP,
// UCX) is Open MPI's choice, steered by mpirun's --mca flags.
//
// MPI has no half-precision types, so fp16 and bf16 travel as 16-bit words and are added by
// user ops that widen to fp32, add, and round once per hop.

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>

#include "argcheck.h"
#include "checks.h"
#include "comm.h"
#include "device.h"
#include "dispatch.h"
#include "dtype_core.h"
#include "mpi_transport.h"
#include "spccl_mpi.h"
#include "state.h"

namespace spccl {
namespace {

template <typename T>
void sumHalfOp(void* in, void* inout, int* len, MPI_Datatype*) {
  const T* a = static_cast<const T*>(in);
  T* b = static_cast<T*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = addRounded(a[i], b[i]);
}

std::string mpiErrorText(int err) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(err, text, &len);
  return std::string(text, len);
}

#define MPICHECK(call) \
  do { \
    int err_ = (call); \
    if (err_ != MPI_SUCCESS) { \
      WARN("MPI failure in %s: %s", #call, mpiErrorText(err_).c_str()); \
      return spcclSystemError; \
    } \
  } while (0)

// MPI counts are int: large messages go in pieces of at most this many elements.
constexpr size_t kMaxChunk = size_t(1) << 30;

// Open MPI reports the failure of a non-blocking collective (a truncated message from a peer
// that called with other sizes) through MPI_COMM_WORLD's error handler, not the handler of
// the communicator it ran on: its requests carry none. That handler is MPI_ERRORS_ARE_FATAL
// unless the application changed it, so while spccl tests or waits, MPI_COMM_WORLD returns
// errors too; the caller's handler is put back afterwards.
// The same holds for a handle that names no communicator (a bad Fortran handle): MPI raises
// that error on MPI_COMM_WORLD (MPI-3) or MPI_COMM_SELF (MPI-4), so both return errors while
// spccl validates a caller's communicator.
class ErrorsReturn {
 public:
  explicit ErrorsReturn(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_get_errhandler(comm_, &saved_);
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  }
  ~ErrorsReturn() {
    MPI_Comm_set_errhandler(comm_, saved_);
    MPI_Errhandler_free(&saved_);
  }

 private:
  MPI_Comm comm_;
  MPI_Errhandler saved_;
};

class WorldErrorsReturn : public ErrorsReturn {
 public:
  WorldErrorsReturn() : ErrorsReturn(MPI_COMM_WORLD) {}
};

// Library memory that MPI operations run on instead of the caller's buffers: fp16/bf16
// averages widened to fp32, and every user buffer while SPCCL_TIMEOUT_MS is set. It grows to
// the largest operation and is reused; after a timeout it is abandoned to MPI, never freed,
// because the abandoned operation may still write into it when a late peer arrives.
class Scratch {
 public:
  ~Scratch() { free(ptr_); }
  char* reserve(size_t bytes) {
    if (bytes <= bytes_) return ptr_;
    free(ptr_);
    ptr_ = static_cast<char*>(malloc(bytes));
    bytes_ = ptr_ ? bytes : 0;
    if (!ptr_) WARN("MPI transport : failed to allocate %zu bytes of staging memory", bytes);
    return ptr_;
  }
  void abandon() {
    ptr_ = nullptr;
    bytes_ = 0;
  }

 private:
  char* ptr_ = nullptr;
  size_t bytes_ = 0;
};

bool isHalfType(spcclDataType_t datatype) { return datatype == spcclFloat16 || datatype == spcclBfloat16; }

class MpiTransport final : public Transport {
 public:
  MpiTransport(MPI_Comm comm, long long timeoutMs) : comm_(comm), timeoutMs_(timeoutMs) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &nranks_);
    MPI_Op_create(&sumHalfOp<half_t>, 1, &sumHalf_);
    MPI_Op_create(&sumHalfOp<bfloat16_t>, 1, &sumBf16_);
  }
  ~MpiTransport() override {
    // An operation that timed out or failed may still be in flight: MPI could touch the comm
    // and the ops when a late peer arrives, so they are left to MPI_Finalize. After
    // MPI_Finalize they are gone with MPI, and freeing them would end the job.
    if (abandoned_ || unusable()) return;
    MPI_Op_free(&sumHalf_);
    MPI_Op_free(&sumBf16_);
    MPI_Comm_free(&comm_);
  }
  const char* name() const override { return "MPI"; }
  // Any MPI call after MPI_Finalize ends the job: refused before it is made.
  const char* unusable() const override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    return finalized ? "MPI has been finalized (destroy spccl comms before MPI_Finalize)" : nullptr;
  }
  bool deviceBuffers() const override { return false; }

  spcclResult_t allReduce(const void* sendbuff, void* recvbuff, size_t count, spcclDataType_t datatype,
                          spcclRedOp_t op, spcclStream_t) override {
    if (isHalfType(datatype) && op == spcclAvg) return averageHalf(sendbuff, recvbuff, 1, count, datatype);
    const size_t bytes = count * dataTypeSize(datatype);
    if (!staged()) {
      SPCCLCHECK(sumChunks(sendbuff, recvbuff, count, datatype));
    } else {
      char* buf = scratch_.reserve(bytes);
      if (!buf) return spcclSystemError;
      memcpy(buf, sendbuff, bytes);
      SPCCLCHECK(sumChunks(buf, buf, count, datatype));
      memcpy(recvbuff, buf, bytes);
    }
    if (op == spcclAvg) divideByRanks(recvbuff, count, datatype);
    return spcclSuccess;
  }

  spcclResult_t allReduceStart(const void* sendbuff, void* recvbuff, size_t count, spcclDataType_t datatype,
                               spcclStream_t stream, PendingOp* op) override {
    op->handle = 0;
    // Staged buffers would need a copy back at wait(): a staged call completes here instead.
    if (count > kMaxChunk || staged()) return allReduce(sendbuff, recvbuff, count, datatype, spcclSum, stream);
    if (ringBeatsLibnbc(count * dataTypeSize(datatype), sendbuff == recvbuff)) {  // moved on by progress()
      SPCCLCHECK(ringBegin(sendbuff, recvbuff, count, datatype));
      SPCCLCHECK(ringPost(/*onePiece=*/true));
      op->handle = kRingHandle;
      return spcclSuccess;
    }
    const void* src = sendbuff == recvbuff ? MPI_IN_PLACE : sendbuff;
    MPI_Request req;
    MPICHECK(MPI_Iallreduce(src, recvbuff, (int)count, mpiType(datatype), sumOp(datatype), comm_, &req));
    static_assert(sizeof(MPI_Request) <= sizeof(op->handle), "an MPI_Request must fit a PendingOp");
    memcpy(&op->handle, &req, sizeof(req));
    return spcclSuccess;
  }

  // Open MPI moves a non-blocking collective forward only inside MPI calls.
  spcclResult_t progress(PendingOp* op) override {
    if (!op->handle) return spcclSuccess;
    if (op->handle == kRingHandle) return ringProgress(op, /*block=*/false);
    MPI_Request req;
    memcpy(&req, &op->handle, sizeof(req));
    int done = 0;
    WorldErrorsReturn errorsReturn;
    const int err = MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    memcpy(&op->handle, &req, sizeof(req));  // MPI_REQUEST_NULL once done
    return err == MPI_SUCCESS ? spcclSuccess : failed("allreduce", err);
  }

  spcclResult_t wait(PendingOp* op) override {
    if (!op->handle) return spcclSuccess;
    if (op->handle == kRingHandle) return ringProgress(op, /*block=*/true);
    MPI_Request req;
    memcpy(&req, &op->handle, sizeof(req));
    op->handle = 0;
    if (req == MPI_REQUEST_NULL) return spcclSuccess;
    return complete(&req, 1, "allreduce");
  }

  // allReduceStart's ring: each finished step adds what came in and posts the next; block:
  // until the last step is done (wait), else as far as the messages already allow (progress).
  spcclResult_t ringProgress(PendingOp* op, bool block) {
    while (ring_.step < 2 * (nranks_ - 1)) {
      if (block) {
        SPCCLCHECK(complete(ring_.reqs, 2, "allreduce"));
      } else {
        int done = 0;
        WorldErrorsReturn errorsReturn;
        const int err = MPI_Testall(2, ring_.reqs, &done, MPI_STATUSES_IGNORE);
        if (err != MPI_SUCCESS) return failed("allreduce", err);
        if (!done) return spcclSuccess;
      }
      ringFinishStep();
      if (++ring_.step < 2 * (nranks_ - 1)) SPCCLCHECK(ringPost(/*onePiece=*/true));
    }
    op->handle = 0;
    return spcclSuccess;
  }

  spcclResult_t reduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount, spcclDataType_t datatype,
                              spcclRedOp_t op, spcclStream_t) override {
    SPCCL_REQUIRE(recvcount <= INT_MAX, spcclInvalidArgument,
                  "spcclReduceScatter : recvcount %zu exceeds the MPI transport's limit %d", recvcount, INT_MAX);
    if (isHalfType(datatype) && op == spcclAvg) return averageHalf(sendbuff, recvbuff, nranks_, recvcount, datatype);
    const size_t bytes = recvcount * dataTypeSize(datatype);
    if (!staged() && sendbuff != recvbuff && ringReduceScatterPays(nranks_ * bytes)) {
      SPCCLCHECK(ringReduceScatter(sendbuff, recvbuff, recvcount, datatype));
    } else if (!staged()) {
      SPCCLCHECK(reduceScatterSum(sendbuff == recvbuff ? MPI_IN_PLACE : sendbuff, recvbuff, recvcount,
                                  mpiType(datatype), sumOp(datatype)));
    } else {
      char* buf = scratch_.reserve(nranks_ * bytes);
      if (!buf) return spcclSystemError;
      memcpy(buf, sendbuff, nranks_ * bytes);
      SPCCLCHECK(reduceScatterSum(MPI_IN_PLACE, buf, recvcount, mpiType(datatype), sumOp(datatype)));
      memcpy(recvbuff, buf, bytes);
    }
    if (op == spcclAvg) divideByRanks(recvbuff, recvcount, datatype);
    return spcclSuccess;
  }

  spcclResult_t allGather(const void* sendbuff, void* recvbuff, size_t bytes, spcclStream_t) override {
    char* out = static_cast<char*>(recvbuff);
    if (staged()) {
      out = scratch_.reserve(nranks_ * bytes);
      if (!out) return spcclSystemError;
      memcpy(out + rank_ * bytes, sendbuff, bytes);
      sendbuff = out + rank_ * bytes;
    }
    MPI_Datatype unit;
    SPCCLCHECK(byteUnit(bytes, &unit));
    const void* src = sendbuff == out + rank_ * bytes ? MPI_IN_PLACE : sendbuff;
    MPI_Request req;
    int err = MPI_Iallgather(src, 1, unit, out, 1, unit, comm_, &req);
    MPI_Type_free(&unit);  // MPI keeps the type alive until the operation completes
    MPICHECK(err);
    SPCCLCHECK(complete(&req, 1, "allgather"));
    if (out != recvbuff) memcpy(recvbuff, out, nranks_ * bytes);
    return spcclSuccess;
  }

  spcclResult_t broadcast(const void* sendbuff, void* recvbuff, size_t bytes, int root, spcclStream_t) override {
    char* buf = staged() ? scratch_.reserve(bytes) : static_cast<char*>(recvbuff);
    if (!buf) return spcclSystemError;
    if (rank_ == root && sendbuff != buf) memcpy(buf, sendbuff, bytes);
    for (size_t off = 0; off < bytes; off += kMaxChunk) {
      MPI_Request req;
      MPICHECK(MPI_Ibcast(buf + off, (int)std::min(kMaxChunk, bytes - off), MPI_BYTE, root, comm_, &req));
      SPCCLCHECK(complete(&req, 1, "broadcast"));
    }
    if (buf != recvbuff) memcpy(recvbuff, buf, bytes);
    return spcclSuccess;
  }

  spcclResult_t sendRecv(const void* sendbuff, size_t sendbytes, int sendPeer, void* recvbuff, size_t recvbytes,
                         int recvPeer, spcclStream_t) override {
    SPCCL_REQUIRE(sendbytes <= INT_MAX && recvbytes <= INT_MAX, spcclInvalidArgument,
                  "sendRecv : %zu / %zu bytes exceed the MPI transport's limit %d", sendbytes, recvbytes, INT_MAX);
    char* in = static_cast<char*>(recvbuff);
    if (staged()) {
      char* buf = scratch_.reserve(sendbytes + recvbytes);
      if (!buf) return spcclSystemError;
      if (sendbytes) memcpy(buf, sendbuff, sendbytes);
      sendbuff = buf;
      in = buf + sendbytes;
    }
    MPI_Request reqs[2];
    MPICHECK(MPI_Irecv(in, (int)recvbytes, MPI_BYTE, recvPeer, kTag, comm_, &reqs[0]));
    MPICHECK(MPI_Isend(sendbuff, (int)sendbytes, MPI_BYTE, sendPeer, kTag, comm_, &reqs[1]));
    SPCCLCHECK(complete(reqs, 2, "send/receive"));
    if (in != recvbuff && recvbytes) memcpy(recvbuff, in, recvbytes);
    return spcclSuccess;
  }

  spcclResult_t barrier() override {
    MPI_Request req;
    MPICHECK(MPI_Ibarrier(comm_, &req));
    return complete(&req, 1, "barrier");
  }

 private:
  static constexpr int kTag = 0x5bcc;
  static constexpr int kRingTag = 0x5bcd;
  // PendingOp::handle of allReduceStart's ring (an MPI_Request is never all ones).
  static constexpr uintptr_t kRingHandle = ~uintptr_t(0);
  // Allreduces of at least this many bytes run as spccl's ring (ringSum), smaller ones as MPI's
  // (fewer rounds: a ring pays the link latency 2 (P-1) times).
  static constexpr size_t kRingMinBytes = size_t(256) << 10;

  static MPI_Datatype mpiType(spcclDataType_t datatype) {
    switch (datatype) {
      case spcclFloat32: return MPI_FLOAT;
      case spcclFloat64: return MPI_DOUBLE;
      default: return MPI_UINT16_T;  // fp16, bf16: raw words, added by our ops
    }
  }
  MPI_Op sumOp(spcclDataType_t datatype) const {
    if (datatype == spcclFloat16) return sumHalf_;
    if (datatype == spcclBfloat16) return sumBf16_;
    return MPI_SUM;
  }
  // A contiguous type of `bytes` bytes, so one element covers any message size.
  static spcclResult_t byteUnit(size_t bytes, MPI_Datatype* unit) {
    if (bytes <= INT_MAX) {
      MPICHECK(MPI_Type_contiguous((int)bytes, MPI_BYTE, unit));
    } else {
      MPI_Datatype chunk;
      MPICHECK(MPI_Type_contiguous((int)kMaxChunk, MPI_BYTE, &chunk));
      MPI_Aint count = bytes / kMaxChunk, rest = bytes % kMaxChunk;
      int lens[2] = {(int)count, (int)rest};
      MPI_Aint disps[2] = {0, count * (MPI_Aint)kMaxChunk};
      MPI_Datatype types[2] = {chunk, MPI_BYTE};
      int err = MPI_Type_create_struct(2, lens, disps, types, unit);
      MPI_Type_free(&chunk);
      MPICHECK(err);
    }
    MPICHECK(MPI_Type_commit(unit));
    return spcclSuccess;
  }
  void divideByRanks(void* buff, size_t count, spcclDataType_t datatype) const {
    withStorage(datatype, [&](auto tag) {
      using T = decltype(tag);
      using AccT = typename AccumOf<T>::type;
      T* p = static_cast<T*>(buff);
      const AccT inv = AccT(1) / AccT(nranks_);
      for (size_t i = 0; i < count; ++i) p[i] = scaleRounded(p[i], inv);
    });
  }

  // With SPCCL_TIMEOUT_MS, operations run on scratch_, so one that is abandoned can never
  // write into a buffer the caller has freed or reused.
  bool staged() const { return timeoutMs_ > 0; }

  // Whether an allreduce of `bytes` runs as spccl's ring (ringSum): where libnbc would run its
  // binomial tree (fewer than 4 ranks, or in place) on a message large enough for bandwidth to
  // matter. With 4 or more ranks out of place libnbc runs Rabenseifner's reduce-scatter and
  // allgather, as few bytes as a ring in fewer rounds (measured on shared memory and UCX, 4
  // ranks, 256 KiB to 16 MiB: the ring 1.0-1.8x slower there).
  bool ringBeatsLibnbc(size_t bytes, bool inPlace) const {
    return nranks_ > 1 && (nranks_ < 4 || inPlace) && bytes >= kRingMinBytes;
  }

  // Whether a reduce-scatter of `bytes` in all runs as spccl's ring (ringReduceScatter): libnbc's
  // reduces the whole message onto one rank at every size that matters.
  bool ringReduceScatterPays(size_t bytes) const { return nranks_ > 1 && bytes >= kRingMinBytes; }

  // recvbuff = sum over ranks of sendbuff (in place when they are equal), in MPI-sized pieces;
  // large messages where libnbc would pick its binomial tree by spccl's own ring (ringSum).
  spcclResult_t sumChunks(const void* sendbuff, void* recvbuff, size_t count, spcclDataType_t datatype) {
    const size_t elem = dataTypeSize(datatype);
    if (ringBeatsLibnbc(count * elem, sendbuff == recvbuff)) return ringSum(sendbuff, recvbuff, count, datatype);
    for (size_t off = 0; off < count; off += kMaxChunk) {
      const int n = (int)std::min(kMaxChunk, count - off);
      const void* src = sendbuff == recvbuff ? MPI_IN_PLACE : static_cast<const char*>(sendbuff) + off * elem;
      MPI_Request req;
      MPICHECK(MPI_Iallreduce(src, static_cast<char*>(recvbuff) + off * elem, n, mpiType(datatype), sumOp(datatype),
                              comm_, &req));
      SPCCLCHECK(complete(&req, 1, "allreduce"));
    }
    return spcclSuccess;
  }

  // The sum allreduce of a large message as a ring: a reduce-scatter of P chunks, then their
  // allgather, 2 (P-1)/P of the message sent per rank and link, spccl adding. Open MPI 4.1's
  // non-blocking allreduce (libnbc, which every call here uses so SPCCL_TIMEOUT_MS can bound it)
  // runs a binomial tree for fewer than 4 ranks or in place (random block's packed blocks):
  // the whole message goes up the tree and back down, twice a ring's bytes on a link with 2
  // ranks (measured on scripts/simhosts, 2 hosts at 1 Gbit/s, 32 MiB: 560 ms, this ring 286).
  // Every chunk is summed whole on one rank and copied to the others, so every rank holds the
  // same bits. One ring is in flight at a time (allReduceStart's, or a blocking one).
  struct Ring {
    char* buf = nullptr;       // the message, summed in place
    char* incoming = nullptr;  // a chunk from the previous rank (reduce-scatter steps)
    size_t count = 0, per = 0, elem = 0;
    spcclDataType_t datatype = spcclFloat32;
    int step = 0;  // of 2 (P-1): the first P-1 reduce-scatter, the rest allgather
    MPI_Request reqs[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  };

  spcclResult_t ringSum(const void* sendbuff, void* recvbuff, size_t count, spcclDataType_t datatype) {
    SPCCLCHECK(ringBegin(sendbuff, recvbuff, count, datatype));
    for (; ring_.step < 2 * (nranks_ - 1); ++ring_.step) {
      SPCCLCHECK(ringPost(/*onePiece=*/false));
      ringFinishStep();
    }
    return spcclSuccess;
  }

  spcclResult_t ringBegin(const void* sendbuff, void* recvbuff, size_t count, spcclDataType_t datatype) {
    ring_ = Ring();
    ring_.buf = static_cast<char*>(recvbuff);
    ring_.count = count;
    ring_.per = (count + nranks_ - 1) / nranks_;
    ring_.elem = dataTypeSize(datatype);
    ring_.datatype = datatype;
    if (sendbuff != recvbuff) memcpy(ring_.buf, sendbuff, count * ring_.elem);
    ring_.incoming = ringScratch_.reserve(ring_.per * ring_.elem);
    return ring_.incoming ? spcclSuccess : spcclSystemError;
  }

  // The chunks of ring_.step. Reduce-scatter step s sends this rank's partial sum of chunk
  // r-s-1 on and receives the previous rank's partial sum of chunk r-s-2 (added to its own
  // after): after P-1 steps chunk r is whole here. Allgather step s passes whole chunk r-s on
  // and receives whole chunk r-s-1 in its place.
  struct RingChunks {
    char* send;
    size_t sendCount;
    char* recv;
    size_t recvCount;
    char* sumInto;  // reduce-scatter: where recv is added; null in the allgather
  };
  RingChunks ringChunks() const {
    const int P = nranks_, s = ring_.step % (P - 1), r = rank_;
    const bool scatter = ring_.step < P - 1;
    auto chunk = [P](int j) { return ((j % P) + P) % P; };
    auto first = [&](int j) { return std::min((size_t)chunk(j) * ring_.per, ring_.count); };
    auto at = [&](int j) { return ring_.buf + first(j) * ring_.elem; };
    auto length = [&](int j) { return std::min(ring_.per, ring_.count - first(j)); };
    const int out = scatter ? r - s - 1 : r - s, in = out - 1;
    return {at(out), length(out), scatter ? ring_.incoming : at(in), length(in), scatter ? at(in) : nullptr};
  }

  // Posts ring_.step's send and receive (the send first: with the receive first, a ring of 2
  // ranks over TCP ran at half the link rate on simhosts, each exchange 280 ms instead of 140)
  // and, unless onePiece, completes them, in MPI-sized pieces both sides cut alike. onePiece
  // (allReduceStart) leaves them in ring_.reqs; its chunks fit one message.
  spcclResult_t ringPost(bool onePiece) {
    const RingChunks c = ringChunks();
    return neighbourExchange(c.send, c.sendCount, c.recv, c.recvCount, ring_.datatype, ring_.reqs, onePiece,
                             "allreduce");
  }

  // `sendCount` elements to the next rank and `recvCount` from the previous one, the send
  // posted first, in MPI-sized pieces both sides cut alike, each completed; onePiece: the
  // first piece only, left in flight in reqs (the caller knows it is the only one).
  spcclResult_t neighbourExchange(const char* send, size_t sendCount, char* recv, size_t recvCount,
                                  spcclDataType_t datatype, MPI_Request* reqs, bool onePiece, const char* what) {
    const int next = (rank_ + 1) % nranks_, prev = (rank_ + nranks_ - 1) % nranks_;
    const size_t elem = dataTypeSize(datatype);
    const MPI_Datatype type = mpiType(datatype);
    for (size_t at = 0; at < std::max(sendCount, recvCount); at += kMaxChunk) {
      const int out = (int)(sendCount > at ? std::min(kMaxChunk, sendCount - at) : 0);
      const int in = (int)(recvCount > at ? std::min(kMaxChunk, recvCount - at) : 0);
      MPICHECK(MPI_Isend(send + at * elem, out, type, next, kRingTag, comm_, &reqs[0]));
      MPICHECK(MPI_Irecv(recv + at * elem, in, type, prev, kRingTag, comm_, &reqs[1]));
      if (onePiece) return spcclSuccess;
      SPCCLCHECK(complete(reqs, 2, what));
    }
    return spcclSuccess;
  }

  // After ring_.step's messages arrived: a reduce-scatter step adds what came in.
  void ringFinishStep() {
    const RingChunks c = ringChunks();
    if (c.sumInto) sumInto(c.sumInto, c.sumInto, c.recv, c.recvCount, ring_.datatype);
  }

  // The sum reduce-scatter as a ring: block r of the result on rank r, (P-1)/P of the message
  // sent per rank. libnbc's non-blocking reduce-scatter reduces the whole message onto one rank
  // and scatters it back (shared memory, 64 MiB: 54 ms against this ring's 14 with 2 ranks,
  // 105 against 37 with 4).
  // Step s sends this rank's partial sum of block r-s-1 on (its own block at step 0) and adds
  // its own block r-s-2 to the partial sum that arrives; the last step's sum is block r, whole.
  // Partial sums travel in two scratch blocks. `out` may be src's first block (averageHalf):
  // every block of src is read before, or element by element as, the last step writes it.
  spcclResult_t ringReduceScatter(const void* src, void* out, size_t count, spcclDataType_t datatype) {
    const int P = nranks_, r = rank_;
    const size_t bytes = count * dataTypeSize(datatype);
    char* scratch = ringScratch_.reserve(2 * bytes);
    if (!scratch) return spcclSystemError;
    char *partial = scratch, *arriving = scratch + bytes;
    auto own = [&](int j) { return static_cast<const char*>(src) + (size_t)(((j % P) + P) % P) * bytes; };
    MPI_Request reqs[2];
    for (int s = 0; s < P - 1; ++s) {
      SPCCLCHECK(neighbourExchange(s == 0 ? own(r - 1) : partial, count, arriving, count, datatype, reqs, false,
                                   "reduce-scatter"));
      char* sum = s == P - 2 ? static_cast<char*>(out) : partial;
      sumInto(sum, own(r - s - 2), arriving, count, datatype);
    }
    return spcclSuccess;
  }

  // dst[i] = a[i] + b[i], rounded to the type once (the MPI ops' rule for fp16/bf16); dst may
  // be a or b.
  static void sumInto(char* dst, const char* a, const char* b, size_t count, spcclDataType_t datatype) {
    withStorage(datatype, [&](auto tag) {
      using T = decltype(tag);
      T* d = reinterpret_cast<T*>(dst);
      const T* x = reinterpret_cast<const T*>(a);
      const T* y = reinterpret_cast<const T*>(b);
      for (size_t i = 0; i < count; ++i) d[i] = addRounded(x[i], y[i]);
    });
  }

  spcclResult_t reduceScatterSum(const void* src, void* recvbuff, size_t recvcount, MPI_Datatype type, MPI_Op op) {
    MPI_Request req;
    MPICHECK(MPI_Ireduce_scatter_block(src, recvbuff, (int)recvcount, type, op, comm_, &req));
    return complete(&req, 1, "reduce-scatter");
  }

  // The average of fp16/bf16 data: summed in fp32 and divided before the one rounding, so an
  // average that fits the type never overflows on the way (two ranks averaging 40000 in fp16
  // give 40000, not inf). nblocks = 1: allreduce of count elements; nblocks = P: reduce-scatter
  // of P blocks of count, this rank keeping block `rank`. Runs on scratch_, never on the
  // caller's buffers.
  spcclResult_t averageHalf(const void* sendbuff, void* recvbuff, int nblocks, size_t count,
                            spcclDataType_t datatype) {
    const size_t total = (size_t)nblocks * count;
    float* wide = reinterpret_cast<float*>(scratch_.reserve(total * sizeof(float)));
    if (!wide) return spcclSystemError;
    const float inv = 1.0f / float(nranks_);
    auto run = [&](auto tag) -> spcclResult_t {
      using T = decltype(tag);
      const T* in = static_cast<const T*>(sendbuff);
      for (size_t i = 0; i < total; ++i) wide[i] = toAcc(in[i]);
      if (nblocks == 1) SPCCLCHECK(sumChunks(wide, wide, count, spcclFloat32));
      else if (!staged() && ringReduceScatterPays(total * sizeof(float)))
        SPCCLCHECK(ringReduceScatter(wide, wide, count, spcclFloat32));
      else SPCCLCHECK(reduceScatterSum(MPI_IN_PLACE, wide, count, MPI_FLOAT, MPI_SUM));
      T* out = static_cast<T*>(recvbuff);
      for (size_t i = 0; i < count; ++i) out[i] = fromAcc<T>(wide[i] * inv);
      return spcclSuccess;
    };
    return datatype == spcclFloat16 ? run(half_t()) : run(bfloat16_t());
  }

  // A failed operation may still be in flight: its memory and the comm are given up to MPI.
  spcclResult_t failed(const char* what, int err) {
    abandoned_ = true;
    scratch_.abandon();
    ringScratch_.abandon();
    WARN("MPI %s failed: %s (a peer called with other arguments, or died); the comm is broken: destroy it with "
         "spcclCommAbort",
         what, mpiErrorText(err).c_str());
    return spcclSystemError;
  }

  // Every operation is non-blocking and completed here, so SPCCL_TIMEOUT_MS can bound it:
  // a peer that stops calling, or dies, turns into spcclTimeout instead of a hang.
  spcclResult_t complete(MPI_Request* reqs, int n, const char* what) {
    WorldErrorsReturn errorsReturn;
    if (timeoutMs_ <= 0) {
      const int err = MPI_Waitall(n, reqs, MPI_STATUSES_IGNORE);
      return err == MPI_SUCCESS ? spcclSuccess : failed(what, err);
    }
    const double deadline = MPI_Wtime() + timeoutMs_ * 1e-3;
    int done = 0;
    while (true) {
      const int err = MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE);
      if (err != MPI_SUCCESS) return failed(what, err);
      if (done) return spcclSuccess;
      if (MPI_Wtime() > deadline) break;
    }
    abandoned_ = true;
    scratch_.abandon();
    ringScratch_.abandon();
    WARN("MPI %s did not complete within SPCCL_TIMEOUT_MS=%lld ms (a peer stopped calling or died); the comm is "
         "broken: destroy it with spcclCommAbort",
         what, timeoutMs_);
    return spcclTimeout;
  }

  MPI_Comm comm_;
  long long timeoutMs_;
  bool abandoned_ = false;
  Scratch scratch_;
  Scratch ringScratch_;  // the ring's incoming chunk (scratch_ may hold the message itself)
  Ring ring_;
  int rank_ = 0, nranks_ = 1;
  MPI_Op sumHalf_ = MPI_OP_NULL, sumBf16_ = MPI_OP_NULL;
};

}  // namespace

std::unique_ptr<Transport> makeMpiTransport(MPI_Comm comm, long long timeoutMs) {
  return std::make_unique<MpiTransport>(comm, timeoutMs);
}

namespace {

spcclResult_t commInitMpi(spcclComm_t* comm, MPI_Comm mpiComm, bool onDevice, const char* api) {
  SPCCL_REQUIRE(comm != nullptr, spcclInvalidArgument, "%s : comm argument is NULL", api);
  *comm = nullptr;
  int device = -1;
  if (onDevice) SPCCLCHECK(device::currentDevice(&device));  // fails clearly without CUDA
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  SPCCL_REQUIRE(initialized && !finalized, spcclInvalidUsage, "%s : MPI is not initialized (call MPI_Init first)",
                api);
  SPCCL_REQUIRE(mpiComm != MPI_COMM_NULL, spcclInvalidArgument, "%s : mpiComm is MPI_COMM_NULL", api);
  int inter = 0;
  {
    const WorldErrorsReturn world;
    const ErrorsReturn self(MPI_COMM_SELF);
    const int err = MPI_Comm_test_inter(mpiComm, &inter);
    SPCCL_REQUIRE(err == MPI_SUCCESS, spcclInvalidArgument, "%s : mpiComm is not a valid communicator (%s)", api,
                  mpiErrorText(err).c_str());
  }
  // Collectives on an intercommunicator combine the two groups: not what an allreduce over
  // data-parallel ranks means, and MPI_Comm_size would report only the local group.
  SPCCL_REQUIRE(!inter, spcclInvalidArgument,
                "%s : mpiComm is an intercommunicator; pass an intracommunicator (MPI_Intercomm_merge)", api);
  CommEnv env;
  SPCCLCHECK(commEnvResolve(&env, api));
  MPI_Comm dup;
  MPICHECK(MPI_Comm_dup(mpiComm, &dup));
  // Errors come back as codes (and become spcclSystemError), never as an abort.
  MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
  auto c = std::make_unique<spcclComm>();
  MPI_Comm_rank(dup, &c->rank);
  MPI_Comm_size(dup, &c->nranks);
  c->transport = makeMpiTransport(dup, env.timeoutMs);
  c->checkCalls = env.checkCalls;
  c->onDevice = onDevice;
  debugSetRank(c->rank);
  SPCCLCHECK(topologyFromMpi(dup, env.timeoutMs, api, &c->topology));
  INFO(kSubsysInit, "%s : rank %d of %d, transport MPI, %s buffers", api, c->rank, c->nranks,
       onDevice ? "device (staged through pinned host memory)" : "host");
  *comm = c.release();
  return spcclSuccess;
}

}  // namespace
}  // namespace spccl

extern "C" spcclResult_t spcclCommInitMPI(spcclComm_t* comm, MPI_Comm mpiComm) {
  return spccl::commInitMpi(comm, mpiComm, false, "spcclCommInitMPI");
}

extern "C" spcclResult_t spcclCommInitMPIDevice(spcclComm_t* comm, MPI_Comm mpiComm) {
  return spccl::commInitMpi(comm, mpiComm, true, "spcclCommInitMPIDevice");
}

extern "C" spcclResult_t spcclCommInitMPIFortran(spcclComm_t* comm, MPI_Fint mpiComm) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  // MPI_Comm_f2c needs a live MPI; spcclCommInitMPI words the error.
  return spcclCommInitMPI(comm, initialized && !finalized ? MPI_Comm_f2c(mpiComm) : MPI_COMM_NULL);
}
