/* SPDX-License-Identifier: Apache-2.0
 *
 * A host that does not link spccl: dlopen the library given as argv[1], find the plugin
 * table by symbol, check its version, and run a sparse allreduce and a compress/decompress
 * round trip through the function pointers only. Written in C to prove the headers are C.
 * Run under mpirun with 2 or more ranks; exit status non-zero when any rank failed. */
#include <dlfcn.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spccl_plugin.h"

static int failures = 0;
static int rank = 0;

#define EXPECT(cond, ...)                                                          \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      fprintf(stderr, "[rank %d] %s:%d: %s failed: ", rank, __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                                \
      fprintf(stderr, "\n");                                                       \
      ++failures;                                                                  \
    }                                                                              \
  } while (0)

static int warnings = 0;
static char lastWarning[1024];
static void hostLogger(spcclPluginLogLevel_v1_t level, const char* file, int line, const char* msg) {
  (void)file;
  (void)line;
  if (level == spcclPluginLogWarn) {
    ++warnings;
    snprintf(lastWarning, sizeof(lastWarning), "%s", msg);
  }
}

enum { kCount = 1000, kBlock = 8 };

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int nranks = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  if (argc < 2) {
    fprintf(stderr, "usage: %s path/to/libspccl.so\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "[rank %d] dlopen(%s): %s\n", rank, argv[1], dlerror());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  const spcclPlugin_t* spccl = (const spcclPlugin_t*)dlsym(lib, SPCCL_PLUGIN_SYMBOL);
  if (!spccl) {
    fprintf(stderr, "[rank %d] dlsym(%s): %s\n", rank, SPCCL_PLUGIN_SYMBOL, dlerror());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  EXPECT(strcmp(SPCCL_PLUGIN_SYMBOL, "spcclPlugin_v1") == 0, "newest symbol is %s", SPCCL_PLUGIN_SYMBOL);
  EXPECT(dlsym(lib, "spcclPlugin_v1") == (const void*)spccl, "the v1 symbol is exported");
  EXPECT(strcmp(spccl->name, "spccl") == 0, "name %s", spccl->name);
  EXPECT(spccl->abiVersion == SPCCL_PLUGIN_ABI_VERSION_V1, "abiVersion %d", spccl->abiVersion);
  EXPECT(spccl->libraryVersion == SPCCL_VERSION_CODE, "libraryVersion %d", spccl->libraryVersion);
  EXPECT(spccl->init(hostLogger) == spcclSuccess, "init");

  spcclComm_t comm = NULL;
  EXPECT(spccl->commInitMPIFortran(&comm, (int)MPI_Comm_c2f(MPI_COMM_WORLD)) == spcclSuccess, "%s",
         spccl->getLastError(NULL));
  int count = -1, myRank = -1;
  EXPECT(spccl->commCount(comm, &count) == spcclSuccess && count == nranks, "count %d", count);
  EXPECT(spccl->commUserRank(comm, &myRank) == spcclSuccess && myRank == rank, "rank %d", myRank);

  /* A failure reaches the host's logger and the last-error text, with the same sentence. */
  spcclConfig_t bad = SPCCL_CONFIG_INITIALIZER;
  bad.density = 1.5;
  spcclState_t badState = NULL;
  EXPECT(spccl->stateCreate(&badState, comm, &bad, kCount, spcclFloat32) == spcclInvalidArgument, "density 1.5");
  EXPECT(warnings >= 1 && strstr(lastWarning, "density 1.5") != NULL, "logger got '%s'", lastWarning);
  EXPECT(strcmp(spccl->getLastError(comm), lastWarning) == 0, "last error '%s'", spccl->getLastError(comm));
  EXPECT(strcmp(spccl->getErrorString(spcclInvalidArgument), "no error") != 0, "error string");

  spcclConfig_t config = SPCCL_CONFIG_INITIALIZER;
  config.method = spcclMethodRandomBlock;
  config.density = 0.25;
  config.blockSize = kBlock;
  config.blockPattern = spcclBlocksScattered;
  config.feedback = spcclFeedbackEF;
  config.seed = 1234;
  spcclState_t state = NULL;
  EXPECT(spccl->stateCreate(&state, comm, &config, kCount, spcclFloat32) == spcclSuccess, "%s",
         spccl->getLastError(comm));

  /* Sparse allreduce: with a zero residual, this rank's contribution is g - e_new, so the
   * expected output is the MPI sum of those; every coordinate is either sent or kept. */
  float g[kCount], out[kCount], sent[kCount], expected[kCount];
  for (int i = 0; i < kCount; ++i) g[i] = (float)((rank + 1) * (i % 17) + 1); /* never 0: a kept coordinate is non-zero */
  EXPECT(spccl->sparseAllReduce(g, out, kCount, spcclFloat32, spcclSum, state, comm, NULL) == spcclSuccess, "%s",
         spccl->getLastError(comm));
  float* residual = NULL;
  EXPECT(spccl->stateGetResidual(state, (void**)&residual) == spcclSuccess && residual != NULL, "residual");
  int nsent = 0;
  for (int i = 0; i < kCount; ++i) {
    sent[i] = g[i] - residual[i];
    EXPECT(residual[i] == 0.0f || residual[i] == g[i], "coordinate %d split: g %g e %g", i, g[i], residual[i]);
    if (residual[i] == 0.0f) ++nsent;
  }
  const int nblocks = (kCount + kBlock - 1) / kBlock, m = (int)ceil(0.25 * nblocks);
  EXPECT(nsent == m * kBlock, "sent %d of %d, expected %d", nsent, kCount, m * kBlock); /* kCount % kBlock == 0 */
  MPI_Allreduce(sent, expected, kCount, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  for (int i = 0; i < kCount; ++i) EXPECT(out[i] == expected[i], "out[%d] %g expected %g", i, out[i], expected[i]);

  /* Compress + decompress is this rank's contribution again, through the packed values. */
  size_t capacity = 0, nvalues = 0;
  unsigned long long step = 99;
  EXPECT(spccl->compressedCount(state, &capacity) == spcclSuccess && capacity == (size_t)m * kBlock, "capacity %zu",
         capacity);
  float* values = (float*)calloc(capacity ? capacity : 1, sizeof(float));
  float before[kCount];
  memcpy(before, residual, sizeof(before));
  EXPECT(spccl->compress(g, values, NULL, &nvalues, &step, state, NULL) == spcclSuccess, "%s",
         spccl->getLastError(comm));
  EXPECT(step == 1, "step %llu", step);
  EXPECT(spccl->decompress(values, NULL, nvalues, step, 1.0, out, state, NULL) == spcclSuccess, "%s",
         spccl->getLastError(comm));
  for (int i = 0; i < kCount; ++i)
    EXPECT(out[i] + residual[i] == g[i] + before[i], "conservation at %d: %g + %g != %g + %g", i, out[i], residual[i],
           g[i], before[i]);
  free(values);

  EXPECT(spccl->stateDestroy(state) == spcclSuccess, "stateDestroy");
  EXPECT(spccl->commDestroy(comm) == spcclSuccess, "commDestroy");
  EXPECT(spccl->init(NULL) == spcclSuccess, "init(NULL)");

  int total = 0;
  MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) printf("plugin ABI test: %d failures over %d ranks\n", total, nranks);
  MPI_Finalize();
  return total == 0 ? 0 : 1;
}
