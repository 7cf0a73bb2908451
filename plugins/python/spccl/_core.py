# SPDX-License-Identifier: Apache-2.0
"""Comm, Config, State and the error type over the C API. Buffers are torch tensors (CPU, or
CUDA with the current stream) or NumPy arrays; nothing is copied, so they must be contiguous."""
import atexit
import ctypes
import weakref

import numpy as np

from . import _checks, _lib

try:
    import torch
except ImportError:  # NumPy-only use needs no torch
    torch = None

_L = _lib.load()

RESULT_NAMES = {0: "spcclSuccess", 1: "spcclUnhandledCudaError", 2: "spcclSystemError",
                3: "spcclInternalError", 4: "spcclInvalidArgument", 5: "spcclInvalidUsage",
                6: "spcclRemoteError", 7: "spcclInProgress", 8: "spcclTimeout"}


def _method_table():
    """{name: spcclMethod_t} from the library's own table (spcclMethodName)."""
    table, method = {}, 0
    while (name := _L.spcclMethodName(method)) is not None:
        table[name.decode()] = method
        method += 1
    return table


def _payload_table():
    """{spcclPayload_t: name} from the library (spcclPayloadName)."""
    table, payload = {}, 0
    while (name := _L.spcclPayloadName(payload)) is not None:
        table[payload] = name.decode()
        payload += 1
    return table


METHODS = _method_table()
PAYLOADS = _payload_table()


def payload_of(method):
    """How `method`'s payload travels (spcclMethodGetPayload): "values" (one allreduce of values
    on positions every rank knows), "slots" (one allgather of (index, value) slots) or "rounds"
    (rounds of its own, only spccl's collective runs it)."""
    kind = ctypes.c_int()
    _check(_L.spcclMethodGetPayload(_enum(method, METHODS, "method"), ctypes.byref(kind)))
    return PAYLOADS[kind.value]


class StateInfo:
    """What a state does per call (spcclStateGetInfo): its method's payload kind, wire bytes
    and cost terms. Byte counts are per rank and call."""

    FIELDS = {"method": "method", "count": "count", "selected": "selected", "wire_bytes": "wireBytes",
              "dense_wire_bytes": "denseWireBytes", "dense_switched": "denseSwitched", "memory_bytes": "memoryBytes",
              "payload": "payload", "method_wire_bytes": "methodWireBytes",
              "wire_intra_host_bytes": "wireIntraHostBytes", "wire_inter_host_bytes": "wireInterHostBytes",
              "rounds": "rounds", "memory_passes": "memoryPasses", "select_passes": "selectPasses"}

    def __init__(self, s):
        for name, c_name in self.FIELDS.items():
            setattr(self, name, getattr(s, c_name))
        self.method = _name(self.method, METHODS)
        self.payload = PAYLOADS[self.payload]
        self.dense_switched = bool(self.dense_switched)

    def __repr__(self):
        return "StateInfo(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in self.FIELDS) + ")"
PATTERNS = {"contiguous": 0, "scattered": 1}
FEEDBACKS = {"none": 0, "ef": 1}
OPS = {"sum": 0, "avg": 4}
# spcclDataType_t by dtype name (torch and NumPy spell them alike).
DATATYPES = {"float16": 6, "float32": 7, "float64": 8, "bfloat16": 9}
_NP_VIEW = {6: np.float16, 7: np.float32, 8: np.float64, 9: np.int16}  # bf16: raw 16-bit words
# NumPy has no bfloat16: a bf16 state's NumPy residual is int16 words, so NumPy int16 and
# uint16 arrays are taken as bfloat16 words wherever a bf16 buffer is expected.
_NP_BF16_WORDS = ("int16", "uint16")
_INDEX_TYPES = {"int32": "indices", "uint32": "indices"}  # uint32 bits; torch spells them int32


class SpcclError(RuntimeError):
    """A spccl call failed. `code` is the spcclResult_t value, `name` its enumerator,
    `message` the library's sentence (spcclGetLastError)."""

    def __init__(self, code, message):
        self.code = code
        self.name = RESULT_NAMES.get(code, f"spcclResult {code}")
        self.message = message
        super().__init__(f"{message} [{self.name}]" if message else self.name)


def _check(result):
    if result != 0:
        text = _L.spcclGetLastError(None)
        raise SpcclError(result, text.decode(errors="replace") if text else "")


def version():
    """The library's SPCCL_VERSION_CODE (major * 10000 + minor * 100 + patch)."""
    v = ctypes.c_int()
    _check(_L.spcclGetVersion(ctypes.byref(v)))
    return v.value


def _enum(value, table, what):
    """A name from `table`, or the C enumerator itself (range-checked as a C int)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.lower() not in table:
            raise ValueError(f"spccl: unknown {what} {value!r}; expected one of {sorted(table)}")
        return table[value.lower()]
    return _checks.integer(value, f"spccl: {what}", _checks.C_INT)


def _name(value, table):
    for k, v in table.items():
        if v == value:
            return k
    return value


class Config:
    """Compression settings (spcclConfig_t). A field left None is resolved by the library
    from its SPCCL_* environment variable or default; State.config shows the resolved one."""

    FIELDS = ("method", "density", "block_size", "block_pattern", "feedback", "seed", "tensor_key", "dense_switch",
              "pipeline", "hierarchical", "value_bits", "auto")

    def __init__(self, method=None, density=None, block_size=None, block_pattern=None, feedback=None, seed=None,
                 tensor_key=None, dense_switch=None, pipeline=None, hierarchical=None, value_bits=None,
                 auto=None):
        self.method = _name(_enum(method, METHODS, "method"), METHODS)
        self.density = density
        self.block_size = block_size
        self.block_pattern = _name(_enum(block_pattern, PATTERNS, "block pattern"), PATTERNS)
        self.feedback = _name(_enum(feedback, FEEDBACKS, "feedback"), FEEDBACKS)
        self.seed = seed
        self.tensor_key = tensor_key
        self.dense_switch = dense_switch
        self.pipeline = pipeline
        self.hierarchical = hierarchical  # None: on when the comm spans several hosts
        self.value_bits = value_bits  # qtopk's bits per sent value (2..8)
        self.auto = auto  # run dense when the first calls' timing says it is faster (SPCCL_AUTO)
        self.to_c()  # range errors surface here, where the value was given

    def replace(self, **changes):
        values = {f: getattr(self, f) for f in self.FIELDS}
        values.update(changes)
        return Config(**values)

    def to_c(self):
        """The spcclConfig_t. Every integer is range-checked against its C field first: ctypes
        would silently wrap 2**32 + 16 to 16, and the C "unset" sentinels (INT_MIN, 2**64 - 1)
        must not be reachable by accident."""
        s = _lib.ConfigStruct(ctypes.sizeof(_lib.ConfigStruct), _lib.CONFIG_MAGIC, version())
        c_int = (_lib.UNDEF_INT + 1, 2**31 - 1)

        def field(value, name, check, unset):
            return unset if value is None else check(value, f"spccl: Config.{name}")

        def integer(bounds):
            return lambda value, name: _checks.integer(value, name, bounds)

        s.method = field(_enum(self.method, METHODS, "method"), "method", integer(c_int), _lib.UNDEF_INT)
        s.density = field(self.density, "density", _checks.real, _lib.UNDEF_DOUBLE)
        s.blockSize = field(self.block_size, "block_size", integer(c_int), _lib.UNDEF_INT)
        s.blockPattern = field(_enum(self.block_pattern, PATTERNS, "block pattern"), "block_pattern", integer(c_int),
                               _lib.UNDEF_INT)
        s.feedback = field(_enum(self.feedback, FEEDBACKS, "feedback"), "feedback", integer(c_int), _lib.UNDEF_INT)
        s.seed = field(self.seed, "seed", integer((0, _lib.UNDEF_U64 - 1)), _lib.UNDEF_U64)
        s.tensorKey = field(self.tensor_key, "tensor_key", integer(_checks.U64), 0)
        s.denseSwitch = field(self.dense_switch, "dense_switch", _checks.flag, _lib.UNDEF_INT)
        s.pipeline = field(self.pipeline, "pipeline", _checks.flag, _lib.UNDEF_INT)
        s.hierarchical = field(self.hierarchical, "hierarchical", _checks.flag, _lib.UNDEF_INT)
        s.valueBits = field(self.value_bits, "value_bits", integer(c_int), _lib.UNDEF_INT)
        s.autoSelect = field(self.auto, "auto", _checks.flag, _lib.UNDEF_INT)
        return s

    @classmethod
    def from_c(cls, s):
        return cls(method=_name(s.method, METHODS), density=s.density, block_size=s.blockSize,
                   block_pattern=_name(s.blockPattern, PATTERNS), feedback=_name(s.feedback, FEEDBACKS),
                   seed=s.seed, tensor_key=s.tensorKey, dense_switch=bool(s.denseSwitch), pipeline=bool(s.pipeline),
                   hierarchical=bool(s.hierarchical), value_bits=s.valueBits,
                   auto=bool(s.autoSelect))

    def __repr__(self):
        return "Config(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in self.FIELDS if getattr(self, f) is not None) + ")"


class _Buffer:
    """(pointer, element count, spcclDataType_t, device, stream) of a tensor or array, after
    the one check every buffer argument gets: the C library is given a bare pointer, so what
    it reads must be the plain little-endian elements the Python object shows, laid out
    contiguously, and what it writes must be memory the object lets it write."""

    __slots__ = ("obj", "ptr", "count", "datatype", "dtype", "device", "stream", "what")

    def __init__(self, x, what, writable=False, datatypes=DATATYPES):
        self.what, self.obj = what, x
        if torch is not None and isinstance(x, torch.Tensor):
            _check_tensor_layout(x, what, writable)
            self.dtype = str(x.dtype).replace("torch.", "")
            self.device = x.device
            self.stream = torch.cuda.current_stream(x.device).cuda_stream if x.is_cuda else None
            self.ptr, self.count = x.data_ptr(), x.numel()
        elif isinstance(x, np.ndarray):
            _check_array_layout(x, what, writable)
            self.dtype = x.dtype.name
            self.device, self.stream = None, None
            self.ptr, self.count = x.ctypes.data, x.size
        else:
            raise TypeError(f"spccl: {what} must be a torch.Tensor or numpy.ndarray, not {type(x).__name__}")
        name = "bfloat16" if self.device is None and self.dtype in _NP_BF16_WORDS else self.dtype
        if name not in datatypes:
            raise TypeError(f"spccl: {what} has dtype {self.dtype}; expected one of {', '.join(datatypes)}")
        self.datatype = datatypes[name]

    def expect(self, count, datatype, at_least=False):
        """The one size-and-dtype check of every buffer argument: a short buffer would be
        read or written past its end."""
        if self.datatype != datatype:
            raise TypeError(f"spccl: {self.what} has dtype {self.dtype}, expected {_name(datatype, DATATYPES)}")
        if self.count < count if at_least else self.count != count:
            need = f"at least {count}" if at_least else str(count)
            raise ValueError(f"spccl: {self.what} holds {self.count} elements, expected {need}")
        return self

    def all_finite(self):
        """No NaN or Inf among the elements (bf16 NumPy words: exponent bits not all ones)."""
        x = self.obj
        if isinstance(x, np.ndarray):
            if self.datatype == DATATYPES["bfloat16"] and x.dtype.name in _NP_BF16_WORDS:
                return not np.any((x.view(np.uint16) & 0x7F80) == 0x7F80)
            return bool(np.isfinite(x).all())
        return bool(torch.isfinite(x).all())


def _check_tensor_layout(x, what, writable):
    if x.layout != torch.strided:
        raise ValueError(f"spccl: {what} is a {x.layout} tensor; spccl reads dense (strided) memory")
    if not x.is_contiguous():
        raise ValueError(f"spccl: {what} must be contiguous (call .contiguous() first)")
    # Lazy views: the memory holds other numbers than the tensor shows (torch applies the
    # negation or conjugation when it reads); spccl would read and write the raw memory.
    if x.is_neg() or x.is_conj():
        raise ValueError(f"spccl: {what} is a lazy {'negated' if x.is_neg() else 'conjugated'} view; materialise "
                         "it first (.resolve_neg() / .resolve_conj())")
    if writable and x.requires_grad:  # spccl writes behind autograd's back
        raise ValueError(f"spccl: {what} requires grad; spccl writes into it in place, which autograd "
                         "cannot track (pass a gradient or tensor.detach())")


def _check_array_layout(x, what, writable):
    if not x.flags.c_contiguous:
        raise ValueError(f"spccl: {what} must be C-contiguous (np.ascontiguousarray)")
    if not x.dtype.isnative:
        raise ValueError(f"spccl: {what} has byte order {x.dtype.str}; spccl reads native-order numbers "
                         "(x.astype(x.dtype.newbyteorder('=')))")
    if not x.flags.aligned:
        raise ValueError(f"spccl: {what} is not aligned to its element size (np.require(x, requirements='A'))")
    if writable and not x.flags.writeable:
        raise ValueError(f"spccl: {what} is read-only; spccl writes into it")


def _datatype(dtype):
    name = str(dtype).replace("torch.", "")
    if name not in DATATYPES and not _is_torch_dtype(dtype):
        try:
            name = np.dtype(dtype).name
        except TypeError:
            pass
    if name not in DATATYPES:
        raise TypeError(f"spccl: dtype {dtype} is not one of {', '.join(DATATYPES)}")
    return DATATYPES[name]


# Everything still open when Python exits is closed before mpi4py finalizes MPI (its
# finalizer runs after atexit handlers): states first (residual views left at exit show
# freed memory), then comms.
_live_states = weakref.WeakSet()  # of _StateMemory
_live_comms = weakref.WeakSet()


@atexit.register
def _close_all():
    for s in list(_live_states):
        s.destroy()
    for c in list(_live_comms):
        c.close()


class Comm:
    """An spccl communicator over an MPI communicator (mpi4py; MPI.COMM_WORLD by default).
    Importing mpi4py initialises MPI. Collective over the MPI communicator.
    Comm.local(size, rank) makes a compress-only one instead, which needs no MPI."""

    def __init__(self, mpi_comm=None):
        from mpi4py import MPI

        if not hasattr(_L, "spcclCommInitMPIFortran"):
            raise SpcclError(5, f"{_L.path} was built without MPI")
        self.mpi_comm = MPI.COMM_WORLD if mpi_comm is None else mpi_comm
        self._handle = ctypes.c_void_p()
        _check(_L.spcclCommInitMPIFortran(ctypes.byref(self._handle), self.mpi_comm.py2f()))
        self._opened()

    @classmethod
    def local(cls, size, rank, device=None):
        """A compress-only comm (spcclCommInitLocal): rank `rank` of `size`, no transport.
        States on it compress and decompress; the caller moves the payloads (a torch process
        group, Horovod); collectives on it raise SpcclError (spcclInvalidUsage). `device`: None
        or a CPU device for host buffers, a CUDA torch.device for buffers on that device."""
        comm = cls.__new__(cls)
        comm.mpi_comm = None
        comm._handle = ctypes.c_void_p()
        index = -1
        if device is not None and torch is not None and torch.device(device).type == "cuda":
            index = torch.device(device).index
            index = torch.cuda.current_device() if index is None else index
        size = _checks.integer(size, "spccl: Comm.local size", _checks.C_INT)
        rank = _checks.integer(rank, "spccl: Comm.local rank", _checks.C_INT)
        _check(_L.spcclCommInitLocal(ctypes.byref(comm._handle), size, rank, index))
        comm._opened()
        return comm

    def _opened(self):
        _live_comms.add(self)
        r, n = ctypes.c_int(), ctypes.c_int()
        _check(_L.spcclCommUserRank(self._handle, ctypes.byref(r)))
        _check(_L.spcclCommCount(self._handle, ctypes.byref(n)))
        self.rank, self.size = r.value, n.value

    @property
    def handle(self):
        if not self._handle:
            raise SpcclError(5, "spccl.Comm : used after close()")
        return self._handle

    def allreduce(self, sendbuf, recvbuf=None, op="avg"):
        """Dense spcclAllReduce; in place when recvbuf is None. Returns recvbuf."""
        recvbuf = sendbuf if recvbuf is None else recvbuf
        s = _Buffer(sendbuf, "sendbuf")
        r = _Buffer(recvbuf, "recvbuf", writable=True).expect(s.count, s.datatype)
        _check(_L.spcclAllReduce(s.ptr, r.ptr, s.count, s.datatype, _enum(op, OPS, "op"), self.handle, s.stream))
        return recvbuf

    def close(self):
        if self._handle:
            if self.mpi_comm is None or not _mpi_finalized():  # else MPI took the communicator with it
                _check(_L.spcclCommDestroy(self._handle))
            self._handle = ctypes.c_void_p()

    def __del__(self):
        try:
            self.close()
        except Exception:  # a comm with live states stays: their owners still hold it
            pass


def _mpi_finalized():
    from mpi4py import MPI

    return MPI.Is_finalized()


class _StateMemory:
    """Owns one C state. The State holds it, and so does every residual view (through the
    object the view was made from), so the memory a view shows is freed only once the State
    is closed or collected and the last view is gone: a view never shows freed memory, nor
    another state's."""

    def __init__(self, comm):
        self.handle = ctypes.c_void_p()
        self.comm = comm  # the C state uses its comm until destroyed
        self.views = 0  # live objects that residual views are made from

    def lend(self, base):
        """Ties `base` (what a view is made from) to this memory, which then outlives it."""
        base._spccl_memory = self
        self.views += 1
        weakref.finalize(base, self._view_gone)
        return base

    def _view_gone(self):
        self.views -= 1

    def destroy(self):
        if self.handle:
            _check(_L.spcclStateDestroy(self.handle))
            self.handle = ctypes.c_void_p()

    def __del__(self):
        try:
            self.destroy()
        except Exception:
            pass


class State:
    """Per-tensor compression state: the error-feedback residual and the step counter.
    `device` is where the tensors it compresses live (the residual is allocated by the
    library where the comm's buffers live, which on an MPI comm is host memory)."""

    def __init__(self, comm, config, count, dtype="float32", device=None):
        if not isinstance(comm, Comm):
            raise TypeError(f"spccl.State: comm must be a spccl.Comm, not {type(comm).__name__}")
        if not isinstance(config, Config):
            raise TypeError(f"spccl.State: config must be a spccl.Config, not {type(config).__name__}")
        self.comm, self.datatype = comm, _datatype(dtype)
        self.count = _checks.integer(count, "spccl: State count", _checks.SIZE_T)
        self.dtype = dtype
        self.device = device if device is not None else (torch.device("cpu") if _is_torch_dtype(dtype) else None)
        self._memory = None
        memory = _StateMemory(comm)
        c = config.to_c()
        _check(_L.spcclStateCreate(ctypes.byref(memory.handle), comm.handle, ctypes.byref(c), self.count,
                                   self.datatype))
        self._memory = memory
        _live_states.add(memory)

    @classmethod
    def like(cls, comm, config, tensor):
        """A state for tensors of this one's size, dtype and device."""
        device = getattr(tensor, "device", None)
        dtype = tensor.dtype
        return cls(comm, config, tensor.numel() if hasattr(tensor, "numel") else tensor.size, dtype, device)

    @property
    def handle(self):
        if self._memory is None or not self._memory.handle:
            raise SpcclError(5, "spccl.State : used after close()")
        return self._memory.handle

    @property
    def step(self):
        s = ctypes.c_ulonglong()
        _check(_L.spcclStateGetStep(self.handle, ctypes.byref(s)))
        return s.value

    @property
    def config(self):
        """The resolved configuration (no field left None)."""
        c = _lib.ConfigStruct()
        _check(_L.spcclStateGetConfig(self.handle, ctypes.byref(c)))
        return Config.from_c(c)

    @property
    def residual_count(self):
        """Elements of the feedback memory: count, plus 1-bit's server residual."""
        n = ctypes.c_size_t()
        _check(_L.spcclStateGetResidualCount(self.handle, ctypes.byref(n)))
        return n.value

    @property
    def residual(self):
        """The state's whole feedback memory as a view (no copy), residual_count elements: a
        torch tensor for a state made with a torch dtype, else a NumPy array (int16 words for
        bfloat16). Its first `count` elements are the worker residual, position for position
        with the tensor; 1-bit keeps its server residual after them. restore() takes exactly
        this, so a checkpoint of it resumes bit for bit. The view keeps the state's memory
        alive. With config.pipeline (a double-buffered residual) it shows the residual until
        the next call on the state: read this property again after each call rather than
        keeping the view."""
        ptr = ctypes.c_void_p()
        _check(_L.spcclStateGetResidual(self.handle, ctypes.byref(ptr)))
        n = self.residual_count
        if self.device is not None and getattr(self.device, "type", None) == "cuda":
            return _cuda_view(self._memory.lend(_CudaArray(ptr.value, n, self.datatype)), self.datatype, self.device)
        words = _NP_VIEW[self.datatype]
        if n == 0:
            arr = np.zeros(0, dtype=words)
        else:
            raw = (ctypes.c_byte * (n * np.dtype(words).itemsize)).from_address(ptr.value)
            arr = np.frombuffer(self._memory.lend(raw), dtype=words)
        if not _is_torch_dtype(self.dtype):
            return arr
        t = torch.from_numpy(arr)
        return t.view(torch.bfloat16) if self.datatype == DATATYPES["bfloat16"] else t

    def info(self):
        """spcclStateGetInfo as a StateInfo: what the state does per call, byte counts per rank
        (wire_bytes: what this rank sends over the network in spcclSparseAllReduce)."""
        s = _lib.StateInfoStruct(ctypes.sizeof(_lib.StateInfoStruct), _lib.STATE_INFO_MAGIC, version())
        _check(_L.spcclStateGetInfo(self.handle, ctypes.byref(s)))
        return StateInfo(s)

    def reset(self):
        """Residual = 0, step = 0."""
        _check(_L.spcclStateReset(self.handle))

    def restore(self, step, residual=None):
        """Restores a checkpoint: the step the next call uses and, with feedback EF, the
        feedback memory (copied from `residual`, which must have residual_count elements of
        the state's dtype, live where its buffers live and be finite). Nothing changes when it
        raises."""
        step, r = self.check_restore(step, residual)
        if r is not None:
            _check(_L.spcclStateSetResidual(self.handle, r.ptr, r.count, r.datatype, r.stream))
        _check(_L.spcclStateSetStep(self.handle, step))

    @staticmethod
    def check_restore(step, residual=None):
        """What restore() refuses before the library sees it, checked without a state (a
        checkpoint loader checks at load time what it restores later): a step outside
        [0, 2**64), a residual that is no plain buffer or holds NaN or Inf (a residual is
        always finite; a non-finite one would poison every later step). Returns the step and
        the residual's buffer description."""
        step = _checks.integer(step, "spccl: State.restore step", _checks.U64)
        if residual is None:
            return step, None
        r = _Buffer(residual, "residual")
        if not r.all_finite():
            raise ValueError("spccl: State.restore residual holds NaN or Inf; a residual is always finite")
        return step, r

    def sparse_allreduce(self, sendbuf, recvbuf=None, op="avg"):
        """spcclSparseAllReduce: recvbuf = op over ranks of C(sendbuf + residual); in place
        when recvbuf is None. Returns recvbuf. Collective over the comm."""
        recvbuf = sendbuf if recvbuf is None else recvbuf
        s = _Buffer(sendbuf, "sendbuf").expect(self.count, self.datatype)
        r = _Buffer(recvbuf, "recvbuf", writable=True).expect(self.count, self.datatype)
        _check(_L.spcclSparseAllReduce(s.ptr, r.ptr, s.count, s.datatype, _enum(op, OPS, "op"), self.handle,
                                       self.comm.handle, s.stream))
        return recvbuf

    def compressed_count(self):
        n = ctypes.c_size_t()
        _check(_L.spcclCompressedCount(self.handle, ctypes.byref(n)))
        return n.value

    def compress(self, sendbuf, values, indices=None):
        """spcclCompress into preallocated `values` (and `indices` for top-k methods, int32
        holding uint32 bits), each compressed_count() long. Returns (nvalues, step). Local."""
        n = self.compressed_count()
        s = _Buffer(sendbuf, "sendbuf").expect(self.count, self.datatype)
        v = _Buffer(values, "values", writable=True).expect(n, self.datatype, at_least=True)
        iptr = None if indices is None else _indices(indices, n, writable=True)
        n, step = ctypes.c_size_t(), ctypes.c_ulonglong()
        _check(_L.spcclCompress(s.ptr, v.ptr, iptr, ctypes.byref(n), ctypes.byref(step), self.handle, s.stream))
        return n.value, step.value

    def decompress(self, values, step, recvbuf, indices=None, nvalues=None, scale=1.0):
        """spcclDecompress: recvbuf = scale * the contributions in values, zero elsewhere. Local."""
        v = _Buffer(values, "values")
        n = v.count if nvalues is None else _checks.integer(nvalues, "spccl: nvalues", (0, v.count))
        v.expect(n, self.datatype, at_least=True)
        r = _Buffer(recvbuf, "recvbuf", writable=True).expect(self.count, self.datatype)
        iptr = None if indices is None else _indices(indices, n, writable=False)
        step = _checks.integer(step, "spccl: step", _checks.U64)
        scale = _checks.real(scale, "spccl: scale")
        _check(_L.spcclDecompress(v.ptr, iptr, n, step, scale, r.ptr, self.handle, r.stream))
        return recvbuf

    def block_selection(self, step):
        """The block indices (random block) every rank picks at `step`, in packed order."""
        step = _checks.integer(step, "spccl: block_selection step", _checks.U64)
        n = ctypes.c_size_t(0)
        _check(_L.spcclBlockSelection(self.handle, step, None, ctypes.byref(n)))
        blocks = (ctypes.c_size_t * max(n.value, 1))()
        _check(_L.spcclBlockSelection(self.handle, step, blocks, ctypes.byref(n)))
        return np.array(blocks[: n.value], dtype=np.int64)

    def close(self):
        """Ends the state's use. Its memory is freed now, or, while residual views made from
        it live, when the last of them goes."""
        if self._memory is not None:
            if not self._memory.views:
                self._memory.destroy()
            self._memory = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def sparse_allreduce(tensor, state, op="avg", out=None):
    """state.sparse_allreduce(tensor, out, op): the compressed allreduce, in place by default."""
    return state.sparse_allreduce(tensor, out, op)


def _is_torch_dtype(dtype):
    return torch is not None and isinstance(dtype, torch.dtype)


def _indices(indices, n, writable):
    """The pointer of an index buffer (int32 holding uint32 bits) of at least n entries."""
    return _Buffer(indices, "indices", writable, _INDEX_TYPES).expect(n, "indices", at_least=True).ptr


class _CudaArray:
    """Just enough __cuda_array_interface__ for torch.as_tensor to wrap device memory."""

    _TYPESTR = {6: "<f2", 7: "<f4", 8: "<f8", 9: "<i2"}

    def __init__(self, ptr, count, datatype):
        self.__cuda_array_interface__ = {"shape": (count,), "typestr": self._TYPESTR[datatype],
                                         "data": (ptr, False), "version": 2, "strides": None}


def _cuda_view(array, datatype, device):
    t = torch.as_tensor(array, device=device)
    return t.view(torch.bfloat16) if datatype == DATATYPES["bfloat16"] else t
