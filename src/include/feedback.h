/* SPDX-License-Identifier: Apache-2.0
 *
 * Error feedback, the one piece every method shares (docs/DESIGN.md, "Error feedback").
 * Residual in: a method forms acc = g + e_old from feedbackIn(st), which is null without
 * feedback (acc = g; dtype_core.h's feedbackValue rounds the sum once). Residual out: it
 * writes e_new = acc - c, what it did not send, to feedbackOut(st), null without feedback
 * (what was not sent is dropped). A method writes feedbackOut only after its last failable
 * step, so a failed call leaves the residual as it was.
 */
#ifndef SPCCL_FEEDBACK_H_
#define SPCCL_FEEDBACK_H_

#include <string.h>

#include "state.h"

namespace spccl {

inline bool feedbackOn(const spcclState& st) { return st.config.feedback == spcclFeedbackEF; }
inline const void* feedbackIn(const spcclState& st) { return feedbackOn(st) ? st.residual.ptr : nullptr; }
inline void* feedbackOut(const spcclState& st) { return feedbackOn(st) ? st.residual.ptr : nullptr; }

}  // namespace spccl

#endif  // SPCCL_FEEDBACK_H_
