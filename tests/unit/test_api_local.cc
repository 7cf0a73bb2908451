// SPDX-License-Identifier: Apache-2.0
//
// Entry points that need no communicator: version, error strings, and the NULL and bad
// handle checks every call makes before it touches anything.

#include <gtest/gtest.h>

#include <string>

#include "spccl.h"

namespace {

TEST(ApiLocal, Version) {
  int version = 0;
  ASSERT_EQ(spcclGetVersion(&version), spcclSuccess);
  EXPECT_EQ(version, SPCCL_VERSION_CODE);
  EXPECT_EQ(SPCCL_VERSION(0, 1, 0), 100);
  EXPECT_EQ(spcclGetVersion(nullptr), spcclInvalidArgument);
}

TEST(ApiLocal, ErrorStringsAndNcclValues) {
  EXPECT_EQ(spcclInvalidArgument, 4);
  EXPECT_EQ(spcclTimeout, 8);
  EXPECT_EQ(spcclFloat32, 7);
  EXPECT_EQ(spcclAvg, 4);
  for (int r = 0; r <= spcclNumResults; ++r) EXPECT_NE(spcclGetErrorString((spcclResult_t)r), nullptr);
  EXPECT_NE(std::string(spcclGetErrorString(spcclInvalidArgument)).find("SPCCL_DEBUG"), std::string::npos);
}

TEST(ApiLocal, NullHandlesAreRejectedWithAMessage) {
  int n = 0;
  EXPECT_EQ(spcclCommCount(nullptr, &n), spcclInvalidArgument);
  EXPECT_STREQ(spcclGetLastError(nullptr), "spcclCommCount : comm argument is NULL");
  EXPECT_EQ(spcclStateDestroy(nullptr), spcclInvalidArgument);
  EXPECT_STREQ(spcclGetLastError(nullptr), "spcclStateDestroy : state argument is NULL");
  spcclConfig_t config = SPCCL_CONFIG_INITIALIZER;
  spcclState_t state = nullptr;
  EXPECT_EQ(spcclStateCreate(&state, nullptr, &config, 10, spcclFloat32), spcclInvalidArgument);
  EXPECT_EQ(state, nullptr);
  float x = 0;
  EXPECT_EQ(spcclSparseAllReduce(&x, &x, 1, spcclFloat32, spcclSum, nullptr, nullptr, nullptr), spcclInvalidArgument);
  EXPECT_STREQ(spcclGetLastError(nullptr), "spcclSparseAllReduce : state argument is NULL");
}

// Every spcclMethod_t value has a name, which SPCCL_METHOD accepts; nothing else has one.
TEST(ApiLocal, MethodNamesComeFromTheTable) {
  for (int m = 0; m < spcclNumMethods; ++m) {
    const char* name = spcclMethodName(m);
    ASSERT_NE(name, nullptr) << "method " << m;
    for (int other = 0; other < m; ++other) EXPECT_STRNE(name, spcclMethodName(other));
  }
  EXPECT_EQ(spcclMethodName(spcclNumMethods), nullptr);
  EXPECT_EQ(spcclMethodName(-1), nullptr);
  EXPECT_STREQ(spcclMethodName(spcclMethodTopK), "topk");
  spcclStateInfo_t info;
  EXPECT_EQ(spcclStateGetInfo(nullptr, &info), spcclInvalidArgument);
  EXPECT_STREQ(spcclGetLastError(nullptr), "spcclStateGetInfo : state argument is NULL");
}

TEST(ApiLocal, ForgedHandleIsRejected) {
  alignas(16) unsigned char junk[256] = {};
  int n = 0;
  EXPECT_EQ(spcclCommCount(reinterpret_cast<spcclComm_t>(junk), &n), spcclInvalidArgument);
  EXPECT_NE(std::string(spcclGetLastError(nullptr)).find("is not a live spccl communicator"), std::string::npos);
}

}  // namespace
