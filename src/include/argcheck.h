/* SPDX-License-Identifier: Apache-2.0
 *
 * Argument checks shared by every entry point. Each WARNs one sentence of the form
 * "<api> : <what> <value> <allowed>" and returns the code; none has side effects.
 */
#ifndef SPCCL_ARGCHECK_H_
#define SPCCL_ARGCHECK_H_

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
