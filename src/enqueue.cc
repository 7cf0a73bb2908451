// SPDX-License-Identifier: Apache-2.0
//
// The checking funnel every collective goes through, as ncclEnqueueCheck in NCCL.

#include "enqueue.h"

#include <string.h>

#include "argcheck.h"
#include "checks.h"
#include "method.h"

namespace spccl {

spcclResult_t enqueueSparse(const spcclInfo& info) {
  SPCCLCHECK(argsCheck(info));
  if (info.count == 0) return spcclSuccess;
  spcclState& st = *info.state;
  INFO(kSubsysColl, "%s : %s step %llu sendbuff %p recvbuff %p count %zu datatype %s op %s comm %p [nranks=%d]",
       info.opName, st.method->name, st.step, info.sendbuff, info.recvbuff, info.count, dataTypeName(info.datatype),
       opName(info.op), (void*)info.comm, info.comm->nranks);
  SPCCLCHECK(st.method->sparseAllReduce(info));
  st.step++;  // commit: the method succeeded
  return spcclSuccess;
}

spcclResult_t enqueueDense(const spcclInfo& info) {
  SPCCLCHECK(argsCheck(info));
  if (info.count == 0) return spcclSuccess;
  Transport& t = *info.comm->transport;
  INFO(kSubsysColl, "%s : sendbuff %p recvbuff %p count %zu datatype %s op %s root %d comm %p [nranks=%d]",
       info.opName, info.sendbuff, info.recvbuff, info.count, dataTypeName(info.datatype), opName(info.op), info.root,
       (void*)info.comm, info.comm->nranks);
  const size_t bytes = info.count * dataTypeSize(info.datatype);
  if (!strcmp(info.opName, "spcclAllReduce"))
    return t.allReduce(info.sendbuff, info.recvbuff, info.count, info.datatype, info.op, info.stream);
  if (!strcmp(info.opName, "spcclReduceScatter"))
    return t.reduceScatter(info.sendbuff, info.recvbuff, info.count, info.datatype, info.op, info.stream);
  if (!strcmp(info.opName, "spcclAllGather")) return t.allGather(info.sendbuff, info.recvbuff, bytes, info.stream);
  if (!strcmp(info.opName, "spcclBroadcast")) {
    SPCCL_REQUIRE(info.root >= 0 && info.root < info.comm->nranks, spcclInvalidArgument,
                  "spcclBroadcast : invalid root %d (root should be in the 0..%d range)", info.root,
                  info.comm->nranks - 1);
    return t.broadcast(info.sendbuff, info.recvbuff, bytes, info.root, info.stream);
  }
  WARN("%s : unknown collective", info.opName);
  return spcclInternalError;
}

}  // namespace spccl
