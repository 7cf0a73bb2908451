// SPDX-License-Identifier: Apache-2.0
//
// The SPCCL_* grammar (env_parse.h) on its own, then through the public API: a malformed
// variable fails the call that reads it with spcclInvalidArgument and a sentence naming it,
// never silently falls back to a default or a truncated value.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "common/loopback_comm.h"
#include "env_parse.h"
#include "spccl.h"

namespace {

using spccl::parseEnvBool;
using spccl::parseEnvInt64;
using spccl::parseEnvReal;
using spccl::parseEnvUint64;

TEST(EnvGrammar, IntegersAreDecimalOnlyAndRangeChecked) {
  long long v = 7;
  EXPECT_EQ(parseEnvInt64("1000", 0, 2147483647, &v), nullptr);
  EXPECT_EQ(v, 1000);
  EXPECT_EQ(parseEnvInt64("0", 0, 10, &v), nullptr);
  EXPECT_EQ(v, 0);
  EXPECT_EQ(parseEnvInt64("-5", -10, 10, &v), nullptr);
  EXPECT_EQ(v, -5);
  v = 42;
  for (const char* bad : {"-1", "1e3", "1000ms", "abc", "", " 5", "5 ", "0x10", "010", "4294967297", "+", "--1",
                          "99999999999999999999999"})
    EXPECT_NE(parseEnvInt64(bad, 0, 2147483647, &v), nullptr) << bad;
  EXPECT_EQ(v, 42) << "a refused value must not be written";
  EXPECT_STREQ(parseEnvInt64("010", 0, 100, &v), "has a leading zero (decimal digits only, no octal)");
  EXPECT_STREQ(parseEnvInt64("4294967297", 1, 2147483647, &v), "is out of range");
  EXPECT_STREQ(parseEnvInt64("1000ms", 0, 5000, &v), "is not a decimal integer (trailing characters)");
  EXPECT_EQ(parseEnvInt64("-9223372036854775808", INT64_MIN, INT64_MAX, &v), nullptr);
  EXPECT_EQ(v, INT64_MIN);
  unsigned long long u = 0;
  EXPECT_EQ(parseEnvUint64("18446744073709551614", ~0ull - 1, &u), nullptr);
  EXPECT_EQ(u, ~0ull - 1);
  EXPECT_NE(parseEnvUint64("18446744073709551615", ~0ull - 1, &u), nullptr);
  EXPECT_NE(parseEnvUint64("-1", ~0ull - 1, &u), nullptr);
}

TEST(EnvGrammar, RealsAndBooleansAreWholeStrings) {
  double d = 0;
  EXPECT_EQ(parseEnvReal("0.5", 0, 1, true, &d), nullptr);
  EXPECT_EQ(d, 0.5);
  EXPECT_EQ(parseEnvReal("1e-2", 0, 1, true, &d), nullptr);
  EXPECT_EQ(d, 0.01);
  for (const char* bad : {"0.5abc", "abc", "", " 0.5", "nan", "inf", "0", "1.5", "-0.1", "1e999",
                          // white space of every kind, hex floats
                          "\f0.5", "\r0.5", "\v0.5", "\t0.5", "\n0.5", "0.5 ", "0x1p-6", "0X.8p0", "-inf"})
    EXPECT_NE(parseEnvReal(bad, 0, 1, true, &d), nullptr) << bad;
  EXPECT_EQ(parseEnvReal("+.25E0", 0, 1, true, &d), nullptr);
  EXPECT_EQ(d, 0.25);
  bool b = false;
  EXPECT_EQ(parseEnvBool("1", &b), nullptr);
  EXPECT_TRUE(b);
  EXPECT_EQ(parseEnvBool("0", &b), nullptr);
  EXPECT_FALSE(b);
  for (const char* bad : {"yes", "true", "2", "01", "", "1 "}) EXPECT_NE(parseEnvBool(bad, &b), nullptr) << bad;
}

// SPCCL_DEBUG_SUBSYS: every name known, none empty, whatever the length of the list.
TEST(EnvGrammar, NameListsRefuseEmptyAndUnknownNamesAtAnyLength) {
  static const char* const names[] = {"INIT", "COLL", "ALL"};
  static const unsigned bits[] = {1, 2, 3};
  unsigned mask = 0;
  char bad[32];
  EXPECT_EQ(spccl::parseEnvNameList("init,Coll", names, bits, 3, &mask, bad, sizeof(bad)), nullptr);
  EXPECT_EQ(mask, 3u);
  for (const char* empty : {",", "", "INIT,", ",INIT", "INIT,,COLL"})
    EXPECT_STREQ(spccl::parseEnvNameList(empty, names, bits, 3, &mask, bad, sizeof(bad)), "has an empty name")
        << '"' << empty << '"';
  EXPECT_STREQ(spccl::parseEnvNameList("INIT,IN", names, bits, 3, &mask, bad, sizeof(bad)),
               "names an unknown subsystem");
  EXPECT_STREQ(bad, "IN");
  // A long list is read whole: an unknown name past 255 characters is still found.
  std::string list;
  while (list.size() < 600) list += "INIT,";
  list += "BOGUS";
  EXPECT_NE(spccl::parseEnvNameList(list.c_str(), names, bits, 3, &mask, bad, sizeof(bad)), nullptr);
  EXPECT_STREQ(bad, "BOGUS");
}

TEST(EnvGrammar, DebugFileExpandsOnlyPidAndHost) {
  char out[64];
  ASSERT_TRUE(spccl::expandDebugFilePath("spccl-%h-%d.log", 123, "node7", out, sizeof(out)));
  EXPECT_STREQ(out, "spccl-node7-123.log");
  // Never a printf format: %s, %x, %p and %n stay as they are.
  ASSERT_TRUE(spccl::expandDebugFilePath("a%s%x%p%n%%%", 1, "h", out, sizeof(out)));
  EXPECT_STREQ(out, "a%s%x%p%n%%");
  EXPECT_FALSE(spccl::expandDebugFilePath("%h%h%h%h", 1, "0123456789abcdef", out, sizeof(out)));
}

// A variable set for one test, restored after it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old, had_ = true;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_) setenv(name_, old_.c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

spcclResult_t createWithDefaults(spcclConfig_t* resolved) {
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  spcclState_t st = nullptr;
  const spcclResult_t res = spcclStateCreate(&st, spccl_fuzz::loopbackComm(), &cfg, 1000, spcclFloat32);
  if (res == spcclSuccess) {
    spcclStateGetConfig(st, resolved);
    spcclStateDestroy(st);
  }
  return res;
}

TEST(EnvThroughApi, MalformedConfigVariablesFailStateCreate) {
  const struct { const char* name; const char* value; const char* why; } cases[] = {
      {"SPCCL_BLOCK_SIZE", "4294967297", "SPCCL_BLOCK_SIZE=4294967297 is out of range; expected a decimal integer in "
                                         "[1, 2147483647]"},
      {"SPCCL_BLOCK_SIZE", "010", "SPCCL_BLOCK_SIZE=010 has a leading zero"},
      {"SPCCL_BLOCK_SIZE", "0", "SPCCL_BLOCK_SIZE=0 is out of range"},
      {"SPCCL_DENSITY", "0.5abc", "SPCCL_DENSITY=0.5abc is not a number (trailing characters); expected a number in "
                                  "(0, 1]"},
      {"SPCCL_DENSITY", "2", "SPCCL_DENSITY=2 is out of range"},
      {"SPCCL_DENSE_SWITCH", "yes", "SPCCL_DENSE_SWITCH=yes is not 0 or 1"},
      {"SPCCL_PIPELINE", "2", "SPCCL_PIPELINE=2 is not 0 or 1"},
      {"SPCCL_SEED", "-1", "SPCCL_SEED=-1 is out of range; expected a decimal integer in [0, 18446744073709551614]"},
      {"SPCCL_SEED", "18446744073709551615", "SPCCL_SEED=18446744073709551615 is out of range"},
      {"SPCCL_METHOD", "top-k", "SPCCL_METHOD=top-k is not one of the accepted values; expected "
                                "dense|randomblock|topk|gaussiank|gtopk"},
      {"SPCCL_METHOD", "7", "SPCCL_METHOD=7 is not one of the accepted values"},
      {"SPCCL_FEEDBACK", "EFF", "SPCCL_FEEDBACK=EFF"},
      {"SPCCL_BLOCK_PATTERN", "random", "SPCCL_BLOCK_PATTERN=random"},
  };
  for (const auto& c : cases) {
    ScopedEnv env(c.name, c.value);
    spcclConfig_t resolved;
    EXPECT_EQ(createWithDefaults(&resolved), spcclInvalidArgument) << c.name << "=" << c.value;
    const std::string msg = spcclGetLastError(nullptr);
    EXPECT_NE(msg.find(std::string("spcclStateCreate : ") + c.why), std::string::npos) << msg;
  }
}

TEST(EnvThroughApi, WellFormedVariablesAreUsedAndSetFieldsWin) {
  ScopedEnv size("SPCCL_BLOCK_SIZE", "100"), density("SPCCL_DENSITY", "0.25"), seed("SPCCL_SEED", "99"),
      method("SPCCL_METHOD", "TopK"), sw("SPCCL_DENSE_SWITCH", "0");
  spcclConfig_t resolved;
  ASSERT_EQ(createWithDefaults(&resolved), spcclSuccess) << spcclGetLastError(nullptr);
  EXPECT_EQ(resolved.blockSize, 100);
  EXPECT_EQ(resolved.density, 0.25);
  EXPECT_EQ(resolved.seed, 99u);
  EXPECT_EQ(resolved.method, spcclMethodTopK);
  EXPECT_EQ(resolved.denseSwitch, 0);
  // A field the caller set does not read its variable, so a bad variable cannot fail it.
  ScopedEnv bad("SPCCL_DENSITY", "junk");
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.density = 0.5;
  spcclState_t st = nullptr;
  ASSERT_EQ(spcclStateCreate(&st, spccl_fuzz::loopbackComm(), &cfg, 10, spcclFloat32), spcclSuccess);
  spcclStateDestroy(st);
}

}  // namespace
