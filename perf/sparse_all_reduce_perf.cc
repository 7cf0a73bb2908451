// SPDX-License-Identifier: Apache-2.0
//
// sparse_all_reduce_perf: every method of spcclSparseAllReduce side by side on the same
// buffers in one run, under mpirun. Each method is one descriptor: its wire bytes and the
// reference output of the check pass.

#include <vector>

#include "common.h"

namespace spccl_perf {
namespace {

size_t ringBytes(const Context& ctx, size_t elements) {
  const size_t elem = ctx.opts->datatype == spcclFloat64 ? 8 : ctx.opts->datatype == spcclFloat32 ? 4 : 2;
  return ctx.nranks > 1 ? 2 * (ctx.nranks - 1) * elements * elem / ctx.nranks : 0;
}

// Dense: the sum of every rank's input.
size_t denseWire(const Context& ctx) { return ringBytes(ctx, ctx.count); }
void denseReference(const Context& ctx, std::vector<double>& expected) {
  for (int r = 0; r < ctx.nranks; ++r)
    for (size_t i = 0; i < ctx.count; ++i) expected[i] += inputValue(r, i);
}

// Random block: the sum of every rank's input on the blocks chosen at step 0, zero elsewhere.
size_t chosenBlocks(const Context& ctx, std::vector<size_t>* blocks) {
  size_t m = 0;
  spcclBlockSelection(ctx.state, 0, nullptr, &m);
  if (blocks) {
    blocks->resize(m);
    spcclBlockSelection(ctx.state, 0, blocks->data(), &m);
  }
  return m;
}
size_t randomBlockWire(const Context& ctx) { return ringBytes(ctx, chosenBlocks(ctx, nullptr) * ctx.opts->blockSize); }
void randomBlockReference(const Context& ctx, std::vector<double>& expected) {
  std::vector<size_t> blocks;
  chosenBlocks(ctx, &blocks);
  const size_t B = ctx.opts->blockSize;
  for (size_t b : blocks)
    for (size_t i = b * B; i < std::min(ctx.count, (b + 1) * B); ++i)
      for (int r = 0; r < ctx.nranks; ++r) expected[i] += inputValue(r, i);
}

}  // namespace
}  // namespace spccl_perf

int main(int argc, char** argv) {
  using namespace spccl_perf;
  const std::vector<MethodDesc> methods = {
      {"dense", spcclMethodDense, 0, denseWire, denseReference},
      {"randomblock", spcclMethodRandomBlock, 0, randomBlockWire, randomBlockReference},
      {"randomblock_pipe", spcclMethodRandomBlock, 1, randomBlockWire, randomBlockReference},
  };
  return perfMain(argc, argv, methods);
}
