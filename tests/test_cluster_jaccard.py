"""Sparse Jaccard + DBSCAN against a dense, loop-by-loop transcription of the published code
(SpCL / Cluster-Contrast's ``compute_jaccard_distance``, and MMT's ``compute_jaccard_dist``:
tests/reference_jaccard.py)."""

from __future__ import annotations

import numpy as np
import pytest
from reference_jaccard import dense_jaccard, k_reciprocal
from sklearn.cluster import DBSCAN

from reidcli.cluster.dbscan import auto_eps, dbscan_graph
from reidcli.cluster.jaccard import jaccard_distance, reciprocal_sets


def blobs(n_ids=12, per=8, d=32, noise=0.35, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, d))
    x = np.repeat(centres, per, axis=0) + noise * rng.normal(size=(n_ids * per, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(n_ids), per)


def ref_jaccard(x, k1, k2, variant="spcl"):
    """The dense reference (tests/reference_jaccard.py) in float64, with float noise below
    1e-12 snapped to 0 too (the published code clips only negatives)."""
    jac = dense_jaccard(x, k1, k2, variant)
    jac[jac < 1e-12] = 0
    return jac


@pytest.mark.parametrize("variant", ["spcl", "mmt"])
@pytest.mark.parametrize("k1,k2", [(8, 3), (12, 1), (6, 6)])
def test_sparse_jaccard_equals_dense_reference(k1, k2, variant):
    x, _ = blobs()
    ref = ref_jaccard(x, k1, k2, variant)
    jac = jaccard_distance(x, k1=k1, k2=k2, variant=variant).toarray()
    stored = jaccard_distance(x, k1=k1, k2=k2, variant=variant)
    mask = np.zeros_like(ref, dtype=bool)
    rows = np.repeat(np.arange(len(x)), np.diff(stored.indptr))
    mask[rows, stored.indices] = True
    assert mask.diagonal().all()
    np.testing.assert_allclose(jac[mask], ref[mask], atol=1e-6)
    assert np.all(ref[~mask] == 1.0)  # every pair the sparse path drops is exactly 1
    assert 0 < mask.mean() < 0.8  # the graph really is sparse


def test_max_dist_stores_exactly_the_pairs_within_it():
    """``max_dist`` (pairs dropped on their min-sum before J is formed) stores the same
    entries, with the same values, as filtering the whole matrix, also when the bound is
    one of the stored distances (the boundary pair is kept)."""
    x, _ = blobs()
    full = jaccard_distance(x, k1=8, k2=3)
    coo = full.tocoo()
    dense = np.ones(full.shape)  # unstored pairs: J = 1

    dense[coo.row, coo.col] = coo.data
    for bound in (0.3, float(np.median(coo.data[coo.data > 0])), 0.0):
        got = jaccard_distance(x, k1=8, k2=3, max_dist=bound).tocoo()
        want = (dense <= bound) | np.eye(len(x), dtype=bool)
        assert sorted(zip(got.row.tolist(), got.col.tolist())) == sorted(zip(*np.nonzero(want)))
        np.testing.assert_array_equal(got.toarray()[want], dense[want])


def test_reciprocal_sets_are_symmetric():
    x, _ = blobs(seed=3)
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    rank = np.argsort(d2, axis=1)[:, :10]
    r = reciprocal_sets(rank, 5)
    assert (r != r.T).nnz == 0
    assert set(r[0].indices) == set(k_reciprocal(rank, 0, 5))


@pytest.mark.parametrize("variant", ["spcl", "mmt"])
@pytest.mark.parametrize("eps,min_samples", [(0.3, 4), (0.5, 4), (0.6, 3), (0.75, 6)])
def test_dbscan_on_sparse_graph_matches_sklearn_on_dense(eps, min_samples, variant):
    x, _ = blobs(noise=0.5, seed=1)
    ref = ref_jaccard(x, 10, 4, variant)
    want = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(ref)
    got = dbscan_graph(jaccard_distance(x, k1=10, k2=4, variant=variant), eps, min_samples, missing=1.0)
    assert len(set(want)) > 2
    np.testing.assert_array_equal(got, want)  # same numbering as scikit-learn, not just up to it


def test_the_mmt_variant_through_cluster_features_and_one_eps_cutting_the_two_differently():
    """`cluster_features(jaccard='mmt')` (`reid cluster --jaccard mmt`) clusters the dense
    MMT reference as scikit-learn does, records the variant, and the two variants'
    distances differ enough that one eps gives two clusterings."""
    from reidcli.cluster.run import cluster_features

    x, _ = blobs(noise=1.0, seed=1)
    eps = 0.5
    got = {v: cluster_features(x, method="dbscan-jaccard", k1=10, k2=4, eps=eps, min_samples=4, jaccard=v, device="cpu")
           for v in ("spcl", "mmt")}
    for v, res in got.items():
        want = DBSCAN(eps=eps, min_samples=4, metric="precomputed").fit_predict(ref_jaccard(x, 10, 4, v))
        assert res.params["jaccard"] == v
        pairs = set(zip(res.labels.tolist(), want.tolist()))  # the same partition, up to the numbering
        assert len(pairs) == len(set(want)) == len(set(res.labels.tolist()))
        assert all((a < 0) == (b < 0) for a, b in pairs)
    assert got["spcl"].n_outliers == 10 and got["mmt"].n_outliers == 4  # one eps, two clusterings


def test_the_mmt_variant_refuses_the_approximate_search():
    from reidcli.cluster.run import cluster_features
    from reidcli.utils.params import ParamError

    x, _ = blobs()
    with pytest.raises(ParamError, match="knn_index 'ivf' does not apply to jaccard 'mmt'"):
        cluster_features(x, method="dbscan-jaccard", k1=8, k2=3, jaccard="mmt", knn_index="ivf")
    with pytest.raises(ParamError, match="jaccard must be one of spcl, mmt; got 'zhong'"):
        cluster_features(x, method="dbscan-jaccard", jaccard="zhong")


def test_dbscan_eps_one_is_everything_one_cluster():
    x, _ = blobs()
    g = jaccard_distance(x, k1=8, k2=3)
    assert (dbscan_graph(g, 1.0, 4, missing=1.0) == 0).all()
    want = DBSCAN(eps=1.0, min_samples=4, metric="precomputed").fit_predict(ref_jaccard(x, 8, 3))
    assert (want == 0).all()


def test_auto_eps_matches_dense_heuristic():
    x, _ = blobs()
    ref = ref_jaccard(x, 8, 3)
    tri = np.triu(ref, 1)
    tri = np.sort(tri[np.nonzero(tri)], axis=None)
    for frac in (1.6e-3, 0.05, 0.6):
        top = int(np.round(frac * tri.size))
        assert auto_eps(jaccard_distance(x, k1=8, k2=3), frac) == pytest.approx(tri[:top].mean(), abs=1e-6)
