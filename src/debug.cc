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

#include "env_parse.h"

namespace spccl {
namespace {

struct Logger {
  DebugLevel level = kLogNone;
  unsigned subsys = kSubsysInit | kSubsysEnv;  // NCCL's default: INIT and ENV
  FILE* out = stderr;
  char host[64] = "?";
  char filePath[512] = "";  // SPCCL_DEBUG_FILE expanded, when it could not be opened
  bool fileFailed = false;
};

const char* const kLevelNames[] = {nullptr, "VERSION", "WARN", "INFO", "TRACE"};
constexpr int kNumLevels = 5;

// SPCCL_DEBUG_SUBSYS into a mask (parseEnvNameList); returns why not, the name in bad.
const char* parseSubsys(const char* list, unsigned* mask, char* bad, size_t badLen) {
  static const char* const kNames[] = {"INIT", "COLL", "SELECT", "NET", "TRANSPORT", "ALLOC", "ENV", "ALL"};
  static const unsigned kBits[] = {kSubsysInit, kSubsysColl, kSubsysSelect, kSubsysNet,
                                   kSubsysNet, kSubsysAlloc, kSubsysEnv, kSubsysAll};
  return parseEnvNameList(list, kNames, kBits, 8, mask, bad, badLen);
}

Logger& logger() {
  static Logger log;
  static std::once_flag once;
  std::call_once(once, [] {
    gethostname(log.host, sizeof(log.host) - 1);
    int level;
    if (const char* lvl = getenv("SPCCL_DEBUG"))
      if (parseEnvChoice(lvl, kLevelNames, kNumLevels, &level) == nullptr) log.level = (DebugLevel)level;
    char bad[64];
    unsigned mask;
    if (const char* sub = getenv("SPCCL_DEBUG_SUBSYS"))
      if (parseSubsys(sub, &mask, bad, sizeof(bad)) == nullptr) log.subsys = mask;
    // The name is expanded by hand: it is user text, never a printf format. Nothing is
    // created unless SPCCL_DEBUG asks for a log.
    const char* file = getenv("SPCCL_DEBUG_FILE");
    if (file && *file && log.level != kLogNone) {
      if (expandDebugFilePath(file, (int)getpid(), log.host, log.filePath, sizeof(log.filePath))) {
        if (FILE* f = fopen(log.filePath, "a")) log.out = f;
        else log.fileFailed = true;
      } else {
        log.fileFailed = true;
      }
    }
  });
  return log;
}

int logRank = -1;
std::atomic<spcclPluginLogger_v1_t> hostLogger{nullptr};
thread_local char lastErrorText[1024] = "";

}  // namespace

spcclResult_t debugEnvCheck(const char* api) {
  const Logger& log = logger();
  int level;
  const char* lvl = getenv("SPCCL_DEBUG");
  if (lvl && *lvl && parseEnvChoice(lvl, kLevelNames, kNumLevels, &level) != nullptr) {
    WARN("%s : SPCCL_DEBUG=%.80s is not one of the accepted values; expected VERSION|WARN|INFO|TRACE", api,
                 lvl);
    return spcclInvalidArgument;
  }
  char bad[64];
  unsigned mask;
  const char* sub = getenv("SPCCL_DEBUG_SUBSYS");
  if (sub && *sub) {
    if (const char* why = parseSubsys(sub, &mask, bad, sizeof(bad))) {
      WARN("%s : SPCCL_DEBUG_SUBSYS=%.80s %s \"%s\"; expected a comma-separated list of INIT,COLL,SELECT,NET,"
           "ALLOC,ENV,ALL",
           api, sub, why, bad);
      return spcclInvalidArgument;
    }
  }
  if (log.fileFailed) {
    WARN("%s : SPCCL_DEBUG_FILE=%.200s cannot be opened for appending (expanded: %.200s)", api,
                 getenv("SPCCL_DEBUG_FILE"), log.filePath);
    return spcclInvalidArgument;
  }
  return spcclSuccess;
}

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
