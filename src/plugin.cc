// SPDX-License-Identifier: Apache-2.0
//
// The exported plugin tables (include/plugin/spccl_plugin_vN.h). Each entry is the public
// function of the same name; a table only adapts signatures that differ in C types.

#include "debug.h"
#include "plugin/spccl_plugin_v1.h"
#include "spccl.h"

#ifdef SPCCL_HAVE_MPI
#include "spccl_mpi.h"
#endif

namespace {

spcclResult_t pluginInitV1(spcclPluginLogger_v1_t logger) {
  spccl::debugSetHostLogger(logger);
  return spcclSuccess;
}

spcclResult_t pluginCommInitMPIFortranV1(spcclComm_t* comm, int mpiFortranComm) {
#ifdef SPCCL_HAVE_MPI
  static_assert(sizeof(MPI_Fint) == sizeof(int), "the v1 table passes MPI_Fint as int");
  return spcclCommInitMPIFortran(comm, (MPI_Fint)mpiFortranComm);
#else
  (void)comm;
  (void)mpiFortranComm;
  WARN("spcclPlugin_v1.commInitMPIFortran : spccl was built without MPI");
  return spcclInvalidUsage;
#endif
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) extern const spcclPlugin_v1_t spcclPlugin_v1;

const spcclPlugin_v1_t spcclPlugin_v1 = {
    "spccl",
    SPCCL_PLUGIN_ABI_VERSION_V1,
    SPCCL_VERSION_CODE,
    pluginInitV1,
    spcclGetErrorString,
    spcclGetLastError,
    pluginCommInitMPIFortranV1,
    spcclCommCount,
    spcclCommUserRank,
    spcclCommDestroy,
    spcclStateCreate,
    spcclStateGetResidual,
    spcclStateDestroy,
    spcclSparseAllReduce,
    spcclCompressedCount,
    spcclCompress,
    spcclDecompress,
};

}  // extern "C"
