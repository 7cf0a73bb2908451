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


def snapshot(state):
    """One spccl.State as plain tensors: its step and a CPU copy of its residual."""
    residual = None
    if state.config.feedback == "ef":
        residual = state.residual.detach().to("cpu", copy=True)
    return dict(count=state.count, dtype=str(state.dtype), step=state.step, residual=residual)


def restore(state, saved, what):
    """Puts a snapshot back into a state made for the same tensor."""
    if saved["count"] != state.count or saved["dtype"] != str(state.dtype):
        raise ValueError(f"{what}: the checkpoint holds {saved['count']} elements of {saved['dtype']}, the tensor "
                         f"has {state.count} of {state.dtype}; the model or DDP's bucket layout changed")
    residual = saved["residual"]
    if residual is not None:
        residual = residual.to(state.device if state.device is not None else "cpu").contiguous()
    state.restore(saved["step"], residual)


def to_cpu_dict(states):
    return {key: snapshot(st) for key, st in states.items()}

