/* SPDX-License-Identifier: Apache-2.0
 * Compiled as C99 against the installed headers: spccl.h must need no CUDA or C++ header. */
#include <mpi.h>
#include <stdio.h>

#include "spccl.h"
#include "spccl_mpi.h"

int main(int argc, char** argv) {
  int version = 0;
  MPI_Init(&argc, &argv);
  spcclComm_t comm;
  spcclConfig_t config = SPCCL_CONFIG_INITIALIZER;
  spcclState_t state;
  float grad[1000], out[1000];
  for (int i = 0; i < 1000; ++i) grad[i] = (float)i;
  if (spcclGetVersion(&version) != spcclSuccess || version != SPCCL_VERSION_CODE) return 1;
  if (spcclCommInitMPI(&comm, MPI_COMM_WORLD) != spcclSuccess) return 2;
  if (spcclStateCreate(&state, comm, &config, 1000, spcclFloat32) != spcclSuccess) return 3;
  if (spcclSparseAllReduce(grad, out, 1000, spcclFloat32, spcclAvg, state, comm, NULL) != spcclSuccess) return 4;
  spcclStateDestroy(state);
  spcclCommDestroy(comm);
  MPI_Finalize();
  printf("consumer: spccl %d works\n", version);
  return 0;
}
