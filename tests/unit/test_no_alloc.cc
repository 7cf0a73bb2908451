// SPDX-License-Identifier: Apache-2.0
//
// No collective allocates after spcclStateCreate: every buffer lives in the state. malloc and
// friends are interposed here and counted while a call runs, over the one-rank loopback
// transport so that only spccl's own code is measured (MPI allocates internally).

#include <gtest/gtest.h>
#include <malloc.h>

#include <atomic>
#include <vector>

#include "common/loopback_comm.h"
#include "spccl.h"

extern "C" void* __libc_malloc(size_t);
extern "C" void* __libc_calloc(size_t, size_t);
extern "C" void* __libc_realloc(void*, size_t);
extern "C" void* __libc_memalign(size_t, size_t);

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
void note() {
  if (counting.load(std::memory_order_relaxed)) allocations++;
}
}  // namespace

#if !defined(__SANITIZE_ADDRESS__)  // ASan owns malloc in the sanitized build
extern "C" void* malloc(size_t n) {
  note();
  return __libc_malloc(n);
}
extern "C" void* calloc(size_t n, size_t m) {
  note();
  return __libc_calloc(n, m);
}
extern "C" void* realloc(void* p, size_t n) {
  note();
  return __libc_realloc(p, n);
}
extern "C" int posix_memalign(void** p, size_t align, size_t n) {
  note();
  *p = __libc_memalign(align, n);
  return *p ? 0 : 12;  // ENOMEM
}
#define SPCCL_COUNTS_ALLOCATIONS 1
#endif

namespace {

TEST(NoAlloc, SparseAllReduceCompressDecompressAllocateNothing) {
#ifndef SPCCL_COUNTS_ALLOCATIONS
  GTEST_SKIP() << "malloc is the sanitizer's in this build; the plain build counts allocations";
#else
  // The counter itself must see an allocation, or the test could not fail.
  counting = true;
  free(malloc(16));
  counting = false;
  ASSERT_EQ(allocations.load(), 1);

  spcclComm* comm = spccl_fuzz::loopbackComm();
  for (int method = 0; method < spcclNumMethods; ++method) {
    for (int pattern : {spcclBlocksContiguous, spcclBlocksScattered}) {
      spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
      cfg.method = method;
      cfg.blockPattern = pattern;
      cfg.density = 0.05;
      cfg.blockSize = 32;
      const size_t n = 100000;
      spcclState_t st;
      ASSERT_EQ(spcclStateCreate(&st, comm, &cfg, n, spcclFloat32), spcclSuccess);
      size_t capacity = 0, nvalues = 0;
      unsigned long long step = 0;
      spcclCompressedCount(st, &capacity);
      std::vector<float> g(n, 1.0f), out(n), values(capacity);
      std::vector<uint32_t> indices(capacity);  // the top-k family sends pairs
      for (int i = 0; i < 6; ++i) {
        counting = i > 0;  // after the first round: one-time lazy setup (env registry) is allowed
        if (i == 1) allocations = 0;
        spcclSparseAllReduce(g.data(), out.data(), n, spcclFloat32, spcclAvg, st, comm, nullptr);
        spcclCompress(g.data(), values.data(), indices.data(), &nvalues, &step, st, nullptr);
        spcclDecompress(values.data(), indices.data(), nvalues, step, 1.0, out.data(), st, nullptr);
      }
      counting = false;
      EXPECT_EQ(allocations.load(), 0) << "method " << method << " pattern " << pattern;
      spcclStateDestroy(st);
    }
  }
#endif
}

}  // namespace
