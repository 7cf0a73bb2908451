# SPDX-License-Identifier: Apache-2.0
"""The adapters' per-tensor states and their checkpoints, for every framework (spccl_torch,
spccl_horovod).

StateTable is the one place where an adapter gets, creates or restores the spccl state of a
tensor (a DDP bucket, a Horovod tensor name, a parameter group). Each rank saves its own
residuals and steps (never rank 0's for everyone), tagged with what they are only valid
under: the world size, the rank, the kind of owner and its settings. Loading under other
ones is an error unless the caller asks for a reset. Snapshots hold torch tensors when the
states are made for torch tensors."""
from ._core import Config, State

FORMAT = 1


def tag(kind, world_size, rank, config, **settings):
    """What a saved state is valid under."""
    values = {f: getattr(config, f) for f in Config.FIELDS}
    return dict(format=FORMAT, kind=kind, world_size=world_size, rank=rank, config=values, **settings)


def check_tag(saved, current, what):
    """Raises ValueError naming the first field in which `saved` differs from `current`."""
    for field, value in current.items():
        if saved.get(field) != value:
            raise ValueError(f"{what}: the checkpoint was saved with {field} = {saved.get(field)!r}, this run has "
                             f"{value!r}; its residuals are not valid here. Pass reset=True to start the "
                             "compression state afresh (residuals zero, steps 0) instead")


def require(saved, keys, what):
    """saved[key] for each of `keys`. A missing key (a truncated checkpoint, or one saved by
    something else) is a ValueError naming it, never a KeyError from deep inside training."""
    if not isinstance(saved, dict):
        raise ValueError(f"{what}: the checkpoint holds a {type(saved).__name__} where a dict was saved")
    missing = [key for key in keys if key not in saved]
    if missing:
        raise ValueError(f"{what}: the checkpoint lacks {', '.join(map(repr, missing))}; it is truncated or was "
                         "saved by something else")
    return [saved[key] for key in keys]


def check_snapshots(entries, what, snapshot_key=None, keys=()):
    """Refuses at load time what restore() would refuse later, when a state first uses its
    entry: in each of `entries` (a dict), the keys `keys` and the snapshot (the entry itself,
    or entry[snapshot_key]) with a step in [0, 2**64) and a finite residual."""
    if not isinstance(entries, dict):
        raise ValueError(f"{what}: the checkpoint holds a {type(entries).__name__} where a dict was saved")
    for index, entry in entries.items():
        where = f"{what}, entry {index!r}"
        require(entry, keys, where)
        saved = entry if snapshot_key is None else require(entry, (snapshot_key,), where)[0]
        _, _, step, residual = require(saved, SNAPSHOT, where)
        try:
            State.check_restore(step, None if residual is None else _contiguous(residual))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err}") from None


SNAPSHOT = ("count", "dtype", "step", "residual")


def _contiguous(residual):
    return residual.contiguous() if hasattr(residual, "contiguous") else residual


def snapshot(state):
    """One spccl.State as plain tensors: its step and a CPU copy of its residual."""
    residual = None
    if state.config.feedback == "ef":
        residual = state.residual.detach().to("cpu", copy=True)
    return dict(count=state.count, dtype=str(state.dtype), step=state.step, residual=residual)


def restore(state, saved, what):
    """Puts a snapshot back into a state made for the same tensor."""
    count, dtype, step, residual = require(saved, SNAPSHOT, what)
    if count != state.count or dtype != str(state.dtype):
        raise ValueError(f"{what}: the checkpoint holds {count} elements of {dtype}, the tensor "
                         f"has {state.count} of {state.dtype}; the model or DDP's bucket layout changed")
    if residual is not None:
        residual = _contiguous(residual.to(state.device if state.device is not None else "cpu"))
    state.restore(step, residual)


class TableOwner:
    """An adapter whose states live in a StateTable (self.table): its states and the loaded
    entries waiting for their tensors, by key."""

    __slots__ = ()

    @property
    def states(self):
        return self.table.states

    @property
    def pending(self):
        return self.table.pending


class StateTable:
    """key -> spccl.State for one adapter's tensors: made on first use, remade (the old one
    closed) when the tensor's size, dtype or device changes, and restored from a loaded
    checkpoint's entry for the key the first time the key is used after loading. An entry is
    a snapshot, or a dict holding one under `snapshot_key` beside the adapter's own buffers."""

    def __init__(self, what, snapshot_key=None):
        self.what = what                  # names the owner in errors: "SpcclHookState bucket"
        self.snapshot_key = snapshot_key
        self.states = {}                  # key -> spccl.State
        self.pending = {}                 # key -> a loaded entry, restored on the key's next use

    def get(self, key, count, dtype, device, make):
        """(state, fresh, entry): the state of `key` for `count` elements of `dtype` on
        `device`, made by make() when there is none that fits (fresh: True); entry is the
        loaded checkpoint entry just restored into it (its snapshot part), or None."""
        st = self.states.get(key)
        fresh = st is None or st.count != count or st.dtype != dtype or st.device != device
        if fresh:
            if st is not None:
                st.close()
            st = self.states[key] = make()
        entry = self.pending.get(key)
        if entry is not None:
            saved = entry if self.snapshot_key is None else entry[self.snapshot_key]
            restore(st, saved, f"{self.what} {key!r}")
            del self.pending[key]  # only once restored: a refused entry stays refused
        return st, fresh, entry

    def entries(self, extra=lambda key: {}):
        """What a checkpoint keeps: key -> the state's snapshot with extra(key) beside it (in
        it, without snapshot_key). A loaded entry no state has used yet is kept as loaded."""
        out = dict(self.pending)
        for key, st in self.states.items():
            if key not in self.pending:
                snap = snapshot(st)
                out[key] = {**snap, **extra(key)} if self.snapshot_key is None else {self.snapshot_key: snap,
                                                                                     **extra(key)}
        return out

    def load(self, entries, reset=False):
        """A checkpoint's entries, restored as each key is next used; every state starts afresh
        (residual zero, step 0) until then. reset=True: compression starts afresh (no
        snapshots), while the adapter's own buffers beside them (under snapshot_key) are kept."""
        for st in self.states.values():
            st.reset()
        if not reset:
            self.pending = dict(entries)
        elif self.snapshot_key is None:
            self.pending = {}
        else:
            fresh = lambda entry: dict(entry[self.snapshot_key], step=0, residual=None)  # noqa: E731
            self.pending = {key: {**entry, self.snapshot_key: fresh(entry)} for key, entry in entries.items()}

    def close(self):
        for st in self.states.values():
            st.close()
        self.states = {}

