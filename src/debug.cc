// SPDX-License-Identifier: Apache-2.0
//
// Logger and last-error buffer. Nothing here prints unless SPCCL_DEBUG asks for it.

#include "debug.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

#include "param.h"

namespace spccl {
namespace {

struct Logger {
  DebugLevel level = kLogNone;
  unsigned subsys = kSubsysInit | kSubsysEnv;  // NCCL's default: INIT and ENV
  FILE* out = stderr;
  char host[64] = "?";
};

unsigned parseSubsys(const char* list) {
  static const struct { const char* name; unsigned bit; } kNames[] = {
      {"INIT", kSubsysInit}, {"COLL", kSubsysColl}, {"SELECT", kSubsysSelect},
      {"NET", kSubsysNet}, {"TRANSPORT", kSubsysNet}, {"ALLOC", kSubsysAlloc},
      {"ENV", kSubsysEnv}, {"ALL", kSubsysAll}};
  unsigned mask = 0;
  char buf[256];
  snprintf(buf, sizeof(buf), "%s", list);
  char* save = nullptr;
  for (char* tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(nullptr, ",", &save)) {
    for (const auto& n : kNames)
      if (strcasecmp(tok, n.name) == 0) mask |= n.bit;
  }
  return mask;
}

Logger& logger() {
  static Logger log;
  static std::once_flag once;
  std::call_once(once, [] {
    gethostname(log.host, sizeof(log.host) - 1);
    if (const char* lvl = getenv("SPCCL_DEBUG")) {
      if (!strcasecmp(lvl, "VERSION")) log.level = kLogVersion;
      else if (!strcasecmp(lvl, "WARN")) log.level = kLogWarn;
      else if (!strcasecmp(lvl, "INFO")) log.level = kLogInfo;
      else if (!strcasecmp(lvl, "TRACE")) log.level = kLogTrace;
    }
    if (const char* sub = getenv("SPCCL_DEBUG_SUBSYS")) log.subsys = parseSubsys(sub);
    if (const char* file = getenv("SPCCL_DEBUG_FILE")) {
      char path[512];
      snprintf(path, sizeof(path), file, (int)getpid());  // "%d" in the name becomes the pid
      if (FILE* f = fopen(path, "a")) log.out = f;
    }
  });
  return log;
}

int logRank = -1;
std::atomic<spcclPluginLogger_v1_t> hostLogger{nullptr};
thread_local char lastErrorText[1024] = "";

}  // namespace

void debugSetRank(int rank) {
  logRank = rank;
  // As NCCL does on its first communicator: SPCCL_DEBUG=VERSION (or more) prints the version.
  static std::once_flag once;
  std::call_once(once, [] {
    debugLog(kLogVersion, kSubsysInit, __FILE__, __LINE__, "spccl version %d.%d.%d", SPCCL_MAJOR, SPCCL_MINOR,
             SPCCL_PATCH);
  });
}

void debugSetHostLogger(spcclPluginLogger_v1_t logger) { hostLogger.store(logger); }

bool debugEnabled(DebugLevel level, unsigned subsys) {
  const Logger& log = logger();
  if (level > log.level) return false;
  return level <= kLogWarn || (log.subsys & subsys) != 0;
}

void debugLog(DebugLevel level, unsigned subsys, const char* file, int line, const char* fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (level == kLogWarn) snprintf(lastErrorText, sizeof(lastErrorText), "%s", msg);
  const char* base = strrchr(file, '/');
  base = base ? base + 1 : file;
  if (spcclPluginLogger_v1_t host = hostLogger.load()) {
    // The host filters on its own side; it always hears about failures.
    if (level == kLogWarn || debugEnabled(level, subsys))
      host(level <= kLogWarn ? spcclPluginLogWarn : (spcclPluginLogLevel_v1_t)level, base, line, msg);
    return;
  }
  if (!debugEnabled(level, subsys)) return;
  Logger& log = logger();
  static const char* kNames[] = {"", "VERSION", "WARN", "INFO", "TRACE"};
  char rank[16];
  if (logRank >= 0) snprintf(rank, sizeof(rank), "%d", logRank);
  else snprintf(rank, sizeof(rank), "?");
  if (level == kLogWarn) {
    fprintf(log.out, "%s:%d:%s SPCCL WARN %s:%d %s\n", log.host, (int)getpid(), rank, base, line, msg);
  } else {
    fprintf(log.out, "%s:%d:%s SPCCL %s %s\n", log.host, (int)getpid(), rank, kNames[level], msg);
  }
  fflush(log.out);
}

void setLastError(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(lastErrorText, sizeof(lastErrorText), fmt, ap);
  va_end(ap);
}

const char* lastError() { return lastErrorText; }

}  // namespace spccl
