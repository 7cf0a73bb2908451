// SPDX-License-Identifier: Apache-2.0
//
// config.autoSelect (autoselect.h): calibrate on the first calls, decide once, log why.

#include "autoselect.h"

#include <stdio.h>
#include <string.h>

#include <algorithm>
#include <chrono>

#include "checks.h"
#include "method.h"
#include "state.h"

namespace spccl {
namespace {

// Why a state with config.autoSelect keeps its method whatever the timings say, or null.
const char* inactiveBecause(const spcclState& st) {
  if (st.onDevice) return "device buffers (auto times host calls)";
  if (st.comm->nranks < 2) return "one rank";
  if (st.comm->compressOnly)
    return "a compress-only comm: the library times only its own collective (the PyTorch hook times its process "
           "group's exchange itself)";
  if (st.method->id == spcclMethodDense) return "the method is dense already";
  if (st.method->residualExtra) return "the method keeps feedback beyond its residual (a dense call could not send it)";
  return nullptr;
}

// Every rank's timings summed over the comm: the same inputs, so the same decision everywhere.
spcclResult_t decide(const spcclInfo& info) {
  spcclState& st = *info.state;
  AutoSelect& a = st.autoSelect;
  double seconds[2] = {a.methodSeconds, a.denseSeconds};
  SPCCLCHECK(info.comm->transport->allReduce(seconds, seconds, 2, spcclFloat64, spcclSum, nullptr));
  spcclStateInfo_t terms = {};
  describeMethod(st, &terms);
  const int P = info.comm->nranks;
  const AutoInputs in = {st.method->name, seconds[0] / P, seconds[1] / P,
                         terms.wireBytes, denseWireBytes(st),
                         terms.rounds, ringAllReduceRounds(P),
                         terms.memoryPasses + terms.selectPasses, saturatingMul(st.count, st.elemSize),
                         kAutoLatencySeconds};
  const AutoDecision d = autoDecide(in);
  a.decided = true;
  a.dense = d.dense;
  INFO(kSubsysColl, "%s : auto (state %p, count %zu): %s", info.opName, (void*)&st, st.count, d.reason);
  return spcclSuccess;
}

}  // namespace

AutoDecision autoDecide(const AutoInputs& in) {
  AutoDecision d = {};
  d.dense = in.denseSeconds < in.methodSeconds;
  // The link, from dense: its time is alpha per round plus its wire at the link's rate.
  const double denseWire = std::max(1e-9, in.denseSeconds - in.latencySeconds * in.denseRounds);
  d.linkBytesPerSecond = in.denseWireBytes / denseWire;
  d.methodWireSeconds = in.latencySeconds * in.methodRounds + in.methodWireBytes / d.linkBytesPerSecond;
  d.methodComputeSeconds = std::max(0.0, in.methodSeconds - d.methodWireSeconds);
  const double passRate = d.methodComputeSeconds > 0 ? in.passes * in.tensorBytes / d.methodComputeSeconds : 0;
  snprintf(d.reason, sizeof(d.reason),
           "%s %.3f ms per call (model: %.3f ms of rounds and wire at %.3g GB/s fitted from dense, %.3f ms of compute, "
           "%.3g GB/s over %.3g passes), dense %.3f ms: %s",
           in.method, in.methodSeconds * 1e3, d.methodWireSeconds * 1e3, d.linkBytesPerSecond / 1e9,
           d.methodComputeSeconds * 1e3, passRate / 1e9, in.passes, in.denseSeconds * 1e3,
           d.dense ? "running dense" : "keeping the method");
  return d;
}

void autoAnnounce(const spcclState& st, const char* api) {
  if (!st.config.autoSelect) return;
  if (const char* why = inactiveBecause(st))
    INFO(kSubsysColl, "%s : auto (state %p): keeping %s: %s", api, (void*)&st, st.method->name, why);
  else
    INFO(kSubsysColl, "%s : auto (state %p): %u calibration calls, then %s or dense", api, (void*)&st,
         kAutoCalibrationCalls, st.method->name);
}

bool autoActive(const spcclState& st) { return st.config.autoSelect && !inactiveBecause(st); }

bool autoNextRunsDense(const spcclState& st) {
  if (!autoActive(st)) return false;
  const AutoSelect& a = st.autoSelect;
  return a.decided ? a.dense : autoCalibrationRunsDense(a.calls);
}

spcclResult_t autoAllReduce(const spcclInfo& info, spcclResult_t (*runMethod)(const spcclInfo& info)) {
  spcclState& st = *info.state;
  AutoSelect& a = st.autoSelect;
  if (inactiveBecause(st)) return runMethod(info);  // said at creation (autoAnnounce)
  if (a.decided) return a.dense ? denseWithFeedback(info, info.recvbuff) : runMethod(info);
  // A calibration dense call follows a method call, so it forms g + e and empties a residual
  // that later dense calls find empty: only its allreduce is what dense costs from then on.
  double seconds = 0;
  if (autoNextRunsDense(st)) {
    SPCCLCHECK(denseWithFeedback(info, info.recvbuff, &seconds));
    a.denseSeconds = std::min(a.denseSeconds, seconds);
  } else {
    const auto start = std::chrono::steady_clock::now();  // the clock denseWithFeedback times with
    SPCCLCHECK(runMethod(info));
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (a.calls > 0) a.methodSeconds = std::min(a.methodSeconds, seconds);
  }
  // The last calibration call decides, so that spcclStateGetInfo tells the next call's truth.
  if (++a.calls == kAutoCalibrationCalls) SPCCLCHECK(decide(info));
  return spcclSuccess;
}

}  // namespace spccl
