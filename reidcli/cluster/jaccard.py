"""Sparse k-reciprocal encoding and Jaccard distance (Zhong et al., CVPR 2017, sec. 3).

The one implementation shared by clustering (`jaccard_distance`, the SpCL /
Cluster-Contrast ``compute_jaccard_distance`` on L2-normalised features) and re-ranking
(`reidcli.eval.rerank`). The published code loops over rows in Python over dense N x N
arrays; here every step is a sparse-matrix or vectorised operation:

1. ``R(i, k)`` - k-reciprocal neighbours: j in the first k+1 neighbours of i and i in the
   first k+1 neighbours of j (eq. 3).
2. ``R*(i, k1)`` - R(i, k1) plus R(c, round(k1/2)) of every candidate c in R(i, k1)
   whose half-set shares more than 2/3 of its members with R(i, k1) (eq. 4).
3. ``V[i, j] = exp(-d(i, j)) / sum_{j' in R*(i)} exp(-d(i, j'))`` (Gaussian kernel, eq. 7).
4. Local query expansion ``V_i <- mean of V over the k2 nearest neighbours of i`` (eq. 11).
5. ``J(i, j) = 1 - sum_k min(V_ik, V_jk) / sum_k max(V_ik, V_jk)`` (eq. 10-12); the rows of
   V sum to 1, so the max-sum is ``2 - min-sum``.

Two points that share no column of V have J = 1 exactly, so the sparse matrix of pairs
that share one is the whole distance for every threshold below 1.

Two published variants feed steps 1-4 (``variant``; the same eps cuts them differently):

* ``spcl`` - SpCL / Cluster-Contrast ``compute_jaccard_distance``: a search for ``k1``
  neighbours (the point itself included), so R(i, k1) looks at k1 entries; the kernel
  distance is ``d(i, j) = |x_i - x_j|^2 = 2 - 2 cos``.
* ``mmt`` - MMT's ``compute_jaccard_dist`` (Ge et al., ICLR 2020, ``mmt/utils/rerank.py``,
  after Zhong et al.'s ``re_ranking``): ``k1 + 1`` neighbours, and every row of the
  squared distance divided by its maximum, ``d(i, j) = |x_i - x_j|^2 / max_j' |x_i -
  x_j'|^2``, which needs one exact pass over all pairs (`knn_rowmax`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from reidcli.utils.progress import StageProgress

log = logging.getLogger(__name__)

SNAP = 1e-12
VARIANTS = ("spcl", "mmt")  # whose code's Jaccard distance (see the module docstring)
PairDist = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (rows, cols) -> distances


def _neighbour_matrix(rank: np.ndarray, k: int) -> sp.csr_matrix:
    """Boolean A[i, j] = j among the first k+1 entries of ``rank[i]`` (as ``rank[i, :k+1]``)."""
    n = rank.shape[0]
    cols = rank[:, : k + 1]
    rows = np.repeat(np.arange(n, dtype=np.int64), cols.shape[1])
    cols = cols.ravel()
    keep = cols >= 0  # faiss pads with -1 when it finds fewer neighbours
    a = sp.csr_matrix((np.ones(int(keep.sum()), np.int8), (rows[keep], cols[keep])), shape=(n, n))
    a.sum_duplicates()
    a.data[:] = 1
    return a


def reciprocal_sets(rank: np.ndarray, k: int) -> sp.csr_matrix:
    """R[i, j] = 1 when i and j are among each other's first k+1 neighbours (eq. 3)."""
    a = _neighbour_matrix(rank, k)
    r = a.multiply(a.T).tocsr()
    r.sort_indices()
    return r.astype(np.int32)


def expanded_sets(rank: np.ndarray, k1: int, *, block: int = 32768) -> sp.csr_matrix:
    """R*(i, k1): k1-reciprocal sets grown by the half-sets that overlap by > 2/3 (eq. 4)."""
    r = reciprocal_sets(rank, k1)
    half = reciprocal_sets(rank, int(np.around(k1 / 2)))
    half_size = np.diff(half.indptr).astype(np.float64)
    half_t = half.T.tocsr()
    parts = []
    for s in range(0, r.shape[0], block):
        rb = r[s : s + block]
        overlap = (rb @ half_t).multiply(rb).tocoo()  # |R_half(c) & R(i)| for c in R(i)
        ok = overlap.data > 2.0 / 3.0 * half_size[overlap.col]
        cand = sp.csr_matrix((np.ones(int(ok.sum()), np.int32), (overlap.row[ok], overlap.col[ok])),
                             shape=rb.shape)
        parts.append(((cand @ half) + rb).tocsr())
    e = sp.vstack(parts).tocsr()
    e.data[:] = 1
    e.sort_indices()
    return e


def encode(rank: np.ndarray, k1: int, k2: int, pair_dist: PairDist) -> sp.csr_matrix:
    """The k-reciprocal feature V (eq. 7), locally query-expanded over k2 neighbours (eq. 11).

    Args:
        rank: [N, K] neighbour ids, nearest first, each row starting with the point itself.
        pair_dist: distances d(i, j) for arrays of pairs (the kernel is exp(-d)).
    Returns:
        V as a float64 CSR matrix whose rows sum to 1.
    """
    e = expanded_sets(rank, k1)
    rows = np.repeat(np.arange(e.shape[0], dtype=np.int64), np.diff(e.indptr))
    d = pair_dist(rows, e.indices.astype(np.int64)).astype(np.float64)
    counts = np.diff(e.indptr)
    w = np.exp(-(d - np.repeat(segment_reduce(np.minimum, d, e.indptr, np.inf), counts)))
    sums = segment_reduce(np.add, w, e.indptr, 0.0)  # shifting by the row minimum: a stable softmax
    v = sp.csr_matrix((w / np.repeat(sums, counts), e.indices, e.indptr), shape=e.shape)
    if k2 > 1:
        v = query_expand(v, rank, k2)
    return v


def segment_reduce(ufunc, values: np.ndarray, indptr: np.ndarray, neutral: float) -> np.ndarray:
    """``ufunc`` over each CSR row segment; empty rows get ``neutral`` (reduceat would not)."""
    padded = np.append(values, np.asarray(neutral, dtype=values.dtype))
    out = ufunc.reduceat(padded, indptr[:-1])
    out[np.diff(indptr) == 0] = neutral
    return out


def query_expand(v: sp.csr_matrix, rank: np.ndarray, k2: int) -> sp.csr_matrix:
    """V_i <- mean of V_j over j in the first k2 entries of rank[i] (eq. 11)."""
    n = v.shape[0]
    cols = rank[:, :k2]
    rows = np.repeat(np.arange(n, dtype=np.int64), cols.shape[1])
    counts = np.full(n, cols.shape[1], dtype=np.float64)
    keep = cols.ravel() >= 0
    if not keep.all():
        counts = np.bincount(rows[keep], minlength=n).astype(np.float64)
    q = sp.csr_matrix((1.0 / counts[rows[keep]], (rows[keep], cols.ravel()[keep])), shape=(n, n))
    out = (q @ v).tocsr()
    out.sort_indices()
    return out


def _triples(v: sp.csr_matrix, v_csc: sp.csc_matrix, s: int, e: int, csc_keys=None):
    """For rows s..e: (local row, j, min(V_ik, V_jk)) for every k shared by rows i and j.

    With ``csc_keys`` (``col * N + row`` of the CSC entries) only j >= i is produced.
    """
    sub = v[s:e]
    ks = sub.indices.astype(np.int64)
    r0 = np.repeat(np.arange(e - s, dtype=np.int64), np.diff(sub.indptr))
    if csc_keys is None:
        starts = v_csc.indptr[:-1][ks].astype(np.int64)
    else:
        starts = np.searchsorted(csc_keys, ks * v.shape[0] + (r0 + s))
    lens = v_csc.indptr[1:][ks] - starts
    total = int(lens.sum())
    offs = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(total, dtype=np.int64)
    j = v_csc.indices[offs].astype(np.int64)
    w = np.minimum(np.repeat(sub.data, lens), v_csc.data[offs])
    return np.repeat(r0, lens), j, w


def _row_blocks(v: sp.csr_matrix, v_csc: sp.csc_matrix, budget: int,
                max_rows: int | None = None) -> Iterator[tuple[int, int]]:
    """Row ranges whose triple counts stay near ``budget`` (bounds the working memory)."""
    col_nnz = np.diff(v_csc.indptr).astype(np.int64)
    cum = np.cumsum(segment_reduce(np.add, col_nnz[v.indices], v.indptr, 0))
    s, n = 0, v.shape[0]
    while s < n:
        base = cum[s - 1] if s else 0
        e = int(np.searchsorted(cum, base + budget, side="right"))
        e = min(max(e, s + 1), n, s + max_rows if max_rows else n)
        yield s, e
        s = e


Keep = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (rows, cols, J) -> mask


def min_sum_floor(max_dist: float) -> float:
    """A lower bound on M for J <= ``max_dist``: J = 1 - M / (2 - M) <= t iff
    M >= 2 (1 - t) / (2 - t), less a margin for rounding (the exact test follows)."""
    return 2.0 * (1.0 - max_dist) / (2.0 - max_dist) - 1e-9 if max_dist < 1.0 else 0.0


def jaccard_upper(v: sp.csr_matrix, *, keep: Keep | None = None, max_dist: float = 1.0,
                  budget: int = 2_000_000, progress: StageProgress | None = None) -> sp.csr_matrix:
    """Upper triangle (diagonal included) of J for every pair sharing a column of V.

    ``M[i, j] = sum_k min(V_ik, V_jk)`` is reduced per block of rows with one ``bincount``
    over the columns the block touches; J = 1 - M / (2 - M), clipped at 0. Only J <=
    ``max_dist`` is stored (the diagonal always); ``keep`` may drop more entries per block
    (e.g. the streaming eps rule) so that only what DBSCAN needs is held, and a ``keep``
    with a ``bound`` attribute promises to drop every J above it. Pairs that cannot pass are
    discarded on M alone, before any J is formed (at eps 0.6 that is ~99% of the pairs that
    share a column). ``progress`` hears ``("jaccard", rows done, N)`` after each block.
    """
    n = v.shape[0]
    v_csc = v.tocsc()
    v_csc.sort_indices()
    csc_keys = np.repeat(np.arange(n, dtype=np.int64), np.diff(v_csc.indptr)) * n + v_csc.indices
    lut = np.full(n, -1, dtype=np.int64)
    counts, indices, data = [], [], []
    for s, e in _row_blocks(v, v_csc, budget, max_rows=max(64, (1 << 23) // max(n, 1))):
        r, j, w = _triples(v, v_csc, s, e, csc_keys)
        touched = np.flatnonzero(np.bincount(j, minlength=n))
        lut[touched] = np.arange(len(touched))
        m = np.bincount(r * len(touched) + lut[j], weights=w, minlength=(e - s) * len(touched))
        lut[touched] = -1
        limit = min(max_dist, getattr(keep, "bound", 1.0))
        nz = np.flatnonzero(m >= min_sum_floor(limit)) if limit < 1.0 else np.flatnonzero(m)
        rows, cols = np.divmod(nz, max(len(touched), 1))
        cols = touched[cols] if len(touched) else cols
        jac = jaccard_from_min_sums(m[nz])
        jac[jac < SNAP] = 0.0  # identical V rows: exactly 0, not rounding noise of either sign
        if keep is not None or limit < 1.0:
            ok = (jac <= limit) if keep is None else keep(rows + s, cols, jac) & (jac <= max_dist)
            ok |= rows + s == cols
            rows, cols, jac = rows[ok], cols[ok], jac[ok]
        counts.append(np.bincount(rows, minlength=e - s))
        indices.append(cols)
        data.append(jac)
        if progress is not None:
            progress("jaccard", e, n)
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))]) if counts else np.zeros(n + 1, np.int64)
    return sp.csr_matrix((np.concatenate(data) if data else np.zeros(0),
                          np.concatenate(indices) if indices else np.zeros(0, np.int64),
                          indptr), shape=(n, n))


def symmetrize(upper: sp.csr_matrix) -> sp.csr_matrix:
    """Full symmetric matrix from its upper triangle (explicit zeros kept)."""
    n = upper.shape[0]
    coo = upper.tocoo()
    off = coo.row != coo.col
    rows = np.concatenate([coo.row, coo.col[off]])
    cols = np.concatenate([coo.col, coo.row[off]])
    data = np.concatenate([coo.data, coo.data[off]])
    order = np.lexsort((cols, rows))
    counts = np.bincount(rows, minlength=n)
    return sp.csr_matrix((data[order], cols[order], np.concatenate([[0], np.cumsum(counts)])), shape=(n, n))


def min_sums_rows(v: sp.csr_matrix, v_csc: sp.csc_matrix, s: int, e: int,
                  cols: slice | None = None) -> np.ndarray:
    """Dense [e-s, N] (or the ``cols`` slice) of sum_k min(V_ik, V_jk) for rows s..e."""
    n = v.shape[0]
    r, j, w = _triples(v, v_csc, s, e)
    m = np.bincount(r * n + j, weights=w, minlength=(e - s) * n).reshape(e - s, n)
    return m if cols is None else m[:, cols]


def jaccard_from_min_sums(m: np.ndarray) -> np.ndarray:
    """J = 1 - min-sum / max-sum with max-sum = 2 - min-sum (rows of V sum to 1)."""
    return 1.0 - m / (2.0 - m)


def jaccard_distance(features: np.ndarray, k1: int = 30, k2: int = 6, *, variant: str = "spcl",
                     knn_index: str = "auto", device: str = "auto", nprobe: int | None = None, max_dist: float = 1.0,
                     upper_only: bool = False, progress: StageProgress | None = None) -> sp.csr_matrix:
    """Sparse k-reciprocal Jaccard distance of SpCL / Cluster-Contrast
    (``compute_jaccard_distance``, ``variant='spcl'``) or of MMT (``compute_jaccard_dist``,
    ``variant='mmt'``; see the module docstring) on L2-normalised ``features``.

    Args:
        variant: 'spcl' or 'mmt' (`encode_features`).
        max_dist: store only J <= max_dist (the diagonal always); 1.0 stores every pair
            that shares a reciprocal neighbour.
        upper_only: return the upper triangle only (half the memory).
        progress: called per block with ``("neighbours" | "jaccard", rows done, N)``.
    Returns:
        CSR [N, N] float64 holding J for every stored pair (explicit zeros kept); every
        other pair has J = 1 (or > ``max_dist``).
    """
    from reidcli.cluster.knn import l2_normalize

    x = l2_normalize(features)
    v = encode_features(x, k1, k2, variant=variant, knn_index=knn_index, device=device, nprobe=nprobe, progress=progress)
    upper = jaccard_upper(v, max_dist=max_dist, progress=progress)
    return upper if upper_only else symmetrize(upper)


def encode_features(x: np.ndarray, k1: int, k2: int, *, variant: str = "spcl", knn_index: str = "auto",
                    device: str = "auto", nprobe: int | None = None, progress: StageProgress | None = None,
                    timings: dict | None = None) -> sp.csr_matrix:
    """V (`encode`) of the L2-normalised rows of ``x`` as ``variant``'s code computes it.

    'spcl': the neighbours of `reidcli.cluster.knn.knn` (``knn_index``, faiss's GPU with
    ``device``), ``k1`` of them, kernel distance ``2 - 2 cos``. 'mmt': an exact blocked search
    (`knn_rowmax`, torch on the GPU when faiss searches there, `faiss_on_gpu`) for
    ``k1 + 1`` neighbours and each row's largest distance, kernel distance
    ``|x_i - x_j|^2 / max_j' |x_i - x_j'|^2``; ``knn_index`` 'ivf' does not apply to it.
    ``timings`` (a dict) receives ``knn_s`` and ``encode_s``.
    """
    import time

    from reidcli.cluster.knn import knn, knn_rowmax
    from reidcli.utils.params import NotApplicable, Options, check_value

    check_value("variant", variant, [Options(VARIANTS)])
    n, t0 = len(x), time.perf_counter()
    if variant == "spcl":
        dist, rank = knn(x, k1, index=knn_index, device=device, nprobe=nprobe, progress=progress)
        kernel = KnnLookup(dist, rank, lambda r, c: 2.0 - 2.0 * pair_dots(x, r, c))
    else:
        if knn_index == "ivf":
            raise NotApplicable("knn_index", "'ivf' does not apply to variant 'mmt': its distances are divided by "
                                          "each row's maximum, which takes the exact search; use auto or flat")
        block = int(max(64, min(2048, (1 << 26) // max(n, 1))))  # [block, N] float32 slabs, 256 MiB at most
        dist, rank, rowmax = knn_rowmax(x, max(k1 + 1, k2), block=block, device=_rowmax_device(device))
        if progress is not None:
            progress("neighbours", n, n)
        rowmax = np.maximum(rowmax.astype(np.float64), np.finfo(np.float32).tiny)
        sq = np.einsum("ij,ij->i", x, x)
        look = KnnLookup(dist, rank, lambda r, c: np.maximum(sq[r] + sq[c] - 2.0 * pair_dots(x, r, c), 0.0))

        def kernel(r: np.ndarray, c: np.ndarray) -> np.ndarray:
            return look(r, c) / rowmax[r]
    t1 = time.perf_counter()
    if progress is not None:
        progress("jaccard", 0, n)  # the k-reciprocal encoding, before the first row block
    v = encode(rank, k1, k2, kernel)
    if timings is not None:
        timings.update(knn_s=t1 - t0, encode_s=time.perf_counter() - t1)
    return v


def _rowmax_device(device: str) -> str:
    """The torch device of `knn_rowmax`: the GPU where faiss would search (`faiss_on_gpu`)."""
    from reidcli.cluster.knn import faiss_on_gpu

    return ("cuda" if device == "auto" else device) if faiss_on_gpu(device) else "cpu"


class KnnLookup:
    """d(i, j) for pairs: read from the k-NN lists where j is one, else ``fallback`` (a GEMV-free
    gather of the few pairs, e.g. half-set members, that lie outside i's list)."""

    def __init__(self, dist: np.ndarray, rank: np.ndarray, fallback: PairDist):
        n = rank.shape[0]
        keys = (np.arange(n, dtype=np.int64)[:, None] * n + rank).ravel()
        ok = rank.ravel() >= 0
        order = np.argsort(keys[ok], kind="stable")
        self.keys, self.vals = keys[ok][order], dist.ravel()[ok][order].astype(np.float64)
        self.n, self.fallback = n, fallback

    def __call__(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        want = rows * self.n + cols
        pos = np.minimum(np.searchsorted(self.keys, want), max(len(self.keys) - 1, 0))
        found = self.keys[pos] == want if len(self.keys) else np.zeros(len(want), bool)
        out = np.empty(len(want), np.float64)
        out[found] = self.vals[pos[found]]
        miss = ~found
        if miss.any():
            out[miss] = self.fallback(rows[miss], cols[miss])
        return out


def pair_dots(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, block: int = 128) -> np.ndarray:
    """x[rows[t]] . x[cols[t]] for every t, float32, in cache-sized blocks (large fancy-index
    gathers spend their time faulting in fresh pages)."""
    out = np.empty(len(rows), np.float32)
    for s in range(0, len(rows), block):
        a = np.take(x, rows[s : s + block], axis=0)
        b = np.take(x, cols[s : s + block], axis=0)
        out[s : s + block] = np.einsum("ij,ij->i", a, b)
    return out
