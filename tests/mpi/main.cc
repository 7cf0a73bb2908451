// SPDX-License-Identifier: Apache-2.0
//
// gtest under mpirun: every rank runs every test; only rank 0 prints; the exit status is
// non-zero when any rank failed.

#include "mpi_test.h"

namespace spccl_test {
World& world() {
  static World w;
  return w;
}
}  // namespace spccl_test

namespace {
// Ranks other than 0 print only their failures, with the rank in front.
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed()) fprintf(stderr, "[rank %d] %s:%d: %s\n", rank_, r.file_name() ? r.file_name() : "?",
                            r.line_number(), r.summary());
  }
 private:
  int rank_;
};
}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  auto& w = spccl_test::world();
  MPI_Comm_rank(MPI_COMM_WORLD, &w.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &w.nranks);
  if (spcclCommInitMPI(&w.comm, MPI_COMM_WORLD) != spcclSuccess) {
    fprintf(stderr, "spcclCommInitMPI failed: %s\n", spcclGetLastError(nullptr));
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (w.rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(w.rank));
  }
  int failed = RUN_ALL_TESTS();
  int anyFailed = 0;
  MPI_Allreduce(&failed, &anyFailed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  spcclCommDestroy(w.comm);
  MPI_Finalize();
  return anyFailed ? 1 : 0;
}
