"""The dense k-reciprocal encoding and Jaccard distance of Zhong et al. (CVPR 2017), written
loop by loop after the published code, as the one reference that reidcli's sparse versions
are checked against (tests/test_cluster_jaccard.py, tests/test_rerank.py) and timed against
(benchmarks/bench_cluster.py, which puts tests/ on its path).

Independent of reidcli on purpose (numpy only): it must not share a bug with the code it
checks. Dense in every sense: [N, N] matrices, so only for the few thousand rows a test or
the benchmark's reference sizes hold.

- `dense_jaccard`: the clustering distance, as SpCL / Cluster-Contrast's
  ``compute_jaccard_distance`` (``variant='spcl'``) or MMT's ``compute_jaccard_dist``
  (``variant='mmt'``) compute it.
- `encode` and `jaccard_rows`: its two halves, for re-ranking's query-by-gallery rows
  (``re_ranking`` in the person-re-ranking code).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def k_reciprocal(rank: np.ndarray, i: int, k: int) -> np.ndarray:
    """The k-reciprocal neighbours of ``i``: those of its k + 1 nearest (itself included)
    that have ``i`` among their own k + 1 nearest."""
    forward = rank[i, : k + 1]
    backward = rank[forward, : k + 1]
    return forward[np.where(backward == i)[0]]


def encode(rank: np.ndarray, dist: Callable[[int, np.ndarray], np.ndarray], k1: int, k2: int,
           dtype=np.float64) -> np.ndarray:
    """V [N, N]: each row's k1-reciprocal set, expanded by the k1/2-reciprocal sets of its
    members that share more than 2/3 with it, weighted by softmax(-dist) over the expanded
    set; then, if ``k2`` > 1, the mean of the rows of its ``k2`` nearest (query expansion).

    ``rank[i]``: row i's neighbours, nearest first, itself first (at least k1 + 1 columns are
    read, fewer if fewer are given); ``dist(i, idx)``: row i's distances to rows ``idx``.
    The weight is computed as exp(-(d - min d)) / sum: softmax, as SpCL / Cluster-Contrast;
    MMT's and re_ranking's exp(-d) / sum is the same up to rounding."""
    n = len(rank)
    half = int(np.around(k1 / 2))
    nn = [k_reciprocal(rank, i, k1) for i in range(n)]
    nn_half = [k_reciprocal(rank, i, half) for i in range(n)]
    v = np.zeros((n, n), dtype)
    for i in range(n):
        expanded = nn[i]
        for c in nn[i]:
            if len(np.intersect1d(nn_half[c], nn[i])) > 2 / 3 * len(nn_half[c]):
                expanded = np.append(expanded, nn_half[c])
        expanded = np.unique(expanded)
        d = dist(i, expanded)
        w = np.exp(-(d - d.min()))
        v[i, expanded] = w / w.sum()
    if k2 != 1:
        v_qe = np.zeros_like(v)
        for i in range(n):
            v_qe[i] = v[rank[i, :k2]].mean(0)
        v = v_qe  # the unexpanded V is freed here (the benchmark measures peak memory)
    return v


def jaccard_rows(v: np.ndarray, rows: Sequence[int] | None = None) -> np.ndarray:
    """J [len(rows), N] = 1 - m / (2 - m), m the sum of element-wise minima of V's row with
    every other row, gathered through the inverted index (the columns' non-zero rows) as the
    published code does. ``rows``: every row when None. Not clipped."""
    n = len(v)
    rows = range(n) if rows is None else rows
    inverted = [np.where(v[:, j] != 0)[0] for j in range(n)]
    jac = np.zeros((len(rows), n), v.dtype)
    for r, i in enumerate(rows):
        mins = np.zeros(n, v.dtype)
        for j in np.where(v[i] != 0)[0]:
            mins[inverted[j]] += np.minimum(v[i, j], v[inverted[j], j])
        jac[r] = 1 - mins / (2 - mins)
    return jac


def _squared_distances(x: np.ndarray) -> np.ndarray:
    return ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)


def dense_jaccard(x: np.ndarray, k1: int, k2: int, variant: str = "spcl", *, rank: np.ndarray | None = None,
                  dtype=np.float64) -> np.ndarray:
    """The [N, N] Jaccard distance of L2-normalised features ``x``, negatives clipped to 0 as
    the published code does.

    ``variant='spcl'`` (SpCL / Cluster-Contrast ``compute_jaccard_distance``): k1 nearest
    neighbours by Euclidean distance (``rank``, e.g. a faiss search; exact when None), the
    kernel 2 - 2 x_i.x_j. ``variant='mmt'`` (MMT ``mmt/utils/rerank.py:compute_jaccard_dist``):
    the squared distance divided by its column maxima, then transposed (each row by its own
    maximum), the whole ranking kept (k1 + 1 neighbours taken), the kernel that same matrix."""
    x = np.asarray(x, dtype)
    if variant == "mmt":
        if rank is not None:
            raise ValueError("variant 'mmt' ranks the whole matrix itself; pass no rank")
        d2 = _squared_distances(x)
        kernel = (d2 / d2.max(0)[None, :]).T  # original_dist /= original_dist.max(0)[0]; .t()
        rank = np.argsort(kernel, axis=1, kind="stable")

        def dist(i, idx):
            return kernel[i, idx]
    elif variant == "spcl":
        if rank is None:
            rank = np.argsort(_squared_distances(x), axis=1, kind="stable")[:, :k1]

        def dist(i, idx):
            return 2 - 2 * x[i] @ x[idx].T
    else:
        raise ValueError(f"variant must be 'spcl' or 'mmt'; got {variant!r}")
    jac = jaccard_rows(encode(rank, dist, k1, k2, dtype))
    jac[jac < 0] = 0
    return jac
