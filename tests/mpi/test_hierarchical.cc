// SPDX-License-Identifier: Apache-2.0
//
// Hierarchical mode (DESIGN.md, Hierarchical mode) against its definition. On shards (payloads of
// slots or rounds), a hierarchical state behaves on each shard exactly as a flat state of the
// shard's size on the cross-host comm that is fed the host's sum of the shard: the same output
// and the same residual, bit for bit, step after step with error feedback, for every type, with
// shards of equal and of unequal size. On values (dense, random block) it is the flat state,
// whose payload's allreduce runs in the stages: on exact inputs the same bits. Runs on whatever
// hosts the job has: one host (a cross-host comm of one rank), pretend hosts
// (SPCCL_RANKS_PER_HOST), or simulated hosts (scripts/simhosts).

#include <string.h>

#include <cmath>

#include <string>
#include <tuple>
#include <type_traits>

#include "dispatch.h"
#include "hosts.h"
#include "mpi_test.h"

namespace spccl_test {
namespace {

using spccl_perf::findHosts;
using spccl_perf::Hosts;

spcclConfig_t hierConfig(int method, int hierarchical) {
  spcclConfig_t c = SPCCL_CONFIG_INITIALIZER;
  c.method = method;
  c.density = 1.0 / 16;
  c.blockSize = 8;
  c.hierarchical = hierarchical;
  return c;
}

// The host's sum of every rank's step-`step` input on [offset, offset + count).
template <typename T>
std::vector<T> hostSum(const Hosts& hosts, unsigned long long step, size_t n, size_t offset, size_t count) {
  std::vector<double> sum(count, 0.0);
  for (int r : hosts.members[hosts.host]) {
    const std::vector<T> g = inputs<T>(r, step, n);
    for (size_t i = 0; i < count; ++i) sum[i] += spccl::toAcc(g[offset + i]);
  }
  std::vector<T> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = spccl::fromAcc<T>(sum[i]);
  return out;
}

// Every shard of the host, gathered: shard l at l * ceil(n/L).
template <typename T>
std::vector<T> gatherShards(const Hosts& hosts, const std::vector<T>& mine, size_t n) {
  const size_t each = (n + hosts.localSize - 1) / hosts.localSize;
  std::vector<T> padded(each), all(each * hosts.localSize);
  std::copy(mine.begin(), mine.end(), padded.begin());
  MPI_Allgather(padded.data(), (int)(each * sizeof(T)), MPI_BYTE, all.data(), (int)(each * sizeof(T)), MPI_BYTE,
                hosts.local);
  all.resize(n);
  return all;
}

// Elements whose bits differ.
template <typename T>
size_t differing(const std::vector<T>& a, const std::vector<T>& b) {
  size_t wrong = 0;
  for (size_t i = 0; i < a.size(); ++i) wrong += memcmp(&a[i], &b[i], sizeof(T)) != 0;
  return wrong;
}

class Hierarchical : public ::testing::TestWithParam<std::tuple<int, spcclDataType_t, size_t>> {};

TEST_P(Hierarchical, EachShardIsTheFlatMethodOnHostSums) {
  const auto [method, type, n] = GetParam();
  Hosts hosts;
  findHosts(MPI_COMM_WORLD, &hosts);
  if (!hosts.even()) GTEST_SKIP() << "uneven hosts: hierarchical mode is refused there (see HierarchicalMode)";
  size_t offset = 0, mine = 0;
  hosts.shard(n, &offset, &mine);
  spcclComm_t cross = nullptr;
  ASSERT_EQ(spcclCommInitMPI(&cross, hosts.cross), spcclSuccess) << spcclGetLastError(nullptr);
  spcclState_t hier = nullptr, flat = nullptr;
  spcclConfig_t cfg = hierConfig(method, 1);
  ASSERT_EQ(spcclStateCreate(&hier, world().comm, &cfg, n, type), spcclSuccess) << spcclGetLastError(nullptr);
  cfg.hierarchical = 0;
  if (mine > 0) ASSERT_EQ(spcclStateCreate(&flat, cross, &cfg, mine, type), spcclSuccess);
  spccl::withStorage(type, [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> out(n), shardOut(mine);
    for (unsigned long long step = 0; step < 4; ++step) {
      const std::vector<T> g = inputs<T>(world().rank, step, n);
      ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, type, spcclSum, hier, world().comm, nullptr),
                spcclSuccess)
          << spcclGetLastError(nullptr);
      const std::vector<T> sum = hostSum<T>(hosts, step, n, offset, mine);
      if (mine > 0)
        ASSERT_EQ(spcclSparseAllReduce(sum.data(), shardOut.data(), mine, type, spcclSum, flat, cross, nullptr),
                  spcclSuccess);
      EXPECT_EQ(differing(out, gatherShards(hosts, shardOut, n)), 0u)
          << "step " << step << ": elements that differ from the flat method on host sums";
      // The residual: this shard's is the flat state's, the rest of the tensor's stays zero.
      void *hr = nullptr, *fr = nullptr;
      spcclStateGetResidual(hier, &hr);
      if (mine > 0) spcclStateGetResidual(flat, &fr);
      const T* hres = static_cast<const T*>(hr);
      EXPECT_TRUE(mine == 0 || memcmp(hres + offset, fr, mine * sizeof(T)) == 0) << "step " << step;
      size_t strays = 0;
      for (size_t i = 0; i < n; ++i)
        strays += (i < offset || i >= offset + mine) && spccl::toAcc(hres[i]) != 0;
      EXPECT_EQ(strays, 0u) << "residual outside this rank's shard";
    }
  });
  unsigned long long step = 0;
  spcclStateGetStep(hier, &step);
  EXPECT_EQ(step, 4u);
  spcclStateDestroy(hier);
  if (flat) spcclStateDestroy(flat);
  spcclCommDestroy(cross);
  EXPECT_TRUE(allRanks(!HasFailure()));
}

std::string caseName(const ::testing::TestParamInfo<Hierarchical::ParamType>& info) {
  static const char* const kMethods[] = {"Dense", "RandomBlock", "TopK", "GaussianK", "GlobalTopK"};
  const spcclDataType_t t = std::get<1>(info.param);
  const char* type = t == spcclFloat32 ? "fp32" : t == spcclFloat64 ? "fp64" : t == spcclFloat16 ? "fp16" : "bf16";
  return std::string(kMethods[std::get<0>(info.param)]) + "_" + type + "_" +
         std::to_string(std::get<2>(info.param));
}

// 4096: equal shards on up to 4 ranks per host; 3001: a shorter last shard; 3: on 4 ranks per
// host, a last rank whose shard is empty (it only sends in the host stages).
INSTANTIATE_TEST_SUITE_P(ShardMethods, Hierarchical,
                         ::testing::Combine(::testing::Values(spcclMethodTopK, spcclMethodGaussianK,
                                                              spcclMethodGTopK),
                                            ::testing::ValuesIn(allTypes), ::testing::Values(4096, 3001, 3)),
                         caseName);

class HierarchicalValues : public Hierarchical {};

// Dense and random block: the hierarchical state is the flat state on the same comm, step
// after step (inputs are quarters, so every order of the sums gives the same bits), and its
// host stages move the payload, not the tensor.
TEST_P(HierarchicalValues, IsTheFlatStateWithItsPayloadAllreducedInTheStages) {
  const auto [method, type, n] = GetParam();
  Hosts hosts;
  findHosts(MPI_COMM_WORLD, &hosts);
  if (!hosts.even()) GTEST_SKIP() << "uneven hosts: hierarchical mode is refused there (see HierarchicalMode)";
  spcclState_t hier = nullptr, flat = nullptr;
  spcclConfig_t cfg = hierConfig(method, 1);
  ASSERT_EQ(spcclStateCreate(&hier, world().comm, &cfg, n, type), spcclSuccess) << spcclGetLastError(nullptr);
  cfg.hierarchical = 0;
  ASSERT_EQ(spcclStateCreate(&flat, world().comm, &cfg, n, type), spcclSuccess);
  spccl::withStorage(type, [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> out(n), want(n);
    for (unsigned long long step = 0; step < 4; ++step) {
      const std::vector<T> g = inputs<T>(world().rank, step, n);
      ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, type, spcclSum, hier, world().comm, nullptr),
                spcclSuccess) << spcclGetLastError(nullptr);
      ASSERT_EQ(spcclSparseAllReduce(g.data(), want.data(), n, type, spcclSum, flat, world().comm, nullptr),
                spcclSuccess);
      EXPECT_EQ(differing(out, want), 0u) << "step " << step;
      void *hr = nullptr, *fr = nullptr;
      spcclStateGetResidual(hier, &hr);
      spcclStateGetResidual(flat, &fr);
      EXPECT_EQ(memcmp(hr, fr, n * sizeof(T)), 0) << "step " << step << ": residuals differ";
    }
  });
  spcclStateInfo_t info = SPCCL_STATE_INFO_INITIALIZER, flatInfo = SPCCL_STATE_INFO_INITIALIZER;
  ASSERT_EQ(spcclStateGetInfo(hier, &info), spcclSuccess);
  ASSERT_EQ(spcclStateGetInfo(flat, &flatInfo), spcclSuccess);
  const size_t L = (size_t)hosts.localSize, payload = method == spcclMethodDense ? n : flatInfo.selected;
  const size_t elem = type == spcclFloat64 ? 8 : type == spcclFloat32 ? 4 : 2;
  EXPECT_EQ(info.wireIntraHostBytes, 2 * (L - 1) * ((payload + L - 1) / L) * elem);
  spcclStateDestroy(hier);
  spcclStateDestroy(flat);
  EXPECT_TRUE(allRanks(!HasFailure()));
}

INSTANTIATE_TEST_SUITE_P(ValueMethods, HierarchicalValues,
                         ::testing::Combine(::testing::Values(spcclMethodDense, spcclMethodRandomBlock),
                                            ::testing::ValuesIn(allTypes), ::testing::Values(4096, 3001, 3)),
                         caseName);

// The average is the mean over every rank: host means averaged over the hosts (exact here:
// inputs are quarters, hosts and ranks per host powers of two).
TEST(HierarchicalMode, AverageIsTheSumOverAllRanks) {
  Hosts hosts;
  findHosts(MPI_COMM_WORLD, &hosts);
  if (!hosts.even()) GTEST_SKIP() << "uneven hosts: hierarchical mode is refused there";
  const size_t n = 2048;
  spcclConfig_t cfg = hierConfig(spcclMethodTopK, 1);
  spcclState_t a, b;
  ASSERT_EQ(spcclStateCreate(&a, world().comm, &cfg, n, spcclFloat32), spcclSuccess) << spcclGetLastError(nullptr);
  ASSERT_EQ(spcclStateCreate(&b, world().comm, &cfg, n, spcclFloat32), spcclSuccess);
  const std::vector<float> g = inputs<float>(world().rank, 0, n);
  std::vector<float> sum(n), avg(n);
  ASSERT_EQ(spcclSparseAllReduce(g.data(), sum.data(), n, spcclFloat32, spcclSum, a, world().comm, nullptr),
            spcclSuccess);
  ASSERT_EQ(spcclSparseAllReduce(g.data(), avg.data(), n, spcclFloat32, spcclAvg, b, world().comm, nullptr),
            spcclSuccess);
  size_t wrong = 0;
  for (size_t i = 0; i < n; ++i) wrong += avg[i] != sum[i] * (1.0f / (float)world().nranks);
  EXPECT_EQ(wrong, 0u);
  spcclStateDestroy(a);
  spcclStateDestroy(b);
  EXPECT_TRUE(allRanks(!HasFailure()));
}

// One accumulation rule for half types on every stage: fp16 averages of values near 40000
// (whose sum over two ranks, 80000, overflows fp16) give those values for every method, in
// host stages and across hosts, and no residual keeps an inf.
TEST(HierarchicalMode, HalfAverageNeverOverflows) {
  Hosts hosts;
  findHosts(MPI_COMM_WORLD, &hosts);
  if (!hosts.even()) GTEST_SKIP() << "uneven hosts: hierarchical mode is refused there";
  const size_t n = 2048;
  std::vector<spccl::half_t> g(n), out(n);
  for (size_t i = 0; i < n; ++i) g[i] = spccl::fromAcc<spccl::half_t>(40000.0f - 32.0f * (float)(i % 64));  // exact
  for (int method : {spcclMethodDense, spcclMethodRandomBlock, spcclMethodTopK, spcclMethodGaussianK,
                     spcclMethodGTopK}) {
    spcclConfig_t cfg = hierConfig(method, 1);
    cfg.denseSwitch = 0;
    spcclState_t st = nullptr;
    ASSERT_EQ(spcclStateCreate(&st, world().comm, &cfg, n, spcclFloat16), spcclSuccess) << spcclGetLastError(nullptr);
    size_t sent = 0, wrong = 0, keptInf = 0;
    for (int step = 0; step < 3; ++step) {
      ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, spcclFloat16, spcclAvg, st, world().comm, nullptr),
                spcclSuccess) << spcclGetLastError(nullptr);
      for (size_t i = 0; step == 0 && i < n; ++i) {  // later steps add the residual (fp16 g + e overflows)
        const float v = spccl::toAcc(out[i]);
        sent += v != 0;
        wrong += v != 0 && v != spccl::toAcc(g[i]);  // every rank has g: the mean is g, or 0 where unsent
      }
      void* e = nullptr;
      spcclStateGetResidual(st, &e);
      for (size_t i = 0; i < n; ++i) keptInf += !std::isfinite(spccl::toAcc(static_cast<spccl::half_t*>(e)[i]));
    }
    EXPECT_GT(sent, 0u) << spcclMethodName(method);
    EXPECT_EQ(wrong, 0u) << spcclMethodName(method);
    EXPECT_EQ(keptInf, 0u) << spcclMethodName(method);
    spcclStateDestroy(st);
  }
  EXPECT_TRUE(allRanks(!HasFailure()));
}

// Inexact inputs: the host stage adds a shard's L copies in the binomial tree of Open MPI's
// reduce-scatter, ((x0 + x1) + (x2 + x3)) + ..., each addition rounded to the type; a half mean
// adds in fp32 and rounds once after dividing. The dense method across hosts then reduces the
// host sums (or means) as a flat dense state on the cross-host comm does, bit for bit.
template <typename T>
T treeSum(std::vector<T> v, spcclRedOp_t op) {
  using AccT = typename spccl::AccumOf<T>::type;
  const int L = (int)v.size();
  const AccT inv = AccT(1) / AccT(L);
  if (!std::is_same<T, AccT>::value && op == spcclAvg) {
    std::vector<AccT> w(v.size());
    for (int k = 0; k < L; ++k) w[k] = spccl::toAcc(v[k]);
    for (int step = 1; step < L; step *= 2)
      for (int k = 0; k + step < L; k += 2 * step) w[k] += w[k + step];
    return spccl::fromAcc<T>(w[0] * inv);
  }
  for (int step = 1; step < L; step *= 2)
    for (int k = 0; k + step < L; k += 2 * step) v[k] = spccl::addRounded(v[k], v[k + step]);
  return op == spcclAvg ? spccl::scaleRounded(v[0], inv) : v[0];
}

TEST(HierarchicalMode, HostSumsAddInMpisTree) {
  Hosts hosts;
  findHosts(MPI_COMM_WORLD, &hosts);
  if (!hosts.even()) GTEST_SKIP() << "uneven hosts: hierarchical mode is refused there";
  const size_t n = 1001;
  size_t offset = 0, mine = 0;
  hosts.shard(n, &offset, &mine);
  spcclComm_t cross = nullptr;
  ASSERT_EQ(spcclCommInitMPI(&cross, hosts.cross), spcclSuccess) << spcclGetLastError(nullptr);
  auto input = [](int rank, size_t i) { return (double)(i % 97 + 1) / 3.0 * (1.0 + rank / 7.0) * (i % 2 ? -1 : 1); };
  for (spcclDataType_t type : allTypes)
    for (spcclRedOp_t op : {spcclSum, spcclAvg}) {
      spcclConfig_t cfg = hierConfig(spcclMethodDense, 1);
      spcclState_t hier = nullptr, flat = nullptr;
      ASSERT_EQ(spcclStateCreate(&hier, world().comm, &cfg, n, type), spcclSuccess) << spcclGetLastError(nullptr);
      cfg.hierarchical = 0;
      if (mine > 0) ASSERT_EQ(spcclStateCreate(&flat, cross, &cfg, mine, type), spcclSuccess);
      spccl::withStorage(type, [&](auto tag) {
        using T = decltype(tag);
        std::vector<T> g(n), out(n), host(mine), shardOut(mine);
        for (size_t i = 0; i < n; ++i) g[i] = spccl::fromAcc<T>(input(world().rank, i));
        for (size_t i = 0; i < mine; ++i) {
          std::vector<T> copies;
          for (int r : hosts.members[hosts.host]) copies.push_back(spccl::fromAcc<T>(input(r, offset + i)));
          host[i] = treeSum(copies, op);
        }
        ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, type, op, hier, world().comm, nullptr), spcclSuccess)
            << spcclGetLastError(nullptr);
        if (mine > 0)
          ASSERT_EQ(spcclSparseAllReduce(host.data(), shardOut.data(), mine, type, op, flat, cross, nullptr),
                    spcclSuccess);
        EXPECT_EQ(differing(out, gatherShards(hosts, shardOut, n)), 0u) << "type " << (int)type << " op " << (int)op;
      });
      spcclStateDestroy(hier);
      if (flat) spcclStateDestroy(flat);
    }
  spcclCommDestroy(cross);
  EXPECT_TRUE(allRanks(!HasFailure()));
}

// The residual of a hierarchical state holds host sums (Sum) or host means (Avg), so a state
// refuses the other op until it is reset.
TEST(HierarchicalMode, OneOpPerStateUntilReset) {
  Hosts hosts;
  findHosts(MPI_COMM_WORLD, &hosts);
  if (!hosts.even()) GTEST_SKIP() << "uneven hosts: hierarchical mode is refused there";
  const size_t n = 1024;
  spcclConfig_t cfg = hierConfig(spcclMethodTopK, 1);
  spcclState_t st = nullptr;
  ASSERT_EQ(spcclStateCreate(&st, world().comm, &cfg, n, spcclFloat32), spcclSuccess) << spcclGetLastError(nullptr);
  const std::vector<float> g = inputs<float>(world().rank, 0, n);
  std::vector<float> out(n);
  ASSERT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, spcclFloat32, spcclSum, st, world().comm, nullptr),
            spcclSuccess);
  EXPECT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, spcclFloat32, spcclAvg, st, world().comm, nullptr),
            spcclInvalidUsage);
  EXPECT_NE(std::string(spcclGetLastError(nullptr)).find("one state takes one op"), std::string::npos)
      << spcclGetLastError(nullptr);
  ASSERT_EQ(spcclStateReset(st), spcclSuccess);
  EXPECT_EQ(spcclSparseAllReduce(g.data(), out.data(), n, spcclFloat32, spcclAvg, st, world().comm, nullptr),
            spcclSuccess);
  spcclStateDestroy(st);
  EXPECT_TRUE(allRanks(!HasFailure()));
}

// Unset, the mode follows the hosts; forced on uneven hosts it is refused with a sentence;
// a hierarchical state on shards has no stand-alone compressed form (one on values compresses
// as the flat state does).
TEST(HierarchicalMode, DefaultFollowsTheHostsAndRefusalsAreClear) {
  Hosts hosts;
  findHosts(MPI_COMM_WORLD, &hosts);
  const bool spans = hosts.members.size() > 1 && hosts.localSize > 1;
  spcclConfig_t cfg = hierConfig(spcclMethodRandomBlock, SPCCL_CONFIG_UNDEF_INT);
  spcclState_t st = nullptr;
  ASSERT_EQ(spcclStateCreate(&st, world().comm, &cfg, 1024, spcclFloat32), spcclSuccess);
  spcclConfig_t resolved;
  ASSERT_EQ(spcclStateGetConfig(st, &resolved), spcclSuccess);
  EXPECT_EQ(resolved.hierarchical, spans && hosts.even() ? 1 : 0);
  spcclStateDestroy(st);

  cfg.hierarchical = 1;
  const spcclResult_t res = spcclStateCreate(&st, world().comm, &cfg, 1024, spcclFloat32);
  if (!hosts.even()) {
    EXPECT_EQ(res, spcclInvalidUsage);
    EXPECT_NE(std::string(spcclGetLastError(nullptr)).find("same number of ranks on every host"), std::string::npos)
        << spcclGetLastError(nullptr);
  } else {
    ASSERT_EQ(res, spcclSuccess) << spcclGetLastError(nullptr);
    std::vector<float> g(1024, 1.0f), values(1024);
    std::vector<uint32_t> indices(1024);
    size_t nvalues = 0;
    unsigned long long step = 0;
    EXPECT_EQ(spcclCompress(g.data(), values.data(), nullptr, &nvalues, &step, st, nullptr), spcclSuccess)
        << spcclGetLastError(nullptr);
    spcclStateDestroy(st);
    spcclConfig_t shards = hierConfig(spcclMethodTopK, 1);
    ASSERT_EQ(spcclStateCreate(&st, world().comm, &shards, 1024, spcclFloat32), spcclSuccess);
    EXPECT_EQ(spcclCompress(g.data(), values.data(), indices.data(), &nvalues, &step, st, nullptr),
              spcclInvalidUsage);
    EXPECT_NE(std::string(spcclGetLastError(nullptr)).find("hierarchical"), std::string::npos);
    spcclStateDestroy(st);
  }
  cfg.hierarchical = 2;
  EXPECT_EQ(spcclStateCreate(&st, world().comm, &cfg, 1024, spcclFloat32), spcclInvalidArgument);
  EXPECT_TRUE(allRanks(!HasFailure()));
}

// 1-bit keeps a server residual after its worker residual, which a shard of the outer
// residual cannot hold: unset it runs flat (and exact), forced on it is refused.
TEST(HierarchicalMode, OneBitRunsFlat) {
  Hosts hosts;
  findHosts(MPI_COMM_WORLD, &hosts);
  const size_t n = 3001;
  spcclConfig_t cfg = hierConfig(spcclMethodOneBit, SPCCL_CONFIG_UNDEF_INT);
  spcclState_t st = nullptr, flat = nullptr;
  ASSERT_EQ(spcclStateCreate(&st, world().comm, &cfg, n, spcclFloat32), spcclSuccess) << spcclGetLastError(nullptr);
  spcclConfig_t resolved;
  ASSERT_EQ(spcclStateGetConfig(st, &resolved), spcclSuccess);
  EXPECT_EQ(resolved.hierarchical, 0);
  cfg.hierarchical = 0;
  ASSERT_EQ(spcclStateCreate(&flat, world().comm, &cfg, n, spcclFloat32), spcclSuccess);
  const std::vector<float> g = inputs<float>(world().rank, 0, n);
  std::vector<float> got(n), want(n);
  ASSERT_EQ(spcclSparseAllReduce(g.data(), got.data(), n, spcclFloat32, spcclSum, st, world().comm, nullptr),
            spcclSuccess) << spcclGetLastError(nullptr);
  ASSERT_EQ(spcclSparseAllReduce(g.data(), want.data(), n, spcclFloat32, spcclSum, flat, world().comm, nullptr),
            spcclSuccess);
  EXPECT_EQ(got, want);
  spcclStateDestroy(st);
  spcclStateDestroy(flat);

  cfg.hierarchical = 1;
  st = nullptr;
  EXPECT_EQ(spcclStateCreate(&st, world().comm, &cfg, n, spcclFloat32), spcclInvalidUsage);
  EXPECT_NE(std::string(spcclGetLastError(nullptr)).find("server residual"), std::string::npos)
      << spcclGetLastError(nullptr);
  EXPECT_EQ(st, nullptr);
  EXPECT_TRUE(allRanks(!HasFailure()));
}

}  // namespace
}  // namespace spccl_test
