// SPDX-License-Identifier: Apache-2.0
//
// spcclStateGetInfo: the method facts of the table entries as the public API reports them,
// the versioned struct (initializer, older and newer callers), and wire formulas that
// saturate instead of wrapping at 2^31 ranks.

#include <gtest/gtest.h>
#include <limits.h>
#include <string.h>

#include <string>

#include "method.h"
#include "spccl.h"
#include "workspace.h"

namespace {

bool lastErrorMentions(const char* text) {
  return std::string(spcclGetLastError(nullptr)).find(text) != std::string::npos;
}

struct LocalState {
  spcclComm_t comm = nullptr;
  spcclState_t state = nullptr;
  LocalState(int nranks, int method, size_t count, double density = 1.0 / 64) {
    EXPECT_EQ(spcclCommInitLocal(&comm, nranks, 0, -1), spcclSuccess);
    spcclConfig_t config = SPCCL_CONFIG_INITIALIZER;
    config.method = method;
    config.density = density;
    config.blockSize = 16;
    EXPECT_EQ(spcclStateCreate(&state, comm, &config, count, spcclFloat32), spcclSuccess) << spcclGetLastError(nullptr);
  }
  ~LocalState() {
    spcclStateDestroy(state);
    spcclCommDestroy(comm);
  }
  spcclStateInfo_t info() const {
    spcclStateInfo_t i = SPCCL_STATE_INFO_INITIALIZER;
    EXPECT_EQ(spcclStateGetInfo(state, &i), spcclSuccess) << spcclGetLastError(nullptr);
    return i;
  }
};

TEST(StateInfo, PayloadKindsHaveNamesAndEveryMethodOne) {
  EXPECT_STREQ(spcclPayloadName(spcclPayloadValues), "values");
  EXPECT_STREQ(spcclPayloadName(spcclPayloadSlots), "slots");
  EXPECT_STREQ(spcclPayloadName(spcclPayloadRounds), "rounds");
  EXPECT_EQ(spcclPayloadName(spcclNumPayloads), nullptr);
  EXPECT_EQ(spcclPayloadName(-1), nullptr);
  int payload = -1;
  for (int m = 0; spcclMethodName(m); ++m) {
    ASSERT_EQ(spcclMethodGetPayload(m, &payload), spcclSuccess);
    EXPECT_NE(spcclPayloadName(payload), nullptr) << spcclMethodName(m);
    LocalState s(4, m, 4096);
    EXPECT_EQ(s.info().payload, payload) << spcclMethodName(m);
  }
  EXPECT_EQ(spcclMethodGetPayload(spcclNumMethods, &payload), spcclInvalidArgument);
  EXPECT_TRUE(lastErrorMentions("names no method"));
  EXPECT_EQ(spcclMethodGetPayload(spcclMethodTopK, nullptr), spcclInvalidArgument);
}

// The kinds adapters dispatch on: an allreduce, an allgather, or spccl's own rounds.
TEST(StateInfo, PayloadKindOfEachMethod) {
  const int expected[][2] = {{spcclMethodDense, spcclPayloadValues},  {spcclMethodRandomBlock, spcclPayloadValues},
                             {spcclMethodTopK, spcclPayloadSlots},    {spcclMethodGaussianK, spcclPayloadSlots},
                             {spcclMethodGTopK, spcclPayloadRounds}, {spcclMethodOneBit, spcclPayloadRounds},
                             {spcclMethodQTopK, spcclPayloadSlots}};
  for (const auto& e : expected) {
    int payload = -1;
    ASSERT_EQ(spcclMethodGetPayload(e[0], &payload), spcclSuccess);
    EXPECT_EQ(payload, e[1]) << spcclMethodName(e[0]);
  }
}

TEST(StateInfo, WireRoundsAndCostTermsOnFourRanks) {
  const size_t n = 4096;
  {
    LocalState s(4, spcclMethodTopK, n);
    const spcclStateInfo_t i = s.info();
    EXPECT_EQ(i.selected, 64u);
    EXPECT_EQ(i.methodWireBytes, 3u * 64 * 8);  // allgather: P-1 blocks of k (index, value) pairs
    EXPECT_EQ(i.wireBytes, i.methodWireBytes);
    EXPECT_EQ(i.rounds, 3u);
    EXPECT_EQ(i.denseWireBytes, 2 * 3 * n * 4 / 4);
    EXPECT_GT(i.memoryPasses, 0);
    EXPECT_GT(i.selectPasses, 0);
    EXPECT_EQ(i.wireIntraHostBytes, i.wireBytes);  // a local comm is one host
    EXPECT_EQ(i.wireInterHostBytes, 0u);
  }
  {
    LocalState s(4, spcclMethodRandomBlock, n);
    const spcclStateInfo_t i = s.info();
    EXPECT_EQ(i.selected, 64u);  // 256 blocks of 16, 4 chosen
    EXPECT_EQ(i.wireBytes, 2 * 3 * 64 * 4 / 4);
    EXPECT_EQ(i.rounds, 6u);
    EXPECT_EQ(i.selectPasses, 0);
  }
  {
    LocalState s(4, spcclMethodGTopK, n);
    const spcclStateInfo_t i = s.info();
    EXPECT_EQ(i.rounds, 2u + 6u);  // two doubling rounds, then the ring allreduce of k values
    EXPECT_EQ(i.methodWireBytes, 2u * 64 * 8 + 2 * 3 * 64 * 4 / 4);
  }
  {
    // k = n: the pairs cost more than a dense allreduce, so the collective runs dense; the
    // method's own payload still reports what an adapter's allgather of it would send.
    LocalState s(4, spcclMethodTopK, n, 1.0);
    const spcclStateInfo_t i = s.info();
    EXPECT_EQ(i.denseSwitched, 1);
    EXPECT_EQ(i.wireBytes, i.denseWireBytes);
    EXPECT_EQ(i.methodWireBytes, 3u * n * 8);
    EXPECT_EQ(i.rounds, 6u);
  }
}

// 2^31 - 1 ranks on a compress-only comm: the rounds and wire of gTop-k's tree (whose largest
// power of two below P once doubled past INT_MAX) and of a ring are exact.
TEST(StateInfo, ManyRanksDoNotOverflow) {
  const unsigned __int128 P = INT_MAX;
  {
    LocalState s(INT_MAX, spcclMethodGTopK, 1024);
    const spcclStateInfo_t i = s.info();
    EXPECT_EQ(i.rounds, 30u + 2 + 2 * (size_t)(INT_MAX - 1));
  }
  {
    LocalState s(INT_MAX, spcclMethodDense, 1 << 20);
    EXPECT_EQ(s.info().wireBytes, (size_t)(2 * (P - 1) * (4u << 20) / P));
  }
}

TEST(WireFormulas, SaturateInsteadOfWrapping) {
  const unsigned __int128 P = INT_MAX;
  const size_t big = SIZE_MAX / 2;
  EXPECT_EQ(spccl::ringAllReduceBytes(INT_MAX, big), (size_t)(2 * (P - 1) * big / P));
  EXPECT_EQ(spccl::ringAllReduceBytes(INT_MAX, SIZE_MAX), SIZE_MAX);
  EXPECT_EQ(spccl::ringAllReduceBytes(INT_MAX, size_t(1) << 40), (size_t)(2 * (P - 1) * (size_t(1) << 40) / P));
  EXPECT_EQ(spccl::ringAllGatherBytes(INT_MAX, size_t(1) << 30), (size_t)((P - 1) << 30));
  EXPECT_EQ(spccl::ringAllGatherBytes(INT_MAX, size_t(1) << 40), SIZE_MAX);
  EXPECT_EQ(spccl::ringAllReduceRounds(INT_MAX), 2 * (size_t)(INT_MAX - 1));
  spccl::WorkspaceCarver c(nullptr);
  c.take<uint64_t>(SIZE_MAX / 4);
  EXPECT_EQ(c.bytes(), SIZE_MAX);
  c.takeBytes(64);
  EXPECT_EQ(c.bytes(), SIZE_MAX);
}

// A caller built against a header whose spcclStateInfo_t had no size field, or one that
// skipped the initializer, is refused with a message; nothing is written.
TEST(StateInfo, UninitialisedOrOldStructIsRefused) {
  LocalState s(2, spcclMethodTopK, 1000);
  struct OldInfo {  // spccl.h before the size field
    int method;
    size_t count, selected, wireBytes, denseWireBytes;
    int denseSwitched;
    size_t memoryBytes;
  } old;
  memset(&old, 0x5a, sizeof(old));
  old.method = 0;
  EXPECT_EQ(spcclStateGetInfo(s.state, reinterpret_cast<spcclStateInfo_t*>(&old)), spcclInvalidUsage);
  EXPECT_TRUE(lastErrorMentions("SPCCL_STATE_INFO_INITIALIZER"));
  EXPECT_EQ(old.count, 0x5a5a5a5a5a5a5a5aull);
  spcclStateInfo_t zeroed;
  memset(&zeroed, 0, sizeof(zeroed));
  EXPECT_EQ(spcclStateGetInfo(s.state, &zeroed), spcclInvalidUsage);
  spcclStateInfo_t small = SPCCL_STATE_INFO_INITIALIZER;
  small.size = offsetof(spcclStateInfo_t, rounds);
  EXPECT_EQ(spcclStateGetInfo(s.state, &small), spcclInvalidUsage);
}

// A newer caller's larger struct: the fields this library knows are filled, the rest kept.
TEST(StateInfo, NewerCallerKeepsItsExtraFields) {
  LocalState s(2, spcclMethodTopK, 1000);
  struct Newer {
    spcclStateInfo_t info;
    size_t later;
  } newer;
  memset(&newer, 0, sizeof(newer));
  newer.info.size = sizeof(newer);
  newer.info.magic = SPCCL_STATE_INFO_MAGIC;
  newer.later = 42;
  ASSERT_EQ(spcclStateGetInfo(s.state, &newer.info), spcclSuccess);
  EXPECT_EQ(newer.info.count, 1000u);
  EXPECT_EQ(newer.info.size, sizeof(newer));
  EXPECT_EQ(newer.later, 42u);
}

// A state whose auto selection cannot act says so in its info: no switch before any call, and
// none on a compress-only comm's states through spcclStateGetInfo.
TEST(AutoDecide, OneRankKeepsTheMethod) {
  LocalState s(1, spcclMethodTopK, 1000);
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = spcclMethodTopK;
  cfg.autoSelect = 1;
  spcclState_t st = nullptr;
  ASSERT_EQ(spcclStateCreate(&st, s.comm, &cfg, 1000, spcclFloat32), spcclSuccess);
  spcclStateInfo_t info = SPCCL_STATE_INFO_INITIALIZER;
  ASSERT_EQ(spcclStateGetInfo(st, &info), spcclSuccess);
  EXPECT_EQ(info.denseSwitched, 0);
  cfg.autoSelect = 2;
  spcclState_t bad = nullptr;
  EXPECT_EQ(spcclStateCreate(&bad, s.comm, &cfg, 1000, spcclFloat32), spcclInvalidArgument);
  EXPECT_TRUE(lastErrorMentions("autoSelect 2 is not 0 or 1"));
  spcclStateDestroy(st);
}

}  // namespace

// qtopk's allgather grows with P where a dense allreduce does not: past the crossing the
// state runs dense, as the top-k family does, and its workspace keeps one payload, not P.
TEST(StateInfo, QTopKRunsDenseWhereItsAllGatherCostsMore) {
  const size_t n = 4096;
  LocalState few(4, spcclMethodQTopK, n), many(1024, spcclMethodQTopK, n);
  const spcclStateInfo_t a = few.info(), b = many.info();
  EXPECT_EQ(a.denseSwitched, 0);
  EXPECT_LT(a.methodWireBytes, a.denseWireBytes);
  EXPECT_EQ(a.wireBytes, a.methodWireBytes);
  EXPECT_EQ(b.denseSwitched, 1);
  EXPECT_GT(b.methodWireBytes, b.denseWireBytes);
  EXPECT_EQ(b.wireBytes, b.denseWireBytes);
  // The same state without the switch gathers 1024 payloads.
  spcclConfig_t config = SPCCL_CONFIG_INITIALIZER;
  config.method = spcclMethodQTopK;
  config.density = 1.0 / 64;
  config.blockSize = 16;
  config.denseSwitch = 0;
  spcclState_t unswitched = nullptr;
  ASSERT_EQ(spcclStateCreate(&unswitched, many.comm, &config, n, spcclFloat32), spcclSuccess);
  spcclStateInfo_t c = SPCCL_STATE_INFO_INITIALIZER;
  ASSERT_EQ(spcclStateGetInfo(unswitched, &c), spcclSuccess);
  EXPECT_EQ(c.denseSwitched, 0);
  EXPECT_EQ(c.wireBytes, b.methodWireBytes);
  EXPECT_LT(10 * b.memoryBytes, c.memoryBytes);
  spcclStateDestroy(unswitched);
}
