"""Checks of the id arrays every stage exchanges (identities, cameras, cluster labels).

One place decides what an id array may hold, so the file readers and writers
(`reidcli.io.h5`), evaluation and clustering refuse the same things with the same words:
a column [N, 1] instead of [N], fractional numbers (which ``astype(int)`` would silently
truncate), values below the allowed minimum (-1 marks junk / outliers; cameras start at 0).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from reidcli.utils.errors import InputError

_INT64_MAX = np.iinfo(np.int64).max


def ids_problem(values, min_value: int = -1) -> Optional[str]:
    """What is wrong with ``values`` as an id array (None: nothing). Integral floats pass."""
    a = np.asarray(values)
    if a.ndim != 1:
        return f"must be 1-D [N]; found shape {a.shape}"
    if a.dtype.kind not in "iuf":
        return f"must be integers; found {a.dtype}"
    if not len(a):
        return None
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a)) | (np.abs(a) > 2.0 ** 62)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            return f"must be whole numbers; found {a[i].item()!r} at row {i}"
    elif a.dtype.kind == "u" and int(a.max()) > _INT64_MAX:
        return f"holds {int(a.max())}, beyond the int64 range"
    low = a.min()
    if low < min_value:
        i = int(np.argmin(a))
        return f"must be >= {min_value}; found {low.item()!r} at row {i}"
    return None


def as_ids(values, what: str, min_value: int = -1) -> np.ndarray:
    """``values`` as int64 ids, or `InputError` "``what`` must be ..." (see `ids_problem`)."""
    problem = ids_problem(values, min_value)
    if problem:
        raise InputError(f"{what} {problem}")
    return np.asarray(values).astype(np.int64)
