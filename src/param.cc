// SPDX-License-Identifier: Apache-2.0
//
// One registry for SPCCL_* environment variables: read once, logged once.

#include "param.h"

#include <stdlib.h>

#include <map>
#include <mutex>
#include <string>

#include "debug.h"

namespace spccl {

const char* paramString(const char* name) {
  static std::mutex mutex;
  static std::map<std::string, std::string> values;  // "" when unset
  std::lock_guard<std::mutex> lock(mutex);
  auto it = values.find(name);
  if (it == values.end()) {
    const char* v = getenv(name);
    it = values.emplace(name, v ? v : "").first;
    if (v && *v) INFO(kSubsysEnv, "%s set by environment to %s", name, v);
  }
  return it->second.empty() ? nullptr : it->second.c_str();
}

long long paramInt(const char* name, long long deflt) {
  const char* v = paramString(name);
  if (!v) return deflt;
  char* end = nullptr;
  long long value = strtoll(v, &end, 0);
  return (end && *end == '\0') ? value : deflt;
}

}  // namespace spccl
