/* SPDX-License-Identifier: Apache-2.0
 *
 * Calls f with a value of the storage type that matches a spcclDataType_t, so templated
 * kernels are instantiated once per type in one place. */
#ifndef SPCCL_DISPATCH_H_
#define SPCCL_DISPATCH_H_

#include "dtype_core.h"
#include "spccl.h"

namespace spccl {

template <typename F>
spcclResult_t withType(spcclDataType_t datatype, F&& f) {
  switch (datatype) {
    case spcclFloat32: return f(float{});
    case spcclFloat64: return f(double{});
    case spcclFloat16: return f(half_t{});
    case spcclBfloat16: return f(bfloat16_t{});
    default: return spcclInvalidArgument;
  }
}

// The same for callers that have validated the type already (tests, perf): f may return
// anything, void included; an unknown type is treated as fp32.
template <typename F>
decltype(auto) withStorage(spcclDataType_t datatype, F&& f) {
  switch (datatype) {
    case spcclFloat64: return f(double{});
    case spcclFloat16: return f(half_t{});
    case spcclBfloat16: return f(bfloat16_t{});
    default: return f(float{});
  }
}

}  // namespace spccl

#endif  // SPCCL_DISPATCH_H_
