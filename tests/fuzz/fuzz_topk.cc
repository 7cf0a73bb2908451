// SPDX-License-Identifier: Apache-2.0
//
// The Top-k path (exact top-k, Gaussian-k, gTop-k) through spcclCompress, on any values
// (NaN, Inf, subnormals, ties: raw bit patterns), any density, count and type, twice in a
// row so the second call reads the first one's residual. Nothing is written past values or
// indices (guards), every index is in range or the padding index, ascending, and the
// feedback rule holds coordinate by coordinate: a sent position's residual is 0, an unsent
// one keeps acc = g + e when finite and 0 otherwise (never a NaN or Inf).

#include <string.h>

#include <vector>

#include "common/fuzz_input.h"
#include "common/loopback_comm.h"
#include "dtype_core.h"
#include "dispatch.h"
#include "spccl.h"

using spccl_fuzz::FuzzInput;

namespace {

constexpr uint8_t kGuard = 0xAB;
constexpr size_t kGuardBytes = 64;

template <typename T>
void checkCall(spcclState_t st, const std::vector<T>& g, size_t count, size_t cap) {
  T* e = nullptr;
  spcclStateGetResidual(st, reinterpret_cast<void**>(&e));
  const std::vector<T> eOld(e, e + count);
  std::vector<uint8_t> values(cap * sizeof(T) + kGuardBytes, kGuard), indices(cap * 4 + kGuardBytes, kGuard);
  size_t nvalues = 0;
  unsigned long long step = 0;
  if (spcclCompress(g.data(), values.data(), reinterpret_cast<uint32_t*>(indices.data()), &nvalues, &step, st,
                    nullptr) != spcclSuccess)
    __builtin_trap();  // well-formed arguments
  for (size_t i = cap * sizeof(T); i < values.size(); ++i)
    if (values[i] != kGuard) __builtin_trap();
  for (size_t i = cap * 4; i < indices.size(); ++i)
    if (indices[i] != kGuard) __builtin_trap();
  if (nvalues > cap) __builtin_trap();
  std::vector<bool> sent(count, false);
  uint32_t last = 0;
  for (size_t j = 0; j < nvalues; ++j) {
    uint32_t idx;
    memcpy(&idx, indices.data() + 4 * j, 4);
    if (idx == SPCCL_PAD_INDEX) continue;
    if (idx >= count || (j > 0 && idx <= last && last != SPCCL_PAD_INDEX)) __builtin_trap();
    last = idx;
    sent[idx] = true;
  }
  for (size_t i = 0; i < count; ++i) {
    const T acc = spccl::feedbackValue(g.data(), eOld.data(), i);
    const T want = sent[i] ? T() : spccl::keptResidual(acc);
    if (!spccl::isFiniteValue(e[i]) || memcmp(&e[i], &want, sizeof(T)) != 0) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  static const spcclMethod_t kMethods[] = {spcclMethodTopK, spcclMethodGaussianK, spcclMethodGTopK};
  static const spcclDataType_t kTypes[] = {spcclFloat16, spcclFloat32, spcclFloat64, spcclBfloat16};
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = kMethods[in.take<uint8_t>() % 3];
  cfg.density = (in.take<uint8_t>() + 1) / 256.0;
  cfg.denseSwitch = in.take<uint8_t>() & 1;
  cfg.feedback = spcclFeedbackEF;
  const size_t count = 1 + in.take<uint16_t>() % 3000;
  const spcclDataType_t type = kTypes[in.take<uint8_t>() % 4];
  spcclState_t st;
  if (spcclStateCreate(&st, spccl_fuzz::loopbackComm(), &cfg, count, type) != spcclSuccess) __builtin_trap();
  size_t cap = 0;
  spcclCompressedCount(st, &cap);
  size_t len;
  const uint8_t* rest = in.rest(&len);
  spccl::withStorage(type, [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> g(count);
    // The fuzzer's bytes, repeated, as raw values: every bit pattern is reachable.
    for (size_t i = 0; i < count * sizeof(T); ++i)
      reinterpret_cast<uint8_t*>(g.data())[i] = len ? rest[i % len] : uint8_t(i);
    checkCall(st, g, count, cap);
    checkCall(st, g, count, cap);  // on the residual the first call left
    return spcclSuccess;
  });
  spcclStateDestroy(st);
  return 0;
}
