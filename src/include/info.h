/* SPDX-License-Identifier: Apache-2.0
 *
 * A call descriptor, as NCCL's struct ncclInfo: each entry point fills one and hands it to
 * the checking funnel (enqueue.cc). */
#ifndef SPCCL_INFO_H_
#define SPCCL_INFO_H_

#include <stdint.h>

#include "spccl.h"

enum spcclFunc {
  spcclFuncAllReduce,
  spcclFuncAllGather,
  spcclFuncBroadcast,
  spcclFuncReduceScatter,
  spcclFuncSparseAllReduce,
  spcclFuncCompress,
};

struct spcclInfo {
  spcclFunc func;
  const char* opName;
  const void* sendbuff;
  void* recvbuff;
  size_t count;
  spcclDataType_t datatype;
  spcclRedOp_t op;
  int root;
  spcclState* state;
  spcclComm* comm;
  spcclStream_t stream;
};

#endif  // SPCCL_INFO_H_
