// SPDX-License-Identifier: Apache-2.0
//
// Drives a fuzz target without libFuzzer: N seeded random inputs of random length, so the
// targets' checks run in every ctest build (and under the sanitizers in the sanitize build).
//   fuzz_x [iterations]

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <random>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  const long iterations = argc > 1 ? atol(argv[1]) : 1000;
  std::mt19937_64 rng(20261123);
  std::vector<uint8_t> input;
  for (long i = 0; i < iterations; ++i) {
    input.resize(rng() % 512);
    for (auto& b : input) b = uint8_t(rng());
    LLVMFuzzerTestOneInput(input.data(), input.size());
  }
  printf("%ld inputs replayed without a fault\n", iterations);
  return 0;
}
