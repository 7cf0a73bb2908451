/* SPDX-License-Identifier: Apache-2.0
 *
 * The perf harness shared by every spccl perf binary, in the manner of nccl-tests'
 * common.cu: option parsing, the size loop, buffers, timing averaged over ranks, a separate
 * check pass against a CPU reference, #wrong summed over ranks, the table, JSON, the exit
 * status. A binary only registers method descriptors and calls perfMain.
 */
#ifndef SPCCL_PERF_COMMON_H_
#define SPCCL_PERF_COMMON_H_

#include <stddef.h>

#include <functional>
#include <string>
#include <vector>

#include "reference.h"
#include "spccl.h"

namespace spccl_perf {

struct Options {
  size_t minBytes = 32 << 20, maxBytes = 32 << 20;
  double stepFactor = 2;
  int iters = 20, warmup = 5;
  bool check = true;
  int gpus = 0;            // -g 1: device buffers (one GPU per rank, or shared)
  std::string transport = "mpi";  // -T mpi|nccl with -g: host-staged MPI, or NCCL
  spcclDataType_t datatype = spcclFloat32;
  spcclRedOp_t op = spcclSum;
  std::vector<std::string> methods = {"dense", "randomblock"};
  double density = 1.0 / 64;
  int blockSize = 256;
  int valueBits = 2;  // qtopk
  int blockPattern = spcclBlocksContiguous;
  int feedback = spcclFeedbackEF;
  // -H: config.hierarchical values to run each method with (library default: auto).
  std::vector<int> hierarchical = {SPCCL_CONFIG_UNDEF_INT};
  std::string jsonPath;
  bool listMethods = false;
};

// What a method needs to know about the run to compute its reference and wire bytes. The
// contributors are the ranks (flat), or the hosts on one shard (hierarchical: `state` is
// then a flat state of the shard's size on the cross-host comm, `count` the shard's size).
struct Context {
  const Options* opts;
  Format format;  // opts->datatype's arithmetic
  int rank, nranks;  // this rank; the number of contributors
  size_t count;
  spcclState_t state;
  std::function<double(int, size_t)> input;  // contributor r's input at element i
};

// The deterministic input of rank r at element i: k/2 with k in [-4, 4], so any sum of a
// few ranks is exact in every type, whatever the order of summation.
float inputValue(int rank, size_t i);

// The check pass of one library method, as nccl-tests' struct testColl: the exact expected
// output (state reset: step 0, zero residual) from every rank's inputs. Everything else
// (name, wire bytes, what the state chose to run) the harness asks the library.
struct MethodReference {
  spcclMethod_t method;
  void (*reference)(const Context& ctx, std::vector<double>& expected);
  // The reference already applies the op (1-bit averages before its server level).
  bool referenceAppliesOp = false;
  // Also run as "<name>_pipe", with config.pipeline (the residual pass overlapped).
  bool pipelined = false;
};

// The state's spcclStateGetInfo (zeros if it fails).
spcclStateInfo_t stateInfo(spcclState_t state);

// Runs the size loop for the methods in opts.methods (every method spcclMethodName lists,
// with a reference here); returns the exit status (non-zero when any element was wrong or a
// call failed).
int perfMain(int argc, char** argv, const std::vector<MethodReference>& references);

}  // namespace spccl_perf

#endif  // SPCCL_PERF_COMMON_H_
