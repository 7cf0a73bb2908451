// SPDX-License-Identifier: Apache-2.0
//
// Device buffers on an MPI comm (spcclCommInitMPIDevice): compressed on the GPU, the packed
// payload staged through pinned host memory. Runs as `mpirun -np 4` on one GPU (ranks share
// it). The device comm must give exactly what the host comm gives on the same inputs (the
// same packed bits go through the same MPI reduction), for every type, pattern and op, and
// over several EF steps. Skips on every rank, with the reason, when there is no GPU.

#include <cuda_runtime.h>

#include <tuple>

#include "device_test.h"
#include "mpi_test.h"
#include "spccl_mpi.h"

namespace spccl_test {
namespace {

class DeviceMpiTest : public ::testing::TestWithParam<std::tuple<spcclDataType_t, int, spcclRedOp_t>> {};

template <typename T>
void compareHostAndDevice(spcclDataType_t datatype, int pattern, spcclRedOp_t op) {
  const World& w = world();
  spcclComm_t dcomm = nullptr;
  ASSERT_EQ(spcclCommInitMPIDevice(&dcomm, MPI_COMM_WORLD), spcclSuccess) << spcclGetLastError(nullptr);
  const size_t n = 10007;
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = spcclMethodRandomBlock;
  cfg.density = 0.05;
  cfg.blockSize = 100;
  cfg.blockPattern = pattern;
  cfg.feedback = spcclFeedbackEF;
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

TEST_P(DeviceMpiTest, StagedEqualsHost) {
  SPCCL_REQUIRE_DEVICE();
  const auto [datatype, pattern, op] = GetParam();
  switch (datatype) {
    case spcclFloat32: compareHostAndDevice<float>(datatype, pattern, op); break;
    case spcclFloat64: compareHostAndDevice<double>(datatype, pattern, op); break;
    case spcclFloat16: compareHostAndDevice<spccl::half_t>(datatype, pattern, op); break;
    default: compareHostAndDevice<spccl::bfloat16_t>(datatype, pattern, op); break;
  }
}

INSTANTIATE_TEST_SUITE_P(All, DeviceMpiTest,
                         ::testing::Combine(::testing::ValuesIn(allTypes), ::testing::Values(0, 1),
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
