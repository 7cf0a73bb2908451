/* SPDX-License-Identifier: Apache-2.0
 *
 * Typed, strict reads of SPCCL_* environment variables (grammar: env_parse.h). Each reads
 * the variable at the call (so a launcher or a test may change it between communicators),
 * logs a value it has not seen before at INFO (subsystem ENV), and gives `deflt` when the
 * variable is unset or empty. A value that does not parse is never ignored: the read
 * returns spcclInvalidArgument and WARNs "<api> : SPCCL_X=<value> <reason>; expected <what>",
 * which the caller returns.
 */
#ifndef SPCCL_PARAM_H_
#define SPCCL_PARAM_H_

#include "spccl.h"

namespace spccl {

// The value of the variable, or nullptr when it is unset or empty.
const char* paramString(const char* name);

spcclResult_t envInt(const char* name, long long min, long long max, long long deflt, long long* value,
                     const char* api);
spcclResult_t envUint64(const char* name, unsigned long long max, unsigned long long deflt,
                        unsigned long long* value, const char* api);
// A finite real in (min, max] when minOpen, else [min, max].
spcclResult_t envReal(const char* name, double min, double max, bool minOpen, double deflt, double* value,
                      const char* api);
spcclResult_t envBool(const char* name, bool deflt, bool* value, const char* api);
// One of names[0..n) (case-insensitive) or its index; *value is the index.
spcclResult_t envChoice(const char* name, const char* const* names, int n, int deflt, int* value, const char* api);

}  // namespace spccl

#endif  // SPCCL_PARAM_H_
