// SPDX-License-Identifier: Apache-2.0
//
// SPCCL_* environment variables: read at the call, parsed strictly (env_parse.h), a bad
// value is an error naming the variable.

#include "param.h"

#include <stdlib.h>

#include <map>
#include <mutex>
#include <string>

#include "checks.h"
#include "env_parse.h"

namespace spccl {
namespace {

// "<api> : SPCCL_X=<value> <why>; expected <what>", and the code every read returns for it.
spcclResult_t badValue(const char* name, const char* value, const char* why, const std::string& expected,
                       const char* api) {
  WARN("%s : %s=%.80s %s; expected %s", api, name, value, why, expected.c_str());
  return spcclInvalidArgument;
}

}  // namespace

const char* paramString(const char* name) {
  static std::mutex mutex;
  static std::map<std::string, std::string> logged;  // the last value logged per variable
  const char* v = getenv(name);
  if (!v || !*v) return nullptr;
  std::lock_guard<std::mutex> lock(mutex);
  std::string& last = logged[name];
  if (last != v) {
    last = v;
    INFO(kSubsysEnv, "%s set by environment to %s", name, v);
  }
  return v;
}

spcclResult_t envInt(const char* name, long long min, long long max, long long deflt, long long* value,
                     const char* api) {
  const char* v = paramString(name);
  if (!v) {
    *value = deflt;
    return spcclSuccess;
  }
  if (const char* why = parseEnvInt64(v, min, max, value))
    return badValue(name, v, why, "a decimal integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]",
                    api);
  return spcclSuccess;
}

spcclResult_t envUint64(const char* name, unsigned long long max, unsigned long long deflt,
                        unsigned long long* value, const char* api) {
  const char* v = paramString(name);
  if (!v) {
    *value = deflt;
    return spcclSuccess;
  }
  if (const char* why = parseEnvUint64(v, max, value))
    return badValue(name, v, why, "a decimal integer in [0, " + std::to_string(max) + "]", api);
  return spcclSuccess;
}

spcclResult_t envReal(const char* name, double min, double max, bool minOpen, double deflt, double* value,
                      const char* api) {
  const char* v = paramString(name);
  if (!v) {
    *value = deflt;
    return spcclSuccess;
  }
  if (const char* why = parseEnvReal(v, min, max, minOpen, value)) {
    char range[96];
    snprintf(range, sizeof(range), "a number in %c%g, %g]", minOpen ? '(' : '[', min, max);
    return badValue(name, v, why, range, api);
  }
  return spcclSuccess;
}

spcclResult_t envBool(const char* name, bool deflt, bool* value, const char* api) {
  const char* v = paramString(name);
  if (!v) {
    *value = deflt;
    return spcclSuccess;
  }
  if (const char* why = parseEnvBool(v, value)) return badValue(name, v, why, "0 or 1", api);
  return spcclSuccess;
}

spcclResult_t envChoice(const char* name, const char* const* names, int n, int deflt, int* value, const char* api) {
  const char* v = paramString(name);
  if (!v) {
    *value = deflt;
    return spcclSuccess;
  }
  if (const char* why = parseEnvChoice(v, names, n, value)) {
    std::string expected;
    for (int i = 0; i < n; ++i) expected += (i ? "|" : "") + std::string(names[i]);
    return badValue(name, v, why, expected + " (or its number 0.." + std::to_string(n - 1) + ")", api);
  }
  return spcclSuccess;
}

}  // namespace spccl
