// SPDX-License-Identifier: Apache-2.0
//
// The method table, indexed by spcclMethod_t. A method this build lacks is a null entry.

#include "method.h"

namespace spccl {

extern const MethodOps kDenseMethod;
extern const MethodOps kRandomBlockMethod;
extern const MethodOps kTopKMethod;
extern const MethodOps kGaussianKMethod;
extern const MethodOps kGTopKMethod;

const MethodOps* methodOps(int method) {
  static const MethodOps* const kTable[spcclNumMethods] = {
      &kDenseMethod,        // spcclMethodDense
      &kRandomBlockMethod,  // spcclMethodRandomBlock
      &kTopKMethod,         // spcclMethodTopK
      &kGaussianKMethod,    // spcclMethodGaussianK
      &kGTopKMethod,        // spcclMethodGTopK
  };
  return method >= 0 && method < spcclNumMethods ? kTable[method] : nullptr;
}

}  // namespace spccl
