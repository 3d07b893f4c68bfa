"""Property tests (hypothesis): the library against straightforward references.

- DBSCAN on the sparse distance graph vs scikit-learn's DBSCAN on the dense matrix;
- rank metrics (Market-1501 protocol) vs a per-query loop written here;
- `reid features --shard i/n` + `reid merge` vs one `reid features` run.

Few examples each (deadline off) so the file runs in seconds.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from fixtures_contracts import CPU, library, reid_ok, tiny_source
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reidcli.io.h5 import read_features

LIB = library()
FAST = settings(max_examples=40, deadline=None, derandomize=True, database=None)


# --------------------------------------------------------------------------- DBSCAN
LEVELS = (0.1, 0.2, 0.25, 0.3, 0.4, 0.6, 1.0)


def _graph_case(dist: np.ndarray, keep_pairs, missing: float, with_diagonal: bool, eps: float,
                min_samples: int):
    """The sparse graph of the kept pairs of ``dist`` and the dense matrix scikit-learn gets
    (pairs left out of the graph are at distance ``missing`` there)."""
    n = len(dist)
    iu, ju = np.triu_indices(n, 1)
    keep = np.asarray(keep_pairs, bool)
    diag = np.arange(n) if with_diagonal else np.zeros(0, int)  # a stored self-distance must not count twice
    rows = np.r_[iu[keep], ju[keep], diag].astype(int)
    cols = np.r_[ju[keep], iu[keep], diag].astype(int)
    graph = sp.csr_matrix((dist[rows, cols], (rows, cols)), shape=(n, n))
    dense = np.full((n, n), missing if np.isfinite(missing) else 1e6)
    dense[rows, cols] = dist[rows, cols]
    np.fill_diagonal(dense, 0.0)
    return graph, dense, missing, eps, min_samples


@st.composite
def sparse_graphs(draw):
    """Blobs of points on a line (distance |a - b| / 10, capped at 1) plus loose points,
    some pairs left out of the graph, a radius and a core size."""
    pos = []
    for centre in draw(st.lists(st.sampled_from([0, 4, 8, 12]), min_size=1, max_size=3)):
        pos += [centre + draw(st.integers(0, 2)) for _ in range(draw(st.integers(1, 5)))]
    pos = np.array(pos + draw(st.lists(st.integers(0, 14), max_size=3)))
    dist = np.minimum(np.abs(pos[:, None] - pos[None, :]) / 10, 1.0)
    n_pairs = len(pos) * (len(pos) - 1) // 2
    keep = draw(st.one_of(st.just([True] * n_pairs),
                          st.lists(st.booleans(), min_size=n_pairs, max_size=n_pairs)))
    return _graph_case(dist, keep, draw(st.sampled_from([1.0, np.inf])), draw(st.booleans()),
                       draw(st.sampled_from(LEVELS)), draw(st.integers(1, 5)))


def _bridge() -> tuple:
    """Point 0 links one point of cluster {1..4} and one of cluster {5..8} but is not a core
    point itself: a border point two clusters reach (scikit-learn gives it the first)."""
    dist = np.ones((9, 9))
    for block in (range(1, 5), range(5, 9)):
        for i in block:
            for j in block:
                dist[i, j] = 0.1
    dist[0, 4] = dist[4, 0] = dist[0, 5] = dist[5, 0] = 0.1
    iu, ju = np.triu_indices(9, 1)
    return _graph_case(dist, dist[iu, ju] < 1, 1.0, False, 0.1, 4)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    if not np.array_equal(a < 0, b < 0):
        return False
    pairs = set(zip(a[a >= 0].tolist(), b[b >= 0].tolist()))
    return len(pairs) == len(set(a[a >= 0].tolist())) == len(set(b[b >= 0].tolist()))


@FAST
@given(sparse_graphs())
@example(_bridge())
def test_dbscan_graph_equals_sklearn(case):
    from sklearn.cluster import DBSCAN

    graph, dense, missing, eps, min_samples = case
    ours = LIB.dbscan_graph(graph, eps, min_samples, missing=missing)
    ref = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(dense)
    assert _same_partition(ours, ref), (ours, ref)
    np.testing.assert_array_equal(ours, ref, err_msg="cluster numbering differs from scikit-learn's")


# --------------------------------------------------------------------------- rank metrics
def reference_market(qf, gf, qp, qc, gp, gc, ranks, ap_kind):
    """Per-query loop: squared Euclidean distance, stable sort (ties by gallery index),
    junk (pid -1) and same-pid-same-camera gallery entries dropped, AP over the hits."""
    dist = ((qf[:, None, :].astype(np.float64) - gf[None, :, :]) ** 2).sum(-1)
    aps, inps, firsts = [], [], []
    for i in range(len(qf)):
        order = np.argsort(dist[i], kind="stable")
        keep = (gp[order] >= 0) & ~((gp[order] == qp[i]) & (gc[order] == qc[i]))
        hits = np.flatnonzero(gp[order][keep] == qp[i]) + 1  # 1-based ranks of the true matches
        if len(hits) == 0:
            continue
        k = np.arange(1, len(hits) + 1)
        if ap_kind == "noninterp":
            aps.append(np.mean(k / hits))
        else:  # Market-1501 devkit compute_AP.m: trapezoid between successive recalls
            old = np.where(hits > 1, (k - 1) / np.maximum(hits - 1, 1), 1.0)
            aps.append(np.sum((old + k / hits) / 2) / len(hits))
        inps.append(len(hits) / hits[-1])
        firsts.append(hits[0])
    if not firsts:
        return None
    out = {"mAP": np.mean(aps), "mINP": np.mean(inps)}
    out.update({f"rank{r}": np.mean(np.array(firsts) <= r) for r in ranks})
    return out, len(firsts)


@st.composite
def retrieval_cases(draw):
    dim = draw(st.integers(1, 3))
    n_ids = draw(st.integers(1, 4))
    nq, ng = draw(st.integers(1, 6)), draw(st.integers(1, 12))
    ints = lambda n: np.array(draw(st.lists(st.integers(-2, 2), min_size=n * dim, max_size=n * dim)),
                              np.float32).reshape(n, dim)  # small integers: exact distances, many ties
    qp = np.array(draw(st.lists(st.integers(1, n_ids), min_size=nq, max_size=nq)))
    gp = np.array(draw(st.lists(st.integers(-1, n_ids), min_size=ng, max_size=ng)))
    qc = np.array(draw(st.lists(st.integers(0, 2), min_size=nq, max_size=nq)))
    gc = np.array(draw(st.lists(st.integers(0, 2), min_size=ng, max_size=ng)))
    return ints(nq), ints(ng), qp, qc, gp, gc, draw(st.sampled_from(["noninterp", "devkit"])), \
        draw(st.integers(1, nq))


@FAST
@given(retrieval_cases())
def test_rank_metrics_equal_the_per_query_reference(case):
    from reidcli.utils.errors import InputError

    qf, gf, qp, qc, gp, gc, ap_kind, chunk = case
    ranks = (1, 2, 5)
    ref = reference_market(qf, gf, qp, qc, gp, gc, ranks, ap_kind)
    opts = LIB.EvalOptions(protocol="market", metric="euclidean", ranks=ranks, ap=ap_kind, chunk=chunk)
    query = {"features": qf, "pids": qp, "camids": qc}
    gallery = {"features": gf, "pids": gp, "camids": gc}
    if ref is None:
        with pytest.raises(InputError, match="no query has a true match|removes every true match"):
            LIB.evaluate(query, gallery, opts)
        return
    expected, n_valid = ref
    got = LIB.evaluate(query, gallery, opts).as_dict()  # what `reid evaluate --json` prints
    assert got["n_valid_query"] == n_valid
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


# --------------------------------------------------------------------------- shards
@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return tiny_source(tmp_path_factory)


_SINGLE: dict[tuple, Path] = {}


def _single_run(source, splits: tuple, common: list) -> Path:
    """One unsharded `reid features` run per split selection (cached for the session)."""
    if splits not in _SINGLE:
        out = source.dir / f"single-{'-'.join(splits)}.h5"
        reid_ok("-q", "features", *common, "-o", out)
        _SINGLE[splits] = out
    return _SINGLE[splits]


@settings(max_examples=2, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 3), splits=st.sampled_from([("query",), ("gallery", "query"), ("train",)]),
       order=st.randoms(use_true_random=False))
@example(n=7, splits=("query",), order=random.Random(0))  # more shards than query images
def test_merged_shards_equal_one_run(source, n, splits, order):
    common = ["--ckpt", source.ckpt, source.data, *[a for s in splits for a in ("--split", s)], *CPU, "-b", "3"]
    one = read_features(_single_run(source, splits, common))
    with tempfile.TemporaryDirectory() as tmp:
        shards = [Path(tmp) / f"s{i}.h5" for i in range(1, n + 1)]
        for i, out in enumerate(shards, 1):
            reid_ok("-q", "features", *common, "--shard", f"{i}/{n}", "-o", out)
        order.shuffle(shards)
        reid_ok("-q", "merge", *shards, "-o", Path(tmp) / "merged.h5")
        merged = read_features(Path(tmp) / "merged.h5")
    assert set(one.splits) == set(merged.splits) == set(splits)
    for name, a in one.splits.items():
        b = merged.splits[name]
        assert a.paths == b.paths
        np.testing.assert_array_equal(a.pids, b.pids)
        np.testing.assert_array_equal(a.camids, b.camids)
        np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-6)
    drop = {"command"}
    assert {k: v for k, v in one.attrs.items() if k not in drop} == \
        {k: v for k, v in merged.attrs.items() if k not in drop}
    assert one.root == merged.root
