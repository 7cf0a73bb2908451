/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SPCCL_ENQUEUE_H_
#define SPCCL_ENQUEUE_H_

#include <atomic>

#include "info.h"
#include "state.h"

namespace spccl {

// One call at a time on a comm (a communicator driven from two threads at once matches the
// wrong messages; Open MPI ended the job) and on a state (spcclStateDestroy under a running
// call would free what MPI still writes): the call takes the object's flag and gives it back
// when it returns; a call that finds it taken is refused, it never waits.
class InUse {
 public:
  explicit InUse(std::atomic<bool>& flag) : flag_(flag), owned_(!flag.exchange(true)) {}
  ~InUse() {
    if (owned_) flag_.store(false);
  }
  InUse(const InUse&) = delete;
  InUse& operator=(const InUse&) = delete;
  // spcclInvalidUsage naming the object when another call holds it.
  spcclResult_t check(const char* api, const char* what, const void* object) const;

 private:
  std::atomic<bool>& flag_;
  bool owned_;
};

// The one funnel of the compressed collective: CommCheck, StateCheck, ArgsCheck, one INFO
// line, the method, then the commit of the step. Nothing changes when it fails.
spcclResult_t enqueueSparse(const spcclInfo& info);
// The device calls that end a call on a device state, as a table so that the host-side
// rules below can be tested without a GPU (tests/unit/test_call_rules.cc).
struct DeviceCallOps {
  spcclResult_t (*capturing)(spcclStream_t stream, bool* capturing);
  spcclResult_t (*advanceStep)(unsigned long long* step, spcclStream_t stream);
  spcclResult_t (*markWork)(const device::StateSync& sync, spcclStream_t stream);
  // st.step = the device step counter, after the state's queued work (replays included).
  spcclResult_t (*readStep)(spcclState& st);
};
extern const DeviceCallOps kDeviceCallOps;

// The end of a call whose method returned `res` (collective or compress). Failed: nothing is
// committed (a device state's last-work event still marks what was queued, so its blocking
// calls wait for it). Succeeded: the call counts from here, whatever fails after. The host's
// step advances, or, while the stream is being captured into a CUDA graph, is left alone and
// marked stale (each replay advances the device counter, which the host does not see); then
// a device state's counter advances and its event is recorded on the stream. A failure there
// is returned, with a WARN saying the work was enqueued and counted.
spcclResult_t endCall(spcclState& st, spcclResult_t res, spcclStream_t stream,
                      const DeviceCallOps& ops = kDeviceCallOps);
// The step spcclCompress uses and returns, in st.step: on a state with captured calls, read
// from the device counter first. A compress being captured is refused (spcclInvalidUsage):
// the step it returns could not name the step of each replay.
spcclResult_t compressStep(spcclState& st, spcclStream_t stream, const char* api,
                           const DeviceCallOps& ops = kDeviceCallOps);
// Corrupt pairs a scatter kernel of this device state dropped since the slot was last read
// (device.h, state.h: badPairReport): spcclRemoteError with the index and a WARN, then the
// slot is clear; spcclSuccess when clean. Neither breaks the comm: the kernels only skipped
// pairs, every rank still took part in every collective. A collective reads its slot after
// it is enqueued (a report never skips a collective, which would leave the peers waiting);
// spcclDecompress reads its own slot first, so a caller's bad list never fails a collective.
spcclResult_t takePairReport(const spcclState& st, PairReportSlot slot, const char* api);
// Dense pass-through collectives: checks, then the transport.
spcclResult_t enqueueDense(const spcclInfo& info);

}  // namespace spccl

#endif  // SPCCL_ENQUEUE_H_
