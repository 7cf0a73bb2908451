/* SPDX-License-Identifier: Apache-2.0
 * Reads typed values off the fuzzer's byte string; zeros once it runs out. */
#ifndef SPCCL_TESTS_FUZZ_INPUT_H_
#define SPCCL_TESTS_FUZZ_INPUT_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

namespace spccl_fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  template <typename T>
  T take() {
    T value{};
    const size_t n = sizeof(T) < size_ - pos_ ? sizeof(T) : size_ - pos_;
    memcpy(&value, data_ + pos_, n);
    pos_ += n;
    return value;
  }
  const uint8_t* rest(size_t* len) const {
    *len = size_ - pos_;
    return data_ + pos_;
  }

 private:
  const uint8_t* data_;
  size_t size_, pos_ = 0;
};

}  // namespace spccl_fuzz

#endif  // SPCCL_TESTS_FUZZ_INPUT_H_
