/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SPCCL_COMM_H_
#define SPCCL_COMM_H_

#include <stdint.h>

#include <atomic>
#include <memory>

#include "hierarchy.h"
#include "transport.h"

namespace spccl {
constexpr uint64_t kCommMagic = 0x5bcc1c0aa11c0aaull;
}

// Start and end magic numbers let CommCheck reject a pointer that is not a live comm.
struct spcclComm {
  uint64_t startMagic = spccl::kCommMagic;
  int rank = 0;
  int nranks = 0;
  std::unique_ptr<spccl::Transport> transport;
  // Users' buffers live on the device (NCCL, or MPI with device buffers). When the transport
  // itself takes host buffers, payloads are staged through pinned host memory.
  bool onDevice = false;
  // SPCCL_CHECK=1: the cross-rank consistency exchange before each sparse collective.
  bool checkCalls = false;
  // A collective is running on the comm (enqueue.cc refuses a second thread).
  std::atomic<bool> busy{false};
  // spcclCommInitLocal: states compress and decompress, the caller moves the payloads;
  // collectives are refused.
  bool compressOnly = false;
  std::atomic<int> liveStates{0};
  // The error that broke the comm (a timeout, a transport failure), or spcclSuccess. A broken
  // comm refuses collectives until it is destroyed: its peers may be mid-operation.
  std::atomic<int> brokenBy{spcclSuccess};
  // spcclCommAbort ran while states still referenced the comm: the last spcclStateDestroy frees it.
  bool aborted = false;
  // The hosts the comm spans and their sub-comms (MPI comms only), for hierarchical mode.
  std::shared_ptr<spccl::Topology> topology;
  uint64_t endMagic = spccl::kCommMagic;
};

#endif  // SPCCL_COMM_H_
