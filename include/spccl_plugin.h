/* SPDX-License-Identifier: Apache-2.0
 *
 * The newest spccl plugin ABI under version-free names. A host that wants a fixed ABI
 * includes plugin/spccl_plugin_vN.h and uses the _vN names instead.
 *
 *   void* lib = dlopen("libspccl.so.0", RTLD_NOW | RTLD_LOCAL);
 *   const spcclPlugin_t* spccl = (const spcclPlugin_t*)dlsym(lib, SPCCL_PLUGIN_SYMBOL);
 *   if (spccl == NULL || spccl->abiVersion != SPCCL_PLUGIN_ABI_VERSION) ... fall back ...
 */
#ifndef SPCCL_PLUGIN_H_
#define SPCCL_PLUGIN_H_

#include "plugin/spccl_plugin_v1.h"

typedef spcclPlugin_v1_t spcclPlugin_t;
typedef spcclPluginLogger_v1_t spcclPluginLogger_t;
#define SPCCL_PLUGIN_ABI_VERSION SPCCL_PLUGIN_ABI_VERSION_V1
#define SPCCL_PLUGIN_SYMBOL SPCCL_PLUGIN_SYMBOL_V1

#endif /* SPCCL_PLUGIN_H_ */
