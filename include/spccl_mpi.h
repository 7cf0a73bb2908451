/* SPDX-License-Identifier: Apache-2.0
 *
 * spccl communicators over MPI: host buffers, blocking calls, stream NULL. */
#ifndef SPCCL_MPI_H_
#define SPCCL_MPI_H_

#include <mpi.h>

#include "spccl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Wraps mpiComm (duplicated inside, so spccl traffic never matches the caller's messages).
 * Collective over mpiComm. The caller keeps ownership of mpiComm and must finalize MPI
 * only after spcclCommDestroy. */
spcclResult_t spcclCommInitMPI(spcclComm_t* comm, MPI_Comm mpiComm);

#ifdef __cplusplus
}
#endif

#endif /* SPCCL_MPI_H_ */
