// SPDX-License-Identifier: Apache-2.0
//
// Restoring a checkpoint (spcclStateSetResidual, spcclStateSetStep) with any count, type and
// contents, on states of every method (1-bit's server residual included) and feedback. The
// source is a heap buffer of exactly the count given, so ASan reports a restore that reads
// past it. It succeeds exactly when count is spcclStateGetResidualCount's, the type is the
// state's and feedback is EF, and then the feedback memory equals the source byte for byte;
// a refused restore changes nothing. A compression after it runs cleanly.

#include <string.h>

#include <memory>
#include <vector>

#include "common/fuzz_input.h"
#include "common/loopback_comm.h"
#include "spccl.h"

using spccl_fuzz::FuzzInput;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  static const spcclDataType_t kTypes[] = {spcclFloat16, spcclFloat32, spcclFloat64, spcclBfloat16};
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = in.take<uint8_t>() % spcclNumMethods;
  cfg.density = (in.take<uint8_t>() + 1) / 256.0;
  cfg.blockSize = 1 + in.take<uint8_t>() % 64;
  cfg.feedback = in.take<uint8_t>() % 4 == 0 ? spcclFeedbackNone : spcclFeedbackEF;
  const size_t count = 1 + in.take<uint16_t>() % 2048;
  const spcclDataType_t type = kTypes[in.take<uint8_t>() % 4];
  const size_t elem = type == spcclFloat64 ? 8 : type == spcclFloat32 ? 4 : 2;
  spcclState_t st;
  if (spcclStateCreate(&st, spccl_fuzz::loopbackComm(), &cfg, count, type) != spcclSuccess) __builtin_trap();
  size_t feedback = 0;
  void* memory = nullptr;
  spcclStateGetResidualCount(st, &feedback);
  spcclStateGetResidual(st, &memory);
  if (feedback < count) __builtin_trap();

  // The restore's arguments: mostly the right ones, often off by a little, sometimes any.
  const uint8_t pick = in.take<uint8_t>();
  const size_t near = feedback + pick % 5 >= 2 ? feedback + pick % 5 - 2 : 0;  // feedback - 2 .. feedback + 2
  const size_t given = pick < 128 ? feedback : pick < 160 ? count : pick < 224 ? near : pick * 13u;
  const spcclDataType_t givenType = in.take<uint8_t>() < 200 ? type : kTypes[in.take<uint8_t>() % 4];
  const size_t givenElem = givenType == spcclFloat64 ? 8 : givenType == spcclFloat32 ? 4 : 2;
  std::unique_ptr<uint8_t[]> source(new uint8_t[given * givenElem + 1]);  // +1: never a 0-byte new
  size_t len;
  const uint8_t* rest = in.rest(&len);
  for (size_t i = 0; i < given * givenElem; ++i) source[i] = len ? rest[i % len] : uint8_t(i * 7);
  const std::vector<uint8_t> before(static_cast<uint8_t*>(memory), static_cast<uint8_t*>(memory) + feedback * elem);
  const spcclResult_t res = spcclStateSetResidual(st, source.get(), given, givenType, nullptr);
  const bool valid = given == feedback && givenType == type && cfg.feedback == spcclFeedbackEF;
  if ((res == spcclSuccess) != valid) __builtin_trap();
  const uint8_t* want = valid ? source.get() : before.data();
  if (memcmp(memory, want, feedback * elem) != 0) __builtin_trap();
  if (spcclStateSetStep(st, in.take<uint16_t>()) != spcclSuccess) __builtin_trap();

  // The restored state compresses (or, for 1-bit and the rest, runs its collective) cleanly.
  std::vector<uint8_t> g(count * elem, 0x3c), out(count * elem);
  if (spcclSparseAllReduce(g.data(), out.data(), count, type, spcclSum, st, spccl_fuzz::loopbackComm(), nullptr) !=
      spcclSuccess)
    __builtin_trap();
  spcclStateDestroy(st);
  return 0;
}
