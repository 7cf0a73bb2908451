/* SPDX-License-Identifier: Apache-2.0
 *
 * Brute-force references of the top-k family (DESIGN.md, Top-k family) for the unit and multi-rank tests,
 * written without the kernels: a full sort for exact top-k, plain loops for Gaussian-k's
 * moments, counts and compaction. Only the decision rule (topk_core.h's GaussianKSearch,
 * unit-tested on its own) and the threshold formula are shared with the library.
 */
#ifndef SPCCL_TESTS_TOPK_REFERENCE_H_
#define SPCCL_TESTS_TOPK_REFERENCE_H_

#include <math.h>
#include <stdint.h>

#include <algorithm>
#include <functional>
#include <map>
#include <numeric>
#include <vector>

#include "dtype_core.h"
#include "reference.h"
#include "spccl.h"
#include "topk_core.h"

namespace spccl_test {

// Magnitude order of DESIGN.md, Top-k family as a test states it: NaN above everything, then |v| descending;
// the lower index wins ties.
inline bool referenceBefore(double a, size_t ia, double b, size_t ib) {
  const bool na = std::isnan(a), nb = std::isnan(b);
  if (na != nb) return na;
  if (!na && fabs(a) != fabs(b)) return fabs(a) > fabs(b);
  return ia < ib;
}

// The k positions of largest magnitude, ascending.
template <typename T>
std::vector<uint32_t> referenceTopK(const T* v, size_t n, size_t k) {
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return referenceBefore((double)spccl::toAcc(v[a]), a, (double)spccl::toAcc(v[b]), b);
  });
  order.resize(std::min(k, n));
  std::sort(order.begin(), order.end());
  return order;
}

// gTop-k's global set S from every rank's local top-k pairs (index -> value): perf's
// statement of the merge (perf/reference.h), adding equal indices in the accumulation type
// rounded once into T, keeping the k chosen by topk(values, m, k) (positions, ascending).
template <typename T, typename TopK>
std::vector<uint32_t> referenceGTopKSet(std::vector<std::map<uint32_t, T>> lists, size_t k, TopK topk) {
  return spccl_perf::gtopkSet(
      std::move(lists), k, [](T a, T b) { return spccl::addRounded(a, b); },
      [&](const std::vector<T>& v, size_t kk) { return topk(v.data(), v.size(), kk); });
}

// Gaussian-k's k slots (index ascending, then SPCCL_PAD_INDEX) for acc.
template <typename T>
std::vector<uint32_t> referenceGaussianK(const T* acc, size_t n, size_t k, double density,
                                         std::vector<double>* visited = nullptr) {
  using AccT = typename spccl::AccumOf<T>::type;
  double sum = 0, sumSq = 0;
  size_t finite = 0;
  for (size_t i = 0; i < n; ++i) {
    const double x = (double)spccl::toAcc(acc[i]);
    if (!std::isfinite(x)) continue;
    sum += x;
    sumSq += x * x;
    finite++;
  }
  double t0 = HUGE_VAL;
  if (finite) {
    const double mean = sum / finite, var = sumSq / finite - mean * mean;
    t0 = spccl::gaussianThreshold(mean, var > 0 ? sqrt(var) : 0.0, density);
  }
  auto count = [&](double t) {
    size_t c = 0;
    for (size_t i = 0; i < n; ++i) c += fabs(spccl::toAcc(acc[i])) > (AccT)t;
    return c;
  };
  spccl::GaussianKSearch s = spccl::gaussianKSearchStart(t0, k);
  while (!s.done) {
    if (visited) visited->push_back(s.next);  // the thresholds the search counted, in order
    spccl::gaussianKSearchCounted(&s, count(s.next));
  }
  std::vector<uint32_t> out;
  for (size_t i = 0; i < n && out.size() < k; ++i)
    if (fabs(spccl::toAcc(acc[i])) > (AccT)s.chosen) out.push_back((uint32_t)i);
  out.resize(k, SPCCL_PAD_INDEX);
  return out;
}

}  // namespace spccl_test

#endif  // SPCCL_TESTS_TOPK_REFERENCE_H_
