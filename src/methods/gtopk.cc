// SPDX-License-Identifier: Apache-2.0
//
// GTOPK: global top-k by a recursive-doubling merge tree, after Shi et al., "Understanding
// Top-k Sparsification in Distributed Deep Learning" (2019), gTop-k.
//
// First all ranks agree on one global index set S of size k, then they reduce exactly on it.
//  1. Each rank takes its local exact top-k of acc = g + e (topk.cc): k pairs sorted by index.
//  2. Let p2 be the largest power of two <= P. Ranks r >= p2 fold: they hand their pairs to
//     r - p2, which merges them into its own.
//  3. log2(p2) rounds among ranks < p2: exchange the current k pairs with rank ^ 2^round,
//     merge (equal indices add), keep the k of largest magnitude (lower index on ties).
//     Both partners merge the same two lists, and a + b == b + a, so they end each round
//     with the same list; after the last round all of them hold the same S.
//  4. Ranks r < P - p2 send S back to r + p2.
//  5. One allreduce of the k values acc[S]: out[S] = sum_r acc_r[S] exactly, zero elsewhere;
//     each rank's residual is acc with S cleared, so a rank's values that did not make S go
//     back to its residual and nothing is lost.
// Wire per rank: (log2 p2 + fold) * k * (4 + sizeof(T)) for the agreement plus a ring
// allreduce of k values, 2 (P-1)/P * k * sizeof(T); dense when that exceeds a dense
// allreduce's (config.denseSwitch, pairs.cc). The merged values only steer the agreement.
// Invariants: all ranks produce identical output; c + e_new == g + e_old on every
// coordinate; the residual changes only after every exchange and the allreduce succeeded.

#include "checks.h"
#include "dispatch.h"
#include "pairs.h"

namespace spccl {
namespace {

// The tail of the workspace: the current pairs, the partner's pairs, and the merge output
// (up to 2k pairs) with the positions kept from it.
struct Tail {
  char* cur;
  char* partner;
  uint32_t* mergedIdx;
  void* mergedVal;
  uint32_t* kept;
};

Tail carveTail(const spcclState& st, WorkspaceCarver& c) {
  const size_t k = pairsK(st);
  Tail t;
  t.cur = static_cast<char*>(c.takeBytes(pairBlockBytes(st)));
  t.partner = static_cast<char*>(c.takeBytes(pairBlockBytes(st)));
  t.mergedIdx = c.take<uint32_t>(2 * k);
  t.mergedVal = c.takeBytes(2 * k * st.elemSize);
  t.kept = c.take<uint32_t>(k);
  return t;
}

size_t tailBytes(const spcclState& st) { return carvedBytes(st, carveTail); }
Tail tailOf(const spcclState& st, const PairsWorkspace& ws) { return carveAt(st, ws.tail, carveTail); }

int largestPowerOfTwo(int P) {
  int p2 = 1;
  while (p2 <= P / 2) p2 *= 2;  // p2 * 2 would overflow for P >= 2^30
  return p2;
}

// Exchanges of k pairs a rank sends in the agreement: one per doubling round, and one fold.
size_t agreementRounds(int P) {
  const int p2 = largestPowerOfTwo(P);
  size_t rounds = P > p2 ? 1 : 0;
  for (int d = 1; d < p2; d <<= 1) rounds++;
  return rounds;
}

size_t sparseWire(const spcclState& st) {
  const int P = st.comm->nranks;
  return saturatingAdd(saturatingMul(agreementRounds(P), pairBytes(st, pairsK(st))),
                       ringAllReduceBytes(P, saturatingMul(pairsK(st), st.elemSize)));
}

// The agreement's rounds (a fold costs two: there and back) and the ring allreduce's.
size_t rounds(int P) { return agreementRounds(P) + (P > largestPowerOfTwo(P) ? 1 : 0) + ringAllReduceRounds(P); }

// cur = the k of largest magnitude of (cur merged with partner), sorted by index.
spcclResult_t mergeKeep(const spcclState& st, const PairsWorkspace& ws, const Tail& t) {
  return withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    T* curVal = static_cast<T*>(blockValues(st, t.cur));
    T* mergedVal = static_cast<T*>(t.mergedVal);
    uint32_t* curIdx = blockIndices(t.cur);
    const size_t m = cpu::mergePairs(curIdx, curVal, pairsK(st), blockIndices(t.partner),
                                     static_cast<const T*>(blockValues(st, t.partner)), pairsK(st), t.mergedIdx, mergedVal);
    cpu::topK(mergedVal, m, pairsK(st), ws.scratch, t.kept);  // m >= k: each list holds k pairs
    for (size_t j = 0; j < pairsK(st); ++j) {
      curIdx[j] = t.mergedIdx[t.kept[j]];
      curVal[j] = mergedVal[t.kept[j]];
    }
    return spcclSuccess;
  });
}

// Steps 2-4: every rank ends with the same S in t.cur.
spcclResult_t agree(const spcclInfo& info, const PairsWorkspace& ws, const Tail& t) {
  const spcclState& st = *info.state;
  Transport& tr = *info.comm->transport;
  const int P = info.comm->nranks, rank = info.comm->rank, p2 = largestPowerOfTwo(P);
  const size_t B = pairBlockBytes(st);
  // Zero-byte messages make each fold a matched pair of sendRecv calls on both sides.
  if (rank >= p2) {
    SPCCLCHECK(tr.sendRecv(t.cur, B, rank - p2, nullptr, 0, rank - p2, info.stream));
    return tr.sendRecv(nullptr, 0, rank - p2, t.cur, B, rank - p2, info.stream);
  }
  const bool folds = rank + p2 < P;
  if (folds) {
    SPCCLCHECK(tr.sendRecv(nullptr, 0, rank + p2, t.partner, B, rank + p2, info.stream));
    SPCCLCHECK(mergeKeep(st, ws, t));
  }
  for (int d = 1; d < p2; d <<= 1) {
    SPCCLCHECK(tr.sendRecv(t.cur, B, rank ^ d, t.partner, B, rank ^ d, info.stream));
    SPCCLCHECK(mergeKeep(st, ws, t));
  }
  if (folds) SPCCLCHECK(tr.sendRecv(t.cur, B, rank + p2, nullptr, 0, rank + p2, info.stream));
  return spcclSuccess;
}

spcclResult_t sparseAllReduce(const spcclInfo& info) {
  const spcclState& st = *info.state;
  if (pairsDenseSwitched(st)) return pairsDense(info);
  const PairsWorkspace ws = pairsWorkspace(st);
  const Tail t = tailOf(st, ws);
  void* accBuff = collectiveAcc(info, ws);
  SPCCLCHECK(selectTopK(st, info.sendbuff, accBuff, ws, blockIndices(t.cur), blockValues(st, t.cur), info.stream));
  SPCCLCHECK(agree(info, ws, t));
  const uint32_t* S = blockIndices(t.cur);
  const size_t bad = cpu::firstBadIndex(S, pairsK(st), st.count, false);
  SPCCL_REQUIRE(bad == pairsK(st), spcclRemoteError, "%s : gtopk agreed on index %u, outside [0, %zu)", info.opName,
                S[bad], st.count);
  // acc[S] in the partner block's value slots, which the agreement no longer needs.
  void* sums = blockValues(st, t.partner);
  SPCCLCHECK(withType(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    const T* acc = static_cast<const T*>(accBuff);
    for (size_t j = 0; j < pairsK(st); ++j) static_cast<T*>(sums)[j] = acc[S[j]];
    return spcclSuccess;
  }));
  SPCCLCHECK(info.comm->transport->allReduce(sums, sums, pairsK(st), st.datatype, info.op, info.stream));
  // Commit: nothing below can fail.
  SPCCLCHECK(pairsCommitResidual(st, accBuff, S, pairsK(st), info.stream));
  return pairsScatter(st, PairLists{S, sums, pairsK(st), 1, 0}, 1.0, info.recvbuff,
                      badPairReport(st, kCollectivePairs), info.stream);
}

spcclResult_t setup(spcclState& st) {
  // Every merge round's output feeds the next round's exchange, and the merge and the
  // agreed-index check are host passes with no device launcher: on device buffers each round
  // would be a host round trip, which an NCCL comm must not take (DESIGN.md, API).
  SPCCL_REQUIRE(!st.onDevice, spcclInvalidUsage,
                "spcclStateCreate : gtopk does not run on device buffers (its merge rounds need the host; use topk or "
                "gaussiank)");
  return pairsSetup(st, sparseWire, true);
}
size_t workspaceBytes(const spcclState& st) { return pairsWorkspaceBytes(st, tailBytes(st)); }
void describe(const spcclState& st, spcclStateInfo_t* info) { pairsDescribe(st, sparseWire, rounds, info); }

spcclResult_t compress(const spcclInfo& info, void* values, uint32_t* indices, size_t* nvalues) {
  return pairsCompress(info, selectTopK, indices, values, nvalues);
}

}  // namespace

// Rounds of its own (the merge tree); TOPK's passes and selection (merges are O(k log P)).
extern const MethodOps kGTopKMethod = {spcclMethodGTopK, "gtopk", {spcclPayloadRounds, 6, 1}, setup, workspaceBytes,
                                       pairsCompressedCount,
                                       describe, sparseAllReduce, compress, pairsDecompress, nullptr, nullptr};

}  // namespace spccl
