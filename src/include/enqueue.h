/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SPCCL_ENQUEUE_H_
#define SPCCL_ENQUEUE_H_

#include "info.h"

namespace spccl {

// The one funnel of the compressed collective: CommCheck, StateCheck, ArgsCheck, one INFO
// line, the method, then the commit of the step. Nothing changes when it fails.
spcclResult_t enqueueSparse(const spcclInfo& info);
// The end of a call that enqueued work on a device state (collective or compress): on
// success the device step advances on the stream; either way the state's last-work event is
// recorded there, so its blocking calls wait for exactly this work. Returns the first error.
spcclResult_t deviceCallEnd(spcclState& st, spcclResult_t res, spcclStream_t stream);
// A corrupt pair index a scatter kernel of an earlier call on this device state found
// (device.h): reported once, as spcclRemoteError with the index, then cleared. The device
// cannot fail the call that received it without a host round trip.
spcclResult_t deviceBadIndexCheck(spcclState& st, const char* api);
// Dense pass-through collectives: checks, then the transport.
spcclResult_t enqueueDense(const spcclInfo& info);

}  // namespace spccl

#endif  // SPCCL_ENQUEUE_H_
