// SPDX-License-Identifier: Apache-2.0
//
// The SPCCL_* parser on arbitrary text, on its own and through spcclStateCreate: a value is
// either refused with spcclInvalidArgument and a sentence naming the variable, or accepted
// exactly as the grammar (env_parse.h) reads it; the debug file name never expands anything
// but %d, %h and %%.

#include <stdlib.h>
#include <string.h>

#include <string>

#include "common/fuzz_input.h"
#include "common/loopback_comm.h"
#include "env_parse.h"
#include "spccl.h"

namespace {

// The canonical spelling of an accepted integer must give back the text (minus a '+').
void checkInteger(const std::string& text) {
  long long v;
  if (spccl::parseEnvInt64(text.c_str(), -1000000, 1000000, &v) != nullptr) return;
  if (v < -1000000 || v > 1000000) __builtin_trap();
  const std::string canonical = std::to_string(v);
  const std::string given = text[0] == '+' ? text.substr(1) : text;
  if (given != canonical && !(given == "-0" && v == 0)) __builtin_trap();
}

void checkDebugPath(const std::string& text) {
  char out[256];
  if (!spccl::expandDebugFilePath(text.c_str(), 4242, "hostx", out, sizeof(out))) return;
  std::string expected;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 1 < text.size() && (text[i + 1] == 'd' || text[i + 1] == 'h' || text[i + 1] == '%')) {
      expected += text[i + 1] == 'd' ? "4242" : text[i + 1] == 'h' ? "hostx" : "%";
      ++i;
    } else {
      expected += text[i];
    }
  }
  if (expected != out) __builtin_trap();
}

// Through the public API: the variable steers a field left unset.
void checkThroughApi(int which, const std::string& text) {
  static const char* const kVars[] = {"SPCCL_BLOCK_SIZE", "SPCCL_DENSITY", "SPCCL_SEED", "SPCCL_DENSE_SWITCH",
                                      "SPCCL_METHOD"};
  const char* var = kVars[which % 5];
  setenv(var, text.c_str(), 1);
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  spcclState_t st = nullptr;
  const spcclResult_t res = spcclStateCreate(&st, spccl_fuzz::loopbackComm(), &cfg, 64, spcclFloat32);
  unsetenv(var);
  if (res != spcclSuccess) {
    if (res != spcclInvalidArgument || !strstr(spcclGetLastError(nullptr), var)) __builtin_trap();
    return;
  }
  spcclConfig_t got;
  spcclStateGetConfig(st, &got);
  spcclStateDestroy(st);
  if (text.empty()) return;  // empty is unset: the default
  long long i;
  unsigned long long u;
  double d;
  bool b;
  switch (which % 5) {
    case 0:
      if (spccl::parseEnvInt64(text.c_str(), 1, 2147483647, &i) || got.blockSize != i) __builtin_trap();
      break;
    case 1:
      if (spccl::parseEnvReal(text.c_str(), 0, 1, true, &d) || got.density != d) __builtin_trap();
      break;
    case 2:
      if (spccl::parseEnvUint64(text.c_str(), ~0ull - 1, &u) || got.seed != u) __builtin_trap();
      break;
    case 3:
      if (spccl::parseEnvBool(text.c_str(), &b) || got.denseSwitch != (int)b) __builtin_trap();
      break;
    default:
      if (got.method < 0 || got.method >= spcclNumMethods) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  spccl_fuzz::FuzzInput in(data, size);
  const uint8_t which = in.take<uint8_t>();
  size_t len = 0;
  const uint8_t* rest = in.rest(&len);
  // Mostly digits, signs, dots and letters, so the interesting grammar is reached often.
  static const char kAlphabet[] = "0123456789+-.eE %dhsxmabcINFnan\t";
  std::string text;
  for (size_t i = 0; i < len && i < 40; ++i)
    text += (rest[i] & 0x80) ? char(rest[i] & 0x7f ? rest[i] & 0x7f : 1) : kAlphabet[rest[i] % (sizeof(kAlphabet) - 1)];
  checkInteger(text);
  checkDebugPath(text);
  checkThroughApi(which, text);
  return 0;
}
