/* SPDX-License-Identifier: Apache-2.0
 *
 * A compression method is a selection rule plus a pack/unpack, behind one table entry.
 * Feedback is not a method's business beyond reading and writing the residual it is given:
 * every method keeps the invariant  c + e_new == g + e_old  on every coordinate.
 *
 * Contract for every function: on failure, nothing the caller can see has changed (residual,
 * recvbuff may be written only after the last failable step). The step counter is advanced
 * by the caller (enqueue.cc), never by a method.
 */
#ifndef SPCCL_METHOD_H_
#define SPCCL_METHOD_H_

#include <stddef.h>
#include <stdint.h>

#include "info.h"
#include "state.h"

namespace spccl {

struct MethodOps {
  const char* name;
  // Checks the resolved config and fills the state's method fields (nblocks, k, ...).
  spcclResult_t (*setup)(spcclState& st);
  // Bytes of scratch the method needs, allocated once into st.workspace.
  size_t (*workspaceBytes)(const spcclState& st);
  // Capacity of the values/indices arrays spcclCompress writes.
  size_t (*compressedCount)(const spcclState& st);
  // Bytes this rank sends over the network per call, as a ring or recursive-doubling
  // algorithm would (the perf binary's "wire" column).
  size_t (*wireBytes)(const spcclState& st);
  spcclResult_t (*sparseAllReduce)(const spcclInfo& info);
  spcclResult_t (*compress)(const spcclInfo& info, void* values, uint32_t* indices, size_t* nvalues);
  spcclResult_t (*decompress)(const spcclState& st, const void* values, const uint32_t* indices, size_t nvalues,
                              unsigned long long step, double scale, void* recvbuff, spcclStream_t stream);
};

// The table entry of a method, or nullptr when this build does not have it.
const MethodOps* methodOps(int method);

}  // namespace spccl

#endif  // SPCCL_METHOD_H_
