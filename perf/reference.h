/* SPDX-License-Identifier: Apache-2.0
 *
 * The CPU reference of the perf check pass, written from the outside: public types only
 * (spccl.h), values held as doubles, each datatype's arithmetic stated from its definition
 * (an IEEE binary format, round to nearest even) rather than from the library's conversion
 * code, and the selection rules restated from docs/DESIGN.md. A wrong rounding or selection
 * in the library then shows up as #wrong, instead of being repeated by the reference.
 *
 * The multi-rank tests share topkByLevels and gtopkSet (tests/common/topk_reference.h), and
 * the 1-bit tests signCompressChunk (tests/common/onebit_reference.h).
 */
#ifndef SPCCL_PERF_REFERENCE_H_
#define SPCCL_PERF_REFERENCE_H_

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <functional>
#include <map>
#include <vector>

#include "spccl.h"

namespace spccl_perf {

// ---------------------------------------------------------------- datatype arithmetic
// x rounded to nearest (ties to even) into a binary format with `digits` significand bits,
// normal exponents down to minExp (subnormals below) and largest finite value maxFinite.
inline double roundToFormat(double x, int digits, int minExp, double maxFinite) {
  if (!isfinite(x) || x == 0) return x;
  int e;
  frexp(x, &e);                                                 // |x| in [2^(e-1), 2^e)
  const int quantum = std::max(e - 1, minExp) - (digits - 1);   // exponent of one unit in the last place
  const double r = ldexp(nearbyint(ldexp(x, -quantum)), quantum);  // default mode: ties to even
  return fabs(r) > maxFinite ? copysign(HUGE_VAL, x) : r;
}

// One spccl datatype: its storage format, and its accumulation type (fp32 for the 16-bit
// types and fp32, fp64 for fp64), as the library's reductions use them.
struct Format {
  spcclDataType_t type;

  size_t bytes() const { return type == spcclFloat64 ? 8 : type == spcclFloat32 ? 4 : 2; }

  double store(double x) const {
    switch (type) {
      case spcclFloat64: return x;
      case spcclFloat16: return roundToFormat(x, 11, -14, 65504.0);
      case spcclBfloat16: return roundToFormat(x, 8, -126, ldexp(255.0, 120));
      default: return (double)(float)x;
    }
  }
  double acc(double x) const { return type == spcclFloat64 ? x : (double)(float)x; }
  // The exponent of the smallest subnormal, and the largest finite value.
  int minExp() const {
    switch (type) {
      case spcclFloat64: return -1074;
      case spcclFloat16: return -24;
      case spcclBfloat16: return -133;
      default: return -149;
    }
  }
  double maxFinite() const {
    switch (type) {
      case spcclFloat64: return 1.7976931348623157e308;
      case spcclFloat16: return 65504.0;
      case spcclBfloat16: return ldexp(255.0, 120);
      default: return 3.4028234663852886e38;
    }
  }
  // a + b in the accumulation type, rounded once into storage (the library's g + e).
  double add(double a, double b) const { return store(acc(a + b)); }

  // Element i of a buffer of this type, and back; encode takes a value store() returned.
  double decode(const void* buf, size_t i) const {
    const char* p = static_cast<const char*>(buf) + i * bytes();
    if (type == spcclFloat64) return load<double>(p);
    if (type == spcclFloat32) return load<float>(p);
    const uint16_t bits = load<uint16_t>(p);
    if (type == spcclBfloat16) {
      const uint32_t wide = (uint32_t)bits << 16;
      return load<float>(&wide);
    }
    return halfValue(bits);
  }
  void encode(double x, void* buf, size_t i) const {
    char* p = static_cast<char*>(buf) + i * bytes();
    if (type == spcclFloat64) return save(x, p);
    const float f = (float)x;
    if (type == spcclFloat32) return save(f, p);
    if (type == spcclBfloat16) {
      uint32_t wide;
      memcpy(&wide, &f, 4);
      return save((uint16_t)(wide >> 16), p);  // exact: x is a bf16 value
    }
    save(halfBits(x), p);
  }

 private:
  template <typename V> static V load(const void* p) { V v; memcpy(&v, p, sizeof(V)); return v; }
  template <typename V> static void save(V v, void* p) { memcpy(p, &v, sizeof(V)); }

  // IEEE binary16: 1 sign, 5 exponent (bias 15), 10 fraction bits.
  static double halfValue(uint16_t h) {
    const double sign = h & 0x8000 ? -1 : 1;
    const int exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
    if (exp == 0x1f) return frac ? NAN : sign * HUGE_VAL;
    if (exp == 0) return sign * ldexp(frac, -24);
    return sign * ldexp(1024 + frac, exp - 25);
  }
  static uint16_t halfBits(double x) {
    const uint16_t sign = signbit(x) ? 0x8000 : 0;
    const double a = fabs(x);
    if (isnan(a)) return 0x7e00;
    if (isinf(a)) return sign | 0x7c00;
    if (a < ldexp(1, -14)) return sign | (uint16_t)ldexp(a, 24);  // subnormal (or zero)
    int e;
    frexp(a, &e);
    return sign | (uint16_t)((e + 14) << 10) | (uint16_t)(ldexp(a, 11 - e) - 1024);
  }
};

// ---------------------------------------------------------------- top-k family selections
// The k positions of largest magnitude (ties to the lower index), ascending, for finite data
// with few distinct magnitudes (the perf inputs): one counting pass and one taking pass.
inline std::vector<uint32_t> topkByLevels(const std::vector<double>& v, size_t k) {
  std::map<double, size_t, std::greater<double>> levels;
  for (double x : v) levels[fabs(x)]++;
  double kth = 0;
  size_t above = 0;
  for (const auto& [magnitude, count] : levels) {
    kth = magnitude;
    if (above + count >= k) break;
    above += count;
  }
  std::vector<uint32_t> out;
  size_t atKth = 0;
  for (size_t i = 0; i < v.size() && out.size() < k; ++i) {
    const double m = fabs(v[i]);
    if (m > kth || (m == kth && atKth++ < k - above)) out.push_back((uint32_t)i);
  }
  return out;
}

// gTop-k's global set S from every rank's local top-k pairs (index -> value): the ranks
// beyond the largest power of two fold into their partners, then recursive doubling; each
// merge adds equal indices with add(a, b) and keeps the k of largest magnitude chosen by
// topk(values, k) (positions, ascending).
template <typename V, typename Add, typename TopK>
std::vector<uint32_t> gtopkSet(std::vector<std::map<uint32_t, V>> lists, size_t k, Add add, TopK topk) {
  auto mergeKeep = [&](const std::map<uint32_t, V>& a, const std::map<uint32_t, V>& b) {
    std::map<uint32_t, V> merged = a;
    for (const auto& [i, v] : b) merged[i] = merged.count(i) ? add(merged[i], v) : v;
    std::vector<uint32_t> idx;
    std::vector<V> val;
    for (const auto& [i, v] : merged) idx.push_back(i), val.push_back(v);
    std::map<uint32_t, V> kept;
    for (uint32_t pos : topk(val, k)) kept[idx[pos]] = val[pos];
    return kept;
  };
  const int P = (int)lists.size();
  int p2 = 1;
  while (p2 * 2 <= P) p2 *= 2;
  for (int r = p2; r < P; ++r) lists[r - p2] = mergeKeep(lists[r - p2], lists[r]);
  for (int d = 1; d < p2; d <<= 1)
    for (int r = 0; r < p2; ++r)
      if (r < (r ^ d)) lists[r] = lists[r ^ d] = mergeKeep(lists[r], lists[r ^ d]);
  std::vector<uint32_t> S;
  for (const auto& entry : lists[0]) S.push_back(entry.first);
  return S;
}

// Φ⁻¹(p) for p in (1/2, 1), by bisection on erfc to double precision (the library uses a
// rational approximation, within 1.2e-9: the perf inputs sit on multiples of 1/2, far from
// any threshold, so the two pick the same elements).
inline double normalQuantile(double p) {
  double lo = 0, hi = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (1 - 0.5 * erfc(mid / sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// Gaussian-k's k slots (index ascending, then SPCCL_PAD_INDEX), as docs/DESIGN.md states
// the rule: t = |mean| + std * Φ⁻¹(1 - density/2) over the finite values; count |x| > t
// (t in the accumulation type); a count in [2k/3, 4k/3] stops, fewer halves t, more
// multiplies it by 1.5, three counts at most; the threshold kept is a measured one: one
// inside the window, else the smallest count above it, else the largest count.
inline std::vector<uint32_t> gaussianK(const std::vector<double>& v, size_t k, double density, const Format& fmt) {
  double sum = 0, sumSq = 0;
  size_t finite = 0;
  for (double x : v)
    if (isfinite(x)) sum += x, sumSq += x * x, finite++;
  const double mean = finite ? sum / finite : 0, var = finite ? sumSq / finite - mean * mean : 0;
  double t = finite ? fabs(mean) + (var > 0 ? sqrt(var) : 0) * normalQuantile(1 - density / 2) : HUGE_VAL;
  auto window = [k](size_t c) { return 3 * c < 2 * k ? -1 : 3 * c > 4 * k ? 1 : 0; };
  auto better = [&](size_t a, size_t b) {
    const int wa = window(a), wb = window(b);
    if (wa == 0 || wb == 0) return wa == 0 && wb != 0;
    if (wa != wb) return wa > 0;
    return wa > 0 ? a < b : a > b;
  };
  auto above = [&](double threshold, size_t i) { return fabs(v[i]) > fmt.acc(threshold); };
  double chosen = t;
  size_t chosenCount = 0;
  for (int counts = 0; counts < 3; ++counts) {
    size_t c = 0;
    for (size_t i = 0; i < v.size(); ++i) c += above(t, i);
    if (counts == 0 || better(c, chosenCount)) chosen = t, chosenCount = c;
    if (window(c) == 0) break;
    t *= window(c) < 0 ? 0.5 : 1.5;
  }
  std::vector<uint32_t> out;
  for (size_t i = 0; i < v.size() && out.size() < k; ++i)
    if (above(chosen, i)) out.push_back((uint32_t)i);
  out.resize(k, SPCCL_PAD_INDEX);
  return out;
}

// ---------------------------------------------------------------- 1-bit
// The sum of the magnitudes of a chunk as DESIGN.md, 1-bit, adds them: 32 at a time folded by
// halves (w[i] = w[i] + w[i + h] for h = 16, 8, 4, 2, 1), level by level until one value is
// left, +0 past the end; every addition rounded into the accumulation type.
inline double signFoldSum(std::vector<double> v, const Format& fmt) {
  if (v.empty()) return 0;
  do {
    std::vector<double> next((v.size() + 31) / 32);
    for (size_t g = 0; g < next.size(); ++g) {
      double w[32] = {};
      for (size_t i = 0; i < 32 && g * 32 + i < v.size(); ++i) w[i] = v[g * 32 + i];
      for (size_t h = 16; h > 0; h /= 2)
        for (size_t i = 0; i < h; ++i) w[i] = fmt.acc(w[i] + w[i + h]);
      next[g] = w[0];
    }
    v.swap(next);
  } while (v.size() > 1);
  return v[0];
}

// The chunk x[b, e) compressed: c[i] = +s or -s (+ for x >= 0) on [b, e), where s, the
// chunk's scale, is the mean magnitude rounded into storage. Returns s.
inline double signCompressChunk(const std::vector<double>& x, size_t b, size_t e, const Format& fmt,
                                std::vector<double>* c) {
  if (e <= b) return 0;
  std::vector<double> magnitudes;
  for (size_t i = b; i < e; ++i) magnitudes.push_back(fabs(x[i]));
  const double s = fmt.store(fmt.acc(signFoldSum(magnitudes, fmt) / fmt.acc((double)(e - b))));
  for (size_t i = b; i < e; ++i) (*c)[i] = x[i] < 0 ? -s : s;
  return s;
}

// ---------------------------------------------------------------- quantized top-k
// One rank's contribution c under qtopk (docs/DESIGN.md, "Quantized Top-k"), from its input
// x (values of the type): per chunk of `chunk` elements, the k = min(len, ceil(density *
// chunk)) (at least 1) of largest magnitude, ties to the lower index; the chunk's scale
// 2^E, E the smallest integer >= the type's smallest-subnormal exponent with
// (2^(bits-1) - 1) * 2^E >= the largest finite magnitude among them; each sent as
// sign * floor(|x| / 2^E + 1/2) * 2^E, or 0 when that is not finite in the type.
inline std::vector<double> qtopkContribution(const std::vector<double>& x, size_t chunk, double density, int bits,
                                             const Format& fmt) {
  std::vector<double> c(x.size(), 0.0);
  const double L = (1 << (bits - 1)) - 1;
  const size_t k = std::max<size_t>(1, (size_t)ceil(density * (double)chunk));
  for (size_t start = 0; start < x.size(); start += chunk) {
    const std::vector<double> part(x.begin() + start, x.begin() + std::min(x.size(), start + chunk));
    const std::vector<uint32_t> sent = topkByLevels(part, std::min(k, part.size()));
    double peak = 0;
    for (uint32_t i : sent)
      if (fabs(part[i]) <= fmt.maxFinite()) peak = std::max(peak, fabs(part[i]));
    if (peak == 0) continue;
    int E = (int)ceil(log2(peak / L));
    while (ldexp(L, E - 1) >= peak) --E;
    while (ldexp(L, E) < peak) ++E;
    E = std::max(E, fmt.minExp());
    for (uint32_t i : sent) {
      const double q = floor(fabs(part[i]) / ldexp(1.0, E) + 0.5), value = copysign(ldexp(q, E), part[i]);
      c[start + i] = fabs(value) <= fmt.maxFinite() ? value : 0.0;
    }
  }
  return c;
}

}  // namespace spccl_perf

#endif  // SPCCL_PERF_REFERENCE_H_
