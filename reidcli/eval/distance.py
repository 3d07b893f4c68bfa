"""Query x gallery distances, computed in query chunks so no full Q x G matrix is held.

Both metrics follow torchreid's ``compute_distance_matrix`` (Zhou et al., "Omni-Scale
Feature Learning for Person Re-Identification", ICCV 2019, and its toolbox):

- ``euclidean``: the *squared* Euclidean distance ``|q|^2 + |g|^2 - 2 q.g`` (one BLAS
  GEMM per chunk); the square root is monotone, so rankings and every rank metric are
  those of the plain Euclidean distance.
- ``cosine``: ``1 - q.g`` on L2-normalised rows. Rows are normalised here unless the
  features file says they already are (its ``normalized`` attribute).

Distances are float32, as in torchreid and fast-reid, so metrics agree with theirs. On the
CPU the blocks are numpy arrays and torch is never imported; on a GPU they are tensors.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from reidcli.utils.arrays import is_cpu, ops
from reidcli.utils.errors import InputError
from reidcli.utils.params import Options as OneOf
from reidcli.utils.params import check_value

METRICS = ("euclidean", "cosine")
# Elements of one [b, G] chunk: 2^23 float32 = 32 MiB; the rank core holds a few such.
CHUNK_ELEMENTS = 1 << 23
# Fewer queries per GEMM than this waste it: OpenBLAS re-packs the whole gallery for every
# call, and at MSMT17 size (82,161 gallery images) 102-query chunks ran at 64 GMAC/s against
# 90-115 at 512. Up to 2^26 elements (256 MiB) per chunk are spent to reach it.
MIN_CHUNK_QUERIES = 512
MAX_CHUNK_ELEMENTS = 1 << 26


def check_metric(metric: str) -> str:
    check_value("metric", metric, [OneOf(METRICS)])
    return metric


def auto_chunk(n_gallery: int, elements: int = CHUNK_ELEMENTS) -> int:
    """Queries per chunk: one [b, G] float32 block of about ``elements`` values, but at least
    `MIN_CHUNK_QUERIES` queries while the block stays within `MAX_CHUNK_ELEMENTS`."""
    g = max(1, n_gallery)
    floor = min(MIN_CHUNK_QUERIES, MAX_CHUNK_ELEMENTS // g)
    return int(max(1, floor, min(4096, elements // g)))


def _as_tensor(x: np.ndarray, device: str):
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x))
    if t.dtype != torch.float32:
        t = t.float()
    return t.to(device)


def check_features(qf: np.ndarray, gf: np.ndarray, where: str = "") -> None:
    """One-line errors for shapes and values a distance cannot be computed from."""
    at = f"{where}: " if where else ""
    if qf.ndim != 2 or gf.ndim != 2:
        raise InputError(f"{at}features must be 2-D [N, D]; got query {qf.shape} and gallery {gf.shape}")
    if qf.shape[1] != gf.shape[1]:
        raise InputError(f"{at}query features are {qf.shape[1]}-d but gallery features are "
                         f"{gf.shape[1]}-d; extract both with the same checkpoint")
    if len(qf) == 0 or len(gf) == 0:
        which = "query" if len(qf) == 0 else "gallery"
        raise InputError(f"{at}the {which} split is empty; nothing to evaluate")
    if qf.shape[1] == 0:
        raise InputError(f"{at}the features have 0 dimensions; re-extract them")
    for name, x in (("query", qf), ("gallery", gf)):
        if not np.isfinite(x).all():
            row = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
            raise InputError(f"{at}{name} features hold NaN/Inf (first at row {row}); "
                             "re-extract them (a diverged model?)")


def prepare(x: np.ndarray, metric: str, normalized: bool, device: str = "cpu"):
    """Features as float32 on ``device`` (numpy on the CPU, else a tensor), L2-normalised for
    cosine unless already normalised."""
    if is_cpu(device):
        return prepare_numpy(x, metric, normalized)
    import torch.nn.functional as F

    t = _as_tensor(x, device)
    if metric == "cosine" and not normalized:
        t = F.normalize(t, p=2, dim=1)
    return t


def distance_chunks(qf: np.ndarray, gf: np.ndarray, metric: str = "euclidean", chunk: int | None = None,
                    *, normalized: bool = False, device: str = "cpu") -> Iterator[tuple[int, object]]:
    """Yield ``(first query row, [b, G] float32 block)`` of the distance matrix: numpy
    arrays on the CPU, tensors on another device.

    Args:
        qf, gf: [Q, D] and [G, D] features (float32 or float16).
        metric: ``euclidean`` (squared) or ``cosine``.
        chunk: queries per block; ``None`` picks about 8M elements per block.
        normalized: the rows are already L2-normalised (skip it for cosine).
        device: torch device for the GEMM (``cpu`` or ``cuda``); blocks stay on it.
    """
    check_metric(metric)
    check_features(qf, gf)
    chunk = chunk or auto_chunk(len(gf))
    if is_cpu(device):
        yield from _numpy_chunks(qf, gf, metric, chunk, normalized)
        return
    import torch

    g = prepare(gf, metric, normalized, device)
    gt = g.t()
    gg = (g * g).sum(dim=1) if metric == "euclidean" else None
    with torch.inference_mode():
        for start in range(0, len(qf), chunk):
            q = prepare(qf[start:start + chunk], metric, normalized, device)
            if metric == "euclidean":
                qq = (q * q).sum(dim=1, keepdim=True)
                d = torch.addmm(qq + gg[None, :], q, gt, beta=1.0, alpha=-2.0)
            else:
                d = torch.mm(q, gt).neg_().add_(1.0)
            yield start, d


def _numpy_chunks(qf: np.ndarray, gf: np.ndarray, metric: str, chunk: int, normalized: bool):
    """The CPU path: the same formulas through numpy's BLAS, which runs float32 GEMM about
    1.7x faster than torch's on the AMD CPUs measured here (benchmarks/bench_evaluate.py)."""
    g = prepare_numpy(gf, metric, normalized)
    gt = g.T  # BLAS reads the transpose in place; a contiguous copy cost 0.3-0.5 s at Market size
    gg = np.einsum("ij,ij->i", g, g) if metric == "euclidean" else None
    for start in range(0, len(qf), chunk):
        q = prepare_numpy(qf[start:start + chunk], metric, normalized)
        d = q @ gt
        if metric == "euclidean":
            d *= -2.0
            d += np.einsum("ij,ij->i", q, q)[:, None]
            d += gg[None, :]
        else:
            np.subtract(1.0, d, out=d)
        yield start, d


def prepare_numpy(x: np.ndarray, metric: str, normalized: bool) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if metric == "cosine" and not normalized:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def pairwise_distance(qf: np.ndarray, gf: np.ndarray, metric: str = "euclidean", *,
                      normalized: bool = False) -> np.ndarray:
    """The full [Q, G] float32 distance matrix (small inputs, plots and tests)."""
    out = np.empty((len(qf), len(gf)), dtype=np.float32)
    for start, d in distance_chunks(qf, gf, metric, normalized=normalized):
        out[start:start + len(d)] = ops(d).to_numpy(d)
    return out
