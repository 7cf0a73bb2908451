/* SPDX-License-Identifier: Apache-2.0
 *
 * Error propagation, as in NCCL: the fault is WARNed once where it is found; every layer
 * above only adds "-> code" at INFO, so SPCCL_DEBUG=INFO prints a back-trace.
 */
#ifndef SPCCL_CHECKS_H_
#define SPCCL_CHECKS_H_

#include "debug.h"

#define SPCCLCHECK(call) \
  do { \
    spcclResult_t res_ = (call); \
    if (res_ != spcclSuccess) { \
      INFO(::spccl::kSubsysAll, "%s:%d -> %d", __FILE__, __LINE__, res_); \
      return res_; \
    } \
  } while (0)

#define SPCCLCHECKGOTO(call, res, label) \
  do { \
    res = (call); \
    if (res != spcclSuccess) { \
      INFO(::spccl::kSubsysAll, "%s:%d -> %d", __FILE__, __LINE__, res); \
      goto label; \
    } \
  } while (0)

// Argument checks: WARN the sentence and return the code.
#define SPCCL_REQUIRE(cond, code, ...) \
  do { \
    if (!(cond)) { \
      WARN(__VA_ARGS__); \
      return code; \
    } \
  } while (0)

#endif  // SPCCL_CHECKS_H_
