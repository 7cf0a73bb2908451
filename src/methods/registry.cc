// SPDX-License-Identifier: Apache-2.0
//
// The method table: one line per method, in spcclMethod_t order. Argument checks, logs,
// the environment (SPCCL_METHOD), the perf binary and the Python binding all read names
// from here (spcclMethodName), so a new method is its own files plus one line below.

#include <strings.h>

#include <string>

#include "method.h"

namespace spccl {

extern const MethodOps kDenseMethod;
extern const MethodOps kRandomBlockMethod;
extern const MethodOps kTopKMethod;
extern const MethodOps kGaussianKMethod;
extern const MethodOps kGTopKMethod;
extern const MethodOps kOneBitMethod;
extern const MethodOps kQTopKMethod;

namespace {

const MethodOps* const kTable[] = {
    &kDenseMethod,        // spcclMethodDense
    &kRandomBlockMethod,  // spcclMethodRandomBlock
    &kTopKMethod,         // spcclMethodTopK
    &kGaussianKMethod,    // spcclMethodGaussianK
    &kGTopKMethod,        // spcclMethodGTopK
    &kOneBitMethod,       // spcclMethodOneBit
    &kQTopKMethod,        // spcclMethodQTopK
};
static_assert(sizeof(kTable) / sizeof(kTable[0]) == spcclNumMethods, "one table line per spcclMethod_t");

}  // namespace

const MethodOps* methodOps(int method) {
  if (method < 0 || method >= spcclNumMethods) return nullptr;
  // The entries are defined in other translation units, so their ids are checked here
  // rather than at compile time; a mismatch is a build mistake, not user input.
  return kTable[method]->id == method ? kTable[method] : nullptr;
}

const MethodOps* methodByName(const char* name) {
  for (const MethodOps* m : kTable)
    if (name && strcasecmp(name, m->name) == 0) return m;
  return nullptr;
}

const char* const* methodNames() {
  static const char* names[spcclNumMethods];
  static const bool filled = [] {
    for (int m = 0; m < spcclNumMethods; ++m) names[m] = kTable[m]->name;
    return true;
  }();
  (void)filled;
  return names;
}

const char* methodNameList() {
  static const std::string list = [] {
    std::string s;
    for (const MethodOps* m : kTable) s += std::string(s.empty() ? "" : ", ") + m->name;
    return s;
  }();
  return list.c_str();
}

const char* methodName(int method) {
  const MethodOps* m = methodOps(method);
  return m ? m->name : "unknown";
}

}  // namespace spccl

extern "C" const char* spcclMethodName(int method) {
  const spccl::MethodOps* m = spccl::methodOps(method);
  return m ? m->name : nullptr;
}
