/* SPDX-License-Identifier: Apache-2.0
 *
 * Shared pieces of the device tests: a visible skip when no GPU is present (never a silent
 * pass), device arrays that copy to and from std::vector, and random inputs. */
#ifndef SPCCL_TESTS_DEVICE_TEST_H_
#define SPCCL_TESTS_DEVICE_TEST_H_

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <string.h>

#include <random>
#include <string>
#include <vector>

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

template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t n) : n_(n) {
    if (n && cudaMalloc(&ptr_, n * sizeof(T)) != cudaSuccess) ptr_ = nullptr;
  }
  explicit DeviceArray(const std::vector<T>& v) : DeviceArray(v.size()) { upload(v); }
  ~DeviceArray() { cudaFree(ptr_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* get() const { return ptr_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& v) { cudaMemcpy(ptr_, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice); }
  std::vector<T> download() const {
    std::vector<T> v(n_);
    cudaMemcpy(v.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost);
    return v;
  }

 private:
  T* ptr_ = nullptr;
  size_t n_;
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

template <typename T>
struct DeviceTyped : ::testing::Test {};
using DeviceStorageTypes = ::testing::Types<float, double, spccl::half_t, spccl::bfloat16_t>;

template <typename T>
constexpr spcclDataType_t dataTypeOf() {
  return std::is_same<T, float>::value ? spcclFloat32
         : std::is_same<T, double>::value ? spcclFloat64
         : std::is_same<T, spccl::half_t>::value ? spcclFloat16 : spcclBfloat16;
}

}  // namespace spccl_test

#endif  // SPCCL_TESTS_DEVICE_TEST_H_
