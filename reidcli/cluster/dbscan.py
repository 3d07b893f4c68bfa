"""DBSCAN (Ester et al., KDD 1996) on a sparse precomputed distance graph.

Gives exactly the labels of ``sklearn.cluster.DBSCAN(metric="precomputed")`` on the
dense matrix (same numbering too): clusters are the connected components of core points
(>= ``min_samples`` neighbours within ``eps``, the point itself included), numbered in the
order of their lowest-index core point, which is the order scikit-learn discovers them;
a border point takes the label of the first discovered cluster that reaches it. Without
a Python loop over points: the components come from ``scipy.sparse.csgraph``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

if TYPE_CHECKING:
    from reidcli.utils.progress import StageProgress

log = logging.getLogger(__name__)


DBSCAN_STEPS = 3  # the neighbour graph, the core points' components, the border points


def dbscan_graph(graph: sp.csr_matrix, eps: float, min_samples: int = 4,
                 missing: float = np.inf, progress: StageProgress | None = None) -> np.ndarray:
    """DBSCAN labels from a symmetric sparse distance graph; -1 marks outliers.

    Args:
        graph: [N, N] CSR of distances; absent pairs are at distance ``missing``.
        eps: neighbourhood radius (``d <= eps`` is a neighbour, as in scikit-learn).
        min_samples: neighbours (self included) that make a core point.
        missing: distance of the pairs the graph does not store (1.0 for Jaccard).
        progress: hears ``("dbscan", step, DBSCAN_STEPS)`` after each of its steps.
    """
    n = graph.shape[0]
    tick = (lambda step: progress("dbscan", step, DBSCAN_STEPS)) if progress is not None else (lambda step: None)
    if eps >= missing:  # every pair is a neighbour: one cluster, or none
        tick(DBSCAN_STEPS)
        return np.zeros(n, np.int64) if n >= min_samples else np.full(n, -1, np.int64)
    g = graph.tocsr()
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(g.indptr))
    keep = (g.data <= eps) & (rows != g.indices)
    adj = sp.csr_matrix((np.ones(int(keep.sum()), np.int8), (rows[keep], g.indices[keep])), shape=(n, n))
    core = np.diff(adj.indptr) + 1 >= min_samples
    labels = np.full(n, -1, np.int64)
    tick(1)
    if not core.any():
        tick(DBSCAN_STEPS)
        return labels
    core_idx = np.flatnonzero(core)
    sub = adj[core_idx][:, core_idx]
    _, comp = connected_components(sub, directed=False)
    first = np.full(comp.max() + 1, n, np.int64)
    np.minimum.at(first, comp, core_idx)  # lowest core index per component = discovery order
    order = np.empty_like(first)
    order[np.argsort(first, kind="stable")] = np.arange(len(first))
    labels[core_idx] = order[comp]
    tick(2)
    _assign_border(adj, core, labels)
    tick(DBSCAN_STEPS)
    return labels


def _assign_border(adj: sp.csr_matrix, core: np.ndarray, labels: np.ndarray) -> None:
    """Non-core points within eps of a core point join the earliest-numbered such cluster."""
    border = np.flatnonzero(~core)
    if len(border) == 0:
        return
    sub = adj[border].tocoo()
    hit = core[sub.col]
    if not hit.any():
        return
    best = np.full(len(border), np.iinfo(np.int64).max, np.int64)
    np.minimum.at(best, sub.row[hit], labels[sub.col[hit]])
    found = best != np.iinfo(np.int64).max
    labels[border[found]] = best[found]


def radius_graph(x: np.ndarray, eps: float, *, block: int = 8192,
                 progress: StageProgress | None = None) -> sp.csr_matrix:
    """Euclidean distances of every pair within ``eps`` (faiss range search, exact), searched
    ``block`` query rows at a time; ``progress`` hears ``("neighbours", rows done, N)``."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    index = faiss.IndexFlatL2(d)
    index.add(x)
    counts, dists, idxs = [np.zeros(1, np.int64)], [], []
    for s in range(0, n, block):
        lims, dist, idx = index.range_search(x[s : s + block], float(eps) ** 2 * (1 + 1e-6))
        counts.append(np.diff(lims).astype(np.int64))
        dists.append(dist)
        idxs.append(idx)
        if progress is not None:
            progress("neighbours", min(s + block, n), n)
    dist = np.sqrt(np.maximum(np.concatenate(dists) if dists else np.zeros(0, np.float32), 0)).astype(np.float64)
    idx = np.concatenate(idxs) if idxs else np.zeros(0, np.int64)
    g = sp.csr_matrix((dist, idx.astype(np.int64), np.cumsum(np.concatenate(counts))), shape=(n, n))
    g.sort_indices()
    return g


def dbscan_euclidean(x: np.ndarray, eps: float = 1.0, min_samples: int = 4,
                     progress: StageProgress | None = None) -> np.ndarray:
    """DBSCAN with plain Euclidean distances (ULA, Chen et al. 2022, uses eps 1.0)."""
    return dbscan_graph(radius_graph(x, eps, progress=progress), eps, min_samples, progress=progress)


def auto_eps(graph: sp.csr_matrix, fraction: float = 1.6e-3, missing: float | None = 1.0) -> float:
    """Mean of the smallest ``fraction`` of pairwise distances (the MMT / SSG eps heuristic).

    As in the public code, the upper triangle's non-zero distances are sorted and the first
    ``round(fraction * count)`` averaged; pairs absent from the sparse graph count at
    ``missing``.
    """
    n = graph.shape[0]
    upper = sp.triu(graph, k=1).tocoo()
    vals = upper.data
    total = n * (n - 1) // 2 - int((vals == 0).sum())
    top = int(np.round(fraction * total))
    if top <= 0:
        return float(np.sort(vals[vals > 0])[0]) if (vals > 0).any() else float(missing or 0)
    pos = np.sort(vals[vals > 0])
    if top <= len(pos):
        return float(pos[:top].mean())
    return float((pos.sum() + (top - len(pos)) * (missing or 0.0)) / top)


def euclidean_auto_eps(x: np.ndarray, fraction: float = 1.6e-3, chunk: int = 1024,
                       progress: StageProgress | None = None) -> float:
    """`auto_eps` on the Euclidean distances of every pair of rows of ``x``: the mean of the
    smallest ``fraction`` of the non-zero upper-triangle distances (SSG / MMT's rule, Song et
    al. 2018), so that one eps rule serves raw and L2-normalised features alike. Exact up to
    float32 rounding (pairs closer than that count as duplicates, distance 0); the distances
    are streamed through `AutoEps` a block of rows at a time (``progress`` hears
    ``("eps auto", rows done, N)`` after each)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    keep = AutoEps(n, fraction, missing=np.inf)
    sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    for a in range(0, n - 1, chunk):
        b = min(n, a + chunk)
        d2 = sq[a:b, None] + sq[None, a + 1:] - 2.0 * (x[a:b] @ x[a + 1:].T).astype(np.float64)
        rows, cols = np.triu_indices(b - a, 0, n - a - 1)  # pair (a + r, a + 1 + c) with c >= r
        d2 = d2[rows, cols]
        d2[d2 <= 1e-5 * (sq[rows + a] + sq[cols + a + 1])] = 0.0  # duplicates, up to float32 rounding
        dist = np.sqrt(d2)
        keep(rows + a, cols + a + 1, dist)
        if progress is not None:
            progress("eps auto", b, n)
    return keep.value()


class AutoEps:
    """Streaming `auto_eps` for `jaccard_upper(keep=...)`: it keeps only the upper-triangle
    entries that can still be among the smallest ``fraction`` of all pairwise distances, so
    the graph never holds more than DBSCAN at the chosen eps will read."""

    def __init__(self, n: int, fraction: float, missing: float = 1.0):
        self.n, self.fraction, self.missing = n, fraction, missing
        self.cap = max(1, int(np.round(fraction * n * (n - 1) / 2)))
        self.vals = np.zeros(0)
        self.zeros = 0
        self.bound = missing

    def __call__(self, rows: np.ndarray, cols: np.ndarray, jac: np.ndarray) -> np.ndarray:
        off = rows != cols
        self.zeros += int(((jac == 0) & off).sum())
        new = jac[off & (jac > 0) & (jac <= self.bound)]
        self.vals = np.concatenate([self.vals, new])
        if len(self.vals) >= self.cap:
            self.bound = float(np.partition(self.vals, self.cap - 1)[self.cap - 1])
            self.vals = self.vals[self.vals <= self.bound]
        return jac <= self.bound

    def value(self) -> float:
        total = self.n * (self.n - 1) // 2 - self.zeros
        top = int(np.round(self.fraction * total))
        pos = np.sort(self.vals)
        if top <= 0:
            return float(pos[0]) if len(pos) else self.missing
        if top <= len(pos):
            return float(pos[:top].mean())
        return float((pos.sum() + (top - len(pos)) * self.missing) / top)
