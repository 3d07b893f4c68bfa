"""One small interface over numpy arrays (the CPU) and torch tensors (a GPU).

Evaluation and clustering compute with numpy on the CPU, so ``reid evaluate`` and ``reid
cluster`` never import torch there (the import alone costs seconds and ~0.7 GB); with
``--device cuda`` the same code runs on torch tensors. Arithmetic, comparisons, indexing,
``.sum(1)``, ``.any(1)``, ``.cumsum(1)``, ``.clip(min=...)`` and in-place operators are
written once against either; the operations here are the ones whose names or meaning differ.

Use `ops` (by the type of an array) or `ops_for` (by a device name).
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Row splits of a large top-k run in threads (numpy's partition releases the GIL).
PARALLEL_ELEMENTS = 1 << 22


def is_cpu(device) -> bool:
    """``cpu`` (or a cpu torch.device), decided without importing torch."""
    return str(getattr(device, "type", device)).split(":")[0] == "cpu"


def ops(x) -> NumpyOps | TorchOps:
    """The operations for ``x``'s kind: `TorchOps` on its device for a tensor, else numpy."""
    if type(x).__module__.startswith("torch"):
        return TorchOps(x.device)
    return NUMPY


def ops_for(device) -> NumpyOps | TorchOps:
    """numpy for ``cpu``, torch tensors on ``device`` otherwise."""
    return NUMPY if is_cpu(device) else TorchOps(device)


def _threads() -> int:
    text = os.environ.get("OMP_NUM_THREADS", "")
    return int(text) if text.isdigit() and int(text) > 0 else (os.cpu_count() or 1)


def by_row_blocks(fn, *arrays: np.ndarray):
    """``fn(*arrays)``, computed over row blocks in threads when the arrays are large (numpy's
    sorting and searching release the GIL); results (arrays or tuples of them) are stacked."""
    n = len(arrays[0])
    threads = min(_threads(), n)
    if arrays[0].size < PARALLEL_ELEMENTS or threads < 2:
        return fn(*arrays)
    parts = [(r[0], r[-1] + 1) for r in np.array_split(np.arange(n), threads)]
    with ThreadPoolExecutor(threads) as pool:
        got = list(pool.map(lambda p: fn(*(a[p[0]:p[1]] for a in arrays)), parts))
    if isinstance(got[0], tuple):
        return tuple(np.concatenate(g) for g in zip(*got))
    return np.concatenate(got)


def nonzero_at_most(x: np.ndarray, bound: np.ndarray, max_count: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(rows, cols) of the entries ``x <= bound`` (``bound`` broadcast: [R, 1] or [1, C]) in
    row-major order, computed over row blocks in threads; None when more than ``max_count``
    qualify (nothing large is allocated then). Flat indices and a divmod: ``np.nonzero`` of
    a 2-D mask is ~5x slower than ``np.flatnonzero``."""
    per_row = bound.shape[0] == x.shape[0] and x.shape[0] > 1
    width = x.shape[1]

    def part(a, b, first):
        mask = a <= (b if per_row else bound)
        if np.count_nonzero(mask) > max_count:
            return np.array([-1], np.int64), np.array([-1], np.int64)
        r, c = np.divmod(np.flatnonzero(mask), width)
        return r + first[0, 0], c

    first = np.arange(len(x), dtype=np.int64)[:, None]
    rows, cols = by_row_blocks(part, x, bound if per_row else np.empty((len(x), 0)), first)
    if (len(rows) and rows.min() < 0) or len(rows) > max_count:
        return None
    return rows, cols


def _topk_rows(x: np.ndarray, k: int, sorted: bool) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[1]
    idx = np.argpartition(x, k - 1, axis=1)[:, :k] if k < n else np.broadcast_to(np.arange(n), x.shape)
    if sorted:
        idx = np.sort(idx, axis=1)
        idx = np.take_along_axis(idx, np.argsort(np.take_along_axis(x, idx, 1), axis=1, kind="stable"), 1)
    return np.take_along_axis(x, idx, 1), np.ascontiguousarray(idx, dtype=np.int64)


def _searchsorted_rows(x: np.ndarray, sorted_rows: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape, np.int64)
    for r in range(len(x)):
        out[r] = np.searchsorted(sorted_rows[r], x[r])
    return out


class NumpyOps:
    """numpy on the CPU. Top-k ties come out in index order (a stable order)."""

    device = "cpu"

    def asarray(self, a, dtype: str | None = None) -> np.ndarray:
        return np.asarray(a, dtype=dtype)

    def to_numpy(self, x) -> np.ndarray:
        return np.asarray(x)

    def context(self):
        return contextlib.nullcontext()

    def arange(self, start: int, stop: int, dtype: str = "int64") -> np.ndarray:
        return np.arange(start, stop, dtype=dtype)

    def full(self, shape, value, dtype: str) -> np.ndarray:
        return np.full(shape, value, dtype=dtype)

    def concat(self, xs, axis: int = 1) -> np.ndarray:
        return np.concatenate(xs, axis=axis)

    def broadcast_to(self, x: np.ndarray, shape) -> np.ndarray:
        return np.broadcast_to(x, shape)

    def masked_fill(self, x: np.ndarray, mask: np.ndarray, value) -> np.ndarray:
        return np.where(mask, x.dtype.type(value), x)

    def take_along(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return np.take_along_axis(x, idx, axis=1)

    def sort(self, x: np.ndarray) -> np.ndarray:
        return np.sort(x, axis=1)

    def row_min(self, x: np.ndarray) -> np.ndarray:
        return x.min(axis=1)

    def row_max(self, x: np.ndarray) -> np.ndarray:
        return x.max(axis=1)

    def as_float64(self, x: np.ndarray) -> np.ndarray:
        return x.astype(np.float64)

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.matmul(a, b)

    def sqnorm_rows(self, x: np.ndarray) -> np.ndarray:
        """Squared row norms rounded as torch's ``(x * x).sum(1)`` (`reidcli.utils.cascade_sum`)."""
        from reidcli.utils.cascade_sum import row_sqnorms

        return row_sqnorms(x)

    def clip_min_(self, x: np.ndarray, value: float) -> np.ndarray:
        return np.maximum(x, value, out=x)

    def topk_smallest(self, x: np.ndarray, k: int, *, axis: int = 1, sorted: bool = True):
        """(values, indices) of the ``k`` smallest entries along ``axis`` (0 or 1); with
        ``sorted`` nearest first, equal values in index order."""
        if axis == 0:
            v, i = self.topk_smallest(x.T, k, sorted=sorted)
            return v.T, i.T
        return by_row_blocks(lambda a: _topk_rows(a, k, sorted), x)

    def searchsorted(self, sorted_rows: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Per row: how many entries of ``sorted_rows[r]`` are < ``x[r, j]`` (side left)."""
        return by_row_blocks(_searchsorted_rows, x, sorted_rows)

    def _flat(self, width: int, idx: np.ndarray, shape) -> np.ndarray:
        return (np.broadcast_to(idx, shape) + (np.arange(shape[0], dtype=np.int64) * width)[:, None]).ravel()

    def scatter_add(self, width: int, idx: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """[b, width] int64 counts of ``idx[r, j]`` per row (only where ``mask``)."""
        shape = mask.shape if mask is not None else idx.shape
        flat = self._flat(width, idx, shape)
        flat = flat[mask.ravel()] if mask is not None else flat
        return np.bincount(flat, minlength=shape[0] * width).reshape(shape[0], width)

    def scatter_amax(self, width: int, idx: np.ndarray, values: np.ndarray, fill: int) -> np.ndarray:
        """[b, width] row-wise maximum of ``values`` per ``idx`` (``fill`` where none, or larger)."""
        out = np.full(values.shape[0] * width, fill, dtype=values.dtype)
        np.maximum.at(out, self._flat(width, idx, values.shape), values.ravel())
        return out.reshape(values.shape[0], width)


class TorchOps:
    """torch tensors on one device (imports torch)."""

    def __init__(self, device):
        import torch

        self.torch = torch
        self.device = torch.device(device)

    def _dtype(self, name: str | None):
        return getattr(self.torch, name) if name else None

    def asarray(self, a, dtype: str | None = None):
        t = self.torch.as_tensor(a, device=self.device)
        return t.to(self._dtype(dtype)) if dtype else t

    def to_numpy(self, x) -> np.ndarray:
        return x.cpu().numpy()

    def context(self):
        return self.torch.inference_mode()

    def arange(self, start: int, stop: int, dtype: str = "int64"):
        return self.torch.arange(start, stop, dtype=self._dtype(dtype), device=self.device)

    def full(self, shape, value, dtype: str):
        return self.torch.full(shape, value, dtype=self._dtype(dtype), device=self.device)

    def concat(self, xs, axis: int = 1):
        return self.torch.cat(list(xs), dim=axis)

    def broadcast_to(self, x, shape):
        return x.expand(*shape)

    def masked_fill(self, x, mask, value):
        return x.masked_fill(mask, value)

    def take_along(self, x, idx):
        return x.gather(1, idx)

    def sort(self, x):
        return self.torch.sort(x, dim=1).values

    def row_min(self, x):
        return x.min(dim=1).values

    def row_max(self, x):
        return x.max(dim=1).values

    def as_float64(self, x):
        return x.double()

    def matmul(self, a, b):
        return self.torch.mm(a, b)

    def sqnorm_rows(self, x):
        return (x * x).sum(1)

    def clip_min_(self, x, value: float):
        return x.clamp_(min=value)

    def topk_smallest(self, x, k: int, *, axis: int = 1, sorted: bool = True):
        return self.torch.topk(x, k, dim=axis, largest=False, sorted=sorted)

    def searchsorted(self, sorted_rows, x):
        return self.torch.searchsorted(sorted_rows.contiguous(), x.contiguous())

    def scatter_add(self, width: int, idx, mask=None):
        shape = mask.shape if mask is not None else idx.shape
        out = self.torch.zeros(shape[0], width, dtype=self.torch.int64, device=self.device)
        ones = mask.to(self.torch.int64) if mask is not None else \
            self.torch.ones(1, dtype=self.torch.int64, device=self.device).expand(*shape)
        return out.scatter_add_(1, idx.expand(*shape), ones)

    def scatter_amax(self, width: int, idx, values, fill: int):
        out = self.torch.full((values.shape[0], width), fill, dtype=values.dtype, device=self.device)
        return out.scatter_reduce_(1, idx.expand(*values.shape), values, reduce="amax")


NUMPY = NumpyOps()
