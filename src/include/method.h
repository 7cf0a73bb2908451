/* SPDX-License-Identifier: Apache-2.0
 *
 * A compression method is one table entry (methods/registry.cc): its id, its name (the
 * spelling of logs, SPCCL_METHOD, the perf binary's -m and the Python binding), its facts
 * (payload kind and cost terms: what adapters, perf and the cost model read through
 * spcclStateGetInfo, so nothing outside the entry restates them) and its operations. A method owns its private state (methodState<T>, filled by setup) and its
 * workspace layout (workspace.h); feedback goes through feedback.h's residual-in /
 * residual-out contract, so every method keeps  c + e_new == g + e_old  on every coordinate.
 * docs/DESIGN.md, "Methods", lists what adding one takes.
 *
 * Contract for every function: on failure, nothing the caller can see has changed (residual,
 * recvbuff may be written only after the last failable step). The step counter is advanced
 * by the caller (enqueue.cc), never by a method.
 */
#ifndef SPCCL_METHOD_H_
#define SPCCL_METHOD_H_

#include <stddef.h>
#include <stdint.h>

#include <algorithm>
#include <type_traits>

#include "info.h"
#include "state.h"

namespace spccl {

// What a method's call costs, apart from its wire bytes (describe): the a-priori terms a cost
// model weighs with rates measured on the machine (docs/DESIGN.md, spcclStateGetInfo;
// docs/cost_model.md, perf/cost_model). Counted for the host path; a "pass" reads or writes
// count elements once.
struct MethodFacts {
  spcclPayload_t payload;  // how its payload travels (spcclPayload_t)
  double memoryPasses;     // streaming passes per call beyond the transport's
  double selectPasses;     // selection work per call, in passes over count elements
};

struct MethodOps {
  spcclMethod_t id;
  const char* name;
  MethodFacts facts;
  // Checks the resolved config and fills the method's private state (methodState<T>).
  spcclResult_t (*setup)(spcclState& st);
  // Bytes of scratch the method needs, allocated once into st.workspace: its layout function
  // run on a null base (workspace.h).
  size_t (*workspaceBytes)(const spcclState& st);
  // Capacity of the values/indices arrays spcclCompress writes.
  size_t (*compressedCount)(const spcclState& st);
  // What spcclStateGetInfo reports beyond the common fields: selected (elements contributed
  // per rank), methodWireBytes (the method's own bytes per rank and call), rounds (its message
  // rounds) and denseSwitched (whether the collective runs dense instead).
  void (*describe)(const spcclState& st, spcclStateInfo_t* info);
  spcclResult_t (*sparseAllReduce)(const spcclInfo& info);
  spcclResult_t (*compress)(const spcclInfo& info, void* values, uint32_t* indices, size_t* nvalues);
  spcclResult_t (*decompress)(const spcclState& st, const void* values, const uint32_t* indices, size_t nvalues,
                              unsigned long long step, double scale, void* recvbuff, spcclStream_t stream);
  // Optional: whether the state double-buffers its residual (config.pipeline overlap).
  bool (*spareResidual)(const spcclState& st);
  // Optional: elements of feedback the method keeps after the count elements of the residual
  // (1-bit's server residual): part of the state's feedback memory (state.h, residualCount).
  size_t (*residualExtra)(const spcclState& st);
};

// The table entry of a method, or nullptr for a value that names none.
const MethodOps* methodOps(int method);
// The method called `name` (case-insensitive), or nullptr.
const MethodOps* methodByName(const char* name);
// Every method's name, indexed by spcclMethod_t (spcclNumMethods of them).
const char* const* methodNames();
// "dense, randomblock, ..." for messages.
const char* methodNameList();

// The method's private fields inside the state: plain data, at most kMethodPrivateBytes.
template <typename T>
T& methodState(spcclState& st) {
  static_assert(sizeof(T) <= kMethodPrivateBytes && std::is_trivially_copyable<T>::value,
                "a method's private state is plain data that fits spcclState::methodPrivate");
  return *reinterpret_cast<T*>(st.methodPrivate);
}
template <typename T>
const T& methodState(const spcclState& st) {
  return methodState<T>(const_cast<spcclState&>(st));
}

// Byte counts of the wire formulas saturate at SIZE_MAX instead of wrapping: P reaches 2^31
// and a tensor SIZE_MAX / 8 bytes, whose products do not fit in size_t.
inline size_t saturated(unsigned __int128 bytes) { return bytes > SIZE_MAX ? SIZE_MAX : (size_t)bytes; }
inline size_t saturatingMul(size_t a, size_t b) { return saturated((unsigned __int128)a * b); }
inline size_t saturatingAdd(size_t a, size_t b) { return saturated((unsigned __int128)a + b); }
// Bytes one rank sends in a ring allreduce of `bytes` over P ranks: 2 (P-1)/P of them.
inline size_t ringAllReduceBytes(int P, size_t bytes) {
  return P > 1 ? saturated((unsigned __int128)2 * (unsigned)(P - 1) * bytes / (unsigned)P) : 0;
}
// ... and in a ring allgather of `bytes` per rank: (P-1) blocks.
inline size_t ringAllGatherBytes(int P, size_t bytes) { return P > 1 ? saturatingMul((size_t)(P - 1), bytes) : 0; }
// Message rounds of a ring allreduce (reduce-scatter + allgather) and a ring allgather.
inline size_t ringAllReduceRounds(int P) { return P > 1 ? 2 * (size_t)(P - 1) : 0; }
inline size_t ringAllGatherRounds(int P) { return P > 1 ? (size_t)(P - 1) : 0; }
// spcclStateGetInfo's method fields of a flat state: describe, then what the collective sends
// (dense when switched) and its share that crosses hosts (a ring in rank order crosses
// hosts on `hosts` of its P links).
void describeFlat(const spcclState& st, spcclStateInfo_t* info);
// spcclStateGetInfo's fields but memoryBytes, as the state's method (flat or hierarchical) runs,
// whatever auto selection chose.
void describeMethod(const spcclState& st, spcclStateInfo_t* info);
// The dense call of a compressed state (its dense switch, auto; dense.cc): acc = g + e formed
// in `acc` (count elements where the state's buffers live; it may be recvbuff), one allreduce
// into recvbuff, the residual emptied after it succeeded: everything was sent.
// allReduceSeconds (optional): the time of the allreduce alone (host clock), which is what a
// dense call costs once the residual is empty; auto's calibration compares that.
spcclResult_t denseWithFeedback(const spcclInfo& info, void* acc, double* allReduceSeconds = nullptr);
// What a dense allreduce of the state's tensor sends per rank.
inline size_t denseWireBytes(const spcclState& st) {
  return ringAllReduceBytes(st.comm->nranks, saturatingMul(st.count, st.elemSize));
}

}  // namespace spccl

#endif  // SPCCL_METHOD_H_
