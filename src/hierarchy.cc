// SPDX-License-Identifier: Apache-2.0
//
// Hierarchical mode (see hierarchy.h): a dense reduce-scatter inside the host, then across
// hosts either the state's method on this rank's shard, through an inner state on the cross
// comm, or (values on shared positions) a dense allreduce of the shard of the payload; a dense
// allgather inside the host. Host buffers only.
//
// The host stages are pairwise exchanges of shards (the transport's sendRecv) and spccl's own
// sum, not the transport's reduce-scatter and allgather: Open MPI's non-blocking
// reduce-scatter (libnbc, which every MPI transport call uses so SPCCL_TIMEOUT_MS can bound
// it) reduces the whole tensor onto local rank 0 in a binomial tree and then scatters it,
// 3-4x the time of a pairwise exchange of the shards on shared memory; the exchanges also
// need no padded copy of a tensor whose count the host's ranks do not divide. The method
// writes its shard straight into recvbuff, from where the allgather sends it.

#include "hierarchy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <type_traits>
#include <vector>

#include "checks.h"
#include "comm.h"
#include "debug.h"
#include "dispatch.h"
#include "dtype_core.h"
#include "method.h"
#include "param.h"
#include "state.h"

namespace spccl {

namespace {

// A buffer of `count` elements cut into one shard per local rank: local rank k's shard is
// [first(k), first(k) + length(k)), the last one possibly shorter.
struct Shards {
  size_t count, shard;
  Shards(size_t n, int L) : count(n), shard((n + L - 1) / L) {}
  size_t first(int k) const { return std::min((size_t)k * shard, count); }
  size_t length(int k) const { return std::min(shard, count - first(k)); }
};

}  // namespace

struct HierState {
  std::shared_ptr<Topology> topo;  // keeps the intra and cross comms alive
  // The method runs on this rank's shard of the tensor (payloads of slots or rounds). Else its
  // payload is values on shared positions: the method runs flat, with its flat residual, and
  // only the allreduce of its payload runs in the stages (hierarchicalSum).
  bool onShards = true;
  spcclState* inner = nullptr;     // onShards: the method on [offset, offset + mine) over topo->cross
  Shards tensor{0, 1};
  size_t offset = 0, mine = 0;     // onShards: this rank's shard of the tensor
  size_t capacity = 0;             // elements of the largest buffer the stages take
  // One block: the shard as each other rank of the host sent it (localSize - 1 slots, in local
  // rank order; the host sum is written over the first) | onShards: the shard's residual, saved.
  char* buffers = nullptr;
  size_t bufferBytes = 0;
  char *slots = nullptr, *saved = nullptr;
  // The host sum's inputs (one per local rank) and its tree of partial sums, sized at setup.
  std::vector<const void*> sources;
  std::vector<double> tree;
  // onShards: the op of the calls since creation or the last reset: the residual holds host
  // sums (spcclSum) or host means (spcclAvg) of what its shard did not send, so it takes one op.
  int op = -1;

  ~HierState() {
    if (inner) {
      inner->residual = Buffer();  // a slice of the outer state's residual, not the inner's own
      spcclStateDestroy(inner);
    }
    // A timed-out stage may still be written by a late peer: leave its buffers to the process.
    const bool timedOut = topo && (topo->intra->brokenBy.load() == spcclTimeout ||
                                   topo->cross->brokenBy.load() == spcclTimeout);
    if (!timedOut) free(buffers);
  }
};

Topology::~Topology() {
  delete intra;
  delete cross;
}

namespace {

// The stages are blocking exchanges, so a hierarchical state has no reduction in flight to
// overlap its residual pass with: config.pipeline is turned off (and said).
spcclResult_t pipelineOff(spcclConfig_t* c, const char* api) {
  if (c->hierarchical && c->pipeline) {
    INFO(kSubsysInit, "%s : pipeline off: a hierarchical state's stages are blocking", api);
    c->pipeline = 0;
  }
  return spcclSuccess;
}

}  // namespace

spcclResult_t resolveHierarchical(spcclConfig_t* c, const spcclComm* comm, const char* api) {
  if (c->hierarchical == SPCCL_CONFIG_UNDEF_INT) {
    long long fromEnv = -1;  // unset: auto
    SPCCLCHECK(envInt("SPCCL_HIERARCHICAL", 0, 1, -1, &fromEnv, api));
    c->hierarchical = (int)fromEnv;
  } else {
    SPCCL_REQUIRE(c->hierarchical == 0 || c->hierarchical == 1, spcclInvalidArgument,
                  "%s : hierarchical %d is not 0 or 1 (leave it unset: on when the comm spans several hosts)", api,
                  c->hierarchical);
  }
  const Topology* t = comm->topology.get();
  const bool spans = t && t->intra && t->hosts > 1 && t->localSize > 1;
  // The inner state's residual is a slice of the outer one (hierarchicalSetup), which has no
  // room for feedback a method keeps after its residual (1-bit's server residual).
  const MethodOps* method = methodOps(c->method);
  const bool extraFeedback = method && method->residualExtra;
  if (c->hierarchical == -1) {  // auto
    c->hierarchical = spans && t->even && !comm->onDevice && !extraFeedback;
    if (spans && !c->hierarchical)
      INFO(kSubsysInit, "%s : flat, not hierarchical: %s", api,
           comm->onDevice   ? "device buffers"
           : extraFeedback ? "the method keeps feedback beyond its residual"
                           : "hosts have different numbers of ranks");
    return pipelineOff(c, api);
  }
  if (c->hierarchical == 0) return spcclSuccess;
  SPCCL_REQUIRE(!extraFeedback, spcclInvalidUsage,
                "%s : method %s keeps feedback beyond its residual (a server residual), which hierarchical mode "
                "cannot shard; set hierarchical 0",
                api, method->name);
  SPCCL_REQUIRE(!comm->onDevice, spcclInvalidUsage,
                "%s : hierarchical mode runs on host buffers only (this comm has device buffers); set hierarchical 0",
                api);
  SPCCL_REQUIRE(t && t->intra && t->cross, spcclInvalidUsage,
                "%s : hierarchical mode needs an MPI comm (its hosts are found with MPI_Comm_split_type)", api);
  SPCCL_REQUIRE(t->even, spcclInvalidUsage,
                "%s : hierarchical mode needs the same number of ranks on every host (this host has %d); set "
                "hierarchical 0 for uneven hosts",
                api, t->localSize);
  return pipelineOff(c, api);
}

bool hierarchicalOnShards(const MethodOps& method) { return method.facts.payload != spcclPayloadValues; }

spcclResult_t hierarchicalSetup(spcclState* st, const char* api) {
  auto h = std::make_shared<HierState>();
  h->topo = st->comm->topology;
  const Topology& t = *h->topo;
  const size_t n = st->count, L = (size_t)t.localSize, elem = st->elemSize;
  h->onShards = hierarchicalOnShards(*st->method);
  h->tensor = Shards(n, (int)L);
  h->offset = h->tensor.first(t.localRank);
  h->mine = h->tensor.length(t.localRank);
  // Values on shared positions: the stages take the method's payload, or the whole tensor when
  // the state may run dense (its dense switch, auto).
  const bool mayRunDense = st->config.denseSwitch || st->config.autoSelect;
  h->capacity = h->onShards || mayRunDense ? n : st->method->compressedCount(*st);
  const size_t shardBytes = Shards(h->capacity, (int)L).shard * elem;
  h->bufferBytes = (h->onShards ? L : L - 1) * shardBytes;  // L - 1 slots (and the saved residual)
  h->buffers = h->bufferBytes ? static_cast<char*>(calloc(1, h->bufferBytes)) : nullptr;
  SPCCL_REQUIRE(h->buffers || !h->bufferBytes, spcclSystemError, "%s : failed to allocate %zu bytes of host memory",
                api, h->bufferBytes);
  h->slots = h->buffers;
  h->saved = h->onShards ? h->slots + (L - 1) * shardBytes : nullptr;
  h->sources.resize(L);
  h->tree.resize(L);
  if (!h->onShards) {
    INFO(kSubsysInit, "%s : hierarchical %s: its payload (values on shared positions) is allreduced inside the "
         "host, then across %d hosts", api, st->method->name, t.hosts);
    st->hier = std::move(h);
    return spcclSuccess;
  }
  if (h->mine > 0) {
    // The method, flat, on this rank's shard across hosts; no double-buffered residual.
    spcclConfig_t inner = st->config;
    inner.hierarchical = 0;
    inner.pipeline = 0;
    SPCCLCHECK(spcclStateCreate(&h->inner, t.cross, &inner, h->mine, st->datatype));
    // The inner residual is this shard's slice of the state's residual, so the state keeps
    // one count-element residual (spcclStateGetResidual) and conservation holds per shard.
    free(h->inner->residual.ptr);
    h->inner->residual.ptr = static_cast<char*>(st->residual.ptr) + h->offset * elem;
    // Written through the outer state too (its spcclStateSetResidual, a caller's pointer):
    // the inner state never knows its residual empty, it reads it (state.h, residualEmptyAtStep).
    h->inner->residualShared = true;
  }
  INFO(kSubsysInit, "%s : hierarchical %s: local rank %d of %d owns [%zu, %zu) across %d hosts", api,
       st->method->name, t.localRank, t.localSize, h->offset, h->offset + h->mine, t.hosts);
  st->hier = std::move(h);
  return spcclSuccess;
}

namespace {

// Messages of at most this many bytes (MPI counts are int).
constexpr size_t kMaxMessage = size_t(1) << 30;

// Round d of a pairwise exchange inside the host: this rank sends `sendBytes` from `send` to
// local rank to = l + d and receives `recvBytes` into `recv` from from = l - d (mod L). Both
// sides cut the bytes into the same pieces: one message per kMaxMessage of the padded shard.
spcclResult_t exchange(Transport& intra, const HierState& h, const Shards& s, int d, const char* send,
                       size_t sendBytes, char* recv, size_t recvBytes, size_t elem) {
  const int L = h.topo->localSize, l = h.topo->localRank;
  const int to = (l + d) % L, from = (l - d + L) % L;
  const size_t pieces = std::max<size_t>(1, (s.shard * elem + kMaxMessage - 1) / kMaxMessage);
  for (size_t p = 0; p < pieces; ++p) {
    const size_t at = p * kMaxMessage;
    const size_t out = sendBytes > at ? std::min(kMaxMessage, sendBytes - at) : 0;
    const size_t in = recvBytes > at ? std::min(kMaxMessage, recvBytes - at) : 0;
    SPCCLCHECK(intra.sendRecv(send + (out ? at : 0), out, to, recv + (in ? at : 0), in, from, nullptr));
  }
  return spcclSuccess;
}

// dst = the host's sum (op Avg: mean) of sources[0..L) by the MPI transport's rule (DESIGN.md,
// Half precision): each addition rounded to T; an fp16/bf16 mean summed in fp32 and divided
// before its one rounding. The additions form the binomial tree of Open MPI's reduce-scatter,
// which these stages replace: ((x0 + x1) + (x2 + x3)) + ..., so results stay bit for bit what
// they were. dst may be a source (element by element). tree: room for L doubles.
template <typename V, typename Add>
V treeSum(V* v, int L, Add add) {
  for (int step = 1; step < L; step *= 2)
    for (int k = 0; k + step < L; k += 2 * step) v[k] = add(v[k], v[k + step]);
  return v[0];
}

template <typename T>
void hostSum(T* dst, const void* const* sources, void* tree, int L, size_t len, spcclRedOp_t op) {
  using AccT = typename AccumOf<T>::type;
  constexpr bool half = !std::is_same<T, AccT>::value;
  static_assert(sizeof(AccT) <= sizeof(double) && sizeof(T) <= sizeof(double), "tree slots hold a double");
  auto src = [sources](int k) { return static_cast<const T*>(sources[k]); };
  const AccT inv = AccT(1) / AccT(L);
  if (half && op == spcclAvg) {
    AccT* v = static_cast<AccT*>(tree);
    for (size_t i = 0; i < len; ++i) {
      for (int k = 0; k < L; ++k) v[k] = toAcc(src(k)[i]);
      dst[i] = fromAcc<T>(treeSum(v, L, [](AccT a, AccT b) { return a + b; }) * inv);
    }
    return;
  }
  if (L == 2) {  // the common host: one pass the compiler vectorizes
    const T *a = src(0), *b = src(1);
    for (size_t i = 0; i < len; ++i) dst[i] = addRounded(a[i], b[i]);
  } else {
    T* v = static_cast<T*>(tree);
    for (size_t i = 0; i < len; ++i) {
      for (int k = 0; k < L; ++k) v[k] = src(k)[i];
      dst[i] = treeSum(v, L, [](T a, T b) { return addRounded(a, b); });
    }
  }
  if (op == spcclAvg)
    for (size_t i = 0; i < len; ++i) dst[i] = scaleRounded(dst[i], inv);
}

// Stage 1: the host's sum of this rank's shard of `send` (cut as `s`), by pairwise exchanges
// (round d: the shard of local rank l + d to it, this rank's shard from local rank l - d),
// summed over the first slot. Sets *sum to it (to the input itself on a host of one rank).
spcclResult_t reduceInHost(HierState& h, const Shards& s, const void* sendbuff, spcclDataType_t datatype,
                           spcclRedOp_t op, const void** sum) {
  const int L = h.topo->localSize, l = h.topo->localRank;
  const size_t elem = dataTypeSize(datatype), slotBytes = s.shard * elem;
  const size_t offset = s.first(l), mine = s.length(l);
  const char* send = static_cast<const char*>(sendbuff);
  Transport& intra = *h.topo->intra->transport;
  // Local rank k's copy of this shard: slot k (k < l) or k - 1 (k > l).
  for (int d = 1; d < L; ++d) {
    const int to = (l + d) % L, from = (l - d + L) % L;
    char* slot = h.slots + (size_t)(from < l ? from : from - 1) * slotBytes;
    SPCCLCHECK(exchange(intra, h, s, d, send + s.first(to) * elem, s.length(to) * elem, slot, mine * elem, elem));
  }
  *sum = send + offset * elem;
  if (L == 1 || mine == 0) return spcclSuccess;
  for (int k = 0; k < L; ++k)
    h.sources[k] = k == l ? send + offset * elem : h.slots + (size_t)(k < l ? k : k - 1) * slotBytes;
  withStorage(datatype, [&](auto tag) {
    using T = decltype(tag);
    hostSum(reinterpret_cast<T*>(h.slots), h.sources.data(), h.tree.data(), L, mine, op);
  });
  *sum = h.slots;
  return spcclSuccess;
}

// Stage 2: the method on this rank's shard, written to its place in recvbuff; on failure the
// shard's residual is restored.
spcclResult_t crossHosts(const spcclInfo& info, HierState& h, const void* sum) {
  if (h.mine == 0) return spcclSuccess;
  spcclState& inner = *h.inner;
  const size_t bytes = h.mine * inner.elemSize;
  memcpy(h.saved, inner.residual.ptr, bytes);
  inner.step = info.state->step;  // follows the outer step (spcclStateReset included)
  spcclInfo shard = info;
  shard.sendbuff = sum;
  shard.recvbuff = static_cast<char*>(info.recvbuff) + h.offset * inner.elemSize;
  shard.count = h.mine;
  // Avg: the host means averaged over the hosts, which is the mean over every rank (hosts are
  // even); each stage divides before its one rounding, so no half-type sum overflows.
  shard.state = &inner;
  shard.comm = h.topo->cross;
  const spcclResult_t res = inner.method->sparseAllReduce(shard);
  if (res != spcclSuccess) memcpy(inner.residual.ptr, h.saved, bytes);
  return res;
}

// Stage 3: every shard of the host into `out`, by pairwise exchanges from its place there.
spcclResult_t gatherInHost(HierState& h, const Shards& s, void* recvbuff, size_t elem) {
  const int L = h.topo->localSize, l = h.topo->localRank;
  char* out = static_cast<char*>(recvbuff);
  Transport& intra = *h.topo->intra->transport;
  for (int d = 1; d < L; ++d) {
    const int from = (l - d + L) % L;
    SPCCLCHECK(exchange(intra, h, s, d, out + s.first(l) * elem, s.length(l) * elem, out + s.first(from) * elem,
                        s.length(from) * elem, elem));
  }
  return spcclSuccess;
}

}  // namespace

spcclResult_t hierarchicalAllReduce(const spcclInfo& info) {
  HierState& h = *info.state->hier;
  SPCCL_REQUIRE(h.op == -1 || h.op == info.op, spcclInvalidUsage,
                "%s : op %s on a hierarchical state whose residual holds host %s of earlier calls; one state takes "
                "one op (spcclStateReset lets it change)",
                info.opName, opName(info.op), h.op == spcclAvg ? "means" : "sums");
  // Stage 1 averages over the host for Avg (fp16/bf16 summed in fp32 and divided before the
  // one rounding, as every host-path average), so a host mean that fits never overflows.
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  const void* sum = nullptr;
  SPCCLCHECK(reduceInHost(h, h.tensor, info.sendbuff, info.datatype, info.op, &sum));
  const Clock::time_point reduced = Clock::now();
  SPCCLCHECK(crossHosts(info, h, sum));
  const Clock::time_point crossed = Clock::now();
  const spcclResult_t res = gatherInHost(h, h.tensor, info.recvbuff, info.state->elemSize);
  if (res != spcclSuccess) {
    if (h.mine > 0) memcpy(h.inner->residual.ptr, h.saved, h.mine * info.state->elemSize);  // undo stage 2
    return res;
  }
  h.op = info.op;
  auto ms = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  TRACE(kSubsysColl,
        "%s : hierarchical %s, %zu elements: in-host reduce %.2f ms, across hosts %.2f ms, in-host gather %.2f ms",
        info.opName, info.state->method->name, info.count, ms(start, reduced), ms(reduced, crossed),
        ms(crossed, Clock::now()));
  return spcclSuccess;
}

spcclResult_t hierarchicalSum(const spcclState& st, const void* sendbuff, void* recvbuff, size_t count,
                              spcclRedOp_t op) {
  HierState& h = *st.hier;
  SPCCL_REQUIRE(count <= h.capacity, spcclInternalError,
                "hierarchical allreduce of %zu elements on a state whose stage buffers take %zu", count, h.capacity);
  const Shards s(count, h.topo->localSize);
  const int l = h.topo->localRank;
  const size_t elem = st.elemSize;
  const void* sum = nullptr;
  SPCCLCHECK(reduceInHost(h, s, sendbuff, st.datatype, op, &sum));
  // Avg: the host mean averaged over the hosts (hosts are even), each divided before its rounding.
  char* mine = static_cast<char*>(recvbuff) + s.first(l) * elem;
  if (s.length(l) > 0)
    SPCCLCHECK(h.topo->cross->transport->allReduce(sum, mine, s.length(l), st.datatype, op, nullptr));
  return gatherInHost(h, s, recvbuff, elem);
}

bool hierarchicalOnShards(const spcclState& st) { return st.hier && st.hier->onShards; }

spcclResult_t hierarchicalResidualCheck(const spcclState& st, const void* residual, const char* api) {
  const HierState& h = *st.hier;
  if (!h.onShards) return spcclSuccess;
  size_t stray = SIZE_MAX;
  withStorage(st.datatype, [&](auto tag) {
    using T = decltype(tag);
    const T* e = static_cast<const T*>(residual);
    for (size_t i = 0; i < st.count && stray == SIZE_MAX; ++i)
      if ((i < h.offset || i >= h.offset + h.mine) && !(toAcc(e[i]) == 0)) stray = i;
  });
  SPCCL_REQUIRE(stray == SIZE_MAX, spcclInvalidArgument,
                "%s : element %zu is not zero, but this rank's residual on a hierarchical state holds only its "
                "shard [%zu, %zu) (host sums of what the shard did not send); restore what spcclStateGetResidual "
                "gave on this rank",
                api, stray, h.offset, h.offset + h.mine);
  return spcclSuccess;
}

void hierarchicalReset(const spcclState& st) { st.hier->op = -1; }

void hierarchicalDescribe(const spcclState& st, spcclStateInfo_t* info) {
  // On shards, the method runs on this rank's shard in the inner state, across hosts. Else the
  // payload (the packed values, or the tensor when the state runs dense) is what the stages
  // allreduce, its shard across hosts in a ring. The reduce-scatter and the allgather inside the
  // host are L - 1 pairwise exchanges each, counted over padded shards.
  const HierState& h = *st.hier;
  const int L = h.topo->localSize;
  size_t staged = h.tensor.count;  // elements the in-host stages take
  if (h.onShards) {
    if (h.inner) describeFlat(*h.inner, info);
    info->wireInterHostBytes = h.inner ? info->wireBytes : 0;
    info->rounds = h.inner ? info->rounds : 0;
  } else {
    describeFlat(st, info);
    if (!info->denseSwitched) staged = st.method->compressedCount(st);
    const size_t shardBytes = saturatingMul(Shards(staged, L).shard, st.elemSize);
    info->wireInterHostBytes = ringAllReduceBytes(h.topo->hosts, shardBytes);
    info->rounds = ringAllReduceRounds(h.topo->hosts);
  }
  info->wireIntraHostBytes = saturatingMul(2 * (size_t)(L - 1), saturatingMul(Shards(staged, L).shard, st.elemSize));
  info->wireBytes = saturatingAdd(info->wireIntraHostBytes, info->wireInterHostBytes);
  info->rounds += 2 * (size_t)(L - 1);
}

size_t hierarchicalFootprint(const spcclState& st) {
  if (!st.hier) return 0;
  size_t inner = 0;
  if (st.hier->inner) {
    spcclStateGetMemoryFootprint(st.hier->inner, &inner);
    inner -= st.hier->inner->residual.bytes;  // a slice of the outer residual, counted there
  }
  return st.hier->bufferBytes + inner;
}

}  // namespace spccl
