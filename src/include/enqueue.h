/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SPCCL_ENQUEUE_H_
#define SPCCL_ENQUEUE_H_

#include "info.h"

namespace spccl {

// The one funnel of the compressed collective: CommCheck, StateCheck, ArgsCheck, one INFO
// line, the method, then the commit of the step. Nothing changes when it fails.
spcclResult_t enqueueSparse(const spcclInfo& info);
// Dense pass-through collectives: checks, then the transport.
spcclResult_t enqueueDense(const spcclInfo& info);

}  // namespace spccl

#endif  // SPCCL_ENQUEUE_H_
