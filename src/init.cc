// SPDX-License-Identifier: Apache-2.0
//
// Version, error strings, and the transport-independent half of a communicator's life.

#include "argcheck.h"
#include "checks.h"
#include "comm.h"
#include "state.h"

namespace spccl {

size_t dataTypeSize(spcclDataType_t datatype) {
  switch (datatype) {
    case spcclFloat16:
    case spcclBfloat16: return 2;
    case spcclFloat32: return 4;
    case spcclFloat64: return 8;
    default: return 0;
  }
}

const char* dataTypeName(int datatype) {
  switch (datatype) {
    case spcclFloat16: return "half";
    case spcclFloat32: return "float";
    case spcclFloat64: return "double";
    case spcclBfloat16: return "bfloat16";
    default: return "unknown";
  }
}

const char* opName(int op) { return op == spcclSum ? "sum" : op == spcclAvg ? "avg" : "unknown"; }

}  // namespace spccl

using namespace spccl;

extern "C" {

spcclResult_t spcclGetVersion(int* version) {
  SPCCLCHECK(ptrCheck(version, "spcclGetVersion", "version"));
  *version = SPCCL_VERSION_CODE;
  return spcclSuccess;
}

const char* spcclGetErrorString(spcclResult_t result) {
  switch (result) {
    case spcclSuccess: return "no error";
    case spcclUnhandledCudaError: return "unhandled cuda error (run with SPCCL_DEBUG=INFO for details)";
    case spcclSystemError: return "unhandled system error (run with SPCCL_DEBUG=INFO for details)";
    case spcclInternalError: return "internal error - please report this issue to the spccl developers";
    case spcclInvalidArgument: return "invalid argument (run with SPCCL_DEBUG=WARN for details)";
    case spcclInvalidUsage: return "invalid usage (run with SPCCL_DEBUG=WARN for details)";
    case spcclRemoteError: return "remote process exited or there was a network error";
    case spcclInProgress: return "spccl operation in progress";
    case spcclTimeout: return "spccl operation timed out";
    default: return "unknown result code";
  }
}

const char* spcclGetLastError(spcclComm_t) { return lastError(); }

spcclResult_t spcclCommCount(const spcclComm_t comm, int* count) {
  SPCCLCHECK(commCheck(comm, "spcclCommCount"));
  SPCCLCHECK(ptrCheck(count, "spcclCommCount", "count"));
  *count = comm->nranks;
  return spcclSuccess;
}

spcclResult_t spcclCommUserRank(const spcclComm_t comm, int* rank) {
  SPCCLCHECK(commCheck(comm, "spcclCommUserRank"));
  SPCCLCHECK(ptrCheck(rank, "spcclCommUserRank", "rank"));
  *rank = comm->rank;
  return spcclSuccess;
}

spcclResult_t spcclCommAbort(spcclComm_t comm) {
  SPCCLCHECK(commCheck(comm, "spcclCommAbort"));
  // A call in flight on another thread still uses the transport; freeing it under that call
  // would be a use-after-free, and a host transport cannot interrupt MPI anyway.
  SPCCL_REQUIRE(!comm->busy.load(), spcclInvalidUsage,
                "spcclCommAbort : a call on comm %p is in flight on another thread; abort it after the call returns "
                "(SPCCL_TIMEOUT_MS bounds how long that takes)",
                (void*)comm);
  INFO(kSubsysInit, "spcclCommAbort : rank %d, %d states still open", comm->rank, comm->liveStates.load());
  if (comm->transport) comm->transport->abort();  // NCCL: ncclCommAbort, so nothing hangs
  comm->transport.reset();
  int expected = spcclSuccess;
  comm->brokenBy.compare_exchange_strong(expected, spcclInvalidUsage);
  if (comm->liveStates.load() > 0) {
    comm->aborted = true;  // freed by the last spcclStateDestroy
    return spcclSuccess;
  }
  comm->startMagic = comm->endMagic = 0;
  delete comm;
  return spcclSuccess;
}

spcclResult_t spcclCommGetAsyncError(spcclComm_t comm, spcclResult_t* asyncError) {
  SPCCLCHECK(commCheck(comm, "spcclCommGetAsyncError"));
  SPCCLCHECK(ptrCheck(asyncError, "spcclCommGetAsyncError", "asyncError"));
  *asyncError = (spcclResult_t)comm->brokenBy.load();
  // NCCL reports its failures after the fact; they break the comm like any transport failure.
  // spcclInProgress (a nonblocking NCCL comm still enqueueing) is reported as is, not an error.
  if (*asyncError == spcclSuccess && comm->transport) {
    *asyncError = comm->transport->asyncError();
    int expected = spcclSuccess;
    if (*asyncError != spcclSuccess && *asyncError != spcclInProgress)
      comm->brokenBy.compare_exchange_strong(expected, *asyncError);
  }
  return spcclSuccess;
}

spcclResult_t spcclCommDestroy(spcclComm_t comm) {
  SPCCLCHECK(commCheck(comm, "spcclCommDestroy"));
  SPCCL_REQUIRE(!comm->aborted, spcclInvalidUsage, "spcclCommDestroy : comm was aborted already");
  SPCCL_REQUIRE(comm->liveStates.load() == 0, spcclInvalidUsage,
                "spcclCommDestroy : %d states still use this comm (destroy them first)", comm->liveStates.load());
  INFO(kSubsysInit, "spcclCommDestroy : rank %d", comm->rank);
  comm->startMagic = comm->endMagic = 0;
  delete comm;
  return spcclSuccess;
}

}  // extern "C"
