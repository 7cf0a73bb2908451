/* SPDX-License-Identifier: Apache-2.0
 *
 * Hierarchical mode (DESIGN.md, Hierarchical mode): dense inside a host, compressed across hosts.
 *
 * A method whose payload is values on shared positions (dense, random block: one allreduce)
 * runs flat, with its flat residual; only the allreduce of its payload runs in three stages
 * (hierarchicalSum): a dense reduce-scatter of the payload inside the host, an allreduce of
 * this rank's shard of it across hosts, a dense allgather inside the host. Each host puts 1/L
 * of the flat ring's bytes per rank on its link, and the payload is what moves inside the host
 * too (random block packs before any stage, so its host stages move 1/density less than the
 * tensor).
 *
 * Any other method runs on shards. With L ranks on a host, local rank l owns shard l of the
 * tensor (ceil(n/L) elements, the last shard shorter). A call runs three stages:
 *   1. a dense reduce-scatter inside the host: rank l holds the host's sum of shard l (its
 *      mean for op Avg);
 *   2. the state's method on shard l across the ranks with local rank l on every host (the
 *      cross comm; Avg averages over the hosts), with its own error-feedback residual: that
 *      slice of the state's residual;
 *   3. a dense allgather of the shards inside the host.
 * Conservation holds per shard: c + e_new = (sum, or for Avg mean, over the host of g)[shard] + e_old.
 * Each host puts about 1/L of the flat method's bytes on its link.
 */
#ifndef SPCCL_HIERARCHY_H_
#define SPCCL_HIERARCHY_H_

#include <stddef.h>

#include <memory>

#include "info.h"
#include "spccl.h"

struct spcclComm;
struct spcclState;

namespace spccl {
struct MethodOps;

// The hosts a comm spans, found once at comm init. `intra` joins the ranks of this rank's
// host (rank = local rank), `cross` the ranks with the same local rank on every host. Both
// are full comms of their own (set only on transports that can split, i.e. MPI).
struct Topology {
  int hosts = 1;          // number of hosts
  int localRank = 0;      // rank inside this host
  int localSize = 1;      // ranks on this host
  bool even = true;       // every host has localSize ranks
  spcclComm* intra = nullptr;
  spcclComm* cross = nullptr;
  ~Topology();
};

// Per-state data of a hierarchical state: the inner state that runs the method on this
// rank's shard over the cross comm, and the stage buffers.
struct HierState;

// Resolves config->hierarchical for a state on `comm`: SPCCL_HIERARCHICAL (0|1) when unset,
// else on when the comm spans >1 host and some host has >1 rank. Refuses a forced mode the
// comm cannot run (device buffers, uneven hosts, no topology) with a message.
spcclResult_t resolveHierarchical(spcclConfig_t* config, const spcclComm* comm, const char* api);

// Whether a hierarchical state of `method` runs it on shards (payloads of slots or rounds), not
// flat with its payload allreduced in the stages (values on shared positions).
bool hierarchicalOnShards(const MethodOps& method);
bool hierarchicalOnShards(const spcclState& st);  // false for a flat state

// Finishes a hierarchical state whose common fields (comm, config, count, datatype, elemSize,
// method, residual; and on values, the method's setup) are set: on shards, creates the inner
// state; always, the stage buffers.
spcclResult_t hierarchicalSetup(spcclState* st, const char* api);

// recvbuff = the sum (or average) over every rank of sendbuff, in the three stages: the
// allreduce of a hierarchical state's payload or, when it runs dense, of its tensor (staging.h,
// stateAllReduce). count is at most what the state sized its stage buffers for.
spcclResult_t hierarchicalSum(const spcclState& st, const void* sendbuff, void* recvbuff, size_t count,
                              spcclRedOp_t op);

// spcclStateSetResidual of a hierarchical state: on shards a residual holds this rank's shard
// only (host sums of what it did not send) and is zero elsewhere; anything else there would be
// feedback no call ever sends, so it is refused (spcclInvalidArgument) rather than dropped.
spcclResult_t hierarchicalResidualCheck(const spcclState& st, const void* residual, const char* api);

// spcclSparseAllReduce of a hierarchical state on shards. On failure residual and step are unchanged.
// Avg averages inside the host, then across hosts; the residual then holds host means, so a
// state keeps the op of its first call until spcclStateReset (hierarchicalReset).
spcclResult_t hierarchicalAllReduce(const spcclInfo& info);
void hierarchicalReset(const spcclState& st);

// spcclStateGetInfo of a hierarchical state: the inner state's method fields, the bytes this
// rank sends inside its host and to other hosts (as a ring would), and both levels' rounds.
void hierarchicalDescribe(const spcclState& st, spcclStateInfo_t* info);

// Memory the hierarchical part of a state holds (inner workspace and stage buffers).
size_t hierarchicalFootprint(const spcclState& st);

}  // namespace spccl

#endif  // SPCCL_HIERARCHY_H_
