// SPDX-License-Identifier: Apache-2.0
//
// sparse_all_reduce_perf: every method of spcclSparseAllReduce side by side on the same
// buffers in one run, under mpirun. The methods, their names and wire bytes come from the
// library (spcclMethodName, spcclStateGetInfo); what this file adds per method is the CPU
// reference output of the check pass.

#include <math.h>

#include <functional>
#include <map>
#include <vector>

#include "common.h"
#include "reference.h"

namespace spccl_perf {
namespace {

// Dense: the sum of every rank's input.
void denseReference(const Context& ctx, std::vector<double>& expected) {
  for (int r = 0; r < ctx.nranks; ++r)
    for (size_t i = 0; i < ctx.count; ++i) expected[i] += ctx.input(r, i);
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
void randomBlockReference(const Context& ctx, std::vector<double>& expected) {
  std::vector<size_t> blocks;
  chosenBlocks(ctx, &blocks);
  const size_t B = ctx.opts->blockSize;
  for (size_t b : blocks)
    for (size_t i = b * B; i < std::min(ctx.count, (b + 1) * B); ++i)
      for (int r = 0; r < ctx.nranks; ++r) expected[i] += ctx.input(r, i);
}

// Top-k family: the reference selections of reference.h on every rank's step-0 input (the
// sum of all inputs when the state switched to dense).

// Contributor r's input as the library sees it: rounded into the datatype.
std::vector<double> rankInput(const Context& ctx, int r) {
  std::vector<double> v(ctx.count);
  for (size_t i = 0; i < ctx.count; ++i) v[i] = ctx.format.store(ctx.input(r, i));
  return v;
}

// expected += every rank's input on the positions it sends (several ranks may share one).
using Selections = std::vector<std::vector<uint32_t>>;
void topkFamilyReference(const Context& ctx, std::vector<double>& expected,
                         const std::function<Selections(const std::vector<std::vector<double>>&, size_t)>& sentBy) {
  const spcclStateInfo_t info = stateInfo(ctx.state);
  if (info.denseSwitched) return denseReference(ctx, expected);
  std::vector<std::vector<double>> inputs(ctx.nranks);
  for (int r = 0; r < ctx.nranks; ++r) inputs[r] = rankInput(ctx, r);
  const Selections sent = sentBy(inputs, info.selected);
  for (int r = 0; r < ctx.nranks; ++r)
    for (uint32_t i : sent[r])
      if (i != SPCCL_PAD_INDEX) expected[i] += inputs[r][i];
}

void topkReference(const Context& ctx, std::vector<double>& expected) {
  topkFamilyReference(ctx, expected, [](const auto& inputs, size_t k) {
    Selections sent;
    for (const auto& v : inputs) sent.push_back(topkByLevels(v, k));
    return sent;
  });
}

void gaussiankReference(const Context& ctx, std::vector<double>& expected) {
  topkFamilyReference(ctx, expected, [&](const auto& inputs, size_t k) {
    Selections sent;
    for (const auto& v : inputs) sent.push_back(gaussianK(v, k, ctx.opts->density, ctx.format));
    return sent;
  });
}

void gtopkReference(const Context& ctx, std::vector<double>& expected) {
  topkFamilyReference(ctx, expected, [&](const auto& inputs, size_t k) {
    std::vector<std::map<uint32_t, double>> lists(inputs.size());
    for (size_t r = 0; r < inputs.size(); ++r)
      for (uint32_t i : topkByLevels(inputs[r], k)) lists[r][i] = inputs[r][i];
    auto add = [&](double a, double b) { return ctx.format.add(a, b); };
    return Selections(inputs.size(), gtopkSet(lists, k, add, topkByLevels));
  });
}

// 1-bit, first call after a reset (zero residuals): per rank and chunk of len = ceil(n/P),
// the scale s = mean |g| (summed in the accumulation type in the fold tree of DESIGN.md,
// 1-bit, rounded into T) and the signs (+ for g >= 0); chunk j's mean m = (sum over ranks of
// +-s, rank order) * (1/P for avg), rounded into T; the output is m's own scale times m's signs.
void oneBitReference(const Context& ctx, std::vector<double>& expected) {
  const Format& fmt = ctx.format;
  const int P = ctx.nranks;
  const size_t n = ctx.count, len = (n + P - 1) / P;
  std::vector<std::vector<double>> worker(P, std::vector<double>(n));
  for (int r = 0; r < P; ++r) {
    const std::vector<double> g = rankInput(ctx, r);
    for (size_t b = 0; b < n; b += len) signCompressChunk(g, b, std::min(n, b + len), fmt, &worker[r]);
  }
  const double factor = ctx.opts->op == spcclAvg ? fmt.acc(1.0 / P) : 1;
  std::vector<double> mean(n);
  for (size_t i = 0; i < n; ++i) {
    double sum = 0;
    for (int r = 0; r < P; ++r) sum = fmt.acc(sum + worker[r][i]);
    mean[i] = fmt.store(fmt.acc(sum * factor));
  }
  for (size_t b = 0; b < n; b += len) signCompressChunk(mean, b, std::min(n, b + len), fmt, &expected);
}

// Quantized top-k: the sum over ranks of each rank's contribution (reference.h), chunks of
// -B elements (at most the tensor).
void qtopkReference(const Context& ctx, std::vector<double>& expected) {
  const size_t chunk = std::max<size_t>(1, std::min<size_t>(ctx.count, (size_t)ctx.opts->blockSize));
  for (int r = 0; r < ctx.nranks; ++r) {
    const std::vector<double> c =
        qtopkContribution(rankInput(ctx, r), chunk, ctx.opts->density, ctx.opts->valueBits, ctx.format);
    for (size_t i = 0; i < ctx.count; ++i) expected[i] += c[i];
  }
}

}  // namespace
}  // namespace spccl_perf

int main(int argc, char** argv) {
  using namespace spccl_perf;
  // The reference of each library method (indexed by its public enumerator); the harness
  // runs every method the library names, and random block also with config.pipeline.
  const std::vector<MethodReference> references = {
      {spcclMethodDense, denseReference},
      {spcclMethodRandomBlock, randomBlockReference, false, true},
      {spcclMethodTopK, topkReference},
      {spcclMethodGaussianK, gaussiankReference},
      {spcclMethodGTopK, gtopkReference},
      {spcclMethodOneBit, oneBitReference, true},
      {spcclMethodQTopK, qtopkReference},
  };
  return perfMain(argc, argv, references);
}
