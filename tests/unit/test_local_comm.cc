// SPDX-License-Identifier: Apache-2.0
//
// The compress-only comm (spcclCommInitLocal) and restoring a state (spcclStateSetStep,
// spcclStateSetResidual): what a framework that moves the payloads itself relies on.

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "spccl.h"

namespace {

bool lastErrorMentions(const char* text) {
  return std::string(spcclGetLastError(nullptr)).find(text) != std::string::npos;
}

class LocalComm : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(spcclCommInitLocal(&comm_, 4, 1, -1), spcclSuccess); }
  void TearDown() override {
    for (spcclState_t s : states_) EXPECT_EQ(spcclStateDestroy(s), spcclSuccess);
    EXPECT_EQ(spcclCommDestroy(comm_), spcclSuccess);
  }
  spcclState_t makeState(spcclMethod_t method, size_t count, spcclFeedback_t feedback = spcclFeedbackEF) {
    spcclConfig_t config = SPCCL_CONFIG_INITIALIZER;
    config.method = method;
    config.density = 0.25;
    config.blockSize = 4;
    config.feedback = feedback;
    spcclState_t st = nullptr;
    EXPECT_EQ(spcclStateCreate(&st, comm_, &config, count, spcclFloat32), spcclSuccess);
    states_.push_back(st);
    return st;
  }
  spcclComm_t comm_ = nullptr;
  std::vector<spcclState_t> states_;
};

TEST_F(LocalComm, KnowsRankAndSize) {
  int n = 0, r = -1;
  ASSERT_EQ(spcclCommCount(comm_, &n), spcclSuccess);
  ASSERT_EQ(spcclCommUserRank(comm_, &r), spcclSuccess);
  EXPECT_EQ(n, 4);
  EXPECT_EQ(r, 1);
}

// A compress-only comm checks the logger's variables as every comm init does.
TEST(LocalCommInit, MalformedDebugVariablesAreRefused) {
  for (const char* value : {",", "INIT,,COLL", "INIT,BOGUS"}) {
    setenv("SPCCL_DEBUG_SUBSYS", value, 1);
    spcclComm_t comm = nullptr;
    EXPECT_EQ(spcclCommInitLocal(&comm, 2, 0, -1), spcclInvalidArgument) << value;
    EXPECT_TRUE(lastErrorMentions("SPCCL_DEBUG_SUBSYS")) << spcclGetLastError(nullptr);
    EXPECT_EQ(comm, nullptr);
  }
  unsetenv("SPCCL_DEBUG_SUBSYS");
  setenv("SPCCL_DEBUG", "LOUD", 1);
  spcclComm_t comm = nullptr;
  EXPECT_EQ(spcclCommInitLocal(&comm, 2, 0, -1), spcclInvalidArgument);
  EXPECT_TRUE(lastErrorMentions("SPCCL_DEBUG=LOUD")) << spcclGetLastError(nullptr);
  unsetenv("SPCCL_DEBUG");
}

// Comms of 2^30 ranks and more (a compress-only comm takes any int): state creation ends and
// the wire formulas do not wrap (2 (P-1) overflowed int; gTop-k's power of two looped).
TEST(LocalCommInit, HugeRankCountsDoNotOverflow) {
  for (int nranks : {1 << 30, 2147483647}) {
    spcclComm_t comm = nullptr;
    ASSERT_EQ(spcclCommInitLocal(&comm, nranks, nranks - 1, -1), spcclSuccess);
    for (spcclMethod_t method : {spcclMethodGTopK, spcclMethodDense, spcclMethodTopK}) {
      spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
      cfg.method = method;
      spcclState_t st = nullptr;
      const spcclResult_t res = spcclStateCreate(&st, comm, &cfg, 100, spcclFloat32);
      if (res != spcclSuccess) continue;  // refused (too much workspace) is fine; a hang is not
      spcclStateInfo_t info = SPCCL_STATE_INFO_INITIALIZER;
      ASSERT_EQ(spcclStateGetInfo(st, &info), spcclSuccess);
      EXPECT_EQ(info.denseWireBytes, (size_t)(2.0 * (nranks - 1.0) * 400 / nranks)) << nranks;
      EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
    }
    EXPECT_EQ(spcclCommDestroy(comm), spcclSuccess);
  }
}

TEST(LocalCommInit, BadArgumentsAreRejected) {
  spcclComm_t comm = nullptr;
  EXPECT_EQ(spcclCommInitLocal(nullptr, 2, 0, -1), spcclInvalidArgument);
  EXPECT_EQ(spcclCommInitLocal(&comm, 0, 0, -1), spcclInvalidArgument);
  EXPECT_TRUE(lastErrorMentions("nranks 0 is not >= 1"));
  EXPECT_EQ(spcclCommInitLocal(&comm, 2, 2, -1), spcclInvalidArgument);
  EXPECT_TRUE(lastErrorMentions("rank 2 is outside 0..1"));
  EXPECT_EQ(spcclCommInitLocal(&comm, 2, -1, -1), spcclInvalidArgument);
  EXPECT_EQ(spcclCommInitLocal(&comm, 2, 0, -2), spcclInvalidArgument);
  EXPECT_EQ(comm, nullptr);
}

TEST_F(LocalComm, CollectivesAreRefusedWithAMessage) {
  std::vector<float> x(64, 1.0f), y(64 * 4);
  EXPECT_EQ(spcclAllReduce(x.data(), x.data(), 64, spcclFloat32, spcclSum, comm_, nullptr), spcclInvalidUsage);
  EXPECT_TRUE(lastErrorMentions("spcclAllReduce : comm"));
  EXPECT_TRUE(lastErrorMentions("is compress-only (spcclCommInitLocal)"));
  EXPECT_EQ(spcclAllGather(x.data(), y.data(), 64, spcclFloat32, comm_, nullptr), spcclInvalidUsage);
  spcclState_t st = makeState(spcclMethodRandomBlock, 64);
  EXPECT_EQ(spcclSparseAllReduce(x.data(), x.data(), 64, spcclFloat32, spcclAvg, st, comm_, nullptr),
            spcclInvalidUsage);
  EXPECT_TRUE(lastErrorMentions("spcclSparseAllReduce : comm"));
  unsigned long long step = 99;
  ASSERT_EQ(spcclStateGetStep(st, &step), spcclSuccess);
  EXPECT_EQ(step, 0u);  // the refused call changed nothing
  for (float v : x) EXPECT_EQ(v, 1.0f);
}

// Compress on the local comm, then decompress the one contribution: random block keeps
// c + e == g on every coordinate and returns exactly the packed blocks.
TEST_F(LocalComm, CompressAndDecompressWork) {
  spcclState_t st = makeState(spcclMethodRandomBlock, 64);
  std::vector<float> g(64), out(64);
  for (int i = 0; i < 64; ++i) g[i] = (float)(i + 1);
  size_t cap = 0, n = 0;
  unsigned long long step = 0;
  ASSERT_EQ(spcclCompressedCount(st, &cap), spcclSuccess);
  std::vector<float> values(cap);
  ASSERT_EQ(spcclCompress(g.data(), values.data(), nullptr, &n, &step, st, nullptr), spcclSuccess);
  ASSERT_EQ(spcclDecompress(values.data(), nullptr, n, step, 1.0, out.data(), st, nullptr), spcclSuccess);
  void* res = nullptr;
  ASSERT_EQ(spcclStateGetResidual(st, &res), spcclSuccess);
  const float* e = static_cast<const float*>(res);
  size_t sent = 0;
  for (int i = 0; i < 64; ++i) {
    EXPECT_EQ(out[i] + e[i], g[i]) << i;
    sent += out[i] != 0.0f;
  }
  EXPECT_EQ(sent, 16u);  // density 1/4 of 16 blocks of 4
}

// Two states fed the same gradients, one restored mid-way from the other's step and residual,
// produce the same payloads from then on.
TEST_F(LocalComm, RestoredStateContinuesIdentically) {
  spcclState_t a = makeState(spcclMethodTopK, 64), b = makeState(spcclMethodTopK, 64);
  size_t cap = 0;
  ASSERT_EQ(spcclCompressedCount(a, &cap), spcclSuccess);
  std::vector<float> g(64), va(cap), vb(cap);
  std::vector<uint32_t> ia(cap), ib(cap);
  size_t n = 0;
  unsigned long long step = 0;
  auto gradient = [&](int t) {
    for (int i = 0; i < 64; ++i) g[i] = (float)((i * 7 + t * 13) % 29) - 14.0f;
  };
  for (int t = 0; t < 3; ++t) {
    gradient(t);
    ASSERT_EQ(spcclCompress(g.data(), va.data(), ia.data(), &n, &step, a, nullptr), spcclSuccess);
  }
  void* res = nullptr;
  ASSERT_EQ(spcclStateGetResidual(a, &res), spcclSuccess);
  ASSERT_EQ(spcclStateSetResidual(b, res, 64, spcclFloat32, nullptr), spcclSuccess);
  ASSERT_EQ(spcclStateSetStep(b, 3), spcclSuccess);
  for (int t = 3; t < 6; ++t) {
    gradient(t);
    unsigned long long sa = 0, sb = 0;
    ASSERT_EQ(spcclCompress(g.data(), va.data(), ia.data(), &n, &sa, a, nullptr), spcclSuccess);
    ASSERT_EQ(spcclCompress(g.data(), vb.data(), ib.data(), &n, &sb, b, nullptr), spcclSuccess);
    EXPECT_EQ(sa, sb);
    EXPECT_EQ(va, vb);
    EXPECT_EQ(ia, ib);
  }
}

// The feedback memory is one extent for every method: what GetResidual shows, SetResidual
// restores and Reset zeroes. 1-bit's holds its server residual (ceil(64/4) = 16 elements)
// after the worker residual; a restore reads exactly that many elements, never more.
TEST_F(LocalComm, FeedbackMemoryIsOneExtent) {
  for (spcclMethod_t method : {spcclMethodDense, spcclMethodRandomBlock, spcclMethodTopK, spcclMethodGaussianK,
                               spcclMethodGTopK, spcclMethodOneBit}) {
    spcclState_t st = makeState(method, 64);
    const size_t want = method == spcclMethodOneBit ? 64 + 16 : 64;
    size_t count = 0;
    ASSERT_EQ(spcclStateGetResidualCount(st, &count), spcclSuccess);
    ASSERT_EQ(count, want) << spcclMethodName(method);
    // Exactly `want` elements on the heap: ASan reports a restore that reads past them.
    std::unique_ptr<float[]> saved(new float[want]);
    for (size_t i = 0; i < want; ++i) saved[i] = (float)i + 0.5f;
    if (want != 64) EXPECT_EQ(spcclStateSetResidual(st, saved.get(), 64, spcclFloat32, nullptr), spcclInvalidUsage);
    ASSERT_EQ(spcclStateSetResidual(st, saved.get(), want, spcclFloat32, nullptr), spcclSuccess);
    void* res = nullptr;
    ASSERT_EQ(spcclStateGetResidual(st, &res), spcclSuccess);
    EXPECT_EQ(memcmp(res, saved.get(), want * sizeof(float)), 0) << spcclMethodName(method);
    ASSERT_EQ(spcclStateReset(st), spcclSuccess);
    for (size_t i = 0; i < want; ++i) ASSERT_EQ(static_cast<const float*>(res)[i], 0.0f) << spcclMethodName(method);
  }
  size_t count = 0;
  EXPECT_EQ(spcclStateGetResidualCount(nullptr, &count), spcclInvalidArgument);
  EXPECT_EQ(spcclStateGetResidualCount(states_[0], nullptr), spcclInvalidArgument);
}

// One overlap rule for Compress and Decompress: a buffer the call writes overlaps no other,
// and no buffer lies in the state's own memory; a refused call changes nothing.
TEST_F(LocalComm, CompressAndDecompressRefuseOverlaps) {
  const size_t n = 1000;
  spcclState_t st = makeState(spcclMethodRandomBlock, n);
  spcclState_t topk = makeState(spcclMethodTopK, n);
  size_t cap = 0, topkCap = 0;
  ASSERT_EQ(spcclCompressedCount(st, &cap), spcclSuccess);
  ASSERT_EQ(spcclCompressedCount(topk, &topkCap), spcclSuccess);
  std::vector<float> g(2 * n + 8, 1.5f), out(n + 400, 7.0f);
  void* residual = nullptr;
  ASSERT_EQ(spcclStateGetResidual(st, &residual), spcclSuccess);
  float* e = static_cast<float*>(residual);
  e[3] = 2.5f;
  const std::vector<float> before(e, e + n);
  size_t nvalues = 0;
  unsigned long long step = 0;
  auto refused = [&](spcclResult_t res, const char* what) {
    EXPECT_EQ(res, spcclInvalidArgument) << what;
    EXPECT_TRUE(lastErrorMentions("overlap") || lastErrorMentions("lies in the state's own memory"))
        << what << ": " << spcclGetLastError(nullptr);
    EXPECT_EQ(std::vector<float>(e, e + n), before) << what << ": the residual changed";
  };
  refused(spcclCompress(g.data(), g.data() + 1, nullptr, &nvalues, &step, st, nullptr), "values = sendbuff + 1");
  refused(spcclCompress(g.data(), g.data(), nullptr, &nvalues, &step, st, nullptr), "values = sendbuff");
  refused(spcclCompress(e, out.data(), nullptr, &nvalues, &step, st, nullptr), "sendbuff = the residual");
  refused(spcclCompress(g.data(), e + 10, nullptr, &nvalues, &step, st, nullptr), "values in the residual");
  std::vector<float> values(topkCap);
  std::vector<uint32_t> idx(topkCap);
  EXPECT_EQ(spcclCompress(g.data(), values.data(), reinterpret_cast<uint32_t*>(values.data()), &nvalues, &step, topk,
                          nullptr),
            spcclInvalidArgument)
      << "indices over values";
  unsigned long long now = 9;
  ASSERT_EQ(spcclStateGetStep(st, &now), spcclSuccess);
  EXPECT_EQ(now, 0u) << "a refused compress advanced the step";
  // Decompress: values inside recvbuff, recvbuff = the residual.
  const std::vector<float> outBefore = out;
  refused(spcclDecompress(out.data() + 100, nullptr, cap, 0, 1.0, out.data(), st, nullptr), "values = recvbuff + 100");
  EXPECT_EQ(out, outBefore);
  std::vector<float> packed(cap, 1.0f);
  refused(spcclDecompress(packed.data(), nullptr, cap, 0, 1.0, e, st, nullptr), "recvbuff = the residual");
  for (size_t i = 0; i < topkCap; ++i) idx[i] = (uint32_t)i;
  EXPECT_EQ(spcclDecompress(values.data(), idx.data(), topkCap, 0, 1.0, reinterpret_cast<float*>(idx.data()), topk,
                            nullptr),
            spcclInvalidArgument)
      << "recvbuff over indices";
  // Separate buffers still work.
  EXPECT_EQ(spcclCompress(g.data(), out.data(), nullptr, &nvalues, &step, st, nullptr), spcclSuccess);
  EXPECT_EQ(spcclDecompress(packed.data(), nullptr, cap, 0, 1.0, out.data(), st, nullptr), spcclSuccess);
}

TEST_F(LocalComm, RestoreRejectsBadInputAndChangesNothing) {
  spcclState_t st = makeState(spcclMethodRandomBlock, 64);
  std::vector<float> r(64, 3.0f);
  std::vector<double> wrongType(64);
  EXPECT_EQ(spcclStateSetStep(nullptr, 1), spcclInvalidArgument);
  EXPECT_EQ(spcclStateSetResidual(nullptr, r.data(), 64, spcclFloat32, nullptr), spcclInvalidArgument);
  EXPECT_EQ(spcclStateSetResidual(st, nullptr, 64, spcclFloat32, nullptr), spcclInvalidArgument);
  EXPECT_TRUE(lastErrorMentions("spcclStateSetResidual : residual argument is NULL"));
  EXPECT_EQ(spcclStateSetResidual(st, r.data(), 63, spcclFloat32, nullptr), spcclInvalidUsage);
  EXPECT_TRUE(lastErrorMentions("count 63 differs from the state's feedback memory, 64 elements"));
  EXPECT_EQ(spcclStateSetResidual(st, wrongType.data(), 64, spcclFloat64, nullptr), spcclInvalidUsage);
  EXPECT_TRUE(lastErrorMentions("datatype double differs"));
  EXPECT_EQ(spcclStateSetResidual(st, reinterpret_cast<const char*>(r.data()) + 1, 64, spcclFloat32, nullptr),
            spcclInvalidArgument);
  EXPECT_TRUE(lastErrorMentions("is not aligned"));
  spcclState_t none = makeState(spcclMethodRandomBlock, 64, spcclFeedbackNone);
  EXPECT_EQ(spcclStateSetResidual(none, r.data(), 64, spcclFloat32, nullptr), spcclInvalidUsage);
  EXPECT_TRUE(lastErrorMentions("keeps no residual"));
  void* res = nullptr;
  ASSERT_EQ(spcclStateGetResidual(st, &res), spcclSuccess);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(static_cast<const float*>(res)[i], 0.0f);
  ASSERT_EQ(spcclStateSetResidual(st, r.data(), 64, spcclFloat32, nullptr), spcclSuccess);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(static_cast<const float*>(res)[i], 3.0f);
  ASSERT_EQ(spcclStateSetStep(st, 41), spcclSuccess);
  unsigned long long step = 0;
  ASSERT_EQ(spcclStateGetStep(st, &step), spcclSuccess);
  EXPECT_EQ(step, 41u);
}

}  // namespace
