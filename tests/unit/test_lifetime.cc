// SPDX-License-Identifier: Apache-2.0
//
// Lifetimes the library refuses to get wrong (README, Reliability): a state destroyed, or its
// comm aborted, while a call on it is in flight, a second call on a busy state, and a handle used after its
// state was destroyed, even once new states exist.

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "common/loopback_comm.h"
#include "spccl.h"

namespace {

bool lastErrorMentions(const char* text) {
  return std::string(spcclGetLastError(nullptr)).find(text) != std::string::npos;
}

// A one-rank transport whose exchanges wait at a gate the test opens, so a call is held in
// flight for as long as the test needs, without timing.
class GateTransport : public spccl_fuzz::LoopbackTransport {
 public:
  std::atomic<bool> entered{false}, open{false};
  spcclResult_t allGather(const void* s, void* r, size_t bytes, spcclStream_t stream) override {
    entered = true;
    while (!open) std::this_thread::yield();
    return LoopbackTransport::allGather(s, r, bytes, stream);
  }
};

TEST(Lifetime, StateBusyWithACallIsNeitherDestroyedNorReused) {
  auto* gate = new GateTransport();
  auto* comm = new spcclComm();
  comm->nranks = 1;
  comm->transport.reset(gate);
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = spcclMethodTopK;
  spcclState_t st = nullptr;
  ASSERT_EQ(spcclStateCreate(&st, comm, &cfg, 1000, spcclFloat32), spcclSuccess);
  std::vector<float> g(1000, 1.0f), out(1000), values(1000);
  std::vector<uint32_t> idx(1000);
  spcclResult_t inFlight = spcclInternalError;
  std::thread caller([&] {
    inFlight = spcclSparseAllReduce(g.data(), out.data(), 1000, spcclFloat32, spcclSum, st, comm, nullptr);
  });
  while (!gate->entered) std::this_thread::yield();
  // The state is in a call: destroy and a second call on it are refused, nothing is freed.
  EXPECT_EQ(spcclStateDestroy(st), spcclInvalidUsage);
  EXPECT_TRUE(lastErrorMentions("is in use by a call in flight")) << spcclGetLastError(nullptr);
  size_t n = 0;
  unsigned long long step = 0;
  EXPECT_EQ(spcclCompress(g.data(), values.data(), idx.data(), &n, &step, st, nullptr), spcclInvalidUsage);
  EXPECT_TRUE(lastErrorMentions("state")) << spcclGetLastError(nullptr);
  // Nor is the comm aborted under the call (it would free the transport the call uses).
  EXPECT_EQ(spcclCommAbort(comm), spcclInvalidUsage);
  EXPECT_TRUE(lastErrorMentions("is in flight on another thread")) << spcclGetLastError(nullptr);
  gate->open = true;
  caller.join();
  EXPECT_EQ(inFlight, spcclSuccess);
  EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);  // once the call returned
  EXPECT_EQ(spcclCommAbort(comm), spcclSuccess);
}

// A destroyed state's handle never acts on a later state: its address is not reused, and
// every call on it is refused (under ASan: without reading freed memory).
TEST(Lifetime, StaleStateHandleIsRefused) {
  spcclComm_t comm = nullptr;
  ASSERT_EQ(spcclCommInitLocal(&comm, 2, 0, -1), spcclSuccess);
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  spcclState_t stale = nullptr;
  ASSERT_EQ(spcclStateCreate(&stale, comm, &cfg, 64, spcclFloat32), spcclSuccess);
  ASSERT_EQ(spcclStateDestroy(stale), spcclSuccess);
  std::vector<spcclState_t> later(50);
  for (spcclState_t& st : later) {
    ASSERT_EQ(spcclStateCreate(&st, comm, &cfg, 64, spcclFloat32), spcclSuccess);
    EXPECT_NE(st, stale) << "a new state took a destroyed state's address";
  }
  unsigned long long step = 0;
  EXPECT_EQ(spcclStateGetStep(stale, &step), spcclInvalidArgument);
  EXPECT_TRUE(lastErrorMentions("is not a live spccl state"));
  EXPECT_EQ(spcclStateReset(stale), spcclInvalidArgument);
  EXPECT_EQ(spcclStateDestroy(stale), spcclInvalidArgument);
  for (spcclState_t st : later) EXPECT_EQ(spcclStateDestroy(st), spcclSuccess);
  EXPECT_EQ(spcclCommDestroy(comm), spcclSuccess);
}

}  // namespace
