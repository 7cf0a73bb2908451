/* SPDX-License-Identifier: Apache-2.0
 *
 * spccl plugin ABI, version 1. FROZEN: once released this header is never edited. A new
 * version adds spccl_plugin_v2.h with a new struct and symbol, and the library keeps
 * exporting spcclPlugin_v1 (through a shim if need be), so hosts built against v1 keep working.
 *
 * A C or C++ framework that does not link spccl can dlopen("libspccl.so.0"), look up the
 * const symbol `spcclPlugin_v1` (SPCCL_PLUGIN_SYMBOL_V1), check abiVersion and use spccl
 * through the function pointers only, as NCCL finds `ncclNetPlugin_vN`. Each pointer has the
 * semantics of the spccl.h function of the same name; none is NULL (a function the build
 * lacks, e.g. commInitMPIFortran without MPI, returns spcclInvalidUsage and says so).
 */
#ifndef SPCCL_PLUGIN_V1_H_
#define SPCCL_PLUGIN_V1_H_

#include "../spccl.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SPCCL_PLUGIN_ABI_VERSION_V1 1
#define SPCCL_PLUGIN_SYMBOL_V1 "spcclPlugin_v1"

/* Log levels passed to the host's logger (SPCCL_DEBUG's names). */
typedef enum {
  spcclPluginLogWarn = 2,
  spcclPluginLogInfo = 3,
  spcclPluginLogTrace = 4
} spcclPluginLogLevel_v1_t;

/* The host's logger. msg is one formatted line without prefix or newline, valid only for the
 * call; the library calls it from the thread that logs, with no lock held. */
typedef void (*spcclPluginLogger_v1_t)(spcclPluginLogLevel_v1_t level, const char* file, int line, const char* msg);

typedef struct {
  const char* name;      /* "spccl" */
  int abiVersion;        /* SPCCL_PLUGIN_ABI_VERSION_V1 */
  int libraryVersion;    /* SPCCL_VERSION_CODE of the library */

  /* Routes the library's log lines to `logger` instead of stderr (NULL restores stderr):
   * every WARN, and INFO/TRACE lines that SPCCL_DEBUG and SPCCL_DEBUG_SUBSYS enable. Call it
   * before any other entry; it may be called again to change the logger. */
  spcclResult_t (*init)(spcclPluginLogger_v1_t logger);
  const char* (*getErrorString)(spcclResult_t result);
  const char* (*getLastError)(spcclComm_t comm);

  /* Communicator from an MPI communicator's Fortran handle (MPI_Comm_c2f), so this header
   * needs no mpi.h; collective over that communicator. */
  spcclResult_t (*commInitMPIFortran)(spcclComm_t* comm, int mpiFortranComm);
  spcclResult_t (*commCount)(const spcclComm_t comm, int* count);
  spcclResult_t (*commUserRank)(const spcclComm_t comm, int* rank);
  spcclResult_t (*commDestroy)(spcclComm_t comm);

  spcclResult_t (*stateCreate)(spcclState_t* state, spcclComm_t comm, const spcclConfig_t* config, size_t count,
                               spcclDataType_t datatype);
  spcclResult_t (*stateGetResidual)(spcclState_t state, void** residual);
  spcclResult_t (*stateDestroy)(spcclState_t state);

  spcclResult_t (*sparseAllReduce)(const void* sendbuff, void* recvbuff, size_t count, spcclDataType_t datatype,
                                   spcclRedOp_t op, spcclState_t state, spcclComm_t comm, spcclStream_t stream);
  spcclResult_t (*compressedCount)(spcclState_t state, size_t* nvalues);
  spcclResult_t (*compress)(const void* sendbuff, void* values, uint32_t* indices, size_t* nvalues,
                            unsigned long long* step, spcclState_t state, spcclStream_t stream);
  spcclResult_t (*decompress)(const void* values, const uint32_t* indices, size_t nvalues, unsigned long long step,
                              double scale, void* recvbuff, spcclState_t state, spcclStream_t stream);
} spcclPlugin_v1_t;

#ifdef __cplusplus
}
#endif

#endif /* SPCCL_PLUGIN_V1_H_ */
