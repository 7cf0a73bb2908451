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

/* spcclCommInitMPI for a communicator given by its Fortran handle (MPI_Comm_c2f, mpi4py's
 * Comm.py2f()): an integer whose meaning does not depend on the MPI implementation's C ABI,
 * so bindings that cannot include mpi.h (Python's ctypes, the plugin table) can pass it. */
spcclResult_t spcclCommInitMPIFortran(spcclComm_t* comm, MPI_Fint mpiComm);

/* As spcclCommInitMPI, for buffers on the calling thread's current CUDA device. States
 * keep their residual and workspace on that device; each collective compresses on the GPU
 * on `stream`, stages the small packed payload through pinned host memory (allocated at
 * spcclStateCreate), reduces it with MPI and unpacks it on the GPU. Calls complete before
 * returning, like every MPI-comm call; spcclCompress / spcclDecompress are stream-ordered.
 * This is how several ranks share one GPU. Returns spcclInvalidUsage in a build without
 * CUDA. */
spcclResult_t spcclCommInitMPIDevice(spcclComm_t* comm, MPI_Comm mpiComm);

#ifdef __cplusplus
}
#endif

#endif /* SPCCL_MPI_H_ */
