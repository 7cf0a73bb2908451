/* SPDX-License-Identifier: Apache-2.0
 *
 * The (index, value) pair machinery shared by the top-k family (topk.cc, gaussiank.cc,
 * gtopk.cc): workspace layout, the dense switch, the residual commit, scatter-add with its
 * bounds check, and the compress / decompress entry points.
 *
 * A rank's payload is a block of k slots: k 32-bit indices, then k values of the tensor's
 * type (each part 8-byte aligned), sorted by index; unused slots carry SPCCL_PAD_INDEX and 0.
 *
 * Where acc = g + e is formed (host states): in recvbuff, which the result overwrites
 * anyway, for a collective; in the residual itself for spcclCompress, which cannot fail
 * after its selection. So the state holds no second count-sized buffer, and a collective
 * writes the residual only after its last failable step: a failed call leaves it as it was
 * (recvbuff, and so an in-place call's sendbuff, then holds g + e).
 *
 * Workspace, allocated once at spcclStateCreate, where the state's buffers live:
 *   scratch  exact selections only: cpu::topKScratchCap(k) listed candidates (O(k))
 *   tail     the method's own part (the gathered blocks, gTop-k's exchange buffers)
 * A device state has, instead of the scratch, acc (count elements: its MPI staging mirror
 * carries a switched state's dense allreduce from there) and the device selections' scratch.
 *
 * Device states (TOPK, GAUSSIANK) run every pass as a kernel behind device.h, stream-ordered,
 * on the same fixed k slots, so an NCCL comm needs no host round trip. The device cannot
 * fail the call with a bad index without one: on an NCCL comm the kernels skip it and flag it
 * in pinned memory, and the state's next call returns spcclRemoteError (device.h); on an MPI
 * device comm the gathered pairs are checked in the pinned host copy they pass through.
 */
#ifndef SPCCL_METHODS_PAIRS_H_
#define SPCCL_METHODS_PAIRS_H_

#include <stddef.h>
#include <stdint.h>

#include "cpu/topk_kernels.h"
#include "method.h"
#include "workspace.h"

namespace spccl {

// The family's private state: k = min(n, max(1, ceil(density * n))) slots per rank, and
// whether the sparse payload would cost more than a dense allreduce, so the collective runs
// dense instead (config.denseSwitch).
struct PairsState {
  size_t k;
  bool denseSwitched;
  bool exact;  // the method selects by exact top-k (TOPK, GTOPK): its workspace has the scratch
};
inline size_t pairsK(const spcclState& st) { return methodState<PairsState>(st).k; }
inline bool pairsDenseSwitched(const spcclState& st) { return methodState<PairsState>(st).denseSwitched; }

struct PairsWorkspace {
  cpu::TopKScratch scratch;  // host states with exact selection
  void* deviceAcc;           // device states: count elements
  void* deviceScratch;       // device states: device::topkScratchBytes(count)
  void* deviceScatter;       // device states: device::scatterScratchBytes(count, nranks)
  char* tail;
};

// The family's part of the workspace (the selection scratch, device acc) cut from c; the
// method's tail starts at c's next part.
PairsWorkspace pairsCarve(const spcclState& st, WorkspaceCarver& c);
PairsWorkspace pairsWorkspace(const spcclState& st);
size_t pairsWorkspaceBytes(const spcclState& st, size_t tailBytes);

// Bytes of one rank's block of k slots, and its two parts.
size_t pairBlockBytes(const spcclState& st);
inline uint32_t* blockIndices(char* block) { return reinterpret_cast<uint32_t*>(block); }
void* blockValues(const spcclState& st, char* block);

// Bytes of k (index, value) pairs without alignment padding.
size_t pairBytes(const spcclState& st, size_t npairs);

// Sets k, refuses count >= 2^32 (indices are 32-bit), and decides the dense switch: with
// config.denseSwitch, a method whose sparseWire bytes exceed a dense allreduce's runs dense
// (logged at INFO with both numbers; PairsState::denseSwitched records it). exact: the
// method selects with selectTopK.
spcclResult_t pairsSetup(spcclState& st, size_t (*sparseWire)(const spcclState&), bool exact);
// spcclStateGetInfo's fields of a pairs method: k, sparseWire, its rounds at P ranks, the switch.
void pairsDescribe(const spcclState& st, size_t (*sparseWire)(const spcclState&), size_t (*rounds)(int P),
                   spcclStateInfo_t* info);
// Message rounds of the allgather of TOPK and GAUSSIANK.
size_t pairsAllGatherRounds(int P);

// A selection: writes acc = g + e into acc (count elements; it may be feedbackIn(st) itself)
// and k slots, sorted by index, to indices/values. Never fails on data; returns a code only
// for an unsupported type (or a CUDA failure). Device states enqueue it on `stream`; host
// states ignore the stream.
typedef spcclResult_t (*PairSelectFn)(const spcclState& st, const void* sendbuff, void* acc, const PairsWorkspace& ws,
                                      uint32_t* indices, void* values, spcclStream_t stream);
// Exact top-k (topk.cc): used by TOPK and by gTop-k's local step.
spcclResult_t selectTopK(const spcclState& st, const void* sendbuff, void* acc, const PairsWorkspace& ws,
                         uint32_t* indices, void* values, spcclStream_t stream);

// Where a collective forms acc: recvbuff on the host, the workspace on a device.
void* collectiveAcc(const spcclInfo& info, const PairsWorkspace& ws);

// The sparse allreduce of TOPK and GAUSSIANK: select into this rank's block of the gathered
// buffer (tail: nranks blocks), one allgather, check every index, commit the residual,
// scatter-add every rank's block into recvbuff (avg: times 1/P). Runs pairsDense when switched.
spcclResult_t pairsAllGather(const spcclInfo& info, PairSelectFn select);
size_t pairsAllGatherTailBytes(const spcclState& st);
// Bytes a rank sends in a ring allgather of k slots per rank.
size_t pairsAllGatherWire(const spcclState& st);

// The dense path of a switched state: allreduce of acc, residual cleared.
spcclResult_t pairsDense(const spcclInfo& info);

// Residual = acc with the sent positions cleared (feedback EF; nothing to do for NONE). The
// collective's last step before its output: it reads acc, which the output overwrites.
spcclResult_t pairsCommitResidual(const spcclState& st, const void* acc, const uint32_t* indices, size_t npairs,
                                  spcclStream_t stream);

// Pair lists scatter-added into recvbuff, zero elsewhere, then times scale: nlists lists of
// npairs pairs, list l's indices and values `stride` bytes after list l-1's (one rank's block
// after another's). Every index is checked first: one that is neither padding nor below
// count is spcclRemoteError (api names the caller) and recvbuff is left untouched. The check
// reads host memory: device states skip it in pairsScatter (the kernels skip bad pairs and
// write them to `report`, which a later call reports, enqueue.h).
struct PairLists {
  const uint32_t* indices;
  const void* values;
  size_t npairs;
  int nlists;
  size_t stride;
  // Every list ascending with distinct indices, as spccl's own selections write them (the
  // device then adds all lists in one pass); false for a caller's lists.
  bool ascending = false;
  const uint32_t* indicesOf(int l) const {
    return reinterpret_cast<const uint32_t*>(reinterpret_cast<const char*>(indices) + l * stride);
  }
  const void* valuesOf(int l) const { return static_cast<const char*>(values) + l * stride; }
};
spcclResult_t pairsCheck(const spcclState& st, const PairLists& lists, const char* api);
spcclResult_t pairsScatter(const spcclState& st, const PairLists& lists, double scale, void* recvbuff,
                           device::BadPairReport* report, spcclStream_t stream);

// MethodOps entries shared by the family. Compression without communication returns this
// rank's k slots (gTop-k: its local top-k, since the global set needs the peers), whatever
// the dense switch decided: the switch concerns the collective's own wire.
spcclResult_t pairsCompress(const spcclInfo& info, PairSelectFn select, uint32_t* indices, void* values,
                            size_t* nvalues);
spcclResult_t pairsDecompress(const spcclState& st, const void* values, const uint32_t* indices, size_t nvalues,
                              unsigned long long step, double scale, void* recvbuff, spcclStream_t stream);
size_t pairsCompressedCount(const spcclState& st);

}  // namespace spccl

#endif  // SPCCL_METHODS_PAIRS_H_
