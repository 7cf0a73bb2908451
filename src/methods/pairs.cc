// SPDX-License-Identifier: Apache-2.0
//
// The (index, value) pair machinery of the top-k family; see pairs.h for the layout.

#include "pairs.h"

#include <string.h>

#include <algorithm>
#include <vector>

#include "checks.h"
#include "device.h"
#include "dispatch.h"
#include "feedback.h"
#include "staging.h"

namespace spccl {
namespace {

// The parts of a rank's block are 8-byte aligned (a wire format, not a workspace layout).
size_t align8(size_t bytes) { return alignUp(bytes, 8); }

// fp16/bf16 gathered blocks: out[i] = scale * (the sum of every list's values at i), added in
// fp32 and rounded once, as the header promises for half types. Adding rank by rank into
// `out` would round each partial sum to T, so two ranks averaging 40000 in fp16 would pass
// through 80000 = inf. Each block is sorted by index with padding last, so a merge of the
// lists (one cursor per list) meets every index once; it stays in bounds whatever the order.
template <typename T>
void mergeSortedLists(const PairLists& lists, typename AccumOf<T>::type scale, T* out) {
  using AccT = typename AccumOf<T>::type;
  std::vector<size_t> cursor(lists.nlists, 0);
  auto indexAt = [&](int l) {
    return cursor[l] < lists.npairs ? lists.indicesOf(l)[cursor[l]] : SPCCL_PAD_INDEX;
  };
  while (true) {
    uint32_t next = SPCCL_PAD_INDEX;
    for (int l = 0; l < lists.nlists; ++l) next = std::min(next, indexAt(l));
    if (next == SPCCL_PAD_INDEX) return;
    AccT sum = 0;
    for (int l = 0; l < lists.nlists; ++l)
      for (; indexAt(l) == next; ++cursor[l]) sum += toAcc(static_cast<const T*>(lists.valuesOf(l))[cursor[l]]);
    out[next] = fromAcc<T>(toAcc(out[next]) + sum * scale);  // out[next] is 0 unless a list was out of order
  }
}

// pairsCheck on the gathered blocks where the host can read them: the workspace itself, or
// the pinned copy they were staged through (MPI device comm). On an NCCL comm they never
// reach the host: the scatter kernels skip bad indices and flag them for the next call.
spcclResult_t checkGathered(const spcclState& st, const PairsWorkspace& ws, const char* api) {
  if (st.onDevice && !stagedThroughHost(st)) return spcclSuccess;
  char* host = st.onDevice ? hostMirror(st, ws.tail, st.comm->nranks * pairBlockBytes(st), api) : ws.tail;
  if (!host) return spcclInternalError;
  const PairLists gathered = {blockIndices(host), blockValues(st, host), pairsK(st), st.comm->nranks, pairBlockBytes(st)};
  return pairsCheck(st, gathered, api);
}

}  // namespace

size_t pairBlockBytes(const spcclState& st) { return align8(pairsK(st) * sizeof(uint32_t)) + align8(pairsK(st) * st.elemSize); }

void* blockValues(const spcclState& st, char* block) { return block + align8(pairsK(st) * sizeof(uint32_t)); }

size_t pairBytes(const spcclState& st, size_t npairs) { return saturatingMul(npairs, sizeof(uint32_t) + st.elemSize); }

PairsWorkspace pairsCarve(const spcclState& st, WorkspaceCarver& c) {
  PairsWorkspace ws = {};
  // A switched collective selects nothing, but spcclCompress still selects k pairs, which
  // takes the selection scratch; only the method's exchange tail is dropped.
  if (st.onDevice) {
    ws.deviceAcc = c.takeBytes(st.count * st.elemSize);
    ws.deviceScratch = c.takeBytes(device::topkScratchBytes(st.count));
    ws.deviceScatter = c.takeBytes(device::scatterScratchBytes(st.count, st.comm->nranks));
  } else if (methodState<PairsState>(st).exact) {
    const size_t cap = cpu::topKScratchCap(pairsK(st));
    ws.scratch.pos = c.take<uint32_t>(cap);
    ws.scratch.keys = c.takeBytes(cap * (st.elemSize > 4 ? 8 : 4));  // MagnitudeKeyOf
    ws.scratch.cap = cap;
  }
  ws.tail = static_cast<char*>(c.takeBytes(0));
  return ws;
}

void* collectiveAcc(const spcclInfo& info, const PairsWorkspace& ws) {
  return info.state->onDevice ? ws.deviceAcc : info.recvbuff;
}

PairsWorkspace pairsWorkspace(const spcclState& st) { return carveAt(st, st.workspace.ptr, pairsCarve); }

size_t pairsWorkspaceBytes(const spcclState& st, size_t tailBytes) {
  WorkspaceCarver c(nullptr);
  pairsCarve(st, c);
  if (!pairsDenseSwitched(st)) c.takeBytes(tailBytes);
  return c.bytes();
}

spcclResult_t pairsSetup(spcclState& st, size_t (*sparseWire)(const spcclState&), bool exact) {
  SPCCL_REQUIRE(st.count <= 0xFFFFFFFFull, spcclInvalidArgument,
                "spcclStateCreate : count %zu is too large for %s's 32-bit indices (count < 2^32)", st.count,
                st.method->name);
  PairsState& ps = methodState<PairsState>(st);
  ps.k = topkCount(st.count, st.config.density);
  ps.exact = exact;
  const size_t sparse = sparseWire(st), dense = denseWireBytes(st);
  ps.denseSwitched = st.config.denseSwitch && sparse > dense;
  if (ps.denseSwitched)
    INFO(kSubsysColl, "spcclStateCreate : %s would send %zu bytes per rank (k %zu of %zu), a dense allreduce %zu: "
         "running dense", st.method->name, sparse, ps.k, st.count, dense);
  return spcclSuccess;
}

void pairsDescribe(const spcclState& st, size_t (*sparseWire)(const spcclState&), size_t (*rounds)(int P),
                   spcclStateInfo_t* info) {
  info->selected = pairsK(st);
  info->denseSwitched = pairsDenseSwitched(st);
  info->methodWireBytes = sparseWire(st);
  info->rounds = rounds(st.comm->nranks);
}

size_t pairsAllGatherRounds(int P) { return ringAllGatherRounds(P); }

size_t pairsCompressedCount(const spcclState& st) { return pairsK(st); }

spcclResult_t pairsDense(const spcclInfo& info) {
  return denseWithFeedback(info, collectiveAcc(info, pairsWorkspace(*info.state)));  // in place on the host
}

spcclResult_t pairsCommitResidual(const spcclState& st, const void* acc, const uint32_t* indices, size_t npairs,
                                  spcclStream_t stream) {
  void* e = feedbackOut(st);
  if (!e) return spcclSuccess;
  if (st.onDevice)
    return device::residualCommit(st.datatype, e, acc, st.count, indices, npairs, stream);
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    cpu::residualCommit(static_cast<T*>(e), static_cast<const T*>(acc), st.count, indices, npairs);
    return spcclSuccess;
  });
}

spcclResult_t pairsCheck(const spcclState& st, const PairLists& lists, const char* api) {
  for (int l = 0; l < lists.nlists; ++l) {
    const uint32_t* idx = lists.indicesOf(l);
    const size_t bad = cpu::firstBadIndex(idx, lists.npairs, st.count, true);
    SPCCL_REQUIRE(bad == lists.npairs, spcclRemoteError,
                  "%s : pair %zu of list %d has index %u, outside [0, %zu) and not the padding index", api, bad, l,
                  idx[bad], st.count);
  }
  return spcclSuccess;
}

spcclResult_t pairsScatter(const spcclState& st, const PairLists& lists, double scale, void* recvbuff,
                           device::BadPairReport* report, spcclStream_t stream) {
  if (st.onDevice && lists.ascending)
    return device::scatterSortedLists(st.datatype, lists.indices, lists.values, lists.npairs, lists.nlists,
                                      lists.stride, scale, st.count, recvbuff, pairsWorkspace(st).deviceScatter,
                                      report, stream);
  if (st.onDevice) {
    SPCCL_REQUIRE(lists.nlists == 1, spcclInternalError, "pairsScatter : %d unsorted device lists", lists.nlists);
    return device::scatterAdd(st.datatype, lists.indices, lists.values, lists.npairs, scale, st.count, recvbuff,
                              report, stream);
  }
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    using AccT = typename AccumOf<T>::type;
    T* out = static_cast<T*>(recvbuff);
    memset(static_cast<void*>(out), 0, st.count * sizeof(T));
    if (sizeof(T) < sizeof(AccT) && lists.nlists > 1) {
      mergeSortedLists<T>(lists, (AccT)scale, out);
      return spcclSuccess;
    }
    for (int l = 0; l < lists.nlists; ++l)
      cpu::scatterAdd(lists.indicesOf(l), static_cast<const T*>(lists.valuesOf(l)), lists.npairs, out);
    if (scale != 1.0) cpu::scale(out, st.count, (AccT)scale);
    return spcclSuccess;
  });
}

spcclResult_t pairsCompress(const spcclInfo& info, PairSelectFn select, uint32_t* indices, void* values,
                            size_t* nvalues) {
  const spcclState& st = *info.state;
  SPCCL_REQUIRE(indices != nullptr, spcclInvalidArgument, "spcclCompress : indices argument is NULL (%s sends pairs)",
                st.method->name);
  const PairsWorkspace ws = pairsWorkspace(st);
  // acc in place in the residual on the host: nothing after the selection can fail. Without
  // feedback the residual is scratch here, and zero again after.
  void* acc = st.onDevice ? ws.deviceAcc : st.residual.ptr;
  SPCCLCHECK(select(st, info.sendbuff, acc, ws, indices, values, info.stream));
  SPCCLCHECK(pairsCommitResidual(st, acc, indices, pairsK(st), info.stream));
  if (!feedbackOn(st) && !st.onDevice) memset(st.residual.ptr, 0, st.residual.bytes);
  *nvalues = pairsK(st);
  return spcclSuccess;
}

spcclResult_t pairsDecompress(const spcclState& st, const void* values, const uint32_t* indices, size_t nvalues,
                              unsigned long long, double scale, void* recvbuff, spcclStream_t stream) {
  if (nvalues > 0)
    SPCCL_REQUIRE(indices != nullptr, spcclInvalidArgument, "spcclDecompress : indices argument is NULL (%s pairs)",
                  st.method->name);
  const PairLists list = {indices, values, nvalues, 1, 0};
  if (!st.onDevice) SPCCLCHECK(pairsCheck(st, list, "spcclDecompress"));
  return pairsScatter(st, list, scale, recvbuff, badPairReport(st, kDecompressPairs), stream);
}

size_t pairsAllGatherTailBytes(const spcclState& st) { return saturatingMul(st.comm->nranks, pairBlockBytes(st)); }

size_t pairsAllGatherWire(const spcclState& st) {
  return ringAllGatherBytes(st.comm->nranks, pairBytes(st, pairsK(st)));
}

spcclResult_t pairsAllGather(const spcclInfo& info, PairSelectFn select) {
  const spcclState& st = *info.state;
  if (pairsDenseSwitched(st)) return pairsDense(info);
  const int P = info.comm->nranks;
  const size_t block = pairBlockBytes(st);
  const PairsWorkspace ws = pairsWorkspace(st);
  char* own = ws.tail + info.comm->rank * block;  // gathered in place
  void* acc = collectiveAcc(info, ws);
  SPCCLCHECK(select(st, info.sendbuff, acc, ws, blockIndices(own), blockValues(st, own), info.stream));
  SPCCLCHECK(stateAllGather(st, own, ws.tail, block, info.stream));
  SPCCLCHECK(checkGathered(st, ws, info.opName));
  // Commit: nothing below can fail on data.
  SPCCLCHECK(pairsCommitResidual(st, acc, blockIndices(own), pairsK(st), info.stream));
  const PairLists gathered = {blockIndices(ws.tail), blockValues(st, ws.tail), pairsK(st), P, block, true};
  return pairsScatter(st, gathered, info.op == spcclAvg ? 1.0 / P : 1.0, info.recvbuff,
                      badPairReport(st, kCollectivePairs), info.stream);
}

}  // namespace spccl
