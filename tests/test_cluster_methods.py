"""Label expansion, k-means, quality metrics and the array-level API of reidcli.cluster."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from reidcli.cluster import CLUSTERERS, ClustererOptions, cluster_features
from reidcli.cluster.expand import expand_labels
from reidcli.cluster.kmeans import kmeans_labels
from reidcli.cluster.methods import (
    EuclideanDbscanOptions,
    JaccardDbscanOptions,
    make_options,
)
from reidcli.cluster.quality import cluster_quality
from reidcli.utils.errors import ConfigError
from reidcli.utils.params import ParamError


def unit(*rows):
    x = np.array(rows, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_label_expansion_hand_built():
    # three clusters on three axes; cluster 2 is loose, so with keep_clusters=2 it is dropped
    x = unit([1, 0, 0], [1, .05, 0], [1, 0, .05],        # cluster 0 (tight)
             [0, 1, 0], [.05, 1, 0], [0, 1, .05],        # cluster 1 (tight)
             [0, .5, 1], [.5, 0, 1], [0, 0, 1],          # cluster 2 (loose)
             [1, .3, 0],                                 # outlier near cluster 0: cos 0.96
             [0.7, 0.7, 0],                              # outlier between 0 and 1: cos 0.71
             [0, 1, .4])                                 # outlier near cluster 1: cos 0.93
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, -1, -1, -1])
    out, templates = expand_labels(x, labels, threshold=0.8, keep_clusters=2)
    np.testing.assert_array_equal(out, [0, 0, 0, 1, 1, 1, -1, -1, -1, 0, -1, 1])
    assert templates.shape == (2, 3)
    np.testing.assert_allclose(np.linalg.norm(templates, axis=1), 1, atol=1e-6)
    out_all, _ = expand_labels(x, labels, threshold=0.8)  # keep everything: cluster 2 stays
    assert (out_all[6:9] == 2).all() and out_all[9] == 0 and out_all[10] == -1


def test_kmeans_is_deterministic_with_a_seed():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    a, ca = kmeans_labels(x, 12, seed=3)
    b, cb = kmeans_labels(x, 12, seed=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ca, cb)
    c, _ = kmeans_labels(x, 12, seed=4)
    assert not np.array_equal(a, c)
    assert set(a) <= set(range(12))


def test_quality_metrics_on_known_case():
    pids = np.array([0, 0, 0, 1, 1, 1, 2, 2, -1])
    labels = np.array([0, 0, 1, 1, 1, -1, 2, 2, 0])
    q = cluster_quality(labels, pids)
    # pairs: same cluster {0,1},{2,3},{2,4},{3,4},{6,7} = 5; correct {0,1},{3,4},{6,7} = 3
    assert q["pair_precision"] == pytest.approx(3 / 5)
    assert q["pair_recall"] == pytest.approx(3 / 7)  # same-id pairs: 3 + 3 + 1
    assert q["n_ids"] == 3 and q["n_clusters"] == 3 and q["n_images"] == 8
    assert q["outlier_rate"] == pytest.approx(1 / 8)
    perfect = cluster_quality(pids[:8], pids[:8])
    assert perfect["ari"] == pytest.approx(1) and perfect["nmi"] == pytest.approx(1)


def blobs(n_ids=6, per=40, d=32, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(n_ids, d))
    return (np.repeat(c, per, 0) + 0.3 * rng.normal(size=(n_ids * per, d))).astype(np.float32), \
        np.repeat(np.arange(n_ids), per)


@pytest.mark.parametrize("kw", [{}, {"eps": "auto", "eps_quantile": 0.02}, {"method": "dbscan-euclidean", "eps": 0.7},
                                {"method": "kmeans", "k": 6}, {"method": "dbscan-euclidean", "eps": 0.7,
                                                                 "expand_threshold": 0.8, "keep_clusters": 5}])
def test_every_method_recovers_easy_blobs(kw):
    x, pids = blobs()
    res = cluster_features(x, centers=True, **kw)
    q = cluster_quality(res.labels, pids)
    assert q["pair_precision"] > 0.95, (kw, q)
    assert res.centers.shape == (res.n_clusters, 32)
    assert res.labels.min() >= -1 and set(res.labels[res.labels >= 0]) == set(range(res.n_clusters))


@pytest.mark.parametrize("kw,param,message", [
    ({"eps": 0}, "eps", "eps must be a float in (0, 1] or 'auto'; got 0"),
    ({"eps": 1.5}, "eps", "eps must be a float in (0, 1] or 'auto'; got 1.5"),
    ({"eps": -1}, "eps", "eps must be a float in (0, 1] or 'auto'; got -1"),
    ({"eps": "0.5"}, "eps", "eps must be a float in (0, 1] or 'auto'; got '0.5'"),
    ({"k1": 500}, "k1", "k1 must be an int in [1, 240] (the input holds 240 features); got 500"),
    ({"k2": 0}, "k2", "k2 must be an int >= 1; got 0"),
    ({"min_samples": 0}, "min_samples", "min_samples must be an int >= 1; got 0"),
    ({"knn_index": "hnsw"}, "knn_index", "knn_index must be one of auto, flat, ivf; got 'hnsw'"),
    ({"eps_quantile": 0.5}, "eps_quantile", "eps_quantile applies only with eps 'auto'; got eps 0.6"),
    ({"method": "kmeans", "k": 10**6}, "k", "k must be an int in [1, 240] (the input holds 240 features); got 1000000"),
    ({"method": "kmeans", "kmeans_iter": 0}, "kmeans_iter", "kmeans_iter must be an int >= 1; got 0"),
    ({"method": "dbscan-euclidean", "eps": "bogus"}, "eps", "eps must be a float > 0 or 'auto'; got 'bogus'"),
    ({"method": "dbscan-euclidean", "eps_quantile": 0.1}, "eps_quantile",
     "eps_quantile applies only with eps 'auto'; got eps 1.0"),
    ({"keep_clusters": 3}, "keep_clusters", "keep_clusters needs expand_threshold"),
    ({"expand_threshold": 1.5}, "expand_threshold", "expand_threshold must be a float in [-1, 1] (or None); got 1.5"),
    ({"device": "maybe"}, "device", "device must be auto | cpu | cuda | cuda:N; got 'maybe'"),
    ({"camera_norm": True}, "camera_norm", "camera_norm needs one camera id per row of the input"),
])
def test_bad_parameters_name_the_parameter(kw, param, message):
    """One message shape (`<param> must be ...; got ...`), a ParamError carrying the name."""
    x, _ = blobs()
    with pytest.raises(ParamError) as exc:
        cluster_features(x, **kw)
    assert exc.value.param == param and str(exc.value).startswith(message), str(exc.value)
    assert isinstance(exc.value, ConfigError) and "\n" not in str(exc.value)


def test_unknown_method_uses_the_registry_did_you_mean():
    x, _ = blobs()
    with pytest.raises(ConfigError, match=r"unknown clusterer 'kmean'; did you mean 'kmeans'\? \(choices: "
                                          r"dbscan-euclidean, dbscan-jaccard, kmeans\)"):
        cluster_features(x, method="kmean")


@pytest.mark.parametrize("method,option", [("dbscan-jaccard", "k"), ("dbscan-jaccard", "kmeans_iter"),
                                           ("kmeans", "k1"), ("kmeans", "eps"), ("kmeans", "min_samples"),
                                           ("dbscan-euclidean", "k2"), ("dbscan-euclidean", "knn_index"),
                                           ("kmeans", "eps_quantile"), ("kmeans", "epss")])
def test_an_option_of_another_method_is_rejected(method, option):
    x, _ = blobs()
    with pytest.raises(ParamError, match=rf"^{option} does not apply to --method {method}") as exc:
        cluster_features(x, method=method, **{option: 5})
    assert exc.value.param == option
    assert make_options(method, given={option: None}) == CLUSTERERS.get(method)()  # None = not given


def test_registry_lists_each_clusterer_with_its_options_dataclass():
    import dataclasses

    assert CLUSTERERS.names() == ["dbscan-euclidean", "dbscan-jaccard", "kmeans"]
    for name in CLUSTERERS:
        cls = CLUSTERERS.get(name)
        assert dataclasses.is_dataclass(cls) and issubclass(cls, ClustererOptions)
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        assert fields and all(d is not dataclasses.MISSING for d in fields.values()), name
        assert set(cls.CONSTRAINTS) == set(fields), name  # every option is checked
    assert JaccardDbscanOptions().eps == 0.6 and EuclideanDbscanOptions().eps == 1.0


def test_dispatch_goes_through_the_registry():
    """A clusterer registered at run time is reachable by name, with its options and checks."""
    from dataclasses import dataclass

    from reidcli.utils.params import Interval

    @dataclass
    class HalvesOptions(ClustererOptions):
        cut: float = 0.0
        CONSTRAINTS: ClassVar[dict] = {"cut": [Interval(float, -1, 1)]}

        def fit(self, x, ctx):
            ctx.timings["halves_s"] = 0.0
            return (x[:, 0] > self.cut).astype(np.int64), {"cut": self.cut}

    CLUSTERERS.add("test-halves", HalvesOptions)
    try:
        x, _ = blobs()
        res = cluster_features(x, method="test-halves", cut=0.1, seed=5)
        assert res.params == {"method": "test-halves", "normalized": True, "seed": 5, "camera_norm": False, "cut": 0.1}
        assert set(res.labels) <= {0, 1} and "halves_s" in res.timings
        with pytest.raises(ParamError, match="cut must be a float in"):
            cluster_features(x, method="test-halves", cut=2.0)
        with pytest.raises(ParamError, match="k1 does not apply to --method test-halves"):
            cluster_features(x, method="test-halves", k1=3)
    finally:
        CLUSTERERS._items.pop("test-halves")


def test_options_object_equals_keyword_options():
    x, _ = blobs()
    by_kw = cluster_features(x, method="dbscan-euclidean", eps=0.7, min_samples=3)
    by_obj = cluster_features(x, method="dbscan-euclidean", options=EuclideanDbscanOptions(eps=0.7, min_samples=3))
    np.testing.assert_array_equal(by_kw.labels, by_obj.labels)
    assert by_kw.params == by_obj.params
    with pytest.raises(ParamError, match="options must be a KMeansOptions"):
        cluster_features(x, method="kmeans", options=EuclideanDbscanOptions())


def test_eps_one_is_allowed_and_gives_one_cluster():
    x, _ = blobs()
    assert set(cluster_features(x, eps=1.0).labels) == {0}


@pytest.mark.parametrize("n,block,k", [(300, 64, 10), (257, 100, 30), (40, 1024, 40)])
def test_symmetric_blocked_knn_is_exact(n, block, k):
    from reidcli.cluster.knn import knn_exact

    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 24)).astype(np.float32)
    d2 = ((x[:, None].astype(np.float64) - x[None]) ** 2).sum(-1)
    want = np.sort(d2, axis=1)[:, :k]
    dist, idx = knn_exact(x, k, block=block)  # several row blocks: column top-k merged across them
    assert dist.shape == idx.shape == (n, k) and (idx >= 0).all()
    np.testing.assert_allclose(dist, want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.take_along_axis(d2, idx, 1), want, rtol=1e-5, atol=1e-4)
    assert (idx[:, 0] == np.arange(n)).all()
    assert all(len(set(r)) == k for r in idx)


def test_bounded_merges_stay_exact(monkeypatch):
    """Past the first k rows, slab entries are merged only when they are within a list's
    k-th distance; on clustered points that path (not the fallback selection) runs, and the
    lists equal the brute-force ones."""
    import reidcli.cluster.knn as knn_mod

    rng = np.random.default_rng(3)
    x = (np.repeat(rng.normal(size=(60, 16)), 10, 0) + 0.05 * rng.normal(size=(600, 16))).astype(np.float32)
    real, used = knn_mod._merge_below, []
    monkeypatch.setattr(knn_mod, "_merge_below", lambda *a, **kw: used.append(real(*a, **kw)) or used[-1])
    dist, idx = knn_mod.knn_exact(x, 8, block=64)
    assert sum(used) >= 10  # most blocks took the bounded path
    d2 = ((x[:, None].astype(np.float64) - x[None]) ** 2).sum(-1)
    want = np.sort(d2, axis=1)[:, :8]
    np.testing.assert_allclose(dist, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.take_along_axis(d2, idx, 1), want, rtol=1e-5, atol=1e-5)
    assert all(len(set(r)) == 8 for r in idx)


def test_ivf_cells_find_neighbours_when_cells_follow_clusters():
    from reidcli.cluster.knn import knn, knn_exact

    x, _ = blobs(n_ids=16, per=30, d=16, seed=2)
    _, exact = knn_exact(x, 10)
    _, approx = knn(x, 10, index="ivf", nlist=16, nprobe=3, device="cpu")
    recall = np.mean([len(np.intersect1d(a, b)) for a, b in zip(approx, exact)]) / 10
    assert recall > 0.95
    _, few = knn(x, 10, index="ivf", nlist=16, nprobe=1, device="cpu", seed=1)
    assert (few[:, 0] == np.arange(len(x))).all()


def _camera_biased(n_ids=12, per_cam=4, n_cams=3, dim=32, seed=0):
    """Identity signal weaker than a per-camera offset: plain clustering groups cameras."""
    rng = np.random.default_rng(seed)
    ids = rng.normal(size=(n_ids, dim))
    cams = rng.normal(size=(n_cams, dim)) * 3.0
    x, pids, camids = [], [], []
    for p in range(n_ids):
        for c in range(n_cams):
            for _ in range(per_cam):
                x.append(ids[p] + cams[c] + 0.15 * rng.normal(size=dim))
                pids.append(p)
                camids.append(c)
    return np.asarray(x, np.float32), np.asarray(pids), np.asarray(camids)


def test_camera_norm_makes_clusters_follow_identities_not_cameras():
    from reidcli.cluster.run import centre_cameras

    x, pids, camids = _camera_biased()
    kw = {"method": "dbscan-euclidean", "eps": 0.5, "min_samples": 3}
    plain = cluster_features(x, **kw)
    centred = cluster_features(x, camids=camids, camera_norm=True, **kw)
    assert cluster_quality(plain.labels, pids)["ari"] < 0.5
    assert cluster_quality(centred.labels, pids)["ari"] > 0.9
    assert centred.params["camera_norm"] is True
    # per-camera means are zero before re-normalisation; rows stay unit length
    z = centre_cameras(x / np.linalg.norm(x, axis=1, keepdims=True), camids)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ParamError, match="camera_norm needs one camera id"):
        cluster_features(x, camera_norm=True, **kw)


def test_euclidean_auto_eps_is_the_mean_of_the_smallest_pairwise_distances():
    """Against a direct computation: every pairwise distance (scipy), zeros dropped, the
    first round(fraction * count) of the sorted values averaged (SSG / MMT's eps rule)."""
    from scipy.spatial.distance import pdist

    from reidcli.cluster.dbscan import euclidean_auto_eps

    rng = np.random.default_rng(3)
    x = rng.normal(size=(301, 12)).astype(np.float32)
    x[7] = x[8]  # a duplicate: distance 0 is left out, as the public code does
    d = np.sort(pdist(x.astype(np.float64)))
    d = d[d > 0]
    for fraction in (1.6e-3, 0.02, 0.3):
        want = d[:int(np.round(fraction * len(d)))].mean()
        assert euclidean_auto_eps(x, fraction, chunk=64) == pytest.approx(want, rel=1e-5)


def test_euclidean_dbscan_eps_auto_finds_the_clusters_a_fixed_eps_merges():
    from reidcli.cluster import cluster_features

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 16))
    x = (np.repeat(centres, 10, axis=0) + 0.05 * rng.normal(size=(80, 16))).astype(np.float32)
    merged = cluster_features(x, method="dbscan-euclidean", eps=1.5)  # ULA's raw-space scale, too wide here
    assert merged.n_clusters < 8
    res = cluster_features(x, method="dbscan-euclidean", eps="auto", eps_quantile=0.15)  # 11% same-cluster pairs
    assert res.n_clusters == 8 and res.n_outliers == 0
    assert res.params["eps_mode"] == "auto" and 0 < res.params["eps"] < 1.5


def _recorder():
    calls: list[tuple[str, int, int]] = []
    return calls, lambda stage, done, total: calls.append((stage, done, total))


def test_neighbour_and_jaccard_stages_report_once_per_block():
    """Issue 16 (progress at real scale): the blocked stages call `progress` once per block of
    rows, with the rows done so far, never once per row; the results do not change."""
    from reidcli.cluster.jaccard import KnnLookup, encode, jaccard_upper, pair_dots
    from reidcli.cluster.knn import knn_exact

    x = blobs()[0]
    n = len(x)
    calls, progress = _recorder()
    dist, idx = knn_exact(x, 10, block=64, progress=progress)
    assert calls == [("neighbours", e, n) for e in (64, 128, 192, 240)]
    ref_d, ref_i = knn_exact(x, 10, block=64)
    np.testing.assert_array_equal(dist, ref_d)
    np.testing.assert_array_equal(idx, ref_i)

    v = encode(idx, 10, 4, KnnLookup(dist, idx, lambda r, c: 2.0 - 2.0 * pair_dots(x, r, c)))
    calls.clear()
    upper = jaccard_upper(v, budget=10_000, progress=progress)
    done = [d for _, d, _ in calls]
    assert {s for s, _, _ in calls} == {"jaccard"} and {t for _, _, t in calls} == {n}
    assert 1 < len(done) < n / 4 and done == sorted(set(done)) and done[-1] == n
    assert (upper != jaccard_upper(v, budget=10_000)).nnz == 0


def test_radius_graph_in_blocks_equals_one_search_and_reports_each_block():
    from reidcli.cluster.dbscan import radius_graph

    x = blobs()[0]
    calls, progress = _recorder()
    blocked = radius_graph(x, 2.5, block=100, progress=progress)
    assert calls == [("neighbours", 100, 240), ("neighbours", 200, 240), ("neighbours", 240, 240)]
    whole = radius_graph(x, 2.5, block=10_000)
    assert blocked.nnz == whole.nnz > len(x)
    np.testing.assert_array_equal(blocked.indptr, whole.indptr)
    np.testing.assert_array_equal(blocked.indices, whole.indices)
    np.testing.assert_array_equal(blocked.data, whole.data)


@pytest.mark.parametrize("kw,stages", [
    ({}, ["neighbours", "jaccard", "dbscan"]),
    ({"method": "dbscan-euclidean", "eps": "auto"}, ["eps auto", "neighbours", "dbscan"]),
    ({"method": "kmeans", "k": 4}, ["k-means"]),
])
def test_every_clusterer_reports_its_stages_to_the_end(kw, stages):
    x, _ = blobs()
    calls, progress = _recorder()
    res = cluster_features(x, progress=progress, **kw)
    seen = list(dict.fromkeys(s for s, _, _ in calls))
    assert seen == stages
    for stage in stages:  # each stage climbs to its total, never back
        done = [d for s, d, t in calls if s == stage]
        total = {t for s, _, t in calls if s == stage}
        assert len(total) == 1 and done == sorted(done) and done[-1] == total.pop()
    assert len(calls) < len(x) / 4  # per block or step, not per row
    np.testing.assert_array_equal(res.labels, cluster_features(x, **kw).labels)
