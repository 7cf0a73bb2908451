# SPDX-License-Identifier: Apache-2.0
"""Saving and restoring spccl states inside a framework checkpoint.

Each rank saves its own residuals and steps (never rank 0's for everyone), tagged with what
they are only valid under: the world size, the rank, the kind of owner and its settings.
Loading under other ones is an error unless the caller asks for a reset."""
import spccl

FORMAT = 1


def tag(kind, world_size, rank, config, **settings):
    """What a saved state is valid under."""
    values = {f: getattr(config, f) for f in spccl.Config.FIELDS}
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
            spccl.State.check_restore(step, None if residual is None else _contiguous(residual))
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


def to_cpu_dict(states):
    return {key: snapshot(st) for key, st in states.items()}

