"""Sparse, chunked k-reciprocal re-ranking against a dense transcription of Zhong et al. 2017."""

from __future__ import annotations

import numpy as np
import pytest
from reference_jaccard import encode, jaccard_rows

from reidcli.eval.rerank import rerank_chunks, rerank_dense


def dense_re_ranking(qf, gf, k1, k2, lam):
    """The published re_ranking(q_g_dist, q_q_dist, g_g_dist) in float64: the squared distance
    of all N = q + g rows divided by its column maxima, then transposed (each row by its own
    maximum), ranked; the k-reciprocal encoding and the Jaccard rows of the queries from the
    dense reference (tests/reference_jaccard.py); their blend with that distance."""
    x = np.concatenate([qf, gf]).astype(np.float64)
    nq = len(qf)
    orig = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    orig = np.transpose(orig / np.max(orig, axis=0))
    rank = np.argsort(orig, axis=1, kind="stable")
    v = encode(rank, lambda i, idx: orig[i, idx], k1, k2)
    jac = jaccard_rows(v, range(nq))
    final = jac * (1 - lam) + orig[:nq] * lam
    return final[:, nq:]


def feats(nq=14, ng=50, d=24, ids=9, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(ids, d))
    x = c[rng.integers(0, ids, nq + ng)] + 0.6 * rng.normal(size=(nq + ng, d))
    return x[:nq].astype(np.float32), x[nq:].astype(np.float32)


@pytest.mark.parametrize("k1,k2,lam", [(20, 6, 0.3), (7, 3, 0.5), (10, 1, 0.0), (5, 8, 1.0)])
def test_rerank_matches_dense_reference(k1, k2, lam):
    qf, gf = feats()
    ref = dense_re_ranking(qf, gf, k1, k2, lam)
    got = rerank_dense(qf, gf, k1=k1, k2=k2, lambda_value=lam, chunk=5)
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


def test_chunks_cover_every_query_in_order():
    qf, gf = feats(nq=11, ng=30, seed=2)
    starts = [s for s, d in rerank_chunks(qf, gf, k1=6, k2=3, chunk=4)]
    assert starts == [0, 4, 8]
    whole = rerank_dense(qf, gf, k1=6, k2=3, chunk=100)
    parts = np.concatenate([d for _, d in rerank_chunks(qf, gf, k1=6, k2=3, chunk=3)])
    # not bit-equal: OpenBLAS's float32 GEMM sums in another order for a 3-row block than
    # for an 11-row one (about 1e-7 here), so chunking agrees to float32 rounding only
    np.testing.assert_allclose(whole, parts, rtol=0, atol=1e-6)


def test_unnormalised_features_and_tiny_sets():
    qf, gf = feats(nq=3, ng=4, d=5, seed=5)
    qf *= 7.0
    np.testing.assert_allclose(rerank_dense(qf, gf, k1=20, k2=6), dense_re_ranking(qf, gf, 20, 6, 0.3), atol=1e-5)
