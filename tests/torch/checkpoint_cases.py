# SPDX-License-Identifier: Apache-2.0
"""Damaged copies of a saved checkpoint, for the load_state_dict tests of every adapter (the
hook, DEF, LocalSGD, Horovod): each must be refused with a ValueError that says what is wrong,
before anything changes; never a KeyError, never a step wrapped modulo 2**64, never a NaN
residual taken in."""
import copy
import math


def damaged(saved, ours, snapshot, optional=()):
    """[(pattern the ValueError must match, damaged copy of `saved`)]. `ours`: the path (keys)
    to the dict the adapter writes, whose keys but the `optional` ones are dropped one at a
    time; `snapshot`: the path to one spccl snapshot (count, dtype, step, residual) inside
    `saved`."""
    cases = []
    required = [ours + (key,) for key in _at(saved, ours) if key not in optional]
    for path in required + [snapshot + (key,) for key in _at(saved, snapshot)]:
        cases.append((f"lacks '{path[-1]}'", _edited(saved, path, None)))
    for step, why in ((-1, "is outside"), (2**64 + 3, "is outside"), (2.5, "must be an integer")):
        cases.append((f"step {step} {why}" if why == "is outside" else f"step {why}",
                      _edited(saved, snapshot + ("step",), step)))
    for bad in (math.nan, math.inf):
        residual = _at(saved, snapshot + ("residual",)).clone()
        residual[0] = bad
        cases.append(("residual holds NaN or Inf", _edited(saved, snapshot + ("residual",), residual)))
    return cases


def _at(d, path):
    for key in path:
        d = d[key]
    return d


def _edited(saved, path, value):
    """A deep copy of `saved` with the entry at `path` set to `value` (None: removed)."""
    out = copy.deepcopy(saved)
    parent = _at(out, path[:-1])
    if value is None:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return out
