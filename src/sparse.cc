// SPDX-License-Identifier: Apache-2.0
//
// The compressed collective and stand-alone compression: thin entry points over the
// checking funnel (enqueue.cc) and the method table (methods/).

#include <float.h>
#include <math.h>

#include <cmath>

#include "argcheck.h"
#include "checks.h"
#include "device.h"
#include "enqueue.h"
#include "method.h"

using namespace spccl;

namespace {

// The 32-bit indices, when given (random block needs none): aligned, and device memory on a
// device comm, where a host pointer would fault the kernel and lose the CUDA context.
spcclResult_t indicesCheck(const spcclComm* comm, const uint32_t* indices, const char* api) {
  if (!indices) return spcclSuccess;
  SPCCLCHECK(alignCheck(indices, sizeof(uint32_t), api, "indices"));
  return memoryCheck(comm, indices, api, "indices");
}

}  // namespace

extern "C" {

spcclResult_t spcclSparseAllReduce(const void* sendbuff, void* recvbuff, size_t count, spcclDataType_t datatype,
                                   spcclRedOp_t op, spcclState_t state, spcclComm_t comm, spcclStream_t stream) {
  spcclInfo info = {spcclFuncSparseAllReduce, "spcclSparseAllReduce", sendbuff, recvbuff, count, datatype, op, 0, state, comm, stream};
  SPCCLCHECK(ptrCheck(state, info.opName, "state"));
  return enqueueSparse(info);
}

spcclResult_t spcclCompressedCount(spcclState_t state, size_t* nvalues) {
  SPCCLCHECK(stateCheck(state, "spcclCompressedCount"));
  SPCCLCHECK(flatStateCheck(state, "spcclCompressedCount"));
  SPCCLCHECK(ptrCheck(nvalues, "spcclCompressedCount", "nvalues"));
  *nvalues = state->method->compressedCount(*state);
  return spcclSuccess;
}

spcclResult_t spcclCompress(const void* sendbuff, void* values, uint32_t* indices, size_t* nvalues,
                            unsigned long long* step, spcclState_t state, spcclStream_t stream) {
  const char* api = "spcclCompress";
  SPCCLCHECK(stateCheck(state, api));
  const InUse call(state->busy);
  SPCCLCHECK(call.check(api, "state", state));
  SPCCLCHECK(flatStateCheck(state, api));
  SPCCLCHECK(ptrCheck(nvalues, api, "nvalues"));
  SPCCLCHECK(ptrCheck(step, api, "step"));
  if (state->count > 0) {
    SPCCLCHECK(ptrCheck(sendbuff, api, "sendbuff"));
    SPCCLCHECK(ptrCheck(values, api, "values"));
    SPCCLCHECK(alignCheck(sendbuff, state->elemSize, api, "sendbuff"));
    SPCCLCHECK(alignCheck(values, state->elemSize, api, "values"));
    SPCCLCHECK(memoryCheck(state->comm, sendbuff, api, "sendbuff"));
    SPCCLCHECK(memoryCheck(state->comm, values, api, "values"));
    SPCCLCHECK(indicesCheck(state->comm, indices, api));
    SPCCLCHECK(compressOverlapCheck(*state, sendbuff, values, indices));
  }
  SPCCLCHECK(compressStep(*state, stream, api));
  const unsigned long long used = state->step;
  spcclInfo info = {spcclFuncCompress, api, sendbuff, values, state->count, state->datatype, spcclSum, 0, state, state->comm, stream};
  size_t written = 0;
  const spcclResult_t ran = state->count > 0 ? state->method->compress(info, values, indices, &written) : spcclSuccess;
  const spcclResult_t ended = endCall(*state, ran, stream);
  if (ran == spcclSuccess) {  // enqueued and counted, even if the bookkeeping after it failed
    *nvalues = written;
    *step = used;
  }
  return ended;
}

spcclResult_t spcclDecompress(const void* values, const uint32_t* indices, size_t nvalues, unsigned long long step,
                              double scale, void* recvbuff, spcclState_t state, spcclStream_t stream) {
  const char* api = "spcclDecompress";
  SPCCLCHECK(stateCheck(state, api));
  const InUse call(state->busy);
  SPCCLCHECK(call.check(api, "state", state));
  SPCCLCHECK(flatStateCheck(state, api));
  SPCCLCHECK(takePairReport(*state, kDecompressPairs, api));
  if (state->count == 0) return spcclSuccess;
  SPCCLCHECK(ptrCheck(recvbuff, api, "recvbuff"));
  SPCCLCHECK(alignCheck(recvbuff, state->elemSize, api, "recvbuff"));
  SPCCLCHECK(memoryCheck(state->comm, recvbuff, api, "recvbuff"));
  if (nvalues > 0) {
    SPCCLCHECK(ptrCheck(values, api, "values"));
    SPCCLCHECK(alignCheck(values, state->elemSize, api, "values"));
    SPCCLCHECK(memoryCheck(state->comm, values, api, "values"));
    SPCCLCHECK(indicesCheck(state->comm, indices, api));
  }
  SPCCLCHECK(decompressOverlapCheck(*state, nvalues > 0 ? values : nullptr, nvalues > 0 ? indices : nullptr, nvalues,
                                    recvbuff));
  // 0 * inf is NaN: a scale that is not finite in the accumulation type (fp64 for double,
  // fp32 otherwise) would turn the untouched zeros into NaN.
  const double maxScale = state->datatype == spcclFloat64 ? DBL_MAX : FLT_MAX;
  SPCCL_REQUIRE(std::isfinite(scale) && fabs(scale) <= maxScale, spcclInvalidArgument,
                "%s : scale %g is not a finite %s number", api, scale,
                state->datatype == spcclFloat64 ? "fp64" : "fp32");
  return state->method->decompress(*state, values, indices, nvalues, step, scale, recvbuff, stream);
}

}  // extern "C"
