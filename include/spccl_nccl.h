/* SPDX-License-Identifier: Apache-2.0
 *
 * spccl communicators over NCCL: device buffers, every call enqueued on `stream` and
 * returning without synchronising the host (buffers are sized at spcclStateCreate), so a
 * training step that calls spccl can be captured in a CUDA graph. */
#ifndef SPCCL_NCCL_H_
#define SPCCL_NCCL_H_

#include <nccl.h>

#include "spccl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Wraps a communicator the framework already has. The caller keeps ownership:
 * spcclCommDestroy leaves ncclComm alive (but spcclCommAbort aborts it, as ncclCommAbort
 * does, since that is the only way to stop operations spccl enqueued on it). Local. */
spcclResult_t spcclCommInitNccl(spcclComm_t* comm, ncclComm_t ncclComm);

/* Creates an NCCL communicator of nranks with ncclCommInitRank (collective, blocking; the
 * calling thread's current CUDA device is used) and owns it: spcclCommDestroy destroys it. */
spcclResult_t spcclCommInitRank(spcclComm_t* comm, int nranks, ncclUniqueId commId, int rank);

#ifdef __cplusplus
}
#endif

#endif /* SPCCL_NCCL_H_ */
