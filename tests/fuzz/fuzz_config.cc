// SPDX-License-Identifier: Apache-2.0
//
// Config validation and the whole local API on whatever a config struct can hold: every
// field, including size/magic/version, comes from the fuzzer. A config that is accepted
// must then compress and all-reduce without faults and keep c + e_new == g + e_old.

#include <string.h>

#include <cmath>
#include <vector>

#include "common/fuzz_input.h"
#include "common/loopback_comm.h"
#include "spccl.h"

using spccl_fuzz::FuzzInput;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  const uint8_t corrupt = in.take<uint8_t>();
  if (corrupt == 1) cfg.size = in.take<size_t>();
  if (corrupt == 2) cfg.magic = in.take<unsigned>();
  if (corrupt == 3) cfg.version = in.take<unsigned>();
  cfg.method = in.take<int8_t>();
  cfg.density = in.take<double>();
  cfg.blockSize = in.take<int16_t>();
  cfg.blockPattern = in.take<int8_t>();
  cfg.feedback = in.take<int8_t>();
  cfg.seed = in.take<uint64_t>();
  cfg.tensorKey = in.take<uint64_t>();
  cfg.denseSwitch = in.take<int8_t>();
  const size_t count = in.take<uint16_t>() % 3000;
  spcclState_t st;
  if (spcclStateCreate(&st, spccl_fuzz::loopbackComm(), &cfg, count, spcclFloat32) != spcclSuccess) return 0;
  if (!(cfg.density > 0 && cfg.density <= 1) || cfg.blockSize < 1) __builtin_trap();  // accepted a bad config

  std::vector<float> g(count), out(count), before(count), values;
  for (size_t i = 0; i < count; ++i) g[i] = float(int(i * 2654435761u % 17) - 8);
  float* residual = nullptr;
  spcclStateGetResidual(st, reinterpret_cast<void**>(&residual));
  spcclConfig_t resolved;
  spcclStateGetConfig(st, &resolved);
  const bool keeps = resolved.feedback == spcclFeedbackEF;  // without feedback, unsent values are dropped
  for (int step = 0; step < 3; ++step) {
    if (count) memcpy(before.data(), residual, count * sizeof(float));
    if (spcclSparseAllReduce(g.data(), out.data(), count, spcclFloat32, spcclSum, st, spccl_fuzz::loopbackComm(),
                             nullptr) != spcclSuccess)
      __builtin_trap();
    // One rank: out is this rank's contribution c, so c + e_new == g + e_old.
    for (size_t i = 0; keeps && i < count; ++i)
      if (out[i] + residual[i] != g[i] + before[i] && !std::isnan(g[i] + before[i])) __builtin_trap();
  }
  spcclStateDestroy(st);
  return 0;
}
