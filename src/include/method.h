/* SPDX-License-Identifier: Apache-2.0
 *
 * A compression method is one table entry (methods/registry.cc): its id, its name (the
 * spelling of logs, SPCCL_METHOD, the perf binary's -m and the Python binding) and its
 * operations. A method owns its private state (methodState<T>, filled by setup) and its
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

#include <type_traits>

#include "info.h"
#include "state.h"

namespace spccl {

struct MethodOps {
  spcclMethod_t id;
  const char* name;
  // Checks the resolved config and fills the method's private state (methodState<T>).
  spcclResult_t (*setup)(spcclState& st);
  // Bytes of scratch the method needs, allocated once into st.workspace: its layout function
  // run on a null base (workspace.h).
  size_t (*workspaceBytes)(const spcclState& st);
  // Capacity of the values/indices arrays spcclCompress writes.
  size_t (*compressedCount)(const spcclState& st);
  // What spcclStateGetInfo reports beyond the common fields: wire bytes per rank and call,
  // elements contributed per rank, whether the collective runs dense instead.
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

// Bytes one rank sends in a ring allreduce of `bytes` over P ranks: 2 (P-1)/P of them
// (in 128 bits: 2 (P-1) bytes overflows 64 for a large comm; SIZE_MAX if the result does).
inline size_t ringAllReduceBytes(int P, size_t bytes) {
  if (P <= 1) return 0;
  const unsigned __int128 wire = (unsigned __int128)2 * (unsigned)(P - 1) * bytes / (unsigned)P;
  return wire > SIZE_MAX ? SIZE_MAX : (size_t)wire;
}
// ... and in a ring allgather of `bytes` per rank: (P-1) blocks (SIZE_MAX if that overflows).
inline size_t ringAllGatherBytes(int P, size_t bytes) {
  if (P <= 1) return 0;
  return bytes > SIZE_MAX / (size_t)(P - 1) ? SIZE_MAX : (size_t)(P - 1) * bytes;
}
// What a dense allreduce of the state's tensor sends per rank.
inline size_t denseWireBytes(const spcclState& st) {
  return ringAllReduceBytes(st.comm->nranks, st.count * st.elemSize);
}

}  // namespace spccl

#endif  // SPCCL_METHOD_H_
