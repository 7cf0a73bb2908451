/* SPDX-License-Identifier: Apache-2.0
 *
 * A one-rank communicator for the fuzz targets: the real entry points, argument checks,
 * states and methods, over a transport whose collectives are what they are for a single
 * rank (a reduction over one rank is a copy). No MPI needed, so a fuzzer runs millions of
 * calls per minute. */
#ifndef SPCCL_TESTS_LOOPBACK_COMM_H_
#define SPCCL_TESTS_LOOPBACK_COMM_H_

#include <string.h>

#include "comm.h"

namespace spccl_fuzz {

class LoopbackTransport : public spccl::Transport {
 public:
  const char* name() const override { return "loopback"; }
  bool deviceBuffers() const override { return false; }
  spcclResult_t allReduce(const void* s, void* r, size_t count, spcclDataType_t dt, spcclRedOp_t,
                          spcclStream_t) override {
    return copy(s, r, count * elemSize(dt));
  }
  spcclResult_t reduceScatter(const void* s, void* r, size_t count, spcclDataType_t dt, spcclRedOp_t,
                              spcclStream_t) override {
    return copy(s, r, count * elemSize(dt));
  }
  spcclResult_t allGather(const void* s, void* r, size_t bytes, spcclStream_t) override { return copy(s, r, bytes); }
  spcclResult_t broadcast(const void* s, void* r, size_t bytes, int, spcclStream_t) override {
    return copy(s, r, bytes);
  }
  spcclResult_t sendRecv(const void* s, size_t sendbytes, int, void* r, size_t recvbytes, int,
                         spcclStream_t) override {
    return copy(s, r, sendbytes < recvbytes ? sendbytes : recvbytes);
  }
  spcclResult_t barrier() override { return spcclSuccess; }

 private:
  // The library's own helpers are not exported (libspccl.map): sizes are spelled out here.
  static size_t elemSize(spcclDataType_t dt) { return dt == spcclFloat64 ? 8 : dt == spcclFloat32 ? 4 : 2; }
  static spcclResult_t copy(const void* s, void* r, size_t bytes) {
    if (s != r && bytes) memmove(r, s, bytes);
    return spcclSuccess;
  }
};

inline spcclComm* loopbackComm() {
  static spcclComm* comm = [] {
    auto* c = new spcclComm();
    c->rank = 0;
    c->nranks = 1;
    c->transport.reset(new LoopbackTransport());
    return c;
  }();
  return comm;
}

}  // namespace spccl_fuzz

#endif  // SPCCL_TESTS_LOOPBACK_COMM_H_
