"""`same_state(a, b)`: two training states (nested dicts, lists and tensors, as `torch.load`
returns them) equal in structure, dtypes and every value; for the fault tests that compare a
resumed run's checkpoint with an uninterrupted one's."""

from __future__ import annotations

import torch


def same_state(a, b) -> bool:
    """True when `a` and `b` hold the same keys, types, dtypes and values, tensors exactly."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same_state, a, b))
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)
    return a == b
