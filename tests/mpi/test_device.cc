// SPDX-License-Identifier: Apache-2.0
//
// Device buffers on an MPI comm (spcclCommInitMPIDevice): compressed on the GPU, the packed
// payload staged through pinned host memory. Runs as `mpirun -np 4` on one GPU (ranks share
// it). The device comm must give exactly what the host comm gives on the same inputs (the
// same packed bits go through the same MPI reduction), for every type, pattern and op, and
// over several EF steps. TOPK and GAUSSIANK too: the device selects the same k slots, the
// same pairs go through the same MPI allgather, and the device scatter-add adds the rank
// lists in the same order. ONEBIT and QTOPK as well. Skips on every rank, with the reason, when there
// is no GPU.

#include <cuda_runtime.h>

#include <string>
#include <tuple>

#include "device_test.h"
#include "mpi_test.h"
#include "spccl_mpi.h"

namespace spccl_test {
namespace {

class DeviceMpiTest : public ::testing::TestWithParam<std::tuple<spcclDataType_t, int, spcclRedOp_t>> {};

template <typename T>
void compareHostAndDevice(spcclDataType_t datatype, const spcclConfig_t& cfg, spcclRedOp_t op) {
  const World& w = world();
  spcclComm_t dcomm = nullptr;
  ASSERT_EQ(spcclCommInitMPIDevice(&dcomm, MPI_COMM_WORLD), spcclSuccess) << spcclGetLastError(nullptr);
  const size_t n = 10007;
  spcclState_t hst = nullptr, dst = nullptr;
  ASSERT_EQ(spcclStateCreate(&hst, w.comm, &cfg, n, datatype), spcclSuccess);
  ASSERT_EQ(spcclStateCreate(&dst, dcomm, &cfg, n, datatype), spcclSuccess) << spcclGetLastError(dcomm);
  DeviceArray<T> dsend(n), drecv(n);
  for (unsigned long long s = 0; s < 6; ++s) {
    std::vector<T> send = inputs<T>(w.rank, s, n), recv(n);
    dsend.upload(send);
    ASSERT_EQ(spcclSparseAllReduce(send.data(), recv.data(), n, datatype, op, hst, w.comm, nullptr), spcclSuccess);
    ASSERT_EQ(spcclSparseAllReduce(dsend.get(), drecv.get(), n, datatype, op, dst, dcomm, nullptr), spcclSuccess)
        << spcclGetLastError(dcomm);
    EXPECT_TRUE(allRanks(sameBits(drecv.download(), recv))) << "output, step " << s;
    void *hres = nullptr, *dres = nullptr;
    spcclStateGetResidual(hst, &hres);
    spcclStateGetResidual(dst, &dres);
    std::vector<T> he(static_cast<T*>(hres), static_cast<T*>(hres) + n), de(n);
    ASSERT_EQ(cudaMemcpy(de.data(), dres, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    EXPECT_TRUE(allRanks(sameBits(de, he))) << "residual, step " << s;
  }
  EXPECT_EQ(spcclStateDestroy(hst), spcclSuccess);
  EXPECT_EQ(spcclStateDestroy(dst), spcclSuccess);
  EXPECT_EQ(spcclCommDestroy(dcomm), spcclSuccess);
}

void compareForType(spcclDataType_t datatype, const spcclConfig_t& cfg, spcclRedOp_t op) {
  switch (datatype) {
    case spcclFloat32: compareHostAndDevice<float>(datatype, cfg, op); break;
    case spcclFloat64: compareHostAndDevice<double>(datatype, cfg, op); break;
    case spcclFloat16: compareHostAndDevice<spccl::half_t>(datatype, cfg, op); break;
    default: compareHostAndDevice<spccl::bfloat16_t>(datatype, cfg, op); break;
  }
}

spcclConfig_t methodConfig(int method) {
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = method;
  cfg.feedback = spcclFeedbackEF;
  return cfg;
}

TEST_P(DeviceMpiTest, StagedEqualsHost) {
  SPCCL_REQUIRE_DEVICE();
  const auto [datatype, pattern, op] = GetParam();
  spcclConfig_t cfg = methodConfig(spcclMethodRandomBlock);
  cfg.density = 0.05;
  cfg.blockSize = 100;
  cfg.blockPattern = pattern;
  compareForType(datatype, cfg, op);
}

INSTANTIATE_TEST_SUITE_P(All, DeviceMpiTest,
                         ::testing::Combine(::testing::ValuesIn(allTypes), ::testing::Values(0, 1),
                                            ::testing::Values(spcclSum, spcclAvg)));

// TOPK and GAUSSIANK: the inputs are multiples of 1/4 with heavy ties (the lower index wins
// on both sides) and no element within rounding of a Gaussian-k threshold, so the device's
// other summation order for mean and std cannot change the selected slots.
class DevicePairsMpiTest : public ::testing::TestWithParam<std::tuple<spcclDataType_t, int, spcclRedOp_t>> {};

TEST_P(DevicePairsMpiTest, StagedEqualsHost) {
  SPCCL_REQUIRE_DEVICE();
  const auto [datatype, method, op] = GetParam();
  spcclConfig_t cfg = methodConfig(method);
  cfg.density = 0.01;
  compareForType(datatype, cfg, op);
}

INSTANTIATE_TEST_SUITE_P(All, DevicePairsMpiTest,
                         ::testing::Combine(::testing::ValuesIn(allTypes),
                                            ::testing::Values(spcclMethodTopK, spcclMethodGaussianK),
                                            ::testing::Values(spcclSum, spcclAvg)));

// ONEBIT: the device compresses both levels with the CPU's bits (onebit_core.h), and the same
// messages cross the staged all-to-all and allgather; the server residual shows in the
// outputs of the later steps.
class DeviceOneBitMpiTest : public ::testing::TestWithParam<std::tuple<spcclDataType_t, spcclRedOp_t>> {};

TEST_P(DeviceOneBitMpiTest, StagedEqualsHost) {
  SPCCL_REQUIRE_DEVICE();
  const auto [datatype, op] = GetParam();
  compareForType(datatype, methodConfig(spcclMethodOneBit), op);
}

INSTANTIATE_TEST_SUITE_P(All, DeviceOneBitMpiTest,
                         ::testing::Combine(::testing::ValuesIn(allTypes), ::testing::Values(spcclSum, spcclAvg)));

// QTOPK: the device compresses with the CPU's bits (qtopk_core.h), the same payloads cross the
// staged allgather, are checked in the pinned host copy, and unpack in the same order.
class DeviceQTopKMpiTest : public ::testing::TestWithParam<std::tuple<spcclDataType_t, int, spcclRedOp_t>> {};

TEST_P(DeviceQTopKMpiTest, StagedEqualsHost) {
  SPCCL_REQUIRE_DEVICE();
  const auto [datatype, bits, op] = GetParam();
  spcclConfig_t cfg = methodConfig(spcclMethodQTopK);
  cfg.density = 0.05;
  cfg.blockSize = 100;  // 10007 elements: a short last chunk
  cfg.valueBits = bits;
  compareForType(datatype, cfg, op);
}

INSTANTIATE_TEST_SUITE_P(All, DeviceQTopKMpiTest,
                         ::testing::Combine(::testing::ValuesIn(allTypes), ::testing::Values(2, 5),
                                            ::testing::Values(spcclSum, spcclAvg)));

// gTop-k stays on the host: a clear refusal.
TEST(DeviceMpi, GTopKIsRefused) {
  SPCCL_REQUIRE_DEVICE();
  spcclComm_t dcomm = nullptr;
  ASSERT_EQ(spcclCommInitMPIDevice(&dcomm, MPI_COMM_WORLD), spcclSuccess);
  spcclState_t st = nullptr;
  spcclConfig_t cfg = methodConfig(spcclMethodGTopK);
  EXPECT_EQ(spcclStateCreate(&st, dcomm, &cfg, 1000, spcclFloat32), spcclInvalidUsage);
  EXPECT_NE(std::string(spcclGetLastError(dcomm)).find("gtopk does not run on device buffers"), std::string::npos);
  EXPECT_EQ(st, nullptr);
  EXPECT_EQ(spcclCommDestroy(dcomm), spcclSuccess);
}

// A density at which pairs cost more than a dense allreduce: the dense switch runs g + e on
// the device, one allreduce and a residual clear, with the host comm's results.
class DeviceDenseSwitchMpiTest : public ::testing::TestWithParam<std::tuple<spcclDataType_t, int, spcclRedOp_t>> {};

TEST_P(DeviceDenseSwitchMpiTest, StagedEqualsHost) {
  SPCCL_REQUIRE_DEVICE();
  if (world().nranks < 2) GTEST_SKIP() << "the dense switch needs two ranks";
  const auto [datatype, method, op] = GetParam();
  spcclConfig_t cfg = methodConfig(method);
  cfg.density = 0.9;
  compareForType(datatype, cfg, op);
}

INSTANTIATE_TEST_SUITE_P(All, DeviceDenseSwitchMpiTest,
                         ::testing::Combine(::testing::Values(spcclFloat32, spcclBfloat16),
                                            ::testing::Values(spcclMethodTopK, spcclMethodGaussianK),
                                            ::testing::Values(spcclSum, spcclAvg)));

// The dense pass-through on device buffers, staged through pinned host memory.
TEST(DeviceMpi, DenseCollectivesEqualHost) {
  SPCCL_REQUIRE_DEVICE();
  const World& w = world();
  spcclComm_t dcomm = nullptr;
  ASSERT_EQ(spcclCommInitMPIDevice(&dcomm, MPI_COMM_WORLD), spcclSuccess);
  const size_t n = 1000, P = w.nranks;
  std::vector<float> send = inputs<float>(w.rank, 0, n), hostOut(n * P), devOut;
  DeviceArray<float> dsend(send), dout(n * P);
  ASSERT_EQ(spcclAllReduce(send.data(), hostOut.data(), n, spcclFloat32, spcclAvg, w.comm, nullptr), spcclSuccess);
  ASSERT_EQ(spcclAllReduce(dsend.get(), dout.get(), n, spcclFloat32, spcclAvg, dcomm, nullptr), spcclSuccess)
      << spcclGetLastError(dcomm);
  devOut = dout.download();
  EXPECT_TRUE(allRanks(memcmp(devOut.data(), hostOut.data(), n * sizeof(float)) == 0)) << "allreduce";
  ASSERT_EQ(spcclAllGather(send.data(), hostOut.data(), n, spcclFloat32, w.comm, nullptr), spcclSuccess);
  ASSERT_EQ(spcclAllGather(dsend.get(), dout.get(), n, spcclFloat32, dcomm, nullptr), spcclSuccess);
  EXPECT_TRUE(allRanks(sameBits(dout.download(), hostOut))) << "allgather";
  EXPECT_EQ(spcclCommDestroy(dcomm), spcclSuccess);
}

TEST(DeviceMpi, HostPointerIsRejected) {
  SPCCL_REQUIRE_DEVICE();
  spcclComm_t dcomm = nullptr;
  ASSERT_EQ(spcclCommInitMPIDevice(&dcomm, MPI_COMM_WORLD), spcclSuccess);
  std::vector<float> host(100);
  EXPECT_EQ(spcclAllReduce(host.data(), host.data(), 100, spcclFloat32, spcclSum, dcomm, nullptr),
            spcclInvalidArgument);
  EXPECT_EQ(spcclCommDestroy(dcomm), spcclSuccess);
}

}  // namespace
}  // namespace spccl_test
