/* SPDX-License-Identifier: Apache-2.0
 *
 * Shared pieces of the multi-rank tests: the world comm, deterministic inputs whose sums are
 * exact in every type (small multiples of 1/4), and an all-ranks agreement helper. */
#ifndef SPCCL_TESTS_MPI_TEST_H_
#define SPCCL_TESTS_MPI_TEST_H_

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstring>
#include <vector>

#include "dtype_core.h"
#include "spccl.h"
#include "spccl_mpi.h"

namespace spccl_test {

struct World {
  spcclComm_t comm = nullptr;
  int rank = 0, nranks = 1;
};
World& world();

// A pure function of (rank, step, i): k/4 with k in [-8, 8].
inline float inputValue(int rank, unsigned long long step, size_t i) {
  return float(int((rank * 7 + i * 13 + step * 5) % 17) - 8) * 0.25f;
}

template <typename T>
std::vector<T> inputs(int rank, unsigned long long step, size_t n) {
  std::vector<T> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = spccl::fromAcc<T>(inputValue(rank, step, i));
  return v;
}

// Elements of `out` that differ from the exact sum over ranks of the step-0 inputs (what a
// collective that sends everything must produce).
inline size_t wrongDenseSums(const std::vector<float>& out, int nranks) {
  size_t wrong = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    float want = 0;
    for (int r = 0; r < nranks; ++r) want += inputValue(r, 0, i);
    wrong += out[i] != want;
  }
  return wrong;
}

// True on every rank only if it is true on all ranks, so one rank's failure stops them all.
inline bool allRanks(bool ok) {
  int mine = ok, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
  return all != 0;
}

// True when two states hold bit-identical residuals.
inline bool sameResidual(spcclState_t a, spcclState_t b, size_t bytes) {
  void *ra = nullptr, *rb = nullptr;
  spcclStateGetResidual(a, &ra);
  spcclStateGetResidual(b, &rb);
  return ra && rb && memcmp(ra, rb, bytes) == 0;
}

inline spcclDataType_t allTypes[] = {spcclFloat32, spcclFloat64, spcclFloat16, spcclBfloat16};

}  // namespace spccl_test

#endif  // SPCCL_TESTS_MPI_TEST_H_
