// SPDX-License-Identifier: Apache-2.0
//
// The compress-only communicator: rank and size without a transport, for frameworks that
// move spccl's payloads through their own collectives (a PyTorch process group, Horovod).
// States on it compress and decompress; every collective is refused in argsCheck.

#include <memory>

#include "checks.h"
#include "comm.h"
#include "device.h"
#include "info.h"

namespace spccl {
namespace {

// Reached only if a path skipped argsCheck: refuses rather than pretending to communicate.
class LocalTransport final : public Transport {
 public:
  explicit LocalTransport(bool onDevice) : onDevice_(onDevice) {}
  const char* name() const override { return "none (compress-only)"; }
  // Buffers stay where the caller's are: nothing is staged through host memory.
  bool deviceBuffers() const override { return onDevice_; }
  spcclResult_t allReduce(const void*, void*, size_t, spcclDataType_t, spcclRedOp_t, spcclStream_t) override {
    return refuse();
  }
  spcclResult_t reduceScatter(const void*, void*, size_t, spcclDataType_t, spcclRedOp_t, spcclStream_t) override {
    return refuse();
  }
  spcclResult_t allGather(const void*, void*, size_t, spcclStream_t) override { return refuse(); }
  spcclResult_t broadcast(const void*, void*, size_t, int, spcclStream_t) override { return refuse(); }
  spcclResult_t sendRecv(const void*, size_t, int, void*, size_t, int, spcclStream_t) override { return refuse(); }
  spcclResult_t barrier() override { return refuse(); }

 private:
  static spcclResult_t refuse() {
    WARN("a compress-only comm (spcclCommInitLocal) has no transport to communicate over");
    return spcclInvalidUsage;
  }
  bool onDevice_;
};

}  // namespace
}  // namespace spccl

using namespace spccl;

extern "C" spcclResult_t spcclCommInitLocal(spcclComm_t* comm, int nranks, int rank, int device) {
  const char* api = "spcclCommInitLocal";
  SPCCL_REQUIRE(comm != nullptr, spcclInvalidArgument, "%s : comm argument is NULL", api);
  *comm = nullptr;
  SPCCL_REQUIRE(nranks >= 1, spcclInvalidArgument, "%s : nranks %d is not >= 1", api, nranks);
  SPCCL_REQUIRE(rank >= 0 && rank < nranks, spcclInvalidArgument, "%s : rank %d is outside 0..%d", api, rank,
                nranks - 1);
  SPCCL_REQUIRE(device >= -1, spcclInvalidArgument, "%s : device %d is not -1 (host) or a CUDA device index", api,
                device);
  SPCCLCHECK(debugEnvCheck(api));  // the logger's variables, as every comm init checks them
  if (device >= 0) {
    int current = -1;
    SPCCLCHECK(device::currentDevice(&current));  // fails clearly without CUDA
    SPCCL_REQUIRE(current == device, spcclInvalidUsage,
                  "%s : device %d is not the calling thread's current CUDA device %d (cudaSetDevice first)", api,
                  device, current);
  }
  auto c = std::make_unique<spcclComm>();
  c->rank = rank;
  c->nranks = nranks;
  c->onDevice = device >= 0;
  c->compressOnly = true;
  c->transport = std::make_unique<LocalTransport>(c->onDevice);
  INFO(kSubsysInit, "%s : rank %d of %d, compress-only, %s buffers", api, rank, nranks,
       device >= 0 ? "device" : "host");
  *comm = c.release();
  return spcclSuccess;
}
