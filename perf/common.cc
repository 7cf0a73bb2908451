// SPDX-License-Identifier: Apache-2.0
//
// The perf harness (see common.h). Timing and checking are separate passes, as in
// nccl-tests: the timed iterations build up feedback history, so the check pass resets the
// state first and compares one call with a reference that depends only on the inputs.

#include "common.h"

#include <getopt.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <algorithm>
#include <map>
#include <memory>
#include <sstream>

#include "device_buffers.h"
#include "hosts.h"
#include "spccl_mpi.h"
#ifdef SPCCL_HAVE_NCCL
#include "spccl_nccl.h"
#endif

namespace spccl_perf {
namespace {

#define PERFCHECK(call)                                                                                 \
  do {                                                                                                  \
    spcclResult_t res_ = (call);                                                                        \
    if (res_ != spcclSuccess) {                                                                         \
      fprintf(stderr, "rank %d: %s:%d '%s' failed: %s (%s)\n", rank_, __FILE__, __LINE__, #call,       \
              spcclGetErrorString(res_), spcclGetLastError(nullptr));                                   \
      return false;                                                                                     \
    }                                                                                                   \
  } while (0)

size_t parseSize(const char* text) {
  char* end = nullptr;
  double value = strtod(text, &end);
  switch (end && *end ? toupper(*end) : 0) {
    case 'G': value *= 1024; [[fallthrough]];
    case 'M': value *= 1024; [[fallthrough]];
    case 'K': value *= 1024;
  }
  return (size_t)value;
}

size_t typeSize(spcclDataType_t t) { return Format{t}.bytes(); }

const char* typeName(spcclDataType_t t) {
  switch (t) {
    case spcclFloat16: return "half";
    case spcclBfloat16: return "bfloat16";
    case spcclFloat64: return "double";
    default: return "float";
  }
}

void usage(const char* prog) {
  fprintf(stderr,
          "usage: %s [-b minbytes] [-e maxbytes] [-f factor] [-n iters] [-w warmup] [-c 0|1]\n"
          "          [-d float|half|bfloat16|double] [-o sum|avg] [-m dense,randomblock,auto:topk,...|all]\n"
          "          [-D density] [-B blocksize] [-p contiguous|scattered] [-F none|ef] [-J file.json]\n"
          "          [-q bits: qtopk's bits per value, 2..8]\n"
          "          [-g 1: device buffers, rank r on GPU r %% count] [-T mpi|nccl: with -g, MPI staged\n"
          "          through pinned host memory (ranks may share a GPU) or NCCL (one GPU per rank)]\n"
          "          [-H 0,1: run each method flat (0) and/or hierarchical (1); default: the library's choice]\n"
          "          [-l: list the methods]\n",
          prog);
}

bool parseOptions(int argc, char** argv, Options* o) {
  int c;
  while ((c = getopt(argc, argv, "b:e:f:n:w:c:d:o:m:D:B:p:F:J:g:T:H:q:lh")) != -1) {
    switch (c) {
      case 'b': o->minBytes = parseSize(optarg); break;
      case 'e': o->maxBytes = parseSize(optarg); break;
      case 'f': o->stepFactor = atof(optarg); break;
      case 'n': o->iters = atoi(optarg); break;
      case 'w': o->warmup = atoi(optarg); break;
      case 'c': o->check = atoi(optarg) != 0; break;
      case 'd':
        if (!strcasecmp(optarg, "float")) o->datatype = spcclFloat32;
        else if (!strcasecmp(optarg, "half")) o->datatype = spcclFloat16;
        else if (!strcasecmp(optarg, "bfloat16")) o->datatype = spcclBfloat16;
        else if (!strcasecmp(optarg, "double")) o->datatype = spcclFloat64;
        else return false;
        break;
      case 'o':
        if (!strcasecmp(optarg, "sum")) o->op = spcclSum;
        else if (!strcasecmp(optarg, "avg")) o->op = spcclAvg;
        else return false;
        break;
      case 'm': {
        o->methods.clear();
        std::stringstream list(optarg);
        for (std::string m; std::getline(list, m, ',');) o->methods.push_back(m);
        break;
      }
      case 'H': {
        o->hierarchical.clear();
        std::stringstream list(optarg);
        for (std::string h; std::getline(list, h, ',');) o->hierarchical.push_back(atoi(h.c_str()));
        break;
      }
      case 'D': o->density = atof(optarg); break;
      case 'B': o->blockSize = atoi(optarg); break;
      case 'q': o->valueBits = atoi(optarg); break;
      case 'p': o->blockPattern = !strcasecmp(optarg, "scattered") ? spcclBlocksScattered : spcclBlocksContiguous; break;
      case 'F': o->feedback = !strcasecmp(optarg, "none") ? spcclFeedbackNone : spcclFeedbackEF; break;
      case 'J': o->jsonPath = optarg; break;
      case 'l': o->listMethods = true; break;
      case 'g': o->gpus = atoi(optarg); break;
      case 'T': o->transport = optarg; break;
      default: return false;
    }
  }
  return o->minBytes > 0 && o->maxBytes >= o->minBytes && o->stepFactor > 1 && o->iters > 0 &&
         (o->transport == "mpi" || o->transport == "nccl");
}

// A -m choice: a library method, possibly with config.pipeline or config.autoSelect, and its
// check reference.
struct MethodRun {
  std::string name;  // spcclMethodName, "_pipe" appended with pipeline, "auto:" before it with auto
  const MethodReference* ref;
  int pipeline;
  int autoSelect;  // the state may run dense (it then says so: spcclStateGetInfo.denseSwitched)
};

// Every method the library names that has a reference here, in the library's order; then
// "auto:NAME" for each of them but dense.
std::vector<MethodRun> knownRuns(const std::vector<MethodReference>& references) {
  std::vector<MethodRun> runs;
  for (int m = 0; spcclMethodName(m); ++m)
    for (const MethodReference& ref : references)
      if (ref.method == m) {
        runs.push_back({spcclMethodName(m), &ref, 0, 0});
        if (ref.pipelined) runs.push_back({std::string(spcclMethodName(m)) + "_pipe", &ref, 1, 0});
      }
  const size_t plain = runs.size();
  for (size_t i = 0; i < plain; ++i)
    if (runs[i].ref->method != spcclMethodDense && !runs[i].pipeline)
      runs.push_back({"auto:" + runs[i].name, runs[i].ref, 0, 1});
  return runs;
}

// The run of `method` without pipeline or auto (the dense reference of a state that switched).
const MethodRun* plainRun(const std::vector<MethodRun>& runs, spcclMethod_t method) {
  for (const MethodRun& run : runs)
    if (run.ref->method == method && !run.pipeline && !run.autoSelect) return &run;
  return nullptr;
}

struct Result {
  size_t bytes, count;
  std::string method, density;  // density: the column's text
  double timeUs, algbw, busbw;
  size_t wire, wireIntra, wireInter;  // bytes this rank sends per call: all, inside its host, to other hosts
  size_t memory;   // bytes the state holds (residual + workspace)
  double speedup;  // 0 when there is no dense baseline in the run
  long long wrong;
};

class Harness {
 public:
  Harness(const Options& opts, const std::vector<MethodReference>& references)
      : opts_(opts), known_(knownRuns(references)) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks_);
    const bool all = opts.methods.size() == 1 && opts.methods[0] == "all";
    if (all) wanted_ = known_.size();
    for (const auto& name : opts.methods)
      for (const MethodRun& run : known_)
        if (all || name == run.name) methods_.push_back(&run);
    if (!all) wanted_ = opts.methods.size();
    for (const MethodRun& run : known_) knownMethods_ += std::string(knownMethods_.empty() ? "" : ",") + run.name;
  }

  const std::string& knownMethods() const { return knownMethods_; }

  bool run() {
    if (methods_.size() != wanted_) {
      if (rank_ == 0) fprintf(stderr, "unknown method in -m; known: %s\n", knownMethods_.c_str());
      return false;
    }
    if (!initComm()) return false;
    printHeader();
    bool ok = true;
    for (size_t bytes = opts_.minBytes; bytes <= opts_.maxBytes && ok;
         bytes = std::max(bytes + 1, (size_t)(bytes * opts_.stepFactor)))
      ok = runSize(bytes);
    spcclCommDestroy(comm_);
    if (cross_) spcclCommDestroy(cross_);
    if (rank_ == 0) printFooter(ok);
    if (ok && rank_ == 0 && !opts_.jsonPath.empty()) writeJson();
    return ok && wrongTotal_ == 0;
  }

 private:
  // Host buffers on an MPI comm; with -g, device buffers on an MPI comm that stages through
  // pinned host memory, or on an NCCL comm (whose unique id rank 0 broadcasts over MPI).
  bool initComm() {
    if (opts_.gpus <= 0) {
      PERFCHECK(spcclCommInitMPI(&comm_, MPI_COMM_WORLD));
      return findHosts();
    }
    if (!selectDevice(rank_)) return false;
    if (opts_.transport == "mpi") {
      PERFCHECK(spcclCommInitMPIDevice(&comm_, MPI_COMM_WORLD));
      return true;
    }
#ifdef SPCCL_HAVE_NCCL
    ncclUniqueId id;
    if (rank_ == 0) ncclGetUniqueId(&id);
    MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD);
    PERFCHECK(spcclCommInitRank(&comm_, nranks_, id, rank_));
    return true;
#else
    if (rank_ == 0) fprintf(stderr, "-T nccl: spccl was built without NCCL\n");
    return false;
#endif
  }

  // The hosts the ranks span (hosts.h) and an spccl comm across the hosts for
  // this rank's local rank: a hierarchical run is checked against a flat run of each shard's
  // host sums over the hosts.
  Hosts hosts_;
  spcclComm_t cross_ = nullptr;

  bool findHosts() {
    spccl_perf::findHosts(MPI_COMM_WORLD, &hosts_);
    PERFCHECK(spcclCommInitMPI(&cross_, hosts_.cross));
    return true;
  }

  // The buffers a run uses: the host inputs, and their device copies with -g.
  struct Buffers {
    std::vector<char> send, recv;
    void* dsend = nullptr;
    void* drecv = nullptr;
    void* sendPtr() { return dsend ? dsend : send.data(); }
    void* recvPtr() { return drecv ? drecv : recv.data(); }
    ~Buffers() {
      freeDevice(dsend);
      freeDevice(drecv);
    }
  };

  bool runSize(size_t bytes) {
    const size_t elem = typeSize(opts_.datatype), count = bytes / elem;
    if (count == 0) return true;
    Buffers buf;
    buf.send.resize(count * elem);
    buf.recv.resize(count * elem);
    fillInputs(buf.send.data(), count);
    if (opts_.gpus > 0) {
      if (!allocDevice(&buf.dsend, count * elem) || !allocDevice(&buf.drecv, count * elem) ||
          !copyAndWait(buf.dsend, buf.send.data(), count * elem))
        return false;
    }
    std::vector<Result> rows;
    for (const MethodRun* m : methods_)
      for (int hierarchical : opts_.hierarchical) {
        Result r{count * elem, count, m->name, "-", 0, 0, 0, 0, 0, 0, 0, 0, 0};
        if (!measure(*m, hierarchical, buf, count, &r)) return false;
        rows.push_back(r);
      }
    double denseUs = 0;  // the flat dense row, else the hierarchical one
    for (const Result& r : rows)
      if (r.method == "dense" || (r.method == "dense+hier" && denseUs == 0)) denseUs = r.timeUs;
    for (Result& r : rows) {
      r.speedup = denseUs > 0 ? denseUs / r.timeUs : 0;
      if (rank_ == 0) printRow(r);
      if (r.wrong > 0) wrongTotal_ += r.wrong;  // -1: not checked (-c 0)
      results_.push_back(r);
    }
    return true;
  }

  // The density column: the fraction of its elements a contributor sends (the shard's, for a
  // hierarchical state), as the state sized it.
  static std::string densityText(const Context& ctx) {
    if (!ctx.state || ctx.count == 0) return "-";
    char text[32];
    snprintf(text, sizeof(text), "%.4g", (double)stateInfo(ctx.state).selected / ctx.count);
    return text;
  }

  bool measure(const MethodRun& m, int hierarchical, Buffers& buf, size_t count, Result* r) {
    spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
    cfg.method = m.ref->method;
    cfg.density = opts_.density;
    cfg.blockSize = opts_.blockSize;
    cfg.valueBits = opts_.valueBits;
    cfg.blockPattern = opts_.blockPattern;
    cfg.feedback = opts_.feedback;
    cfg.pipeline = m.pipeline;
    cfg.autoSelect = m.autoSelect;
    cfg.hierarchical = hierarchical;
    spcclState_t st;
    PERFCHECK(spcclStateCreate(&st, comm_, &cfg, count, opts_.datatype));
    std::unique_ptr<spcclState, decltype(&spcclStateDestroy)> guard(st, spcclStateDestroy);
    spcclConfig_t resolved;
    PERFCHECK(spcclStateGetConfig(st, &resolved));
    auto call = [&] {
      return spcclSparseAllReduce(buf.sendPtr(), buf.recvPtr(), count, opts_.datatype, opts_.op, st, comm_, nullptr);
    };
    // NCCL calls return once enqueued: time to completion of the stream's work.
    auto drain = [&] { return opts_.gpus == 0 || deviceWait(); };
    for (int i = 0; i < opts_.warmup; ++i) PERFCHECK(call());
    if (!drain()) return false;
    MPI_Barrier(MPI_COMM_WORLD);
    const double start = MPI_Wtime();
    for (int i = 0; i < opts_.iters; ++i) PERFCHECK(call());
    if (!drain()) return false;
    const double mine = (MPI_Wtime() - start) / opts_.iters;
    double sum = 0;
    MPI_Allreduce(&mine, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    const double seconds = sum / nranks_;  // averaged over ranks, as nccl-tests does
    r->timeUs = seconds * 1e6;
    r->algbw = r->bytes / seconds / 1e9;
    r->busbw = r->algbw * 2.0 * (nranks_ - 1) / nranks_;
    PERFCHECK(spcclStateGetMemoryFootprint(st, &r->memory));
    // What the output is checked against, and what the wire columns count.
    Context ctx{&opts_, Format{opts_.datatype}, rank_, nranks_, count, st,
                [](int rank, size_t i) { return (double)inputValue(rank, i); }};
    size_t offset = 0;
    spcclState_t shard = nullptr;
    const spcclStateInfo_t info = stateInfo(st);
    if (resolved.hierarchical) {
      // Values on shared positions run flat, their payload's allreduce in the stages: checked as flat.
      if (info.payload != spcclPayloadValues && !shardState(cfg, count, &ctx, &offset, &shard)) return false;
      r->method += "+hier";
    }
    std::unique_ptr<spcclState, decltype(&spcclStateDestroy)> shardGuard(shard, spcclStateDestroy);
    r->wire = info.wireBytes;
    r->wireIntra = info.wireIntraHostBytes;
    r->wireInter = info.wireInterHostBytes;
    r->density = densityText(ctx);
    // What the state runs next (the check call): dense after a switch (the top-k family's
    // dense switch, or auto), checked against the dense reference.
    const bool switched = info.denseSwitched || (ctx.state && stateInfo(ctx.state).denseSwitched);
    if (switched) r->method += ">dense";
    const MethodRun* dense = plainRun(known_, spcclMethodDense);
    const MethodReference& reference = switched && dense ? *dense->ref : *m.ref;
    r->wrong = -1;
    if (opts_.check) {
      PERFCHECK(spcclStateReset(st));
      PERFCHECK(call());
      if (buf.drecv && !copyAndWait(buf.recv.data(), buf.drecv, count * typeSize(opts_.datatype))) return false;
      long long wrong = ctx.state ? countWrong(reference, ctx, buf.recv.data() + offset * typeSize(opts_.datatype)) : 0;
      MPI_Allreduce(MPI_IN_PLACE, &wrong, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
      r->wrong = wrong;
    }
    return true;
  }

  // A hierarchical run on shards, as this rank checks it: its shard of the output is a flat run of the
  // method over the hosts, each contributing its ranks' sum on the shard. ctx becomes that
  // flat run (state: a flat state of the shard's size on the cross-host comm; none when the
  // shard is empty).
  bool shardState(spcclConfig_t cfg, size_t count, Context* ctx, size_t* offset, spcclState_t* shard) {
    size_t mine = 0;
    hosts_.shard(count, offset, &mine);
    ctx->nranks = (int)hosts_.members.size();
    ctx->count = mine;
    ctx->state = nullptr;
    const size_t first = *offset;
    const auto* members = &hosts_.members;
    ctx->input = [members, first](int host, size_t i) {
      double sum = 0;
      for (int r : (*members)[host]) sum += inputValue(r, first + i);
      return sum;
    };
    if (mine == 0) return true;
    cfg.hierarchical = 0;
    cfg.pipeline = 0;
    cfg.autoSelect = 0;
    PERFCHECK(spcclStateCreate(shard, cross_, &cfg, mine, opts_.datatype));
    ctx->state = *shard;
    return true;
  }

  void fillInputs(void* buf, size_t count) const {
    const Format fmt{opts_.datatype};
    for (size_t i = 0; i < count; ++i) fmt.encode(fmt.store(inputValue(rank_, i)), buf, i);
  }

  long long countWrong(const MethodReference& m, const Context& ctx, const void* out) const {
    std::vector<double> expected(ctx.count, 0.0);
    m.reference(ctx, expected);
    // avg: the sum rounded into T, times 1/P (in the accumulation type), rounded again.
    const Format& fmt = ctx.format;
    const double invRanks = fmt.acc(1.0 / nranks_);
    long long wrong = 0;
    for (size_t i = 0; i < ctx.count; ++i) {
      double want = fmt.store(fmt.acc(expected[i]));
      if (opts_.op == spcclAvg && !m.referenceAppliesOp) want = fmt.store(fmt.acc(want * invRanks));
      wrong += fmt.decode(out, i) != want;
    }
    return wrong;
  }

  void printHeader() const {
    if (rank_ != 0) return;
    printf("# spccl sparse_all_reduce_perf: nranks %d, type %s, op %s, density %g, block %d (%s), feedback %s\n",
           nranks_, typeName(opts_.datatype), opts_.op == spcclAvg ? "avg" : "sum", opts_.density, opts_.blockSize,
           opts_.blockPattern == spcclBlocksScattered ? "scattered" : "contiguous",
           opts_.feedback == spcclFeedbackEF ? "ef" : "none");
    printf("# algbw = size / time (dense-equivalent), busbw = algbw * 2(P-1)/P, intra/inter = bytes sent per rank\n"
           "# inside its host / to other hosts (flat: a ring's share; +hier: hierarchical, docs/DESIGN.md),\n"
           "# speedup = time(dense) / time(method) at the same size in this run\n");
    printf("%12s %12s %9s %22s %8s %12s %12s %12s %12s %12s %8s %7s\n", "size(B)", "count", "type", "method",
           "density", "time(us)", "algbw(GB/s)", "busbw(GB/s)", "intra(B)", "inter(B)", "speedup", "#wrong");
  }

  void printRow(const Result& r) const {
    char speedup[16], wrong[24];
    if (r.speedup > 0) snprintf(speedup, sizeof(speedup), "%.2f", r.speedup);
    else snprintf(speedup, sizeof(speedup), "-");
    if (r.wrong >= 0) snprintf(wrong, sizeof(wrong), "%lld", r.wrong);
    else snprintf(wrong, sizeof(wrong), "N/A");
    printf("%12zu %12zu %9s %22s %8s %12.1f %12.3f %12.3f %12zu %12zu %8s %7s\n", r.bytes, r.count,
           typeName(opts_.datatype), r.method.c_str(), r.density.c_str(), r.timeUs, r.algbw, r.busbw, r.wireIntra,
           r.wireInter, speedup, wrong);
    fflush(stdout);
  }

  void printFooter(bool ok) const {
    printf("# Out of bounds values : %lld %s\n", wrongTotal_, ok && wrongTotal_ == 0 ? "OK" : "FAILED");
  }

  void writeJson() const {
    FILE* f = fopen(opts_.jsonPath.c_str(), "w");
    if (!f) {
      fprintf(stderr, "cannot write %s\n", opts_.jsonPath.c_str());
      return;
    }
    fprintf(f, "{\n  \"nranks\": %d, \"type\": \"%s\", \"op\": \"%s\", \"density\": %g, \"blockSize\": %d,\n",
            nranks_, typeName(opts_.datatype), opts_.op == spcclAvg ? "avg" : "sum", opts_.density, opts_.blockSize);
    fprintf(f, "  \"pattern\": \"%s\", \"feedback\": \"%s\",\n  \"results\": [\n",
            opts_.blockPattern == spcclBlocksScattered ? "scattered" : "contiguous",
            opts_.feedback == spcclFeedbackEF ? "ef" : "none");
    for (size_t i = 0; i < results_.size(); ++i) {
      const Result& r = results_[i];
      fprintf(f,
              "    {\"size\": %zu, \"count\": %zu, \"method\": \"%s\", \"time_us\": %.3f, \"algbw\": %.6f, "
              "\"busbw\": %.6f, \"wire\": %zu, \"wire_intra\": %zu, \"wire_inter\": %zu, \"memory\": %zu, "
              "\"speedup\": %.4f, \"wrong\": %lld}%s\n",
              r.bytes, r.count, r.method.c_str(), r.timeUs, r.algbw, r.busbw, r.wire, r.wireIntra, r.wireInter,
              r.memory, r.speedup, r.wrong,
              i + 1 < results_.size() ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
  }

  const Options& opts_;
  const std::vector<MethodRun> known_;
  std::vector<const MethodRun*> methods_;
  size_t wanted_ = 0;  // the number of -m entries (every known run for -m all)
  std::string knownMethods_;
  int rank_ = 0, nranks_ = 1;
  spcclComm_t comm_ = nullptr;
  long long wrongTotal_ = 0;
  std::vector<Result> results_;
};

}  // namespace

float inputValue(int rank, size_t i) { return float(int((rank * 5 + i * 7) % 9) - 4) * 0.5f; }

spcclStateInfo_t stateInfo(spcclState_t state) {
  spcclStateInfo_t info = SPCCL_STATE_INFO_INITIALIZER;
  if (spcclStateGetInfo(state, &info) != spcclSuccess) {
    const spcclStateInfo_t none = SPCCL_STATE_INFO_INITIALIZER;
    return none;
  }
  return info;
}

int perfMain(int argc, char** argv, const std::vector<MethodReference>& references) {
  MPI_Init(&argc, &argv);
  Options opts;
  int status = 1;
  if (!parseOptions(argc, argv, &opts)) {
    usage(argv[0]);
  } else {
    Harness harness(opts, references);
    if (opts.listMethods) {
      printf("%s\n", harness.knownMethods().c_str());
      status = 0;
    } else {
      status = harness.run() ? 0 : 1;
    }
  }
  MPI_Finalize();
  return status;
}

}  // namespace spccl_perf
