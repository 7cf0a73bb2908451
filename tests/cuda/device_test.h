/* SPDX-License-Identifier: Apache-2.0
 *
 * Shared pieces of the device tests: a visible skip when no GPU is present (never a silent
 * pass), device arrays that copy to and from std::vector, and random inputs. */
#ifndef SPCCL_TESTS_DEVICE_TEST_H_
#define SPCCL_TESTS_DEVICE_TEST_H_

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <string.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "device.h"
#include "dtype_core.h"
#include "spccl.h"

namespace spccl_test {

// Empty when a device is usable, else the reason.
inline std::string noDeviceReason() {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return std::string("no CUDA device: ") + cudaGetErrorString(err);
  }
  return n > 0 ? std::string() : std::string("no CUDA device: cudaGetDeviceCount found 0");
}

#define SPCCL_REQUIRE_DEVICE() \
  do { \
    const std::string why_ = ::spccl_test::noDeviceReason(); \
    if (!why_.empty()) GTEST_SKIP() << why_; \
  } while (0)

#define CUDA_ASSERT(call) ASSERT_EQ((call), cudaSuccess) << #call

// Device-to-host copy of n elements after the work queued on `stream`; returns once copied.
template <typename T>
std::vector<T> copyToHost(const void* src, size_t n, cudaStream_t stream) {
  std::vector<T> v(n);
  if (n == 0) return v;
  EXPECT_EQ(cudaMemcpyAsync(v.data(), src, n * sizeof(T), cudaMemcpyDeviceToHost, stream), cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  return v;
}

// A device array whose copies are ordered on one stream: the stream the test computes on
// (a cudaStreamNonBlocking one is not ordered after copies on the legacy stream), or the
// legacy stream when none is given.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t n, cudaStream_t stream = nullptr) : n_(n), stream_(stream) {
    if (n && cudaMalloc(&ptr_, n * sizeof(T)) != cudaSuccess) ptr_ = nullptr;
  }
  explicit DeviceArray(const std::vector<T>& v, cudaStream_t stream = nullptr) : DeviceArray(v.size(), stream) {
    upload(v);
  }
  ~DeviceArray() { cudaFree(ptr_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* get() const { return ptr_; }
  size_t size() const { return n_; }
  // Stream-ordered; the host vector may be reused at once (pageable copies are staged first).
  void upload(const std::vector<T>& v) {
    if (v.empty()) return;  // an empty array has no memory to copy into
    EXPECT_EQ(cudaMemcpyAsync(ptr_, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice, stream_), cudaSuccess);
  }
  std::vector<T> download() const { return copyToHost<T>(ptr_, n_, stream_); }

 private:
  T* ptr_ = nullptr;
  size_t n_;
  cudaStream_t stream_;
};

template <typename T>
std::vector<T> randomVector(size_t n, std::mt19937_64& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<T> v(n);
  for (auto& x : v) x = spccl::fromAcc<T>(dist(rng));
  return v;
}

// Bit-for-bit equality (NaN patterns included), reporting the first difference.
template <typename T>
::testing::AssertionResult sameBits(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes " << a.size() << " != " << b.size();
  for (size_t i = 0; i < a.size(); ++i)
    if (memcmp(&a[i], &b[i], sizeof(T)) != 0)
      return ::testing::AssertionFailure() << "element " << i << ": " << spccl::toAcc(a[i]) << " != "
                                           << spccl::toAcc(b[i]);
  return ::testing::AssertionSuccess();
}

// NaN, +Inf, -Inf, -0, the smallest subnormal (both signs) and the largest finite value of T.
template <typename T>
std::vector<T> specialValues() {
  if constexpr (std::is_same<T, float>::value || std::is_same<T, double>::value) {
    using L = std::numeric_limits<T>;
    return {L::quiet_NaN(), L::infinity(), -L::infinity(), T(-0.0), L::denorm_min(), -L::denorm_min(), L::max()};
  } else {
    const bool half = std::is_same<T, spccl::half_t>::value;
    const std::vector<uint16_t> bits =
        half ? std::vector<uint16_t>{0x7e00, 0x7c00, 0xfc00, 0x8000, 0x0001, 0x8001, 0x7bff}
             : std::vector<uint16_t>{0x7fc0, 0x7f80, 0xff80, 0x8000, 0x0001, 0x8001, 0x7f7f};
    std::vector<T> v(bits.size());
    for (size_t i = 0; i < bits.size(); ++i) v[i].bits = bits[i];
    return v;
  }
}

// A random vector with a special value at about one position in `every`.
template <typename T>
std::vector<T> withSpecials(std::vector<T> v, size_t every, std::mt19937_64& rng) {
  const std::vector<T> specials = specialValues<T>();
  for (auto& x : v)
    if (rng() % every == 0) x = specials[rng() % specials.size()];
  return v;
}

// Equality where every NaN equals every other NaN, other values bit for bit (-0 is not +0).
// Host and device differ in NaN payloads only: the GPU's arithmetic returns the canonical NaN,
// the CPU's propagates an input's payload (README, "Device path"), so tests of NaN inputs
// compare through this.
template <typename T>
::testing::AssertionResult sameValues(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes " << a.size() << " != " << b.size();
  for (size_t i = 0; i < a.size(); ++i) {
    const double x = (double)spccl::toAcc(a[i]), y = (double)spccl::toAcc(b[i]);
    if (std::isnan(x) && std::isnan(y)) continue;
    if (memcmp(&a[i], &b[i], sizeof(T)) != 0)
      return ::testing::AssertionFailure() << "element " << i << ": " << x << " != " << y;
  }
  return ::testing::AssertionSuccess();
}

template <typename T>
struct DeviceTyped : ::testing::Test {};
using DeviceStorageTypes = ::testing::Types<float, double, spccl::half_t, spccl::bfloat16_t>;

template <typename T>
constexpr spcclDataType_t dataTypeOf() {
  return std::is_same<T, float>::value ? spcclFloat32
         : std::is_same<T, double>::value ? spcclFloat64
         : std::is_same<T, spccl::half_t>::value ? spcclFloat16 : spcclBfloat16;
}

// A pinned corrupt-pair report (device.h) that scatter and unpack kernels write into, read back
// after the stream is done.
class PinnedReport {
 public:
  PinnedReport() {
    if (cudaMallocHost(&r_, sizeof(*r_)) == cudaSuccess) clear();
  }
  ~PinnedReport() { cudaFreeHost(r_); }
  spccl::device::BadPairReport* get() const { return r_; }
  void clear() { *r_ = {spccl::device::kPairsClean, 0}; }

 private:
  spccl::device::BadPairReport* r_ = nullptr;
};

}  // namespace spccl_test

#endif  // SPCCL_TESTS_DEVICE_TEST_H_
