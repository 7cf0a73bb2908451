/* SPDX-License-Identifier: Apache-2.0
 *
 * One workspace layout per method, sized and cut by the same code, in the manner of CUB's
 * temporary storage: a method writes one function that takes its parts from a
 * WorkspaceCarver; run on a null base it only counts the bytes (spcclStateCreate allocates
 * that much), run on the state's workspace it hands out the pointers. Sizing and cutting
 * therefore cannot disagree. Every part starts on a kWorkspaceAlign boundary, which suits
 * any element type and the device kernels' vector loads. Sizes saturate at SIZE_MAX instead
 * of wrapping (a layout of nranks = 2^31 parts), so an impossible size fails to allocate.
 */
#ifndef SPCCL_WORKSPACE_H_
#define SPCCL_WORKSPACE_H_

#include <stddef.h>
#include <stdint.h>

namespace spccl {

constexpr size_t kWorkspaceAlign = 64;

constexpr size_t alignUp(size_t bytes, size_t align = kWorkspaceAlign) { return (bytes + align - 1) / align * align; }

class WorkspaceCarver {
 public:
  explicit WorkspaceCarver(void* base) : base_(static_cast<char*>(base)) {}

  // The next part of `bytes` bytes (null while only sizing).
  void* takeBytes(size_t bytes) {
    char* part = base_ ? base_ + used_ : nullptr;
    const size_t aligned = bytes > SIZE_MAX - kWorkspaceAlign ? SIZE_MAX : alignUp(bytes);
    if (__builtin_add_overflow(used_, aligned, &used_)) used_ = SIZE_MAX;
    return part;
  }
  template <typename T>
  T* take(size_t n) {
    size_t bytes;
    return static_cast<T*>(takeBytes(__builtin_mul_overflow(n, sizeof(T), &bytes) ? SIZE_MAX : bytes));
  }
  // Bytes taken so far: the workspace size once the layout is complete.
  size_t bytes() const { return used_; }

 private:
  char* base_;
  size_t used_ = 0;
};

// A layout function carve(st, carver) run on `base`: the parts' pointers.
template <typename State, typename Carve>
auto carveAt(const State& st, void* base, Carve carve) {
  WorkspaceCarver c(base);
  return carve(st, c);
}

// The same layout run on a null base: its size in bytes.
template <typename State, typename Carve>
size_t carvedBytes(const State& st, Carve carve) {
  WorkspaceCarver c(nullptr);
  carve(st, c);
  return c.bytes();
}

}  // namespace spccl

#endif  // SPCCL_WORKSPACE_H_
