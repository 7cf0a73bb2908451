/* SPDX-License-Identifier: Apache-2.0
 *
 * config.autoSelect: a state that runs dense instead of its method when that is faster
 * (docs/DESIGN.md, "Choosing per call: auto"). Its first calls are timed, the method's and
 * dense's in turn; every rank sums the timings over the comm, so all of them take the same
 * decision, which is logged at INFO with its reason and the cost model's fit. A dense call
 * sends g + e and empties the residual (denseWithFeedback, method.h), so error feedback stays
 * exact across the switch.
 */
#ifndef SPCCL_AUTOSELECT_H_
#define SPCCL_AUTOSELECT_H_

#include <stddef.h>

#include "info.h"
#include "spccl.h"

struct spcclState;

namespace spccl {

// Calibration: call 0 runs the method untimed (it touches fresh workspace); then dense and
// the method alternate, dense on odd calls, so that a change of load during the calibration
// falls on both alike; each keeps its fastest of kAutoTimedCalls. The last call decides.
constexpr unsigned kAutoTimedCalls = 3;
constexpr unsigned kAutoCalibrationCalls = 1 + 2 * kAutoTimedCalls;
inline bool autoCalibrationRunsDense(unsigned call) { return call % 2 == 1; }
// The per-message latency the model charges each round (alpha), for its fit of the link.
constexpr double kAutoLatencySeconds = 20e-6;

// What a state's auto selection has seen (held in the state).
struct AutoSelect {
  unsigned calls = 0;              // calls made while calibrating
  double methodSeconds = 1e300;    // fastest timed call of the method, on this rank
  double denseSeconds = 1e300;     // ... of dense
  bool decided = false;
  bool dense = false;              // once decided: every call runs dense
};

// The decision's inputs: the calibration's timings (mean over ranks) and the state's
// spcclStateGetInfo terms. Deterministic, so tests drive it with chosen numbers.
struct AutoInputs {
  const char* method;
  double methodSeconds, denseSeconds;
  size_t methodWireBytes, denseWireBytes;  // per rank and call
  size_t methodRounds, denseRounds;
  double passes;                           // the method's memory and selection passes
  size_t tensorBytes;
  double latencySeconds;                   // alpha per round
};
struct AutoDecision {
  bool dense;
  double linkBytesPerSecond;  // beta^-1, fitted so that dense's time is alpha * rounds + wire / rate
  double methodWireSeconds;   // the method's rounds and wire at that link
  double methodComputeSeconds;  // the rest of its measured time: its passes over memory
  char reason[320];
};
AutoDecision autoDecide(const AutoInputs& in);

// At spcclStateCreate: with config.autoSelect, logs at INFO whether the state's selection will
// act, and why not (the paths that never reach spcclSparseAllReduce hear it too).
void autoAnnounce(const spcclState& st, const char* api);
// Whether the state's auto selection can act: config.autoSelect, host buffers, several ranks,
// a method other than dense whose feedback is all in its residual (not 1-bit's server level).
bool autoActive(const spcclState& st);
// Whether the state's next spcclSparseAllReduce runs dense.
bool autoNextRunsDense(const spcclState& st);

// spcclSparseAllReduce of a state with config.autoSelect: the calibration schedule, the
// decision, then dense or `runMethod`. On failure residual and step are unchanged.
spcclResult_t autoAllReduce(const spcclInfo& info, spcclResult_t (*runMethod)(const spcclInfo& info));

}  // namespace spccl

#endif  // SPCCL_AUTOSELECT_H_
