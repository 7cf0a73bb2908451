/* SPDX-License-Identifier: Apache-2.0
 *
 * Argument checks shared by every entry point. Each WARNs one sentence of the form
 * "<api> : <what> <value> <allowed>" and returns the code; none has side effects.
 */
#ifndef SPCCL_ARGCHECK_H_
#define SPCCL_ARGCHECK_H_

#include <stddef.h>
#include <stdint.h>

#include "info.h"
#include "state.h"

namespace spccl {

spcclResult_t ptrCheck(const void* ptr, const char* api, const char* what);
spcclResult_t commCheck(const spcclComm* comm, const char* api);
// A live comm that no earlier timeout or transport failure has broken.
spcclResult_t commUsableCheck(const spcclComm* comm, const char* api);
spcclResult_t stateCheck(const spcclState* state, const char* api);
// Refuses a hierarchical state (stand-alone compression and block selections need a flat one).
spcclResult_t flatStateCheck(const spcclState* state, const char* api);
spcclResult_t dataTypeCheck(int datatype, const char* api);
spcclResult_t opCheck(int op, const char* api);
// ptr lives where the comm's buffers live (checked on device comms only).
spcclResult_t memoryCheck(const spcclComm* comm, const void* ptr, const char* api, const char* what);
// ptr is a multiple of the element size (kernels and vector loads fault otherwise).
spcclResult_t alignCheck(const void* ptr, size_t elemSize, const char* api, const char* what);
// Buffers, count, type and op of a collective; a state, if any, must match comm, count, type.
spcclResult_t argsCheck(const spcclInfo& info);

// The one overlap rule of every entry point: a buffer the call writes overlaps no other
// buffer of the call, except buffers[0] (send) and buffers[1] (recv) exactly in place
// (send - recv == inPlace bytes; kNoInPlace: no in place), and no buffer lies in the state's
// own memory (residual, spare residual, workspace, staging): the kernels read one while
// writing the other, so any other overlap would give wrong results silently.
struct CallBuffer {
  const char* name;
  const void* ptr;
  size_t bytes;
  bool written;
};
constexpr ptrdiff_t kNoInPlace = PTRDIFF_MAX;
spcclResult_t overlapCheck(const char* api, const spcclState* st, const CallBuffer* buffers, size_t n,
                           ptrdiff_t inPlace);
// spcclCompress (sendbuff, values, indices: no in place) and spcclDecompress (values,
// indices, recvbuff), through overlapCheck.
spcclResult_t compressOverlapCheck(const spcclState& st, const void* sendbuff, const void* values,
                                   const uint32_t* indices);
spcclResult_t decompressOverlapCheck(const spcclState& st, const void* values, const uint32_t* indices,
                                     size_t nvalues, const void* recvbuff);
// The variables a communicator reads once, at init (SPCCL_TIMEOUT_MS, SPCCL_CHECK, and the
// SPCCL_DEBUG* family the logger uses): any bad one fails the init.
struct CommEnv {
  long long timeoutMs;  // 0: wait forever
  bool checkCalls;
};
spcclResult_t commEnvResolve(CommEnv* env, const char* api);
// Fills unset fields from SPCCL_* variables or defaults, then checks every field.
spcclResult_t configResolve(const spcclConfig_t* in, spcclConfig_t* out, const char* api);

}  // namespace spccl

#endif  // SPCCL_ARGCHECK_H_
