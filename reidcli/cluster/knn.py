"""Nearest-neighbour search for clustering and re-ranking.

`knn` is exact by default: `knn_exact` computes each block pair of the symmetric distance
matrix once (one float32 GEMM per row block against the columns after it, row and column
top-k merged), half the work of a faiss flat search and the same neighbours. Past
``ivf_threshold`` points it switches to `knn_cells`, an inverted file searched a cell at a
time by GEMM; with a GPU-enabled faiss the GPU indexes are used. `knn_rowmax` is an exact
blocked search that also returns every row's largest distance, which the k-reciprocal
re-ranking of Zhong et al. (CVPR 2017) needs to normalise its original distance.
Distances are squared Euclidean throughout; neighbour lists include the point itself.
On the CPU everything is numpy (no torch import); with a GPU ``device`` the blocked searches
run on torch tensors (`reidcli.utils.arrays`). Equal distances at the k-th place: either
point may be kept (as faiss and torch.topk). A ``progress`` callback
(`reidcli.utils.progress.StageProgress`) hears ``("neighbours", rows done, N)`` once per block.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np

from reidcli.utils.arrays import NUMPY, nonzero_at_most, ops_for
from reidcli.utils.errors import ConfigError

if TYPE_CHECKING:
    from reidcli.utils.progress import StageProgress

log = logging.getLogger(__name__)

IVF_THRESHOLD = 250_000  # exact search past 200k images (minutes, see knn_exact); IVF beyond


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32, C-contiguous); zero rows stay zero."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if len(x) and np.abs(norms - 1).max() < 1e-5:
        return x  # already unit rows: no copy of a possibly large array
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def faiss_gpus() -> int:
    """Number of GPUs the installed faiss can use (0 for faiss-cpu)."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None and hasattr(faiss, "StandardGpuResources") else 0


def _make_index(d: int, n: int, index: str, nlist: int | None, use_gpu: bool):
    import faiss

    if index == "flat":
        cpu = faiss.IndexFlatL2(d)
    else:
        nlist = nlist or max(1, int(4 * math.sqrt(n)))
        cpu = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist, faiss.METRIC_L2)
    if use_gpu:
        res = faiss.StandardGpuResources()
        return faiss.index_cpu_to_gpu(res, 0, cpu), res
    return cpu, None


def faiss_on_gpu(device: str) -> bool:
    """Whether faiss searches on a GPU for ``device``: ``auto`` (when the installed faiss has
    one), ``cpu`` (never) or ``cuda`` / ``cuda:N`` (faiss's first GPU; an error without one)."""
    from reidcli.utils.device import check_device

    device = check_device(device)
    if device == "cpu":
        return False
    ngpu = faiss_gpus()
    if device != "auto" and ngpu == 0:
        raise ConfigError(f"device {device!r} asks for faiss on the GPU but the installed faiss has none; "
                          "install faiss-gpu or use device 'cpu'")
    return ngpu > 0


def knn(x: np.ndarray, k: int, *, index: str = "auto", nlist: int | None = None,
        nprobe: int | None = None, device: str = "auto", ivf_threshold: int = IVF_THRESHOLD,
        seed: int = 0, progress: StageProgress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours of every row of ``x`` among the rows of ``x``.

    Args:
        x: [N, D] features.
        k: neighbours per row, the row itself included (capped at N).
        index: ``flat`` (exact), ``ivf`` (approximate, inverted file) or ``auto`` (flat up
            to ``ivf_threshold`` rows, IVF past it).
        nlist, nprobe: IVF cells and cells visited per query (`knn_cells` on the CPU,
            faiss IVF-Flat with 4 sqrt(N) cells and 64 probes on a GPU).
        device: ``auto`` (faiss's GPU when it has one), ``cpu`` or ``cuda`` (`faiss_on_gpu`).
        progress: called with ``("neighbours", rows done, N)`` after each block of rows.
    Returns:
        (dist [N, k] float32 squared L2, idx [N, k] int64), nearest first.
    """
    if index not in ("auto", "flat", "ivf"):
        raise ConfigError(f"--knn-index must be one of auto, flat, ivf; got {index!r}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    k = min(k, n)
    kind = ("ivf" if n > ivf_threshold else "flat") if index == "auto" else index
    if not faiss_on_gpu(device):
        log.debug("knn: %s (numpy), n=%d d=%d k=%d", kind, n, d, k)
        if kind == "flat":
            return knn_exact(x, k, progress=progress)
        return knn_cells(x, k, nlist=nlist, nprobe=nprobe, seed=seed, progress=progress)
    idx, _res = _make_index(d, n, kind, nlist, True)
    if kind == "ivf":
        rng = np.random.default_rng(seed)
        ntrain = min(n, 64 * idx.nlist)
        idx.train(x[np.sort(rng.choice(n, ntrain, replace=False))])
        idx.nprobe = nprobe or 64
    idx.add(x)
    log.debug("knn: %s faiss GPU index, n=%d d=%d k=%d", kind, n, d, k)
    dist, nbr = idx.search(x, k)
    if progress is not None:
        progress("neighbours", n, n)
    return dist, nbr.astype(np.int64, copy=False)


def knn_cells(x: np.ndarray, k: int, *, nlist: int | None = None, nprobe: int | None = None,
              seed: int = 0, niter: int = 10,
              progress: StageProgress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Approximate k-NN for large N: an inverted file searched one cell at a time by GEMM.

    k-means (faiss, ``niter`` iterations on a sample of 64 points per cell) splits the
    points into ``nlist`` cells (default ~sqrt(N)); all queries of a cell are compared, in
    one float32 GEMM, with the points of the ``nprobe`` cells whose centroids are nearest
    to the cell's own (default nlist/16, at least 8). The cost is about nprobe/nlist of an
    exact search, as for faiss IVF, but it runs at GEMM speed instead of one scan per query.
    Recall depends on the cells following identities: on the benchmark's features, where
    camera offsets dominate k-means, it found 4 of a row's 17 same-identity neighbours
    (exact: all 17), so ``auto`` stays exact up to `IVF_THRESHOLD`.

    Returns:
        (dist [N, k] float32 squared L2, idx [N, k] int64), nearest first; rows with fewer
        than k candidates are padded with (inf, -1).
    """
    import faiss

    n, d = x.shape
    nlist = int(min(n, nlist or max(1, round(math.sqrt(n)))))
    nprobe = int(min(nlist, nprobe or max(8, nlist // 16)))
    rng = np.random.default_rng(seed)
    sample = x[np.sort(rng.choice(n, min(n, 64 * nlist), replace=False))]
    km = faiss.Kmeans(d, nlist, niter=niter, seed=int(seed) % (2**31), max_points_per_centroid=64)
    km.train(sample)
    del sample
    _, assign = km.index.search(x, 1)
    cent = km.centroids
    _, probes = faiss.knn(cent, cent, nprobe, faiss.METRIC_L2)
    order = np.argsort(assign[:, 0], kind="stable")
    starts = np.searchsorted(assign[order, 0], np.arange(nlist + 1))
    sq = NUMPY.sqnorm_rows(x)
    dist = np.full((n, k), np.inf, np.float32)
    idx = np.full((n, k), -1, np.int64)
    log.info("knn: IVF %d cells, %d probed per cell, %d points", nlist, nprobe, n)
    for c in range(nlist):
        q = order[starts[c] : starts[c + 1]]
        if len(q) == 0:
            continue
        cand = np.concatenate([order[starts[p] : starts[p + 1]] for p in probes[c] if p >= 0])
        g = _sq_dists(NUMPY, x[q], x[cand], sq[q], sq[cand])
        kk = min(k, len(cand))
        v, i = NUMPY.topk_smallest(g, kk)
        dist[q, :kk], idx[q, :kk] = v, cand[i]
        if progress is not None:  # the cells' rows come in order: every row before starts[c+1] is done
            progress("neighbours", int(starts[c + 1]), n)
    return dist, idx


def _sq_dists(xp, a, b, sq_a, sq_b):
    """``|a|^2 + |b|^2 - 2 a.b`` clipped at 0 (faiss's formula), one GEMM."""
    g = xp.matmul(a, b.T)
    g *= -2.0
    g += sq_a[:, None]
    g += sq_b[None, :]
    return xp.clip_min_(g, 0.0)


def _merge_topk(xp, best_d, best_i, rows, d, i) -> None:
    """The running k smallest (best_d, best_i) of ``rows`` (a slice or an index array)
    merged with their candidates (d, i), one row of candidates per row of ``rows``."""
    cd, ci = xp.concat([best_d[rows], d]), xp.concat([best_i[rows], i])
    v, pos = xp.topk_smallest(cd, best_d.shape[1])
    best_d[rows] = v
    best_i[rows] = xp.take_along(ci, pos)


def _merge_below(best_d: np.ndarray, best_i: np.ndarray, d: np.ndarray, base: int, bound: np.ndarray, *,
                 rows_first: bool, id_base: int | None = None, max_fraction: float = 0.25) -> bool:
    """Merge into the running lists only the slab entries at most their list's k-th distance
    (``bound``, broadcast over ``d``): nothing farther can enter a list, and once a few
    thousand points are in, that is a few per row, so one compare replaces a top-k
    selection over the whole slab. ``rows_first``: row r of ``d`` is list ``base + r`` and
    column c is point ``base + c``; else column c is list ``base + c`` and row r is point
    ``id_base + r``. Returns False (nothing merged) when more than ``max_fraction`` of the
    slab qualifies; the caller then selects over the slab."""
    found = nonzero_at_most(d, bound, int(max_fraction * d.size))
    if found is None:
        return False
    r, c = found
    vals = d[r, c]
    lists, ids = (r + base, c + base) if rows_first else (c + base, r + id_base)
    if len(lists) == 0:
        return True
    order = np.argsort(lists, kind="stable")
    lists, vals, ids = lists[order], vals[order], ids[order]
    uniq, start, counts = np.unique(lists, return_index=True, return_counts=True)
    slot = np.arange(len(lists)) - np.repeat(start, counts)
    row = np.repeat(np.arange(len(uniq)), counts)
    new_d = np.full((len(uniq), int(counts.max())), np.inf, np.float32)
    new_i = np.full(new_d.shape, -1, np.int64)
    new_d[row, slot], new_i[row, slot] = vals, ids
    _merge_topk(NUMPY, best_d, best_i, uniq, new_d, new_i)
    return True


def knn_exact(x: np.ndarray, k: int, *, block: int | None = None, device: str = "cpu",
              slab_bytes: int = 256 << 20,
              progress: StageProgress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN of the rows of ``x`` among themselves, squared L2 (as ``faiss.knn``).

    The distance matrix is symmetric, so each block pair is computed once: row block
    ``[s, e)`` meets columns ``[s, N)`` in one float32 GEMM (``|a|^2 + |b|^2 - 2 a.b``,
    faiss's formula); the slab's row top-k serves rows ``[s, e)`` and its column top-k is
    merged into the running lists of rows ``[e, N)``; once every list holds k distances,
    only the slab entries within a list's k-th distance are merged (`_merge_below`), which
    replaces most of the top-k selections. About half the FLOPs of a full search,
    no precision change, one ``[block, N]`` slab of memory (block >= 1024 rows, so that
    the merges stay cheap at large N). On the CPU it is numpy throughout (OpenBLAS GEMM:
    1.7x torch's MKL sgemm on the AMD EPYC measured here); a GPU ``device`` uses torch. A
    bf16 screen with a rigorous error bound was tried and dropped: on 2048-d re-ID-like
    features its 0.03 bound in squared distance holds 100-200 candidates per row, which
    costs more than it saves. ``progress`` hears ``("neighbours", e, N)`` after each row
    block ``[s, e)`` (rows before ``e`` are final; later blocks are cheaper, the triangle shrinks).

    Returns:
        (dist [N, k] float32, idx [N, k] int64), nearest first.
    """
    xp = ops_for(device)
    xt = xp.asarray(np.ascontiguousarray(x, dtype=np.float32))
    n = xt.shape[0]
    k = min(k, n)
    block = block or int(np.clip(slab_bytes // (4 * max(n, 1)), 1024, 2048))
    sq = xp.sqnorm_rows(xt)
    best_d = xp.full((n, k), float("inf"), "float32")
    best_i = xp.full((n, k), -1, "int64")
    for s in range(0, n, block):
        e = min(s + block, n)
        d = _sq_dists(xp, xt[s:e], xt[s:], sq[s:e], sq[s:])
        bounded = xp is NUMPY and s >= k  # every later row already holds k distances from rows < s
        if not (bounded and _merge_below(best_d, best_i, d, s, best_d[s:e, k - 1][:, None], rows_first=True)):
            v, i = xp.topk_smallest(d, min(k, n - s), sorted=False)
            _merge_topk(xp, best_d, best_i, slice(s, e), v, i + s)
        if e < n:  # the same products read down the columns, for the rows after the block
            cols = d[:, e - s :]
            if not (bounded and _merge_below(best_d, best_i, cols, e, best_d[e:, k - 1][None, :], rows_first=False,
                                             id_base=s)):
                v, i = xp.topk_smallest(cols, min(k, e - s), axis=0, sorted=False)
                _merge_topk(xp, best_d, best_i, slice(e, n), v.T, i.T + s)
        del d
        if progress is not None:
            progress("neighbours", e, n)
    return xp.to_numpy(best_d), xp.to_numpy(best_i)


def knn_rowmax(x: np.ndarray, k: int, *, block: int = 2048,
               device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact k-NN under squared Euclidean distance plus each row's largest distance.

    One pass of blocked ``x_b @ x.T`` products (numpy's BLAS on the CPU, as `knn_exact`;
    torch on a GPU ``device``); memory stays at ``block * N`` floats.

    Returns:
        (dist [N, k] float32, idx [N, k] int64, rowmax [N] float32).
    """
    xp = ops_for(device)
    xt = xp.asarray(np.ascontiguousarray(x, dtype=np.float32))
    n = xt.shape[0]
    k = min(k, n)
    sq = xp.sqnorm_rows(xt)
    dist = np.empty((n, k), np.float32)
    idx = np.empty((n, k), np.int64)
    rowmax = np.empty(n, np.float32)
    for s in range(0, n, block):
        e = min(s + block, n)
        d = _sq_dists(xp, xt[s:e], xt, sq[s:e], sq)
        rowmax[s:e] = xp.to_numpy(xp.row_max(d))
        v, i = xp.topk_smallest(d, k)
        dist[s:e], idx[s:e] = xp.to_numpy(v), xp.to_numpy(i)
    return dist, idx, rowmax
