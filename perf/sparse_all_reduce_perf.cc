// SPDX-License-Identifier: Apache-2.0
//
// sparse_all_reduce_perf: every method of spcclSparseAllReduce side by side on the same
// buffers in one run, under mpirun. Each method is one descriptor: its wire bytes and the
// reference output of the check pass.

#include <math.h>

#include <map>
#include <vector>

#include "common.h"
#include "common/topk_reference.h"
#include "dispatch.h"

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
size_t randomBlockWire(const Context& ctx) { return ringBytes(ctx, chosenBlocks(ctx, nullptr) * ctx.opts->blockSize); }
void randomBlockReference(const Context& ctx, std::vector<double>& expected) {
  std::vector<size_t> blocks;
  chosenBlocks(ctx, &blocks);
  const size_t B = ctx.opts->blockSize;
  for (size_t b : blocks)
    for (size_t i = b * B; i < std::min(ctx.count, (b + 1) * B); ++i)
      for (int r = 0; r < ctx.nranks; ++r) expected[i] += ctx.input(r, i);
}

// Top-k family: the library's own wire bytes (they follow the dense switch), and the
// reference selections of tests/common/topk_reference.h on every rank's step-0 input.
spcclStateInfo_t stateInfo(const Context& ctx) {
  spcclStateInfo_t info = {};
  spcclStateGetInfo(ctx.state, &info);
  return info;
}
size_t libraryWire(const Context& ctx) { return stateInfo(ctx).wireBytes; }
const char* topkFamilyVariant(const Context& ctx) { return stateInfo(ctx).denseSwitched ? ">dense" : ""; }

template <typename T>
std::vector<T> rankInput(const Context& ctx, int r) {
  std::vector<T> v(ctx.count);
  for (size_t i = 0; i < ctx.count; ++i) v[i] = spccl::fromAcc<T>((float)ctx.input(r, i));
  return v;
}

// expected += every rank's input on the positions it sends (several ranks may share one).
template <typename SentBy>
void topkFamilyReference(const Context& ctx, std::vector<double>& expected, SentBy sentBy) {
  if (stateInfo(ctx).denseSwitched) return denseReference(ctx, expected);
  spccl::withType(ctx.opts->datatype, [&](auto tag) {
    using T = decltype(tag);
    const size_t k = stateInfo(ctx).selected;
    std::vector<std::vector<T>> inputs(ctx.nranks);
    for (int r = 0; r < ctx.nranks; ++r) inputs[r] = rankInput<T>(ctx, r);
    const std::vector<std::vector<uint32_t>> sent = sentBy(inputs, k, tag);
    for (int r = 0; r < ctx.nranks; ++r)
      for (uint32_t i : sent[r])
        if (i != SPCCL_PAD_INDEX) expected[i] += spccl::toAcc(inputs[r][i]);
    return spcclSuccess;
  });
}

template <typename T>
std::vector<uint32_t> topkOf(const T* v, size_t n, size_t k) {
  return spccl_test::referenceTopKByLevels(v, n, k);
}

void topkReference(const Context& ctx, std::vector<double>& expected) {
  topkFamilyReference(ctx, expected, [](const auto& inputs, size_t k, auto tag) {
    std::vector<std::vector<uint32_t>> sent;
    for (const auto& v : inputs) sent.push_back(topkOf<decltype(tag)>(v.data(), v.size(), k));
    return sent;
  });
}

void gaussiankReference(const Context& ctx, std::vector<double>& expected) {
  topkFamilyReference(ctx, expected, [&](const auto& inputs, size_t k, auto) {
    std::vector<std::vector<uint32_t>> sent;
    for (const auto& v : inputs) sent.push_back(spccl_test::referenceGaussianK(v.data(), v.size(), k, ctx.opts->density));
    return sent;
  });
}

void gtopkReference(const Context& ctx, std::vector<double>& expected) {
  topkFamilyReference(ctx, expected, [](const auto& inputs, size_t k, auto tag) {
    using T = decltype(tag);
    std::vector<std::map<uint32_t, T>> lists(inputs.size());
    for (size_t r = 0; r < inputs.size(); ++r)
      for (uint32_t i : topkOf<T>(inputs[r].data(), inputs[r].size(), k)) lists[r][i] = inputs[r][i];
    return std::vector<std::vector<uint32_t>>(inputs.size(), spccl_test::referenceGTopKSet(lists, k, topkOf<T>));
  });
}

// 1-bit, first call after a reset (zero residuals): per rank and chunk of len = ceil(n/P),
// the scale s = mean |g| (accumulated in the accumulation type in index order, rounded into
// T) and the signs (+ for g >= 0); chunk j's mean m = (sum over ranks of +-s, rank order) *
// (1/P for avg), rounded into T; the output is m's own scale times m's signs.
template <typename T>
void oneBitTyped(const Context& ctx, std::vector<double>& expected) {
  using AccT = typename spccl::AccumOf<T>::type;
  const int P = ctx.nranks;
  const size_t n = ctx.count, len = (n + P - 1) / P;
  auto signedScale = [](const std::vector<T>& x, size_t b, size_t e, std::vector<AccT>* c) {
    AccT sum = 0;
    for (size_t i = b; i < e; ++i) sum += std::fabs(spccl::toAcc(x[i]));
    const AccT s = e > b ? spccl::toAcc(spccl::fromAcc<T>(sum / (AccT)(e - b))) : AccT(0);
    for (size_t i = b; i < e; ++i) (*c)[i] = spccl::toAcc(x[i]) < 0 ? -s : s;
  };
  std::vector<std::vector<AccT>> worker(P, std::vector<AccT>(n));
  for (int r = 0; r < P; ++r) {
    const std::vector<T> g = rankInput<T>(ctx, r);
    for (size_t b = 0; b < n; b += len) signedScale(g, b, std::min(n, b + len), &worker[r]);
  }
  const AccT factor = ctx.opts->op == spcclAvg ? (AccT)(1.0 / P) : (AccT)1;
  std::vector<T> mean(n);
  for (size_t i = 0; i < n; ++i) {
    AccT sum = 0;
    for (int r = 0; r < P; ++r) sum += worker[r][i];
    mean[i] = spccl::fromAcc<T>(sum * factor);
  }
  std::vector<AccT> out(n);
  for (size_t b = 0; b < n; b += len) signedScale(mean, b, std::min(n, b + len), &out);
  for (size_t i = 0; i < n; ++i) expected[i] = out[i];
}

void oneBitReference(const Context& ctx, std::vector<double>& expected) {
  spccl::withStorage(ctx.opts->datatype, [&](auto tag) { oneBitTyped<decltype(tag)>(ctx, expected); });
}

}  // namespace
}  // namespace spccl_perf

int main(int argc, char** argv) {
  using namespace spccl_perf;
  const std::vector<MethodDesc> methods = {
      {"dense", spcclMethodDense, 0, denseWire, denseReference},
      {"randomblock", spcclMethodRandomBlock, 0, randomBlockWire, randomBlockReference},
      {"randomblock_pipe", spcclMethodRandomBlock, 1, randomBlockWire, randomBlockReference},
      {"topk", spcclMethodTopK, 0, libraryWire, topkReference, topkFamilyVariant},
      {"gaussiank", spcclMethodGaussianK, 0, libraryWire, gaussiankReference, topkFamilyVariant},
      {"gtopk", spcclMethodGTopK, 0, libraryWire, gtopkReference, topkFamilyVariant},
      {"onebit", spcclMethodOneBit, 0, libraryWire, oneBitReference, nullptr, true},
  };
  return perfMain(argc, argv, methods);
}
