/* SPDX-License-Identifier: Apache-2.0
 *
 * The MPI transport as the rest of the library builds it: for the comm a user wraps, and
 * for the per-host and cross-host comms of hierarchical mode. */
#ifndef SPCCL_MPI_TRANSPORT_H_
#define SPCCL_MPI_TRANSPORT_H_

#include <mpi.h>

#include <memory>

#include "hierarchy.h"
#include "transport.h"

namespace spccl {

// A transport over `comm`, which it owns (and frees) from now on. Every operation is
// bounded by timeoutMs when it is > 0 (SPCCL_TIMEOUT_MS).
std::unique_ptr<Transport> makeMpiTransport(MPI_Comm comm, long long timeoutMs);

// The hosts `comm` spans (MPI_Comm_split_type(MPI_COMM_TYPE_SHARED), or blocks of
// SPCCL_RANKS_PER_HOST consecutive ranks), with a host comm and a cross-host comm. Collective.
spcclResult_t topologyFromMpi(MPI_Comm comm, long long timeoutMs, const char* api,
                              std::shared_ptr<Topology>* topology);

}  // namespace spccl

#endif  // SPCCL_MPI_TRANSPORT_H_
