// SPDX-License-Identifier: Apache-2.0
//
// The selection stream on any (nblocks, nselected, pattern, key): chosen blocks are in
// range and distinct, and blockSlot inverts slotBlock.

#include <vector>

#include "common/fuzz_input.h"
#include "select_core.h"

using spccl_fuzz::FuzzInput;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  const uint64_t nblocks = 1 + in.take<uint64_t>() % (1ull << 40);
  const uint64_t nselected = 1 + in.take<uint16_t>() % (nblocks < 4096 ? nblocks : 4096);
  const int scattered = in.take<uint8_t>() & 1;
  const spccl::BlockSelection sel = spccl::makeBlockSelection(nblocks, nselected, scattered, in.take<uint64_t>());
  std::vector<uint64_t> seen;
  for (uint64_t slot = 0; slot < nselected; ++slot) {
    const uint64_t b = spccl::slotBlock(sel, slot);
    if (b >= nblocks || spccl::blockSlot(sel, b) != slot) __builtin_trap();
    seen.push_back(b);
  }
  if (nselected <= 256) {  // distinct (quadratic check kept small)
    for (size_t i = 0; i < seen.size(); ++i)
      for (size_t j = i + 1; j < seen.size(); ++j)
        if (seen[i] == seen[j]) __builtin_trap();
  }
  return 0;
}
