// SPDX-License-Identifier: Apache-2.0
//
// Host staging of device payloads for host transports (staging.h). The pinned mirror was
// allocated with the state, so nothing here allocates.

#include "staging.h"

#include "checks.h"
#include "device.h"
#include "hierarchy.h"

namespace spccl {

char* hostMirror(const spcclState& st, const void* buf, size_t bytes, const char* api) {
  const char* ws = static_cast<const char*>(st.workspace.ptr);
  const char* b = static_cast<const char*>(buf);
  const size_t off = ws && b >= ws && b < ws + st.workspace.bytes ? (size_t)(b - ws) : 0;
  if (off + bytes > st.staging.bytes) {
    WARN("%s : %zu bytes at %p do not fit the %zu-byte staging buffer", api, bytes, buf, st.staging.bytes);
    return nullptr;
  }
  return static_cast<char*>(st.staging.ptr) + off;
}

spcclResult_t stateAllReduce(const spcclState& st, const void* sendbuff, void* recvbuff, size_t count,
                             spcclRedOp_t op, spcclStream_t stream) {
  Transport& t = *st.comm->transport;
  if (st.hier) return hierarchicalSum(st, sendbuff, recvbuff, count, op);  // host buffers only
  if (!stagedThroughHost(st)) return t.allReduce(sendbuff, recvbuff, count, st.datatype, op, stream);
  const size_t bytes = count * st.elemSize;
  char* host = hostMirror(st, recvbuff, bytes, "stateAllReduce");
  if (!host) return spcclInternalError;
  SPCCLCHECK(device::copyAsync(host, sendbuff, bytes, stream));
  SPCCLCHECK(device::streamSync(stream));
  SPCCLCHECK(t.allReduce(host, host, count, st.datatype, op, nullptr));
  return device::copyAsync(recvbuff, host, bytes, stream);
}

spcclResult_t stateAllGather(const spcclState& st, const void* sendbuff, void* recvbuff, size_t bytes,
                             spcclStream_t stream) {
  Transport& t = *st.comm->transport;
  if (!stagedThroughHost(st)) return t.allGather(sendbuff, recvbuff, bytes, stream);
  const size_t total = bytes * (size_t)st.comm->nranks;
  char* host = hostMirror(st, recvbuff, total, "stateAllGather");
  if (!host) return spcclInternalError;
  char* mine = host + (size_t)st.comm->rank * bytes;
  SPCCLCHECK(device::copyAsync(mine, sendbuff, bytes, stream));
  SPCCLCHECK(device::streamSync(stream));
  SPCCLCHECK(t.allGather(mine, host, bytes, nullptr));  // in place: our part is already there
  return device::copyAsync(recvbuff, host, total, stream);
}

namespace {

// P shifted exchanges, the own block included (a send to self), in one transport group, so
// that NCCL runs them as one all-to-all and no ordering of the rounds can deadlock.
spcclResult_t allToAll(Transport& t, int rank, int P, const char* send, char* recv, size_t bytes,
                       spcclStream_t stream) {
  SPCCLCHECK(t.groupStart());
  spcclResult_t res = spcclSuccess;
  for (int d = 0; d < P && res == spcclSuccess; ++d) {
    const int to = (rank + d) % P, from = (rank - d + P) % P;
    res = t.sendRecv(send + to * bytes, bytes, to, recv + from * bytes, bytes, from, stream);
  }
  const spcclResult_t ended = t.groupEnd();  // also after a failed round: the group must close
  return res != spcclSuccess ? res : ended;
}

}  // namespace

spcclResult_t stateAllToAll(const spcclState& st, const void* sendbuff, void* recvbuff, size_t bytes,
                            spcclStream_t stream) {
  Transport& t = *st.comm->transport;
  const int rank = st.comm->rank, P = st.comm->nranks;
  if (!stagedThroughHost(st))
    return allToAll(t, rank, P, static_cast<const char*>(sendbuff), static_cast<char*>(recvbuff), bytes, stream);
  const size_t total = bytes * (size_t)P;
  char* hostSend = hostMirror(st, sendbuff, total, "stateAllToAll");
  char* hostRecv = hostMirror(st, recvbuff, total, "stateAllToAll");
  if (!hostSend || !hostRecv) return spcclInternalError;
  SPCCLCHECK(device::copyAsync(hostSend, sendbuff, total, stream));
  SPCCLCHECK(device::streamSync(stream));
  SPCCLCHECK(allToAll(t, rank, P, hostSend, hostRecv, bytes, nullptr));
  return device::copyAsync(recvbuff, hostRecv, total, stream);
}

spcclResult_t stagedDense(const spcclInfo& info, size_t sendBytes, size_t recvBytes,
                          spcclResult_t (*run)(const spcclInfo& info, const void* send, void* recv)) {
  void* host = nullptr;
  SPCCLCHECK(device::allocPinned(&host, sendBytes + recvBytes, info.opName));
  char* send = static_cast<char*>(host);
  char* recv = send + sendBytes;
  spcclResult_t res;
  SPCCLCHECKGOTO(device::copyAsync(send, info.sendbuff, sendBytes, info.stream), res, exit);
  SPCCLCHECKGOTO(device::streamSync(info.stream), res, exit);
  SPCCLCHECKGOTO(run(info, send, recv), res, exit);
  SPCCLCHECKGOTO(device::copyAsync(info.recvbuff, recv, recvBytes, info.stream), res, exit);
  SPCCLCHECKGOTO(device::streamSync(info.stream), res, exit);
exit:
  device::freePinned(host);
  return res;
}

spcclResult_t stagedComplete(const spcclState& st, spcclStream_t stream) {
  return stagedThroughHost(st) ? device::streamSync(stream) : spcclSuccess;
}

}  // namespace spccl
