/* SPDX-License-Identifier: Apache-2.0
 *
 * A fault between simulated hosts in the middle of a run (scripts/simhosts): `linkdown`
 * takes host h2's link down, `kill` kills host h2 (its link goes down, its processes die).
 * Every surviving rank's next spcclSparseAllReduce must return spcclTimeout within
 * SPCCL_TIMEOUT_MS (plus one second of slack for scheduling), leaving residual and step
 * unchanged. Each survivor that does writes $SIMHOSTS_CTL/survived.RANK; host_fault.sh
 * counts them. Usage: host_fault linkdown|kill */
#include <fcntl.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spccl.h"
#include "spccl_mpi.h"

enum { kCount = 1 << 16 };

static const char* ctl;

static int exists(const char* name) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", ctl, name);
  return access(path, F_OK) == 0;
}

static void touch(const char* name, const char* text) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", ctl, name);
  FILE* f = fopen(path, "w");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

/* Waits (without MPI: the network may be down) until `name` exists, up to `seconds`. */
static int waitFor(const char* name, double seconds) {
  for (double waited = 0; waited < seconds; waited += 0.01) {
    if (exists(name)) return 1;
    usleep(10000);
  }
  return 0;
}

static int countSurvivors(int nranks) {
  int n = 0;
  char name[64];
  for (int r = 0; r < nranks; ++r) {
    snprintf(name, sizeof(name), "survived.%d", r);
    n += exists(name);
  }
  return n;
}

int main(int argc, char** argv) {
  int rank, nranks;
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  ctl = getenv("SIMHOSTS_CTL");
  const char* timeoutText = getenv("SPCCL_TIMEOUT_MS");
  if (argc != 2 || !ctl || !timeoutText) {
    fprintf(stderr, "usage: scripts/simhosts 2x2 -- -x SPCCL_TIMEOUT_MS=1000 host_fault linkdown|kill\n");
    return 2;
  }
  const int kill = strcmp(argv[1], "kill") == 0;
  const double timeout = atof(timeoutText) / 1000.0;
  char hostname[256] = "";
  gethostname(hostname, sizeof(hostname));
  const int victim = strcmp(hostname, "h2") == 0;

  spcclComm_t comm;
  spcclConfig_t config = SPCCL_CONFIG_INITIALIZER; /* hierarchical by default on 2 hosts x 2 */
  config.method = spcclMethodTopK;
  spcclState_t state;
  static float grad[kCount], out[kCount], before[kCount];
  for (int i = 0; i < kCount; ++i) grad[i] = (float)((rank * 7 + i * 13) % 17 - 8) * 0.25f;
  if (spcclCommInitMPI(&comm, MPI_COMM_WORLD) != spcclSuccess ||
      spcclStateCreate(&state, comm, &config, kCount, spcclFloat32) != spcclSuccess) {
    fprintf(stderr, "rank %d: setup failed: %s\n", rank, spcclGetLastError(NULL));
    return 2;
  }
  /* A few good steps first: the fault comes mid-run. */
  for (int step = 0; step < 3; ++step)
    if (spcclSparseAllReduce(grad, out, kCount, spcclFloat32, spcclSum, state, comm, NULL) != spcclSuccess) return 3;
  void* residual = NULL;
  unsigned long long stepBefore = 0, stepAfter = 0;
  spcclStateGetResidual(state, &residual);
  memcpy(before, residual, sizeof(before));
  spcclStateGetStep(state, &stepBefore);
  MPI_Barrier(MPI_COMM_WORLD);

  char request[64];
  snprintf(request, sizeof(request), "%s-h2", argv[1]);
  if (rank == 0) {
    char req[80];
    snprintf(req, sizeof(req), "%s.req", request);
    touch(req, "");
  }
  char done[80];
  snprintf(done, sizeof(done), "%s.done", request);
  if (!waitFor(done, 30)) {
    fprintf(stderr, "rank %d: the fault was never applied\n", rank);
    _exit(4);
  }
  if (kill && victim) pause(); /* being killed */

  const double start = MPI_Wtime();
  const spcclResult_t res = spcclSparseAllReduce(grad, out, kCount, spcclFloat32, spcclSum, state, comm, NULL);
  const double took = MPI_Wtime() - start;
  spcclStateGetStep(state, &stepAfter);
  const int unchanged = memcmp(before, residual, sizeof(before)) == 0 && stepAfter == stepBefore;
  char line[256];
  snprintf(line, sizeof(line), "rank %d on %s: %s after %.3f s (timeout %.3f s), state %s\n", rank, hostname,
           spcclGetErrorString(res), took, timeout, unchanged ? "unchanged" : "CHANGED");
  fputs(line, stdout);
  fflush(stdout);
  if (res == spcclTimeout && took < timeout + 1.0 && unchanged) {
    char name[64];
    snprintf(name, sizeof(name), "survived.%d", rank);
    touch(name, line);
  }
  if (rank == 0) {
    /* Once every survivor has reported, the link comes back so that mpirun can see how the
     * job ended (a dead host's daemon, ranks that exit without MPI_Finalize) and stop. */
    const int expected = kill ? nranks / 2 : nranks;
    for (double waited = 0; waited < 30 && countSurvivors(nranks) < expected; waited += 0.01) usleep(10000);
    touch("linkup-h2.req", "");
    waitFor("linkup-h2.done", 10);
  }
  _exit(0); /* MPI_Finalize would wait for peers that are gone */
}
