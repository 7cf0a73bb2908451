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
#include "dtype_core.h"
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

class MpiTransport final : public Transport {
 public:
  MpiTransport(MPI_Comm comm, long long timeoutMs) : comm_(comm), timeoutMs_(timeoutMs) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &nranks_);
    MPI_Op_create(&sumHalfOp<half_t>, 1, &sumHalf_);
    MPI_Op_create(&sumHalfOp<bfloat16_t>, 1, &sumBf16_);
  }
  ~MpiTransport() override {
    // An operation that timed out may still be in flight: MPI could touch the comm and the
    // ops when a late peer arrives, so they are left to MPI_Finalize.
    if (abandoned_) return;
    MPI_Op_free(&sumHalf_);
    MPI_Op_free(&sumBf16_);
    MPI_Comm_free(&comm_);
  }
  const char* name() const override { return "MPI"; }
  bool deviceBuffers() const override { return false; }

  spcclResult_t allReduce(const void* sendbuff, void* recvbuff, size_t count, spcclDataType_t datatype,
                          spcclRedOp_t op, spcclStream_t) override {
    const size_t elem = dataTypeSize(datatype);
    for (size_t off = 0; off < count; off += kMaxChunk) {
      const int n = (int)std::min(kMaxChunk, count - off);
      const void* src = sendbuff == recvbuff ? MPI_IN_PLACE : static_cast<const char*>(sendbuff) + off * elem;
      MPI_Request req;
      MPICHECK(MPI_Iallreduce(src, static_cast<char*>(recvbuff) + off * elem, n, mpiType(datatype), sumOp(datatype),
                              comm_, &req));
      SPCCLCHECK(complete(&req, 1, "allreduce"));
    }
    if (op == spcclAvg) divideByRanks(recvbuff, count, datatype);
    return spcclSuccess;
  }

  spcclResult_t allReduceStart(const void* sendbuff, void* recvbuff, size_t count, spcclDataType_t datatype,
                               spcclStream_t stream, PendingOp* op) override {
    op->handle = 0;
    if (count > kMaxChunk) return allReduce(sendbuff, recvbuff, count, datatype, spcclSum, stream);
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
    MPI_Request req;
    memcpy(&req, &op->handle, sizeof(req));
    int done = 0;
    MPICHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
    memcpy(&op->handle, &req, sizeof(req));  // MPI_REQUEST_NULL once done
    return spcclSuccess;
  }

  spcclResult_t wait(PendingOp* op) override {
    if (!op->handle) return spcclSuccess;
    MPI_Request req;
    memcpy(&req, &op->handle, sizeof(req));
    op->handle = 0;
    if (req == MPI_REQUEST_NULL) return spcclSuccess;
    return complete(&req, 1, "allreduce");
  }

  spcclResult_t reduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount, spcclDataType_t datatype,
                              spcclRedOp_t op, spcclStream_t) override {
    SPCCL_REQUIRE(recvcount <= INT_MAX, spcclInvalidArgument,
                  "spcclReduceScatter : recvcount %zu exceeds the MPI transport's limit %d", recvcount, INT_MAX);
    const void* src = sendbuff == recvbuff ? MPI_IN_PLACE : sendbuff;
    MPI_Request req;
    MPICHECK(MPI_Ireduce_scatter_block(src, recvbuff, (int)recvcount, mpiType(datatype), sumOp(datatype), comm_,
                                       &req));
    SPCCLCHECK(complete(&req, 1, "reduce-scatter"));
    if (op == spcclAvg) divideByRanks(recvbuff, recvcount, datatype);
    return spcclSuccess;
  }

  spcclResult_t allGather(const void* sendbuff, void* recvbuff, size_t bytes, spcclStream_t) override {
    MPI_Datatype unit;
    SPCCLCHECK(byteUnit(bytes, &unit));
    const void* src = sendbuff == static_cast<char*>(recvbuff) + rank_ * bytes ? MPI_IN_PLACE : sendbuff;
    MPI_Request req;
    int err = MPI_Iallgather(src, 1, unit, recvbuff, 1, unit, comm_, &req);
    MPI_Type_free(&unit);  // MPI keeps the type alive until the operation completes
    MPICHECK(err);
    return complete(&req, 1, "allgather");
  }

  spcclResult_t broadcast(const void* sendbuff, void* recvbuff, size_t bytes, int root, spcclStream_t) override {
    if (rank_ == root && sendbuff != recvbuff) memcpy(recvbuff, sendbuff, bytes);
    for (size_t off = 0; off < bytes; off += kMaxChunk) {
      MPI_Request req;
      MPICHECK(MPI_Ibcast(static_cast<char*>(recvbuff) + off, (int)std::min(kMaxChunk, bytes - off), MPI_BYTE, root,
                          comm_, &req));
      SPCCLCHECK(complete(&req, 1, "broadcast"));
    }
    return spcclSuccess;
  }

  spcclResult_t sendRecv(const void* sendbuff, size_t sendbytes, int sendPeer, void* recvbuff, size_t recvbytes,
                         int recvPeer, spcclStream_t) override {
    SPCCL_REQUIRE(sendbytes <= INT_MAX && recvbytes <= INT_MAX, spcclInvalidArgument,
                  "sendRecv : %zu / %zu bytes exceed the MPI transport's limit %d", sendbytes, recvbytes, INT_MAX);
    MPI_Request reqs[2];
    MPICHECK(MPI_Irecv(recvbuff, (int)recvbytes, MPI_BYTE, recvPeer, kTag, comm_, &reqs[0]));
    MPICHECK(MPI_Isend(sendbuff, (int)sendbytes, MPI_BYTE, sendPeer, kTag, comm_, &reqs[1]));
    return complete(reqs, 2, "send/receive");
  }

  spcclResult_t barrier() override {
    MPI_Request req;
    MPICHECK(MPI_Ibarrier(comm_, &req));
    return complete(&req, 1, "barrier");
  }

 private:
  static constexpr int kTag = 0x5bcc;

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
    const int nranks = nranks_;
    auto scale = [&](auto* p) {
      using T = std::remove_pointer_t<decltype(p)>;
      using AccT = typename AccumOf<T>::type;
      const AccT inv = AccT(1) / AccT(nranks);
      for (size_t i = 0; i < count; ++i) p[i] = scaleRounded(p[i], inv);
    };
    switch (datatype) {
      case spcclFloat32: scale(static_cast<float*>(buff)); break;
      case spcclFloat64: scale(static_cast<double*>(buff)); break;
      case spcclFloat16: scale(static_cast<half_t*>(buff)); break;
      default: scale(static_cast<bfloat16_t*>(buff)); break;
    }
  }

  // Every operation is non-blocking and completed here, so SPCCL_TIMEOUT_MS can bound it:
  // a peer that stops calling, or dies, turns into spcclTimeout instead of a hang.
  spcclResult_t complete(MPI_Request* reqs, int n, const char* what) {
    if (timeoutMs_ <= 0) {
      MPICHECK(MPI_Waitall(n, reqs, MPI_STATUSES_IGNORE));
      return spcclSuccess;
    }
    const double deadline = MPI_Wtime() + timeoutMs_ * 1e-3;
    int done = 0;
    while (true) {
      MPICHECK(MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE));
      if (done) return spcclSuccess;
      if (MPI_Wtime() > deadline) break;
    }
    abandoned_ = true;
    WARN("MPI %s did not complete within SPCCL_TIMEOUT_MS=%lld ms (a peer stopped calling or died); the comm is "
         "broken: destroy it with spcclCommAbort",
         what, timeoutMs_);
    return spcclTimeout;
  }

  MPI_Comm comm_;
  long long timeoutMs_;
  bool abandoned_ = false;
  int rank_ = 0, nranks_ = 1;
  MPI_Op sumHalf_ = MPI_OP_NULL, sumBf16_ = MPI_OP_NULL;
};

}  // namespace
}  // namespace spccl

namespace spccl {
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
  MPICHECK(MPI_Comm_test_inter(mpiComm, &inter));
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
  c->transport = std::make_unique<MpiTransport>(dup, env.timeoutMs);
  c->checkCalls = env.checkCalls;
  c->onDevice = onDevice;
  debugSetRank(c->rank);
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
