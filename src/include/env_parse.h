/* SPDX-License-Identifier: Apache-2.0
 *
 * The strict grammar of every SPCCL_* value, as pure functions (no environment, no logging),
 * so the library, the unit tests and the fuzz targets all parse with the same code.
 *
 *   integer   decimal digits with an optional sign: no leading zeros (no octal surprises),
 *             no hex, no spaces, no suffix ("1000ms"), no exponent ("1e3"); range checked
 *   real      a finite decimal number, the whole string: sign, digits, point, exponent
 *             ("0.5abc", " 0.5", "\f0.5", hex floats "0x1p-6", "inf" and "nan" are refused)
 *   boolean   exactly "0" or "1"
 *   choice    one of a list of names (case-insensitive), or its decimal index
 *
 * Each parser returns nullptr when the text is valid and writes the value, or returns the
 * reason (a static string) and writes nothing.
 */
#ifndef SPCCL_ENV_PARSE_H_
#define SPCCL_ENV_PARSE_H_

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

namespace spccl {

// Decimal digits with an optional sign, as a sign and a 64-bit magnitude (no range check).
inline const char* parseEnvDecimal(const char* text, bool* negative, unsigned long long* magnitude) {
  const char* p = text;
  *negative = *p == '-';
  if (*p == '+' || *p == '-') ++p;
  if (*p < '0' || *p > '9') return "is not a decimal integer";
  if (p[0] == '0' && p[1] != '\0') return "has a leading zero (decimal digits only, no octal)";
  unsigned long long m = 0;
  for (; *p >= '0' && *p <= '9'; ++p) {
    const unsigned digit = unsigned(*p - '0');
    if (m > (UINT64_MAX - digit) / 10) return "is out of range";
    m = m * 10 + digit;
  }
  if (*p != '\0') return "is not a decimal integer (trailing characters)";
  *magnitude = m;
  return nullptr;
}

// A signed integer in [min, max].
inline const char* parseEnvInt64(const char* text, long long min, long long max, long long* value) {
  bool negative;
  unsigned long long m;
  if (const char* why = parseEnvDecimal(text, &negative, &m)) return why;
  if (m > (unsigned long long)INT64_MAX + (negative ? 1 : 0)) return "is out of range";
  const long long v = negative ? (long long)(0ull - m) : (long long)m;
  if (v < min || v > max) return "is out of range";
  *value = v;
  return nullptr;
}

// An unsigned integer in [0, max].
inline const char* parseEnvUint64(const char* text, unsigned long long max, unsigned long long* value) {
  bool negative;
  unsigned long long m;
  if (const char* why = parseEnvDecimal(text, &negative, &m)) return why;
  if ((negative && m != 0) || m > max) return "is out of range";
  *value = m;
  return nullptr;
}

// A finite real in (min, max] when minOpen, else [min, max]; the whole text must be the number.
inline const char* parseEnvReal(const char* text, double min, double max, bool minOpen, double* value) {
  // strtod alone would skip leading white space of any kind and read hex floats.
  if (!((*text >= '0' && *text <= '9') || *text == '.' || *text == '+' || *text == '-')) return "is not a number";
  for (const char* p = text; *p; ++p)
    if (*p == 'x' || *p == 'X') return "is not a decimal number (hex floats are refused)";
  char* end = nullptr;
  errno = 0;
  const double v = strtod(text, &end);
  if (end == text) return "is not a number";
  if (*end != '\0') return "is not a number (trailing characters)";
  if (!isfinite(v) || errno == ERANGE) return "is not a finite number";
  if (v > max || v < min || (minOpen && v == min)) return "is out of range";
  *value = v;
  return nullptr;
}

inline const char* parseEnvBool(const char* text, bool* value) {
  if ((text[0] == '0' || text[0] == '1') && text[1] == '\0') {
    *value = text[0] == '1';
    return nullptr;
  }
  return "is not 0 or 1";
}

// One of names[0..n) (case-insensitive; null entries are skipped), or a decimal index < n.
inline const char* parseEnvChoice(const char* text, const char* const* names, int n, int* value) {
  for (int i = 0; i < n; ++i)
    if (names[i] && strcasecmp(text, names[i]) == 0) {
      *value = i;
      return nullptr;
    }
  long long index;
  if (parseEnvInt64(text, 0, n - 1, &index) != nullptr) return "is not one of the accepted values";
  *value = (int)index;
  return nullptr;
}

// A comma-separated list of names (case-insensitive, any length) into the OR of their bits.
// Every name must be one of names[0..n): an empty name (",", "INIT,", "INIT,,COLL") is refused
// too. On failure the offending name, cut to fit, goes to bad[badLen].
inline const char* parseEnvNameList(const char* list, const char* const* names, const unsigned* bits, int n,
                                    unsigned* mask, char* bad, size_t badLen) {
  unsigned m = 0;
  for (const char* tok = list;; ++tok) {
    const char* end = tok;
    while (*end && *end != ',') ++end;
    const size_t len = (size_t)(end - tok);
    int found = -1;
    for (int i = 0; i < n && found < 0; ++i)
      if (strncasecmp(tok, names[i], len) == 0 && names[i][len] == '\0' && len > 0) found = i;
    if (found < 0) {
      snprintf(bad, badLen, "%.*s", (int)len, tok);
      return len ? "names an unknown subsystem" : "has an empty name";
    }
    m |= bits[found];
    if (*end == '\0') break;
    tok = end;
  }
  *mask = m;
  return nullptr;
}

// SPCCL_DEBUG_FILE: "%d" becomes the pid, "%h" the host name, "%%" a single '%'; any other
// character, '%' included, is copied as it is. The pattern is never a printf format. Returns
// false when the result does not fit `len` bytes.
inline bool expandDebugFilePath(const char* pattern, int pid, const char* host, char* out, size_t len) {
  size_t used = 0;
  auto append = [&](const char* s, size_t n) {
    if (used + n >= len) return false;
    for (size_t i = 0; i < n; ++i) out[used++] = s[i];
    return true;
  };
  char pidText[24];
  const int pidLen = snprintf(pidText, sizeof(pidText), "%d", pid);
  for (const char* p = pattern; *p; ++p) {
    bool ok;
    if (p[0] == '%' && p[1] == 'd') ok = append(pidText, (size_t)pidLen), ++p;
    else if (p[0] == '%' && p[1] == 'h') {
      size_t hostLen = 0;
      while (host[hostLen]) ++hostLen;
      ok = append(host, hostLen), ++p;
    } else if (p[0] == '%' && p[1] == '%') ok = append(p, 1), ++p;
    else ok = append(p, 1);
    if (!ok) return false;
  }
  if (len == 0) return false;
  out[used] = '\0';
  return true;
}

}  // namespace spccl

#endif  // SPCCL_ENV_PARSE_H_
