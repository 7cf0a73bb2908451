/* SPDX-License-Identifier: Apache-2.0
 *
 * Logging and the last-error text. SPCCL_DEBUG=VERSION|WARN|INFO|TRACE picks what reaches
 * stderr (or SPCCL_DEBUG_FILE), SPCCL_DEBUG_SUBSYS=INIT,COLL,... filters INFO and TRACE.
 * Every WARN also becomes the text spcclGetLastError returns, whatever the level.
 */
#ifndef SPCCL_DEBUG_H_
#define SPCCL_DEBUG_H_

#include "plugin/spccl_plugin_v1.h"
#include "spccl.h"

namespace spccl {

enum DebugLevel { kLogNone = 0, kLogVersion = 1, kLogWarn = 2, kLogInfo = 3, kLogTrace = 4 };
enum DebugSubsys : unsigned {
  kSubsysInit = 1u << 0,
  kSubsysColl = 1u << 1,
  kSubsysSelect = 1u << 2,
  kSubsysNet = 1u << 3,
  kSubsysAlloc = 1u << 4,
  kSubsysEnv = 1u << 5,
  kSubsysAll = ~0u
};

void debugLog(DebugLevel level, unsigned subsys, const char* file, int line, const char* fmt, ...)
    __attribute__((format(printf, 5, 6)));
bool debugEnabled(DebugLevel level, unsigned subsys);
// The rank printed in the log prefix (the most recently initialised comm's); the first call
// also logs the library version at VERSION level.
void debugSetRank(int rank);
// Lines go to `logger` instead of stderr: every WARN, and what SPCCL_DEBUG enables (NULL: stderr).
void debugSetHostLogger(spcclPluginLogger_v1_t logger);
// SPCCL_DEBUG, SPCCL_DEBUG_SUBSYS and SPCCL_DEBUG_FILE as the logger read them: a value it
// could not use is spcclInvalidArgument with the sentence (checked by every comm init).
spcclResult_t debugEnvCheck(const char* api);
void setLastError(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
const char* lastError();

}  // namespace spccl

#define WARN(...) ::spccl::debugLog(::spccl::kLogWarn, ::spccl::kSubsysAll, __FILE__, __LINE__, __VA_ARGS__)
#define INFO(subsys, ...) \
  do { \
    if (::spccl::debugEnabled(::spccl::kLogInfo, subsys)) \
      ::spccl::debugLog(::spccl::kLogInfo, subsys, __FILE__, __LINE__, __VA_ARGS__); \
  } while (0)
#define TRACE(subsys, ...) \
  do { \
    if (::spccl::debugEnabled(::spccl::kLogTrace, subsys)) \
      ::spccl::debugLog(::spccl::kLogTrace, subsys, __FILE__, __LINE__, __VA_ARGS__); \
  } while (0)

#endif  // SPCCL_DEBUG_H_
