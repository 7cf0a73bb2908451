# SPDX-License-Identifier: Apache-2.0
"""Finds libspccl.so and declares the C API for ctypes (include/spccl.h, spccl_mpi.h).

Search order: $SPCCL_LIBRARY (a path), the copy `pip install .` puts next to this file, the
build tree next to this source tree ($SPCCL_BUILD_DIR or <repo>/build), then the dynamic
loader's search (an installed tree, LD_LIBRARY_PATH, ldconfig)."""
import ctypes
import ctypes.util
import os

c_void_p, c_int, c_size_t, c_double = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t, ctypes.c_double
c_uint, c_ull, c_char_p = ctypes.c_uint, ctypes.c_ulonglong, ctypes.c_char_p
P = ctypes.POINTER

# The fields in the order of spcclConfig_t; the library checks `size`, so a mismatch is an
# error with a message, never silent garbage.
class ConfigStruct(ctypes.Structure):
    _fields_ = [
        ("size", c_size_t), ("magic", c_uint), ("version", c_uint),
        ("method", c_int), ("density", c_double), ("blockSize", c_int), ("blockPattern", c_int),
        ("feedback", c_int), ("seed", c_ull), ("tensorKey", c_ull), ("denseSwitch", c_int),
        ("pipeline", c_int), ("hierarchical", c_int), ("valueBits", c_int), ("autoSelect", c_int),
    ]

# spcclStateInfo_t, versioned the same way (size and magic set before the call).
class StateInfoStruct(ctypes.Structure):
    _fields_ = [
        ("size", c_size_t), ("magic", c_uint), ("version", c_uint),
        ("method", c_int), ("count", c_size_t), ("selected", c_size_t), ("wireBytes", c_size_t),
        ("denseWireBytes", c_size_t), ("denseSwitched", c_int), ("memoryBytes", c_size_t),
        ("payload", c_int), ("methodWireBytes", c_size_t), ("wireIntraHostBytes", c_size_t),
        ("wireInterHostBytes", c_size_t), ("rounds", c_size_t), ("memoryPasses", c_double),
        ("selectPasses", c_double),
    ]

STATE_INFO_MAGIC = 0x5BCC11F0
CONFIG_MAGIC = 0x5BCC1C0F
UNDEF_INT = -2147483648
UNDEF_DOUBLE = -1.0e300
UNDEF_U64 = (1 << 64) - 1

# name: (restype, argtypes); every function but the string getters returns spcclResult_t.
_PROTOTYPES = {
    "spcclGetVersion": (c_int, [P(c_int)]),
    "spcclGetErrorString": (c_char_p, [c_int]),
    "spcclGetLastError": (c_char_p, [c_void_p]),
    "spcclMethodName": (c_char_p, [c_int]),
    "spcclPayloadName": (c_char_p, [c_int]),
    "spcclMethodGetPayload": (c_int, [c_int, P(c_int)]),
    "spcclCommInitMPIFortran": (c_int, [P(c_void_p), c_int]),
    "spcclCommInitLocal": (c_int, [P(c_void_p), c_int, c_int, c_int]),
    "spcclCommCount": (c_int, [c_void_p, P(c_int)]),
    "spcclCommUserRank": (c_int, [c_void_p, P(c_int)]),
    "spcclCommDestroy": (c_int, [c_void_p]),
    "spcclAllReduce": (c_int, [c_void_p, c_void_p, c_size_t, c_int, c_int, c_void_p, c_void_p]),
    "spcclStateCreate": (c_int, [P(c_void_p), c_void_p, P(ConfigStruct), c_size_t, c_int]),
    "spcclStateDestroy": (c_int, [c_void_p]),
    "spcclStateReset": (c_int, [c_void_p]),
    "spcclStateGetResidual": (c_int, [c_void_p, P(c_void_p)]),
    "spcclStateGetResidualCount": (c_int, [c_void_p, P(c_size_t)]),
    "spcclStateGetStep": (c_int, [c_void_p, P(c_ull)]),
    "spcclStateSetStep": (c_int, [c_void_p, c_ull]),
    "spcclStateSetResidual": (c_int, [c_void_p, c_void_p, c_size_t, c_int, c_void_p]),
    "spcclStateGetConfig": (c_int, [c_void_p, P(ConfigStruct)]),
    "spcclSparseAllReduce": (c_int, [c_void_p, c_void_p, c_size_t, c_int, c_int, c_void_p, c_void_p, c_void_p]),
    "spcclCompressedCount": (c_int, [c_void_p, P(c_size_t)]),
    "spcclStateGetInfo": (c_int, [c_void_p, P(StateInfoStruct)]),
    "spcclCompress": (c_int, [c_void_p, c_void_p, c_void_p, P(c_size_t), P(c_ull), c_void_p, c_void_p]),
    "spcclDecompress": (c_int, [c_void_p, c_void_p, c_size_t, c_ull, c_double, c_void_p, c_void_p, c_void_p]),
    "spcclBlockSelection": (c_int, [c_void_p, c_ull, P(c_size_t), P(c_size_t)]),
}


def _candidates():
    env = os.environ.get("SPCCL_LIBRARY")
    if env:
        return [env]  # explicit: no fallback that could hide a wrong path
    here = os.path.dirname(os.path.abspath(__file__))
    bundled = os.path.join(here, "libspccl.so")
    if os.path.exists(bundled):
        return [bundled]  # an installed package uses its own library, never another build's
    repo = os.path.normpath(os.path.join(here, "..", "..", ".."))
    build = os.environ.get("SPCCL_BUILD_DIR", os.path.join(repo, "build"))
    found = [os.path.join(build, "src", "libspccl.so")]
    found += ["libspccl.so.0", "libspccl.so"]
    name = ctypes.util.find_library("spccl")
    if name:
        found.append(name)
    return found


def load():
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(f"{path} (missing)")
            continue
        try:
            # RTLD_GLOBAL: MPI's components (Open MPI's mca plugins) must see libmpi's symbols.
            lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError as err:
            tried.append(f"{path} ({err})")
            continue
        for name, (restype, argtypes) in _PROTOTYPES.items():
            fn = getattr(lib, name, None)
            if fn is None:
                if name == "spcclCommInitMPIFortran":
                    continue  # a build without MPI: Comm() says so
                raise OSError(f"{path} lacks {name}: an older libspccl than this binding")
            fn.restype, fn.argtypes = restype, argtypes
        lib.path = path
        return lib
    raise OSError("libspccl.so not found; set SPCCL_LIBRARY to its path. Tried: " + "; ".join(tried))
