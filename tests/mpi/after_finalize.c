/* SPDX-License-Identifier: Apache-2.0
 *
 * spccl after MPI_Finalize: every call that would reach MPI is refused with
 * spcclInvalidUsage and a sentence (any MPI call now would end the job); destroying the
 * states and the comm still works, MPI's resources having gone with MPI. Exit 0 when all
 * hold. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "spccl_mpi.h"

static int expect(spcclResult_t got, spcclResult_t want, const char* text, const char* what) {
  const char* msg = spcclGetLastError(NULL);
  if (got == want && (!text || strstr(msg, text))) return 0;
  fprintf(stderr, "%s: got %d (%s), want %d with \"%s\"\n", what, (int)got, msg, (int)want, text ? text : "");
  return 1;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  spcclComm_t comm = NULL;
  spcclState_t st = NULL, other = NULL;
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = spcclMethodTopK;
  if (spcclCommInitMPI(&comm, MPI_COMM_WORLD) != spcclSuccess) return 2;
  if (spcclStateCreate(&st, comm, &cfg, 100, spcclFloat32) != spcclSuccess) return 3;
  float g[100], out[100];
  for (int i = 0; i < 100; ++i) g[i] = (float)i;
  MPI_Finalize();
  const char* gone = "MPI has been finalized";
  int fails = 0;
  fails += expect(spcclSparseAllReduce(g, out, 100, spcclFloat32, spcclSum, st, comm, NULL), spcclInvalidUsage, gone,
                  "spcclSparseAllReduce");
  fails += expect(spcclAllReduce(g, out, 100, spcclFloat32, spcclSum, comm, NULL), spcclInvalidUsage, gone,
                  "spcclAllReduce");
  fails += expect(spcclStateCreate(&other, comm, &cfg, 100, spcclFloat32), spcclInvalidUsage, gone,
                  "spcclStateCreate");
  spcclComm_t late = NULL;
  fails += expect(spcclCommInitMPI(&late, MPI_COMM_WORLD), spcclInvalidUsage, "MPI is not initialized",
                  "spcclCommInitMPI");
  fails += expect(spcclStateDestroy(st), spcclSuccess, NULL, "spcclStateDestroy");
  fails += expect(spcclCommDestroy(comm), spcclSuccess, NULL, "spcclCommDestroy");
  printf("%s\n", fails ? "FAILED" : "OK");
  return fails != 0;
}
