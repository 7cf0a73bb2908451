/* SPDX-License-Identifier: Apache-2.0
 *
 * The 1-bit compression of one chunk (DESIGN.md, 1-bit) for the tests, on typed vectors:
 * perf/reference.h's statement of the rule (the magnitudes folded 32 at a time by halves,
 * level by level, the scale their sum over the chunk's length rounded into T, each position
 * +scale or -scale), written without the library's kernels.
 */
#ifndef SPCCL_TESTS_ONEBIT_REFERENCE_H_
#define SPCCL_TESTS_ONEBIT_REFERENCE_H_

#include <vector>

#include "dtype_core.h"
#include "reference.h"

namespace spccl_test {

// x[b, e) compressed into c[b, e) (values of T, widened); returns the chunk's scale.
template <typename T, typename V>
double referenceSignCompress(const std::vector<T>& x, size_t b, size_t e, spcclDataType_t datatype,
                             std::vector<V>* c) {
  std::vector<double> wide(x.size()), out(x.size());
  for (size_t i = b; i < e; ++i) wide[i] = (double)spccl::toAcc(x[i]);
  const double s = spccl_perf::signCompressChunk(wide, b, e, spccl_perf::Format{datatype}, &out);
  for (size_t i = b; i < e; ++i) (*c)[i] = (V)out[i];
  return s;
}

}  // namespace spccl_test

#endif  // SPCCL_TESTS_ONEBIT_REFERENCE_H_
