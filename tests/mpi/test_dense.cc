// SPDX-License-Identifier: Apache-2.0
//
// Dense pass-through collectives against references computed from every rank's inputs.

#include <cmath>

#include "dispatch.h"
#include "mpi_test.h"

namespace spccl_test {
namespace {

using spccl::toAcc;

class DenseTest : public ::testing::TestWithParam<spcclDataType_t> {};

using spccl::withStorage;

TEST_P(DenseTest, AllReduceSumAndAvg) {
  const World& w = world();
  withStorage(GetParam(), [&](auto tag) {
    using T = decltype(tag);
    using AccT = typename spccl::AccumOf<T>::type;
    // 300007 elements: past the MPI transport's ring threshold in every type, in chunks the
    // ranks do not divide evenly.
    for (size_t n : {size_t(1), size_t(1000), size_t(65537), size_t(300007)}) {
      for (spcclRedOp_t op : {spcclSum, spcclAvg}) {
        std::vector<T> send = inputs<T>(w.rank, 0, n), recv(n);
        ASSERT_EQ(spcclAllReduce(send.data(), recv.data(), n, GetParam(), op, w.comm, nullptr), spcclSuccess);
        size_t wrong = 0;
        for (size_t i = 0; i < n; ++i) {
          AccT sum = 0;
          for (int r = 0; r < w.nranks; ++r) sum += inputValue(r, 0, i);
          AccT want = toAcc(spccl::fromAcc<T>(sum));
          if (op == spcclAvg) want = toAcc(spccl::fromAcc<T>(want * (AccT(1) / AccT(w.nranks))));
          wrong += toAcc(recv[i]) != want;
        }
        EXPECT_EQ(wrong, 0u) << "n " << n << " op " << op;
        // In place gives the same.
        std::vector<T> inplace = send;
        ASSERT_EQ(spcclAllReduce(inplace.data(), inplace.data(), n, GetParam(), op, w.comm, nullptr), spcclSuccess);
        EXPECT_EQ(0, memcmp(inplace.data(), recv.data(), n * sizeof(T)));
      }
    }
  });
}

// Sums that round: every rank must still hold the same bits (the transport's ring sums each
// chunk on one rank and copies it), in and out of place (which may sum in different orders, as
// MPI's own algorithms do).
TEST_P(DenseTest, LargeAllReduceGivesEveryRankTheSameBits) {
  const World& w = world();
  withStorage(GetParam(), [&](auto tag) {
    using T = decltype(tag);
    const size_t n = 1 << 19;
    std::vector<T> send(n), recv(n);
    auto input = [](int rank, size_t i) { return spccl::fromAcc<T>(std::sin(double(i) * 0.37 + rank) * 1000.0 / 3.0); };
    for (size_t i = 0; i < n; ++i) send[i] = input(w.rank, i);
    ASSERT_EQ(spcclAllReduce(send.data(), recv.data(), n, GetParam(), spcclSum, w.comm, nullptr), spcclSuccess);
    std::vector<T> inplace = send;
    ASSERT_EQ(spcclAllReduce(inplace.data(), inplace.data(), n, GetParam(), spcclSum, w.comm, nullptr), spcclSuccess);
    for (const std::vector<T>* got : {&recv, &inplace}) {
      std::vector<T> rootCopy = *got;
      MPI_Bcast(rootCopy.data(), (int)(n * sizeof(T)), MPI_BYTE, 0, MPI_COMM_WORLD);
      EXPECT_EQ(0, memcmp(rootCopy.data(), got->data(), n * sizeof(T)))
          << "rank " << w.rank << " differs from rank 0 " << (got == &recv ? "out of place" : "in place");
    }
    // And they are the sums, within one rounding of the largest partial sum per addition.
    const double eps = sizeof(T) == 8 ? 2.3e-16 : sizeof(T) == 4 ? 1.2e-7
                       : std::is_same<T, spccl::bfloat16_t>::value ? 7.9e-3 : 9.8e-4;
    const double bound = w.nranks * (w.nranks * 1000.0 / 3.0) * eps;
    size_t far = 0;
    for (size_t i = 0; i < n; ++i) {
      double want = 0;
      for (int r = 0; r < w.nranks; ++r) want += toAcc(input(r, i));
      far += std::fabs(toAcc(recv[i]) - want) > bound;
      far += std::fabs(toAcc(inplace[i]) - want) > bound;
    }
    EXPECT_EQ(far, 0u);
  });
}

TEST_P(DenseTest, AllGatherBroadcastReduceScatter) {
  const World& w = world();
  withStorage(GetParam(), [&](auto tag) {
    using T = decltype(tag);
    const size_t n = 777;
    std::vector<T> send = inputs<T>(w.rank, 1, n), gathered(n * w.nranks);
    ASSERT_EQ(spcclAllGather(send.data(), gathered.data(), n, GetParam(), w.comm, nullptr), spcclSuccess);
    for (int r = 0; r < w.nranks; ++r)
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(toAcc(gathered[r * n + i]), inputValue(r, 1, i));

    const int root = w.nranks - 1;
    std::vector<T> bcast(n);
    ASSERT_EQ(spcclBroadcast(send.data(), bcast.data(), n, GetParam(), root, w.comm, nullptr), spcclSuccess);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(toAcc(bcast[i]), inputValue(root, 1, i));

    // 777: MPI's reduce-scatter; 100003 a block: the transport's ring (past its threshold in
    // every type), for the sum and the average (half types: summed in fp32, divided once).
    using AccT = typename spccl::AccumOf<T>::type;
    for (size_t each : {n, size_t(100003)})
      for (spcclRedOp_t op : {spcclSum, spcclAvg}) {
        std::vector<T> big = inputs<T>(w.rank, 2, each * w.nranks), mine(each);
        ASSERT_EQ(spcclReduceScatter(big.data(), mine.data(), each, GetParam(), op, w.comm, nullptr), spcclSuccess);
        size_t wrong = 0;
        for (size_t i = 0; i < each; ++i) {
          AccT sum = 0;
          for (int r = 0; r < w.nranks; ++r) sum += inputValue(r, 2, w.rank * each + i);
          AccT want = toAcc(spccl::fromAcc<T>(sum));
          if (op == spcclAvg) want = toAcc(spccl::fromAcc<T>(want * (AccT(1) / AccT(w.nranks))));
          wrong += toAcc(mine[i]) != want;
        }
        EXPECT_EQ(wrong, 0u) << "block " << each << " op " << op;
      }
  });
}

INSTANTIATE_TEST_SUITE_P(Types, DenseTest, ::testing::ValuesIn(allTypes));

// Half types average in fp32 before the one rounding: every rank sending 40000 (which fp16
// holds exactly) averages to 40000, never to inf through an 80000 partial sum; in the dense
// pass-through and in every method, with and without the overlapped pipeline.
TEST(HalfAverage, FortyThousandAveragesToFortyThousandEverywhere) {
  const World& w = world();
  const size_t n = 1000;
  for (spcclDataType_t dt : {spcclFloat16, spcclBfloat16}) {
    withStorage(dt, [&](auto tag) {
      using T = decltype(tag);
      const T big = spccl::fromAcc<T>(40000.0f);
      const float want = toAcc(big);
      std::vector<T> send(n, big), recv(n);
      ASSERT_EQ(spcclAllReduce(send.data(), recv.data(), n, dt, spcclAvg, w.comm, nullptr), spcclSuccess);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(toAcc(recv[i]), want) << "spcclAllReduce, element " << i;
      std::vector<T> all(n * w.nranks, big);
      ASSERT_EQ(spcclReduceScatter(all.data(), recv.data(), n, dt, spcclAvg, w.comm, nullptr), spcclSuccess);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(toAcc(recv[i]), want) << "spcclReduceScatter, element " << i;
      for (int method = 0; method < spcclNumMethods; ++method) {
        for (int pipeline : {0, 1}) {
          spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
          cfg.method = method;
          cfg.density = 0.1;
          cfg.blockSize = 16;
          cfg.pipeline = pipeline;
          spcclState_t st, twin;
          ASSERT_EQ(spcclStateCreate(&st, w.comm, &cfg, n, dt), spcclSuccess);
          // Every rank sends the same tensor, so the average is one rank's contribution: what
          // a twin state's spcclCompress writes (40000 itself, or its quantized value for a
          // method that quantizes values). Never inf, never anything else.
          ASSERT_EQ(spcclStateCreate(&twin, w.comm, &cfg, n, dt), spcclSuccess);
          size_t nvalues = 0;
          ASSERT_EQ(spcclCompressedCount(twin, &nvalues), spcclSuccess);
          std::vector<T> values(nvalues);
          std::vector<uint32_t> indices(nvalues);
          unsigned long long step = 0;
          ASSERT_EQ(spcclCompress(send.data(), values.data(), indices.data(), &nvalues, &step, twin, nullptr),
                    spcclSuccess);
          ASSERT_GT(nvalues, 0u);
          const float contribution = toAcc(values[0]);
          EXPECT_TRUE(std::isfinite(contribution)) << "method " << method;
          if (method != spcclMethodQTopK) EXPECT_EQ(contribution, want) << "method " << method;
          ASSERT_EQ(spcclSparseAllReduce(send.data(), recv.data(), n, dt, spcclAvg, st, w.comm, nullptr), spcclSuccess);
          size_t sent = 0, wrong = 0;
          for (size_t i = 0; i < n; ++i) {
            sent += toAcc(recv[i]) == contribution;
            wrong += toAcc(recv[i]) != contribution && toAcc(recv[i]) != 0.0f;
          }
          spcclStateDestroy(twin);
          EXPECT_EQ(wrong, 0u) << "method " << method << " pipeline " << pipeline;
          EXPECT_GT(sent, 0u) << "method " << method << " pipeline " << pipeline;
          spcclStateDestroy(st);
        }
      }
    });
  }
}

TEST(Dense, CommQueries) {
  const World& w = world();
  int count = 0, rank = -1;
  ASSERT_EQ(spcclCommCount(w.comm, &count), spcclSuccess);
  ASSERT_EQ(spcclCommUserRank(w.comm, &rank), spcclSuccess);
  EXPECT_EQ(count, w.nranks);
  EXPECT_EQ(rank, w.rank);
}

}  // namespace
}  // namespace spccl_test
