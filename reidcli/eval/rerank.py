"""k-reciprocal re-ranking (Zhong, Zheng, Cao, Li: "Re-ranking Person Re-identification with
k-reciprocal Encoding", CVPR 2017), sparse and chunked.

Same distances as the published ``re_ranking(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda)``:
the original distance is the squared Euclidean distance over query + gallery, each row
divided by its maximum; V is the Gaussian-weighted k-reciprocal encoding with the 2/3
expansion rule (eq. 4, 7), locally query-expanded over k2 neighbours (eq. 11); the final
distance is ``(1 - lambda) * Jaccard + lambda * original`` (eq. 13). Neighbour lists and row
maxima come from one blocked exact search, V is sparse (`reidcli.cluster.jaccard`, shared
with clustering), and the [Q, G] result is produced ``chunk`` query rows at a time, so no
(Q + G) x (Q + G) array is ever built (MSMT17's 93,820 images fit in a few GiB).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from reidcli.utils.errors import ConfigError
from reidcli.utils.params import Interval, check_params

_BINS = 1 << 24  # float64 cells per Jaccard sub-block (128 MiB)
RERANK_CONSTRAINTS = {"k1": [Interval(int, 1, None)], "k2": [Interval(int, 1, None)],
                      "lambda_value": [Interval(float, 0, 1)], "chunk": [Interval(int, 1, None)]}


@dataclass(frozen=True)
class RerankOptions:
    """The k-reciprocal re-ranking parameters (Zhong et al., CVPR 2017: k1 20, k2 6, lambda
    0.3 on Market-1501), the one home of their defaults (`reid evaluate --k1/--k2/--lambda`)."""

    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3


def _encode_all(x: np.ndarray, k1: int, k2: int, device: str):
    from reidcli.cluster.jaccard import KnnLookup, encode, pair_dots
    from reidcli.cluster.knn import knn_rowmax

    n = len(x)
    block = int(max(64, min(2048, (1 << 26) // max(n, 1))))
    dist, rank, rowmax = knn_rowmax(x, max(k1 + 1, k2), block=block, device=device)
    rowmax = np.maximum(rowmax.astype(np.float64), np.finfo(np.float32).tiny)
    sq = np.einsum("ij,ij->i", x, x)

    def raw(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.maximum(sq[r] + sq[c] - 2.0 * pair_dots(x, r, c), 0.0)

    look = KnnLookup(dist, rank, raw)
    v = encode(rank, k1, k2, lambda r, c: look(r, c) / rowmax[r])
    return v, rowmax, sq


def rerank_chunks(qf: np.ndarray, gf: np.ndarray, *, k1: int = RerankOptions.k1, k2: int = RerankOptions.k2,
                  lambda_value: float = RerankOptions.lambda_value, chunk: int = 256,
                  device: str = "cpu") -> Iterator[tuple[int, np.ndarray]]:
    """Re-ranked query x gallery distances, ``chunk`` query rows at a time.

    Args:
        qf, gf: [Q, D] and [G, D] features (as the caller prepared them, e.g. normalised).
        k1, k2, lambda_value: the paper's parameters (20, 6, 0.3).
        chunk: query rows per yielded block.
        device: torch device for the neighbour search.
    Yields:
        (first query row, [b, G] float32 final distances).
    """
    from reidcli.cluster.jaccard import jaccard_from_min_sums, min_sums_rows

    qf = np.ascontiguousarray(qf, dtype=np.float32)
    gf = np.ascontiguousarray(gf, dtype=np.float32)
    if qf.ndim != 2 or gf.ndim != 2 or qf.shape[1] != gf.shape[1]:
        raise ConfigError(f"re-ranking needs [Q, D] and [G, D] features; got {qf.shape} and {gf.shape}")
    check_params({"k1": k1, "k2": k2, "lambda_value": lambda_value, "chunk": chunk}, RERANK_CONSTRAINTS)
    nq = len(qf)
    x = np.concatenate([qf, gf])
    v, rowmax, sq = _encode_all(x, k1, k2, device)
    v_csc = v.tocsc()
    v_csc.sort_indices()
    sub = max(1, _BINS // len(x))
    for s in range(0, nq, chunk):
        e = min(s + chunk, nq)
        orig = sq[s:e, None] + sq[None, nq:] - 2.0 * (qf[s:e] @ gf.T)
        np.maximum(orig, 0.0, out=orig)
        out = (lambda_value / rowmax[s:e, None] * orig).astype(np.float32)
        for a in range(s, e, sub):
            b = min(a + sub, e)
            m = min_sums_rows(v, v_csc, a, b, slice(nq, None))
            out[a - s : b - s] += ((1.0 - lambda_value) * jaccard_from_min_sums(m)).astype(np.float32)
        yield s, out


def rerank_dense(qf: np.ndarray, gf: np.ndarray, **kwargs) -> np.ndarray:
    """The whole [Q, G] re-ranked distance matrix (small inputs; see `rerank_chunks`)."""
    return np.concatenate([d for _, d in rerank_chunks(qf, gf, **kwargs)]) if len(qf) else \
        np.zeros((0, len(gf)), np.float32)
