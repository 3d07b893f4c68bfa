"""Rank metrics against a straightforward per-query reference (sort, filter, cumulate)."""

from __future__ import annotations

import numpy as np
import pytest

from reidcli.eval.distance import distance_chunks, pairwise_distance
from reidcli.eval.ranking import (
    AP_FORMULAS,
    RankOptions,
    rank_queries,
    rank_queries_reference,
    summarize,
)


def devkit_ap(matches: np.ndarray) -> float:
    """Literal port of the Market-1501 devkit compute_AP.m (junk already removed)."""
    ngood = matches.sum()
    old_recall, old_precision, ap, hit = 0.0, 1.0, 0.0, 0
    for j, good in enumerate(matches):
        hit += int(good)
        recall, precision = hit / ngood, hit / (j + 1)
        ap += (recall - old_recall) * ((old_precision + precision) / 2)
        old_recall, old_precision = recall, precision
        if hit == ngood:
            break
    return ap


def reference(dist, qp, qc, gp, gc, ap="noninterp", cam_filter=True, skip=()):
    """Per query: stable sort, drop junk / same id+camera / skipped cameras, cumulate."""
    from sklearn.metrics import average_precision_score

    aps, firsts, inps = [], [], []
    for i in range(len(qp)):
        order = np.argsort(dist[i], kind="stable")
        keep = gp[order] >= 0
        if cam_filter:
            keep &= ~((gp[order] == qp[i]) & (gc[order] == qc[i]))
        for a, b in skip:
            keep &= ~((qc[i] == a) & (gc[order] == b))
        m = (gp[order][keep] == qp[i]) & (qp[i] >= 0)
        if not m.any():
            continue
        hits = np.flatnonzero(m) + 1
        firsts.append(hits[0])
        inps.append(len(hits) / hits[-1])
        if ap == "noninterp":
            aps.append(np.mean(np.arange(1, len(hits) + 1) / hits))
        elif ap == "devkit":
            aps.append(devkit_ap(m))
        else:
            aps.append(average_precision_score(m, -dist[i][order][keep]))
    firsts = np.array(firsts)
    cmc = {k: float(np.mean(firsts <= k)) for k in (1, 2, 3, 5)}
    return float(np.mean(aps)), cmc, float(np.mean(inps)), len(firsts)


def fixed_case(seed=0, n_q=12, n_g=40, levels=6):
    """Distances quantised to a few levels (many ties), junk (-1) and distractor (0)
    gallery ids, a junk query, and a query whose id is absent from the gallery."""
    rng = np.random.default_rng(seed)
    gp = rng.integers(1, 6, n_g)
    gp[:4] = -1
    gp[4:8] = 0
    gc = rng.integers(0, 3, n_g)
    qp = rng.integers(1, 6, n_q)
    qp[0], qp[1] = -1, 99
    qc = rng.integers(0, 3, n_q)
    dist = rng.integers(0, levels, (n_q, n_g)).astype(np.float32)
    return dist, qp, qc, gp, gc


def ours(dist, qp, qc, gp, gc, chunk=5, **kw):
    opts = RankOptions(**kw)
    chunks = ((s, dist[s:s + chunk]) for s in range(0, len(dist), chunk))
    return summarize(rank_queries(chunks, qp, qc, gp, gc, opts), ranks=(1, 2, 3, 5), opts=opts)


@pytest.mark.parametrize("ap", ["noninterp", "devkit", "sklearn"])
@pytest.mark.parametrize("seed,levels", [(0, 4), (1, 6), (2, 1000), (3, 2)])
def test_matches_reference(ap, seed, levels):
    case = fixed_case(seed, levels=levels)
    m_ap, cmc, m_inp, n_valid = reference(*case, ap=ap)
    got = ours(*case, ap=ap)
    assert got.n_valid == n_valid and got.n_skipped == 12 - n_valid >= 2
    assert abs(got.mAP - m_ap) < 1e-6 and abs(got.mINP - m_inp) < 1e-6
    for k in cmc:
        assert abs(got.cmc[k] - cmc[k]) < 1e-6


@pytest.mark.parametrize("chunk", [1, 3, 12])
def test_no_cam_filter_and_chunking(chunk):
    case = fixed_case(4, levels=5)
    m_ap, cmc, _, _ = reference(*case, cam_filter=False)
    got = ours(*case, chunk=chunk, cam_filter=False)
    assert abs(got.mAP - m_ap) < 1e-6 and got.cmc == pytest.approx(cmc, abs=1e-6)


def test_skip_cams_rule():
    case = fixed_case(5, levels=7)
    m_ap, cmc, _, _ = reference(*case, skip=[(2, 1)])
    got = ours(*case, skip_cams=[(2, 1)])
    assert abs(got.mAP - m_ap) < 1e-6 and got.cmc == pytest.approx(cmc, abs=1e-6)


def test_ties_follow_gallery_order():
    # two gallery items at the same distance: the negative comes first (lower index)
    dist = np.array([[1.0, 1.0, 2.0]], np.float32)
    got = ours(dist, np.array([7]), np.array([0]), np.array([3, 7, 7]), np.array([1, 1, 1]))
    assert got.cmc[1] == 0.0 and got.cmc[2] == 1.0
    assert got.mAP == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_features_path_matches_dense_distances():
    rng = np.random.default_rng(0)
    qf, gf = rng.normal(size=(30, 16)).astype(np.float32), rng.normal(size=(90, 16)).astype(np.float32)
    qp, gp = rng.integers(0, 10, 30), rng.integers(0, 10, 90)
    qc, gc = rng.integers(0, 4, 30), rng.integers(0, 4, 90)
    for metric in ("euclidean", "cosine"):
        dense = pairwise_distance(qf, gf, metric)
        if metric == "euclidean":
            expect = ((qf[:, None, :] - gf[None]) ** 2).sum(-1)
        else:
            qn, gn = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (qf, gf))
            expect = 1 - qn @ gn.T
        np.testing.assert_allclose(dense, expect, atol=1e-4)
        m_ap, cmc, m_inp, _ = reference(dense, qp, qc, gp, gc)
        got = summarize(rank_queries(distance_chunks(qf, gf, metric, chunk=7), qp, qc, gp, gc), (1, 2, 3, 5))
        assert abs(got.mAP - m_ap) < 1e-6 and abs(got.mINP - m_inp) < 1e-6
        assert got.cmc == pytest.approx(cmc, abs=1e-6)


def test_no_valid_query_reports_nan():
    dist = np.zeros((2, 2), np.float32)
    got = ours(dist, np.array([1, 2]), np.array([0, 0]), np.array([3, 4]), np.array([1, 1]))
    assert got.n_valid == 0 and np.isnan(got.mAP)


@pytest.mark.parametrize("levels", [3, 50, 0])
def test_fast_and_masked_paths_agree(levels):
    """The identity-table fast path equals the dense-mask path (forced by a no-op camera
    skip rule) on ties (few levels) and on continuous distances (levels 0)."""
    rng = np.random.default_rng(levels)
    dist = rng.random((25, 60)).astype(np.float32)
    if levels:
        dist = np.floor(dist * levels).astype(np.float32)
    qp, gp = rng.integers(-1, 8, 25), rng.integers(-1, 8, 60)
    qc, gc = rng.integers(0, 3, 25), rng.integers(0, 3, 60)
    for ap in ("noninterp", "devkit", "sklearn"):
        fast = rank_queries([(0, dist[:10]), (10, dist[10:])], qp, qc, gp, gc, RankOptions(ap=ap))
        slow = rank_queries([(0, dist)], qp, qc, gp, gc, RankOptions(ap=ap, skip_cams=[(99, 99)]))
        for name in ("npos", "first", "last"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
        np.testing.assert_allclose(fast.ap, slow.ap, atol=1e-12)


def random_case(seed: int):
    """Random sizes, ids with junk (-1) and distractors (0), a few cameras, and distances
    either continuous or quantised to a few levels (ties between matches and negatives)."""
    rng = np.random.default_rng(seed)
    n_q, n_g, n_ids = rng.integers(1, 25), rng.integers(1, 70), rng.integers(1, 9)
    qp, gp = rng.integers(-1, n_ids + 1, n_q), rng.integers(-1, n_ids + 1, n_g)
    qc, gc = rng.integers(0, 4, n_q), rng.integers(0, 4, n_g)
    dist = rng.random((n_q, n_g)).astype(np.float32)
    if seed % 2:
        dist = np.floor(dist * rng.integers(2, 6)).astype(np.float32)
    return dist, qp, qc, gp, gc, int(rng.integers(1, n_q + 1))


RANK_VARIANTS = [{"cam_filter": cf, "ap": ap} for cf in (True, False) for ap in AP_FORMULAS] + [
    {"skip_cams": [(2, 1), (0, 3)]}, {"cmc": "unique-id", "cam_filter": False, "skip_cams": [(2, 1)]},
    {"cmc": "single-gallery", "repeats": 4, "seed": 3}, {"cmc": "single-gallery", "ap": "devkit", "cam_filter": False},
]


@pytest.mark.parametrize("seed", range(12))
def test_vectorised_path_equals_the_per_query_reference(seed):
    """rank_queries (chunked, fast identity-table or dense-mask path) gives the same
    per-query numbers as rank_queries_reference, the loop over queries."""
    dist, qp, qc, gp, gc, chunk = random_case(seed)
    chunks = [(s, dist[s:s + chunk]) for s in range(0, len(dist), chunk)]
    for kw in RANK_VARIANTS:
        opts = RankOptions(**kw)
        fast = rank_queries(chunks, qp, qc, gp, gc, opts)
        ref = rank_queries_reference(dist, qp, qc, gp, gc, opts)
        for name in ("npos", "first", "last", "cmc_rank"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(ref, name), err_msg=f"{name} {kw}")
        np.testing.assert_allclose(fast.ap, ref.ap, rtol=0, atol=1e-12, err_msg=str(kw))  # NaN == NaN here


@pytest.mark.parametrize("ap", list(AP_FORMULAS))
@pytest.mark.parametrize("kw", [{}, {"cam_filter": False}, {"skip": [(2, 1)]}])
def test_in_module_reference_equals_the_independent_one(ap, kw):
    """The library's readable reference against this file's (sort, filter, cumulate,
    sklearn and a literal port of the devkit's compute_AP.m)."""
    case = fixed_case(7, levels=5)
    m_ap, cmc, m_inp, n_valid = reference(*case, ap=ap, **kw)
    opts = RankOptions(ap=ap, cam_filter=kw.get("cam_filter", True), skip_cams=kw.get("skip", ()))
    got = summarize(rank_queries_reference(*case, opts), ranks=(1, 2, 3, 5), opts=opts)
    assert got.n_valid == n_valid and abs(got.mAP - m_ap) < 1e-9 and abs(got.mINP - m_inp) < 1e-9
    assert got.cmc == pytest.approx(cmc, abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_full_cmc_equals_the_summary_curve_and_ends_flat(seed):
    """full_cmc (a histogram of first-hit ranks) equals summarize's curve (a rank-by-rank
    comparison) on their common ranks, for every CMC kind; past its end the summary is flat."""
    from reidcli.eval.ranking import full_cmc

    dist, qp, qc, gp, gc, _ = random_case(seed)
    for kw in RANK_VARIANTS:
        opts = RankOptions(**kw)
        pq = rank_queries_reference(dist, qp, qc, gp, gc, opts)
        full, curve = full_cmc(pq), summarize(pq, ranks=(1,), opts=opts, curve_len=80).curve
        if not pq.valid.any():
            assert len(full) == 0
            continue
        n = min(len(full), len(curve))
        np.testing.assert_allclose(full[:n], curve[:n], atol=1e-12, err_msg=str(kw))
        np.testing.assert_allclose(curve[len(full):], full[-1], atol=1e-12, err_msg=str(kw))


def _trained_like_case(seed: int, levels: int | None):
    """Matches mostly near the query, as with a trained model, so that few gallery entries
    lie within a row's farthest match (the pruned count's case); ``levels`` quantises the
    distances so that negatives tie matches."""
    rng = np.random.default_rng(seed)
    n_q, n_g = 30, 400
    gp = rng.integers(1, 40, n_g)
    gp[:10], gp[10:40] = -1, 0
    gc, qp, qc = rng.integers(0, 4, n_g), rng.integers(1, 40, n_q), rng.integers(0, 4, n_q)
    qp[0] = 77  # absent from the gallery
    dist = rng.uniform(1.0, 2.0, (n_q, n_g)).astype(np.float32)
    same = qp[:, None] == gp[None, :]
    dist[same] = rng.uniform(0.0, 1.1, int(same.sum())).astype(np.float32)
    if levels:
        dist = np.round(dist * levels).astype(np.float32) / levels
    return dist, qp, qc, gp, gc


@pytest.mark.parametrize("ap", ["noninterp", "devkit", "sklearn"])
@pytest.mark.parametrize("seed,levels", [(0, None), (1, 20), (2, 3)])
def test_trained_like_distances_equal_the_reference(ap, seed, levels):
    """The candidate-only count (most entries lie past a row's farthest match) and the
    tie rows it sends to the stable sort give the per-query reference's metrics."""
    case = _trained_like_case(seed, levels)
    m_ap, cmc, m_inp, n_valid = reference(*case, ap=ap)
    got = ours(*case, chunk=7, ap=ap)
    assert got.n_valid == n_valid > 20
    assert got.mAP == pytest.approx(m_ap, abs=1e-9) and got.mINP == pytest.approx(m_inp, abs=1e-9)
    assert got.cmc == pytest.approx(cmc, abs=1e-9)


def test_the_pruned_count_reads_only_entries_within_the_farthest_match():
    """On a trained-like block few entries are candidates, and below each row's last match
    the candidate-only histogram equals the histogram of every entry."""
    from reidcli.eval.ranking import _bucket_counts_pruned

    dist, qp, qc, gp, gc = _trained_like_case(0, None)
    same = (qp[:, None] == gp[None, :]) & (gp >= 0)[None, :]
    npos = same.sum(1)
    pv = np.sort(np.where(same, dist, np.inf), axis=1)[:, :max(1, npos.max())]
    last = np.where(npos > 0, pv[np.arange(len(pv)), np.maximum(npos - 1, 0)], -np.inf)
    assert (dist <= last[:, None]).mean() < 0.25
    hist, eq = _bucket_counts_pruned(pv, dist, npos)
    for i in np.flatnonzero(npos):  # buckets below the last match: counts of every entry
        left = np.searchsorted(pv[i], dist[i])
        full = np.bincount(left, minlength=pv.shape[1] + 1)
        assert (hist[i, :npos[i]] == full[:npos[i]]).all()
