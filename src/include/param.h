/* SPDX-License-Identifier: Apache-2.0
 *
 * The environment registry: each SPCCL_* variable is read once, on first use, and its
 * value logged at INFO (subsystem ENV). */
#ifndef SPCCL_PARAM_H_
#define SPCCL_PARAM_H_

namespace spccl {

// The value of the variable, or nullptr when it is unset or empty.
const char* paramString(const char* name);
// The integer value of the variable, or deflt when unset or not a number.
long long paramInt(const char* name, long long deflt);

}  // namespace spccl

#endif  // SPCCL_PARAM_H_
