// SPDX-License-Identifier: Apache-2.0
//
// The non-finite policy every method obeys (dtype_core.h, keptResidual; README, Reliability):
// a NaN or Inf of g + e is sent at most in the call where it appears, is never kept in the
// feedback memory, and never crosses the wire as a 1-bit scale. Checked through the public
// calls on every method and type, fp16 overflow of g + e included, and against a peer whose
// 1-bit scale is NaN.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "checks.h"
#include "common/loopback_comm.h"
#include "dtype_core.h"
#include "onebit_core.h"
#include "spccl.h"

namespace {

using spccl::bfloat16_t;
using spccl::half_t;

const spcclDataType_t kTypes[] = {spcclFloat32, spcclFloat64, spcclFloat16, spcclBfloat16};
const spcclMethod_t kMethods[] = {spcclMethodDense, spcclMethodRandomBlock, spcclMethodTopK,
                                  spcclMethodGaussianK, spcclMethodGTopK, spcclMethodOneBit, spcclMethodQTopK};

size_t elemSize(spcclDataType_t t) { return t == spcclFloat64 ? 8 : t == spcclFloat32 ? 4 : 2; }

// Typed access to a byte buffer of elements of `type`, in double.
double get(const std::vector<char>& b, spcclDataType_t t, size_t i) {
  switch (t) {
    case spcclFloat32: return reinterpret_cast<const float*>(b.data())[i];
    case spcclFloat64: return reinterpret_cast<const double*>(b.data())[i];
    case spcclFloat16: return spccl::toAcc(reinterpret_cast<const half_t*>(b.data())[i]);
    default: return spccl::toAcc(reinterpret_cast<const bfloat16_t*>(b.data())[i]);
  }
}
void set(std::vector<char>* b, spcclDataType_t t, size_t i, double v) {
  switch (t) {
    case spcclFloat32: reinterpret_cast<float*>(b->data())[i] = (float)v; break;
    case spcclFloat64: reinterpret_cast<double*>(b->data())[i] = v; break;
    case spcclFloat16: reinterpret_cast<half_t*>(b->data())[i] = spccl::fromAcc<half_t>((float)v); break;
    default: reinterpret_cast<bfloat16_t*>(b->data())[i] = spccl::fromAcc<bfloat16_t>((float)v); break;
  }
}
size_t nonFinite(const std::vector<char>& b, spcclDataType_t t, size_t n) {
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) bad += !std::isfinite(get(b, t, i));
  return bad;
}
std::vector<char> feedbackMemory(spcclState_t st, spcclDataType_t t) {
  size_t n = 0;
  void* p = nullptr;
  spcclStateGetResidualCount(st, &n);
  spcclStateGetResidual(st, &p);
  return std::vector<char>(static_cast<char*>(p), static_cast<char*>(p) + n * elemSize(t));
}
size_t feedbackNonFinite(spcclState_t st, spcclDataType_t t) {
  size_t n = 0;
  spcclStateGetResidualCount(st, &n);
  return nonFinite(feedbackMemory(st, t), t, n);
}

// A gradient of moderate values; step 0 carries NaN, +Inf and -Inf, and values near the
// type's largest so that g + e overflows in the next steps (fp16's 65504 + 65504 = inf).
std::vector<char> gradient(spcclDataType_t t, size_t n, int step) {
  std::vector<char> g(n * elemSize(t));
  for (size_t i = 0; i < n; ++i) set(&g, t, i, (double)((int)((i * 7 + step * 3) % 13) - 6) * 0.25);
  if (step == 0) {
    set(&g, t, 5, NAN);
    set(&g, t, 77, INFINITY);
    set(&g, t, 300, -INFINITY);
  }
  const double big = t == spcclFloat16 ? 65504.0 : t == spcclFloat64 ? 1.7e308 : 3.3e38;
  if (step < 3)
    for (size_t i = 400; i < 480; ++i) set(&g, t, i, big);
  return g;
}

spcclConfig_t configFor(spcclMethod_t method) {
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = method;
  cfg.density = 0.05;
  cfg.blockSize = 16;
  cfg.feedback = spcclFeedbackEF;
  cfg.denseSwitch = 0;
  return cfg;
}

// spcclSparseAllReduce over a one-rank comm runs every method's whole path (1-bit's server
// level included): a non-finite value reaches the output at most once, the feedback memory
// never keeps one, and later steps with finite gradients give finite outputs.
TEST(NonFinite, NeverKeptInFeedbackMemory) {
  const size_t n = 1000;
  for (spcclMethod_t method : kMethods) {
    for (spcclDataType_t t : kTypes) {
      const spcclConfig_t cfg = configFor(method);
      spcclState_t st = nullptr;
      ASSERT_EQ(spcclStateCreate(&st, spccl_fuzz::loopbackComm(), &cfg, n, t), spcclSuccess);
      std::vector<char> out(n * elemSize(t));
      size_t nonFiniteOut = 0;
      for (int step = 0; step < 20; ++step) {
        const std::vector<char> g = gradient(t, n, step);
        ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, t, spcclSum, st, spccl_fuzz::loopbackComm(), nullptr),
                  spcclSuccess);
        EXPECT_EQ(feedbackNonFinite(st, t), 0u)
            << spcclMethodName(method) << " type " << (int)t << " step " << step << " kept a NaN or Inf";
        if (step >= 3) nonFiniteOut += nonFinite(out, t, n);
      }
      EXPECT_EQ(nonFiniteOut, 0u) << spcclMethodName(method) << " type " << (int)t
                                  << ": finite gradients gave non-finite outputs";
      spcclStateDestroy(st);
    }
  }
}

// Exact top-k (NaN ranks above Inf), Gaussian-k (NaN counts as above every threshold) and
// dense send a NaN in the call where it appears: it passes once, then is gone.
TEST(NonFinite, TopKFamilyPassesNaNOnce) {
  const size_t n = 1000;
  for (spcclMethod_t method : {spcclMethodDense, spcclMethodTopK, spcclMethodGaussianK, spcclMethodGTopK}) {
    const spcclConfig_t cfg = configFor(method);
    spcclState_t st = nullptr;
    ASSERT_EQ(spcclStateCreate(&st, spccl_fuzz::loopbackComm(), &cfg, n, spcclFloat32), spcclSuccess);
    std::vector<char> g(n * 4, 0), out(n * 4);
    for (size_t i = 0; i < n; ++i) set(&g, spcclFloat32, i, (double)(i % 17) - 8.0);
    set(&g, spcclFloat32, 5, NAN);
    ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, spcclFloat32, spcclSum, st, spccl_fuzz::loopbackComm(),
                                   nullptr),
              spcclSuccess);
    EXPECT_TRUE(std::isnan(get(out, spcclFloat32, 5))) << spcclMethodName(method) << ": the NaN was not sent";
    set(&g, spcclFloat32, 5, 1.0);
    ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, spcclFloat32, spcclSum, st, spccl_fuzz::loopbackComm(),
                                   nullptr),
              spcclSuccess);
    EXPECT_EQ(nonFinite(out, spcclFloat32, n), 0u) << spcclMethodName(method) << ": the NaN passed twice";
    spcclStateDestroy(st);
  }
}

// A 1-bit scale is always finite: a chunk whose magnitudes overflow the accumulation type
// gets the largest finite scale, and NaN or Inf add nothing to it.
TEST(NonFinite, OneBitScaleIsFinite) {
  EXPECT_EQ(spccl::signScale<float>(std::numeric_limits<float>::infinity(), 4), 3.40282346638528859812e+38);
  EXPECT_EQ(spccl::signScale<half_t>(1e6f, 2), 65504.0);
  EXPECT_EQ(spccl::signMagnitude(NAN), 0.0f);
  EXPECT_EQ(spccl::signMagnitude(-INFINITY), 0.0f);
  EXPECT_EQ(spccl::signScale<float>(8.0f, 4), 2.0);
}

// A peer whose 1-bit message carries a NaN scale: refused as a corrupt payload
// (spcclRemoteError), and the state's feedback memory and step stay as they were.
class NaNScalePeer : public spccl_fuzz::LoopbackTransport {
 public:
  spcclResult_t sendRecv(const void* s, size_t sendbytes, int to, void* r, size_t recvbytes, int from,
                         spcclStream_t stream) override {
    SPCCLCHECK(LoopbackTransport::sendRecv(s, sendbytes, to, r, recvbytes, from, stream));
    const double nan = NAN;
    if (recvbytes >= sizeof(nan)) memcpy(r, &nan, sizeof(nan));  // the scale leads the message
    return spcclSuccess;
  }
};

TEST(NonFinite, OneBitRefusesAPeersNaNScale) {
  auto* comm = new spcclComm();
  comm->nranks = 1;
  comm->transport.reset(new NaNScalePeer());
  const spcclConfig_t cfg = configFor(spcclMethodOneBit);
  spcclState_t st = nullptr;
  ASSERT_EQ(spcclStateCreate(&st, comm, &cfg, 100, spcclFloat32), spcclSuccess);
  std::vector<char> g(400), out(400);
  for (size_t i = 0; i < 100; ++i) set(&g, spcclFloat32, i, (double)i - 50);
  const std::vector<char> before = feedbackMemory(st, spcclFloat32);
  EXPECT_EQ(spcclSparseAllReduce(g.data(), out.data(), 100, spcclFloat32, spcclSum, st, comm, nullptr),
            spcclRemoteError);
  EXPECT_NE(std::string(spcclGetLastError(nullptr)).find("scale nan"), std::string::npos)
      << spcclGetLastError(nullptr);
  EXPECT_EQ(feedbackMemory(st, spcclFloat32), before);
  unsigned long long step = 1;
  spcclStateGetStep(st, &step);
  EXPECT_EQ(step, 0u);
  spcclStateDestroy(st);
  spcclCommAbort(comm);
}

}  // namespace
