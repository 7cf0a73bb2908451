/* SPDX-License-Identifier: Apache-2.0
 *
 * The hosts an MPI job spans, found the way the library finds them (MPI_Comm_split_type, or
 * blocks of SPCCL_RANKS_PER_HOST consecutive ranks), and the shard layout of hierarchical
 * mode (docs/DESIGN.md, Hierarchical mode), for perf and the tests that check hierarchical runs
 * from the outside. MPI and the standard library only. */
#ifndef SPCCL_PERF_HOSTS_H_
#define SPCCL_PERF_HOSTS_H_

#include <mpi.h>
#include <stdlib.h>

#include <algorithm>
#include <vector>

namespace spccl_perf {

struct Hosts {
  int host = 0, localRank = 0, localSize = 1;
  MPI_Comm local = MPI_COMM_NULL;  // the ranks of this rank's host
  MPI_Comm cross = MPI_COMM_NULL;  // the ranks with this rank's local rank, one per host
  std::vector<std::vector<int>> members;  // world ranks of each host, in cross-comm order
  bool even() const {
    for (const auto& m : members)
      if (m.size() != members[0].size()) return false;
    return true;
  }
  // This rank's shard: ceil(n/L) elements from localRank * ceil(n/L), the last shorter.
  void shard(size_t n, size_t* offset, size_t* count) const {
    const size_t L = (size_t)localSize, each = (n + L - 1) / L;
    *offset = std::min(n, (size_t)localRank * each);
    *count = std::min(each, n - *offset);
  }
  ~Hosts() {
    if (local != MPI_COMM_NULL) MPI_Comm_free(&local);
    if (cross != MPI_COMM_NULL) MPI_Comm_free(&cross);
  }
};

// Collective over `world`.
inline void findHosts(MPI_Comm world, Hosts* h) {
  int rank = 0, nranks = 1;
  MPI_Comm_rank(world, &rank);
  MPI_Comm_size(world, &nranks);
  const char* split = getenv("SPCCL_RANKS_PER_HOST");
  const int perHost = split ? atoi(split) : 0;
  if (perHost > 0) MPI_Comm_split(world, rank / perHost, rank, &h->local);
  else MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &h->local);
  MPI_Comm_rank(h->local, &h->localRank);
  MPI_Comm_size(h->local, &h->localSize);
  MPI_Comm_split(world, h->localRank, rank, &h->cross);
  int host = 0;
  MPI_Comm_rank(h->cross, &host);  // local rank 0 exists on every host: its cross rank names the host
  int leader = host;
  MPI_Bcast(&leader, 1, MPI_INT, 0, h->local);
  std::vector<int> hostOf(nranks);
  MPI_Allgather(&leader, 1, MPI_INT, hostOf.data(), 1, MPI_INT, world);
  h->members.assign(*std::max_element(hostOf.begin(), hostOf.end()) + 1, {});
  for (int r = 0; r < nranks; ++r) h->members[hostOf[r]].push_back(r);
  h->host = leader;
}

}  // namespace spccl_perf

#endif  // SPCCL_PERF_HOSTS_H_
