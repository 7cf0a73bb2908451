/* SPDX-License-Identifier: Apache-2.0
 *
 * The one interface every transport implements. Methods talk to peers only through it,
 * so MPI (host buffers) and NCCL (device buffers, stream-ordered) are interchangeable.
 * Reductions are typed (the transport knows how to add fp16/bf16); everything else moves
 * bytes. All calls are collective over the comm's ranks unless said otherwise.
 */
#ifndef SPCCL_TRANSPORT_H_
#define SPCCL_TRANSPORT_H_

#include <stddef.h>
#include <stdint.h>

#include "spccl.h"

namespace spccl {

// An operation in flight, opaque to everyone but the transport that started it.
struct PendingOp {
  uintptr_t handle = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual const char* name() const = 0;
  // true when buffers live on the device and calls are enqueued on a stream.
  virtual bool deviceBuffers() const = 0;

  // op is spcclSum or spcclAvg; in-place when sendbuff == recvbuff.
  virtual spcclResult_t allReduce(const void* sendbuff, void* recvbuff, size_t count, spcclDataType_t datatype,
                                  spcclRedOp_t op, spcclStream_t stream) = 0;
  virtual spcclResult_t reduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount,
                                      spcclDataType_t datatype, spcclRedOp_t op, spcclStream_t stream) = 0;
  // The same sum allreduce, non-blocking, so a method can overlap its own memory passes with
  // the communication: start it, call progress() between slices of work, finish with wait().
  // The defaults complete everything inside start, which is correct for any transport.
  virtual spcclResult_t allReduceStart(const void* sendbuff, void* recvbuff, size_t count, spcclDataType_t datatype,
                                       spcclStream_t stream, PendingOp*) {
    return allReduce(sendbuff, recvbuff, count, datatype, spcclSum, stream);
  }
  virtual spcclResult_t progress(PendingOp*) { return spcclSuccess; }
  virtual spcclResult_t wait(PendingOp*) { return spcclSuccess; }

  // recvbuff receives nranks * bytes, rank r's at offset r * bytes.
  virtual spcclResult_t allGather(const void* sendbuff, void* recvbuff, size_t bytes, spcclStream_t stream) = 0;
  virtual spcclResult_t broadcast(const void* sendbuff, void* recvbuff, size_t bytes, int root,
                                  spcclStream_t stream) = 0;
  // Sends to one peer and receives from another (possibly the same) at once.
  virtual spcclResult_t sendRecv(const void* sendbuff, size_t sendbytes, int sendPeer, void* recvbuff,
                                 size_t recvbytes, int recvPeer, spcclStream_t stream) = 0;
  // Brackets calls (sendRecv rounds) that the transport may launch as one operation, as NCCL
  // groups do; host transports run each call as it comes.
  virtual spcclResult_t groupStart() { return spcclSuccess; }
  virtual spcclResult_t groupEnd() { return spcclSuccess; }
  virtual spcclResult_t barrier() = 0;
  // allGather of a few host bytes, returning once they arrived (a host notion, as barrier):
  // the state agreement and SPCCL_CHECK. Host transports take host buffers as they are.
  virtual spcclResult_t allGatherHost(const void* sendbuff, void* recvbuff, size_t bytes) {
    return allGather(sendbuff, recvbuff, bytes, nullptr);
  }
  // Why the transport cannot run anything any more (MPI finalized under it), or nullptr.
  virtual const char* unusable() const { return nullptr; }
  // An error that happened after a call returned (NCCL's asynchronous errors), or spcclSuccess.
  virtual spcclResult_t asyncError() { return spcclSuccess; }
  // Stops outstanding operations so a failed job can tear down without hanging; the
  // transport is unusable afterwards. Host transports have nothing in flight.
  virtual spcclResult_t abort() { return spcclSuccess; }
};

}  // namespace spccl

#endif  // SPCCL_TRANSPORT_H_
