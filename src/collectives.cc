// SPDX-License-Identifier: Apache-2.0
//
// Dense pass-through collectives, so spccl can replace the framework's collective library
// outright. Each entry point only fills a call descriptor.

#include "enqueue.h"

using namespace spccl;

extern "C" {

spcclResult_t spcclAllReduce(const void* sendbuff, void* recvbuff, size_t count, spcclDataType_t datatype,
                             spcclRedOp_t op, spcclComm_t comm, spcclStream_t stream) {
  spcclInfo info = {spcclFuncAllReduce, "spcclAllReduce", sendbuff, recvbuff, count, datatype, op, 0, nullptr, comm, stream};
  return enqueueDense(info);
}

spcclResult_t spcclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount, spcclDataType_t datatype,
                             spcclComm_t comm, spcclStream_t stream) {
  spcclInfo info = {spcclFuncAllGather, "spcclAllGather", sendbuff, recvbuff, sendcount, datatype, spcclSum, 0, nullptr, comm, stream};
  return enqueueDense(info);
}

spcclResult_t spcclBroadcast(const void* sendbuff, void* recvbuff, size_t count, spcclDataType_t datatype, int root,
                             spcclComm_t comm, spcclStream_t stream) {
  spcclInfo info = {spcclFuncBroadcast, "spcclBroadcast", sendbuff, recvbuff, count, datatype, spcclSum, root, nullptr, comm, stream};
  return enqueueDense(info);
}

spcclResult_t spcclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount, spcclDataType_t datatype,
                                 spcclRedOp_t op, spcclComm_t comm, spcclStream_t stream) {
  spcclInfo info = {spcclFuncReduceScatter, "spcclReduceScatter", sendbuff, recvbuff, recvcount, datatype, op, 0, nullptr, comm, stream};
  return enqueueDense(info);
}

}  // extern "C"
