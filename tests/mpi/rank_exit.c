/* SPDX-License-Identifier: Apache-2.0
 *
 * One rank dies (exits without finalizing) in the middle of a run; with SPCCL_TIMEOUT_MS the
 * others must come back with spcclTimeout instead of hanging. Each survivor that does prints
 * one "survived" line; rank_exit.sh counts them (mpirun's own exit status is non-zero by
 * design: a rank exited improperly). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "spccl.h"
#include "spccl_mpi.h"

enum { kCount = 4096 };

int main(int argc, char** argv) {
  int rank, nranks;
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  spcclComm_t comm;
  spcclConfig_t config = SPCCL_CONFIG_INITIALIZER;
  spcclState_t state;
  static float grad[kCount], out[kCount];
  if (spcclCommInitMPI(&comm, MPI_COMM_WORLD) != spcclSuccess ||
      spcclStateCreate(&state, comm, &config, kCount, spcclFloat32) != spcclSuccess)
    return 2;
  /* A few good steps first: the failure comes mid-run. */
  for (int step = 0; step < 3; ++step)
    if (spcclSparseAllReduce(grad, out, kCount, spcclFloat32, spcclAvg, state, comm, NULL) != spcclSuccess) return 3;
  if (rank == nranks - 1) _exit(3); /* dies without a word */
  const double start = MPI_Wtime();
  spcclResult_t res = spcclSparseAllReduce(grad, out, kCount, spcclFloat32, spcclAvg, state, comm, NULL);
  const double took = MPI_Wtime() - start;
  if (res == spcclTimeout && took < 5.0) printf("survived: rank %d got spcclTimeout after %.3f s\n", rank, took);
  else printf("rank %d: %s after %.3f s\n", rank, spcclGetErrorString(res), took);
  fflush(stdout);
  _exit(0); /* MPI_Finalize would wait for the dead rank */
}
