// SPDX-License-Identifier: Apache-2.0
//
// Which ranks of an MPI comm share a host, for hierarchical mode (hierarchy.h).

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <memory>
#include <string>
#include <vector>

#include "checks.h"
#include "comm.h"
#include "mpi_transport.h"
#include "param.h"

namespace spccl {
namespace {

// A comm of its own over `mpiComm` (owned by it from now on).
spcclComm* subComm(MPI_Comm mpiComm, long long timeoutMs) {
  MPI_Comm_set_errhandler(mpiComm, MPI_ERRORS_RETURN);
  auto* c = new spcclComm();
  MPI_Comm_rank(mpiComm, &c->rank);
  MPI_Comm_size(mpiComm, &c->nranks);
  c->transport = makeMpiTransport(mpiComm, timeoutMs);
  return c;
}

// "4 4 4" or "3 2": ranks per host, in host order.
std::string hostSizes(const std::vector<int>& localRanks, const std::vector<int>& localSizes) {
  std::string text;
  for (size_t r = 0; r < localRanks.size(); ++r)
    if (localRanks[r] == 0) text += (text.empty() ? "" : " ") + std::to_string(localSizes[r]);
  return text;
}

}  // namespace

spcclResult_t topologyFromMpi(MPI_Comm comm, long long timeoutMs, const char* api,
                              std::shared_ptr<Topology>* topology) {
  int rank = 0, nranks = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &nranks);
  // SPCCL_RANKS_PER_HOST=N pretends every N consecutive ranks are one host, so hierarchical
  // mode can be tested on one machine; by default the hosts are those MPI finds.
  long long perHost = 0;
  SPCCLCHECK(envInt("SPCCL_RANKS_PER_HOST", 0, INT_MAX, 0, &perHost, api));
  MPI_Comm local, cross;
  int err = perHost > 0 ? MPI_Comm_split(comm, (int)(rank / perHost), rank, &local)
                        : MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &local);
  SPCCL_REQUIRE(err == MPI_SUCCESS, spcclSystemError, "%s : splitting the comm by host failed", api);
  auto t = std::make_shared<Topology>();
  MPI_Comm_rank(local, &t->localRank);
  MPI_Comm_size(local, &t->localSize);
  int mine[2] = {t->localRank, t->localSize};
  std::vector<int> all(2 * (size_t)nranks);
  err = MPI_Allgather(mine, 2, MPI_INT, all.data(), 2, MPI_INT, comm);
  if (err == MPI_SUCCESS) err = MPI_Comm_split(comm, t->localRank, rank, &cross);
  if (err != MPI_SUCCESS) {
    MPI_Comm_free(&local);
    WARN("%s : finding the hosts of the comm failed", api);
    return spcclSystemError;
  }
  std::vector<int> localRanks(nranks), localSizes(nranks);
  for (int r = 0; r < nranks; ++r) {
    localRanks[r] = all[2 * r];
    localSizes[r] = all[2 * r + 1];
  }
  t->hosts = (int)std::count(localRanks.begin(), localRanks.end(), 0);
  t->even = std::all_of(localSizes.begin(), localSizes.end(), [&](int s) { return s == localSizes[0]; });
  t->intra = subComm(local, timeoutMs);
  t->cross = subComm(cross, timeoutMs);
  INFO(kSubsysInit, "%s : topology: %d hosts (ranks per host: %s%s), local rank %d of %d, cross-host comm of %d ranks%s",
       api, t->hosts, hostSizes(localRanks, localSizes).c_str(), perHost > 0 ? ", from SPCCL_RANKS_PER_HOST" : "",
       t->localRank, t->localSize, t->cross->nranks,
       t->hosts > 1 && t->localSize > 1 ? (t->even ? "; hierarchical by default" : "; uneven hosts: flat by default")
                                        : "; flat by default");
  *topology = std::move(t);
  return spcclSuccess;
}

}  // namespace spccl
