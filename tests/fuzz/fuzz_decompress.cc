// SPDX-License-Identifier: Apache-2.0
//
// The receive side: spcclDecompress with payloads a peer could send (any nvalues, any
// indices, any values, any step, any scale), on states of every method and type. Nothing
// may be read or written out of bounds (ASan), and a bad payload returns an error code.

#include <vector>

#include "common/fuzz_input.h"
#include "common/loopback_comm.h"
#include "spccl.h"

using spccl_fuzz::FuzzInput;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  spcclConfig_t cfg = SPCCL_CONFIG_INITIALIZER;
  cfg.method = in.take<uint8_t>() % spcclNumMethods;
  cfg.density = (in.take<uint8_t>() + 1) / 256.0;
  cfg.blockSize = 1 + in.take<uint8_t>() % 64;
  cfg.blockPattern = in.take<uint8_t>() % 2;
  const size_t count = 1 + in.take<uint16_t>() % 4096;
  static const spcclDataType_t kTypes[] = {spcclFloat16, spcclFloat32, spcclFloat64, spcclBfloat16};
  const spcclDataType_t type = kTypes[in.take<uint8_t>() % 4];
  const size_t elem = type == spcclFloat64 ? 8 : type == spcclFloat32 ? 4 : 2;
  spcclState_t st;
  if (spcclStateCreate(&st, spccl_fuzz::loopbackComm(), &cfg, count, type) != spcclSuccess) return 0;

  size_t capacity = 0;
  spcclCompressedCount(st, &capacity);
  // A payload of up to twice the capacity, as several ranks' pairs back to back would be.
  size_t nvalues = in.take<uint16_t>() % (2 * capacity + 2);
  const unsigned long long step = in.take<uint16_t>();
  const double scale = in.take<int8_t>() / 8.0;
  std::vector<uint8_t> values(nvalues * elem);
  std::vector<uint32_t> indices(nvalues);
  size_t len;
  const uint8_t* rest = in.rest(&len);
  for (size_t i = 0; i < values.size() && i < len; ++i) values[i] = rest[i];
  for (size_t i = 0; i < nvalues; ++i) {
    // Mostly plausible indices, some padding, some far out of range.
    const uint8_t kind = i < len ? rest[len - 1 - i] : 0;
    indices[i] = kind < 200 ? kind * 37u % (count + 2) : kind < 230 ? SPCCL_PAD_INDEX : 0x80000000u + kind;
  }
  std::vector<uint8_t> out(count * elem + 64, 0xAB);  // 64 guard bytes checked below
  spcclDecompress(values.data(), indices.data(), nvalues, step, scale, out.data(), st, nullptr);
  for (size_t i = count * elem; i < out.size(); ++i)
    if (out[i] != 0xAB) __builtin_trap();  // wrote past recvbuff[count]
  spcclStateDestroy(st);
  return 0;
}
