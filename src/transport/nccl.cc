// SPDX-License-Identifier: Apache-2.0
//
// The NCCL transport: device buffers, stream-ordered calls that never synchronise the host
// (except barrier, which is a host notion). spccl's datatype and op values are NCCL's, so
// they pass through unchanged. Bytes move as ncclUint8.

#include <cuda_runtime.h>
#include <nccl.h>
#include <sched.h>

#include <chrono>
#include <memory>

#include "argcheck.h"
#include "checks.h"
#include "comm.h"
#include "cuda_checks.h"
#include "spccl_nccl.h"

namespace spccl {
namespace {

static_assert((int)ncclFloat16 == (int)spcclFloat16 && (int)ncclFloat32 == (int)spcclFloat32 &&
                  (int)ncclFloat64 == (int)spcclFloat64 && (int)ncclBfloat16 == (int)spcclBfloat16,
              "spccl datatypes must be NCCL's");
static_assert((int)ncclSum == (int)spcclSum && (int)ncclAvg == (int)spcclAvg, "spccl ops must be NCCL's");
static_assert((int)ncclInvalidUsage == (int)spcclInvalidUsage && (int)ncclRemoteError == (int)spcclRemoteError &&
                  (int)ncclInProgress == (int)spcclInProgress,
              "spccl result codes must be NCCL's");

// NCCL's codes carry over (the values match); the text comes from NCCL. A call that answers
// ncclInProgress (a nonblocking communicator) is waited for first: see settle().
#define NCCLCHECK(call) \
  do { \
    ncclResult_t r_ = settle(call); \
    if (r_ != ncclSuccess) { \
      if (r_ == ncclInProgress) \
        WARN("NCCL call %s still in progress after SPCCL_TIMEOUT_MS=%lld ms", #call, timeoutMs_); \
      else \
        WARN("NCCL failure in %s: %s (%s)", #call, ncclGetErrorString(r_), ncclGetLastError(comm_)); \
      return r_ == ncclInProgress ? spcclTimeout : (spcclResult_t)r_; \
    } \
  } while (0)

class NcclTransport final : public Transport {
 public:
  NcclTransport(ncclComm_t comm, long long timeoutMs) : comm_(comm), timeoutMs_(timeoutMs) {}
  void takeOwnership() { owned_ = true; }  // ncclCommDestroy with the transport
  ~NcclTransport() override {
    if (barrierBuf_) cudaFree(barrierBuf_);
    if (exchangeBuf_) cudaFree(exchangeBuf_);
    if (barrierStream_) cudaStreamDestroy(barrierStream_);
    if (owned_ && !aborted_) ncclCommDestroy(comm_);
  }
  const char* name() const override { return "NCCL"; }
  bool deviceBuffers() const override { return true; }

  spcclResult_t init() {
    NCCLCHECK(ncclCommCount(comm_, &nranks_));
    NCCLCHECK(ncclCommUserRank(comm_, &rank_));
    // barrier() reduces one word on a stream of its own: allocated now, so no call allocates.
    CUDACHECK(cudaMalloc(&barrierBuf_, sizeof(float)));
    CUDACHECK(cudaStreamCreateWithFlags(&barrierStream_, cudaStreamNonBlocking));
    // allGatherHost's device copy: this rank's bytes, then every rank's.
    CUDACHECK(cudaMalloc(&exchangeBuf_, (size_t)(nranks_ + 1) * kExchangeBytes));
    return spcclSuccess;
  }
  int rank() const { return rank_; }
  int nranks() const { return nranks_; }

  spcclResult_t allReduce(const void* sendbuff, void* recvbuff, size_t count, spcclDataType_t datatype,
                          spcclRedOp_t op, spcclStream_t stream) override {
    NCCLCHECK(ncclAllReduce(sendbuff, recvbuff, count, (ncclDataType_t)datatype, (ncclRedOp_t)op, comm_,
                            cudaStream(stream)));
    return spcclSuccess;
  }
  spcclResult_t reduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount, spcclDataType_t datatype,
                              spcclRedOp_t op, spcclStream_t stream) override {
    NCCLCHECK(ncclReduceScatter(sendbuff, recvbuff, recvcount, (ncclDataType_t)datatype, (ncclRedOp_t)op, comm_,
                                cudaStream(stream)));
    return spcclSuccess;
  }
  spcclResult_t allGather(const void* sendbuff, void* recvbuff, size_t bytes, spcclStream_t stream) override {
    NCCLCHECK(ncclAllGather(sendbuff, recvbuff, bytes, ncclUint8, comm_, cudaStream(stream)));
    return spcclSuccess;
  }
  spcclResult_t broadcast(const void* sendbuff, void* recvbuff, size_t bytes, int root,
                          spcclStream_t stream) override {
    NCCLCHECK(ncclBroadcast(sendbuff, recvbuff, bytes, ncclUint8, root, comm_, cudaStream(stream)));
    return spcclSuccess;
  }
  spcclResult_t sendRecv(const void* sendbuff, size_t sendbytes, int sendPeer, void* recvbuff, size_t recvbytes,
                         int recvPeer, spcclStream_t stream) override {
    // One group, so a ring of simultaneous exchanges cannot deadlock.
    NCCLCHECK(ncclGroupStart());
    ncclResult_t sent = ncclSend(sendbuff, sendbytes, ncclUint8, sendPeer, comm_, cudaStream(stream));
    ncclResult_t received = ncclRecv(recvbuff, recvbytes, ncclUint8, recvPeer, comm_, cudaStream(stream));
    NCCLCHECK(ncclGroupEnd());
    NCCLCHECK(sent);
    NCCLCHECK(received);
    return spcclSuccess;
  }
  // Nested inside, sendRecv's own group joins this one.
  spcclResult_t groupStart() override {
    NCCLCHECK(ncclGroupStart());
    return spcclSuccess;
  }
  spcclResult_t groupEnd() override {
    NCCLCHECK(ncclGroupEnd());
    return spcclSuccess;
  }
  spcclResult_t barrier() override {
    NCCLCHECK(ncclAllReduce(barrierBuf_, barrierBuf_, 1, ncclFloat32, ncclSum, comm_, barrierStream_));
    CUDACHECK(cudaStreamSynchronize(barrierStream_));
    return spcclSuccess;
  }
  // Through the device copy, on the barrier's stream, waited for. Legal while the caller's
  // stream is being captured (the first collective of a state may be): the calling thread
  // switches to relaxed capture mode, so this exchange runs now, once, outside the graph,
  // and NCCL orders it with the captured work like any eager call (graph mixing).
  spcclResult_t allGatherHost(const void* sendbuff, void* recvbuff, size_t bytes) override {
    SPCCL_REQUIRE(bytes <= kExchangeBytes, spcclInternalError, "NCCL allGatherHost : %zu bytes exceed its %zu",
                  bytes, kExchangeBytes);
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    CUDACHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    const spcclResult_t res = exchange(sendbuff, recvbuff, bytes);
    CUDACHECK(cudaThreadExchangeStreamCaptureMode(&mode));  // the caller's mode again
    return res;
  }
  // ncclInProgress passes through as spcclInProgress: an operation is still being enqueued,
  // which is not an error and must not break the comm.
  spcclResult_t asyncError() override {
    if (aborted_) return spcclSuccess;
    ncclResult_t r = ncclSuccess;
    const ncclResult_t q = ncclCommGetAsyncError(comm_, &r);
    if (q != ncclSuccess) {
      WARN("NCCL failure in ncclCommGetAsyncError: %s", ncclGetErrorString(q));
      return (spcclResult_t)q;
    }
    return (spcclResult_t)r;
  }
  spcclResult_t abort() override {
    if (aborted_) return spcclSuccess;
    aborted_ = true;  // ncclCommAbort frees the communicator whatever it returns: no polling
    const ncclResult_t r = ncclCommAbort(comm_);
    if (r != ncclSuccess && r != ncclInProgress) {
      WARN("NCCL failure in ncclCommAbort: %s", ncclGetErrorString(r));
      return (spcclResult_t)r;
    }
    return spcclSuccess;
  }

 private:
  static constexpr size_t kExchangeBytes = 256;

  spcclResult_t exchange(const void* sendbuff, void* recvbuff, size_t bytes) {
    char* mine = static_cast<char*>(exchangeBuf_);
    char* all = mine + kExchangeBytes;
    CUDACHECK(cudaMemcpyAsync(mine, sendbuff, bytes, cudaMemcpyHostToDevice, barrierStream_));
    NCCLCHECK(ncclAllGather(mine, all, bytes, ncclUint8, comm_, barrierStream_));
    CUDACHECK(cudaMemcpyAsync(recvbuff, all, (size_t)nranks_ * bytes, cudaMemcpyDeviceToHost, barrierStream_));
    CUDACHECK(cudaStreamSynchronize(barrierStream_));
    return spcclSuccess;
  }

  // A nonblocking communicator (ncclConfig_t.blocking = 0; PyTorch can create them) answers
  // ncclInProgress while the call is not yet on the stream. NCCL then requires polling
  // ncclCommGetAsyncError until it leaves ncclInProgress before anything else is enqueued:
  // otherwise the commit and scatter kernels that follow could run before the collective.
  // The poll is bounded by SPCCL_TIMEOUT_MS (0: unbounded, as a blocking comm would wait).
  ncclResult_t settle(ncclResult_t r) const {
    const auto start = std::chrono::steady_clock::now();
    while (r == ncclInProgress) {
      const ncclResult_t q = ncclCommGetAsyncError(comm_, &r);
      if (q != ncclSuccess) return q;
      if (r != ncclInProgress) break;
      if (timeoutMs_ > 0 && std::chrono::steady_clock::now() - start > std::chrono::milliseconds(timeoutMs_))
        return ncclInProgress;
      sched_yield();
    }
    return r;
  }

  static cudaStream_t cudaStream(spcclStream_t stream) { return reinterpret_cast<cudaStream_t>(stream); }

  ncclComm_t comm_;
  long long timeoutMs_;
  bool owned_ = false;
  bool aborted_ = false;
  int rank_ = 0, nranks_ = 0;
  void* barrierBuf_ = nullptr;
  void* exchangeBuf_ = nullptr;
  cudaStream_t barrierStream_ = nullptr;
};

// The caller keeps an ncclComm_t it created until the spccl comm exists: only then does the
// transport take it over (owned), so a failure here never destroys it twice.
spcclResult_t commFromNccl(spcclComm_t* comm, ncclComm_t ncclComm, bool owned, const char* api) {
  CommEnv env;
  SPCCLCHECK(commEnvResolve(&env, api));
  auto transport = std::make_unique<NcclTransport>(ncclComm, env.timeoutMs);
  SPCCLCHECK(transport->init());
  if (owned) transport->takeOwnership();
  auto c = std::make_unique<spcclComm>();
  c->checkCalls = env.checkCalls;
  c->rank = transport->rank();
  c->nranks = transport->nranks();
  c->onDevice = true;
  c->transport = std::move(transport);
  debugSetRank(c->rank);
  INFO(kSubsysInit, "%s : rank %d of %d, transport NCCL %s", api, c->rank, c->nranks, owned ? "(owned)" : "(wrapped)");
  *comm = c.release();
  return spcclSuccess;
}

}  // namespace
}  // namespace spccl

using namespace spccl;

extern "C" spcclResult_t spcclCommInitNccl(spcclComm_t* comm, ncclComm_t ncclComm) {
  SPCCL_REQUIRE(comm != nullptr, spcclInvalidArgument, "spcclCommInitNccl : comm argument is NULL");
  *comm = nullptr;
  SPCCL_REQUIRE(ncclComm != nullptr, spcclInvalidArgument, "spcclCommInitNccl : ncclComm argument is NULL");
  return commFromNccl(comm, ncclComm, false, "spcclCommInitNccl");
}

extern "C" spcclResult_t spcclCommInitRank(spcclComm_t* comm, int nranks, ncclUniqueId commId, int rank) {
  SPCCL_REQUIRE(comm != nullptr, spcclInvalidArgument, "spcclCommInitRank : comm argument is NULL");
  *comm = nullptr;
  SPCCL_REQUIRE(nranks >= 1 && rank >= 0 && rank < nranks, spcclInvalidArgument,
                "spcclCommInitRank : rank %d is outside 0..%d (nranks %d)", rank, nranks - 1, nranks);
  ncclComm_t nc = nullptr;
  ncclResult_t r = ncclCommInitRank(&nc, nranks, commId, rank);
  SPCCL_REQUIRE(r == ncclSuccess, (spcclResult_t)r, "spcclCommInitRank : ncclCommInitRank failed: %s (%s)",
                ncclGetErrorString(r), ncclGetLastError(nullptr));
  spcclResult_t res = commFromNccl(comm, nc, true, "spcclCommInitRank");
  if (res != spcclSuccess) ncclCommDestroy(nc);
  return res;
}
