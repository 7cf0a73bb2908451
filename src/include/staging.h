/* SPDX-License-Identifier: Apache-2.0
 *
 * Collectives on a state's buffers, whatever memory they live in. When the transport takes
 * the state's memory (host state on MPI, device state on NCCL) the call goes straight
 * through. Device buffers on a host transport (MPI) are staged: copied into the state's
 * pinned mirror of its workspace, reduced or gathered there by the host transport, and
 * copied back, all ordered on `stream`; the host waits for the device-to-host copy, so the
 * caller must call stagedComplete() before returning (the MPI path blocks, DESIGN.md, API).
 */
#ifndef SPCCL_STAGING_H_
#define SPCCL_STAGING_H_

#include "info.h"
#include "state.h"

namespace spccl {

// Device buffers, host transport: payloads cross through st.staging.
inline bool stagedThroughHost(const spcclState& st) {
  return st.onDevice && !st.comm->transport->deviceBuffers();
}

// The pinned bytes that mirror `buf` (bytes long): the same offset as buf has in the
// workspace, or the start of the mirror for a buffer outside it (the dense method's user
// buffers); null, with a WARN naming api, when they do not fit. After a staged collective
// into a workspace buffer, its mirror holds the host copy of the result.
char* hostMirror(const spcclState& st, const void* buf, size_t bytes, const char* api);

// recvbuff = reduce over ranks of sendbuff (count elements of st.datatype). Staged buffers
// must lie in st.workspace, or fit st.staging from its start.
spcclResult_t stateAllReduce(const spcclState& st, const void* sendbuff, void* recvbuff, size_t count,
                             spcclRedOp_t op, spcclStream_t stream);
// recvbuff receives nranks * bytes, rank r's sendbuff at offset r * bytes.
spcclResult_t stateAllGather(const spcclState& st, const void* sendbuff, void* recvbuff, size_t bytes,
                             spcclStream_t stream);
// Block r of sendbuff (bytes each) to rank r; recvbuff receives rank r's block at r * bytes.
spcclResult_t stateAllToAll(const spcclState& st, const void* sendbuff, void* recvbuff, size_t bytes,
                            spcclStream_t stream);
// A dense pass-through collective of device buffers on a host transport: sendbuff copied
// into pinned host memory, the host collective, the result copied back, then a wait. The
// pinned memory is allocated for the call (there is no state to hold it), so this path is
// for convenience, not speed: the sparse collectives stage through their states' buffers.
// `run` performs the collective on the host copies.
spcclResult_t stagedDense(const spcclInfo& info, size_t sendBytes, size_t recvBytes,
                          spcclResult_t (*run)(const spcclInfo& info, const void* send, void* recv));
// Waits for the staged copies back to the device (a no-op when nothing was staged).
spcclResult_t stagedComplete(const spcclState& st, spcclStream_t stream);

}  // namespace spccl

#endif  // SPCCL_STAGING_H_
