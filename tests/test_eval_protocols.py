"""SYSU-MM01 and RegDB protocols on hand-built cases; single-gallery and unique-id CMC;
re-ranking wiring."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from reidcli.eval.api import Options, evaluate
from reidcli.eval.protocols import detect_protocol, sysu_trials
from reidcli.eval.ranking import RankOptions, draw_keys, rank_queries, summarize
from reidcli.utils.errors import InputError


def split(xs, pids, cams, mods=None):
    f = np.stack([np.asarray(xs, np.float32), np.zeros(len(xs), np.float32)], 1)
    return {"features": f, "pids": np.asarray(pids), "camids": np.asarray(cams),
            "modality": None if mods is None else np.asarray(mods, np.int8),
            "paths": [f"x{i}.jpg" for i in range(len(xs))]}


# 0-based cameras: SYSU cam1, cam2 (visible, indoor) = 0, 1; cam4, cam5 = 3, 4; IR cam3, cam6 = 2, 5
GALLERY = split([0.3, 0.1, 0.2, 0.4, 0.5, 0.6], [1, 1, 2, 2, 1, 2], [0, 1, 0, 1, 3, 4], [0] * 6)
QUERY = split([0.0, 0.62], [1, 2], [2, 5], [1, 1])


def test_sysu_all_search_by_hand():
    res = evaluate(QUERY, GALLERY, Options(protocol="sysu-all", trials=3, ranks=(1, 2)))
    # q0 (cam3) skips the cam2 image at 0.1: order ids 2, 1, 1, 2 -> matches at 2, 3
    # q1: ids 2, 1, 2, 1, 2, 1 -> matches at 1, 3, 5
    ap = ((1 / 2 + 2 / 3) / 2 + (1 + 2 / 3 + 3 / 5) / 3) / 2
    assert res.mean["mAP"] == pytest.approx(ap, abs=1e-9)
    assert res.mean["rank1"] == pytest.approx(0.5) and res.mean["rank2"] == pytest.approx(1.0)
    assert res.mean["mINP"] == pytest.approx((2 / 3 + 3 / 5) / 2)
    assert res.n_trials == 3 and res.std["mAP"] == pytest.approx(0.0)


def test_sysu_indoor_by_hand():
    res = evaluate(QUERY, GALLERY, Options(protocol="sysu-indoor", trials=1, ranks=(1,)))
    assert res.mean["mAP"] == pytest.approx((1 / 2 + (1 + 2 / 3) / 2) / 2)
    assert res.mean["rank1"] == pytest.approx(0.5) and res.std is None
    assert sorted(res.g_rows) == [0, 1, 2, 3]


def test_sysu_draws_single_and_multi_shot():
    pids = np.repeat([1, 2], 8)
    cams = np.tile(np.repeat([0, 3], 4), 2)
    draws = list(sysu_trials(np.array([1]), np.array([2]), pids, cams, mode="sysu-all", trials=4, seed=1))
    for t in draws:
        got = sorted(zip(pids[t.g_rows], cams[t.g_rows]))
        assert got == [(1, 0), (1, 3), (2, 0), (2, 3)]
    assert len({tuple(t.g_rows) for t in draws}) > 1
    again = list(sysu_trials(np.array([1]), np.array([2]), pids, cams, mode="sysu-all", trials=4, seed=1))
    assert all((a.g_rows == b.g_rows).all() for a, b in zip(draws, again))
    multi = next(sysu_trials(np.array([1]), np.array([2]), pids, cams, mode="sysu-all", shot="multi"))
    assert len(multi.g_rows) == 16  # fewer than 10 per id and camera: all of them
    with pytest.raises(InputError, match="infrared"):
        next(sysu_trials(np.array([1]), np.array([0]), pids, cams, mode="sysu-all"))


def test_unique_id_cmc():
    d = np.array([[0.1, 0.2, 0.3, 0.4]], np.float32)
    args = (np.array([7]), np.array([0]), np.array([5, 5, 7, 3]), np.array([1, 1, 1, 1]))
    std = summarize(rank_queries([(0, d)], *args), (1, 2, 3))
    uid = summarize(rank_queries([(0, d)], *args, RankOptions(cmc="unique-id")), (1, 2, 3), RankOptions(cmc="unique-id"))
    assert std.cmc == {1: 0.0, 2: 0.0, 3: 1.0} and uid.cmc == {1: 0.0, 2: 1.0, 3: 1.0}
    assert std.mAP == uid.mAP


def single_gallery_reference(dist, qp, qc, gp, gc, repeats, seed):
    """torchreid eval_cuhk03's CMC with our counter-based draws: per query and draw, keep
    the valid image of each identity with the largest key, rank the kept match."""
    out = []
    for i in range(len(qp)):
        valid = (gp >= 0) & ~((gp == qp[i]) & (gc == qc[i]))
        if not (valid & (gp == qp[i])).any():
            continue
        for r in range(repeats):
            keys = draw_keys(seed, r, np.array([i]), len(gp))[0]
            kept = np.zeros(len(gp), bool)
            for pid in np.unique(gp[valid]):
                idx = np.flatnonzero(valid & (gp == pid))
                kept[idx[np.argmax(keys[idx])]] = True
            order = np.argsort(dist[i], kind="stable")
            ids = gp[order][kept[order]]
            out.append(np.flatnonzero(ids == qp[i])[0] + 1)
    return np.array(out)


def test_single_gallery_cmc_matches_reference():
    rng = np.random.default_rng(3)
    dist = rng.integers(0, 8, (9, 30)).astype(np.float32)
    qp, gp = rng.integers(1, 5, 9), rng.integers(0, 5, 30)
    qc, gc = rng.integers(0, 3, 9), rng.integers(0, 3, 30)
    gp[:3] = -1
    opts = RankOptions(cmc="single-gallery", repeats=5, seed=2)
    got = summarize(rank_queries([(0, dist[:4]), (4, dist[4:])], qp, qc, gp, gc, opts), (1, 2, 3), opts)
    ref = single_gallery_reference(dist, qp, qc, gp, gc, 5, 2)
    for k in (1, 2, 3):
        assert got.cmc[k] == pytest.approx(np.mean(ref <= k), abs=1e-9)
    plain = summarize(rank_queries([(0, dist)], qp, qc, gp, gc), (1,))
    assert got.mAP == pytest.approx(plain.mAP)  # AP is unchanged by the CMC style
    from reidcli.eval.ranking import rank_queries_reference

    mine = rank_queries_reference(dist, qp, qc, gp, gc, opts)  # the library's readable twin
    np.testing.assert_array_equal(mine.cmc_rank[mine.valid].ravel(), ref)


def test_regdb_directions_and_detection():
    q = split([0.0, 1.0, 2.0], [1, 2, 3], [0, 0, 0], [0, 0, 0])
    g = split([0.1, 1.1, 2.1], [1, 2, 3], [1, 1, 1], [1, 1, 1])
    assert detect_protocol("regdb", q["modality"], g["modality"]) == "regdb-v2i"
    assert detect_protocol("sysu", None, None) == "sysu-all" and detect_protocol("market1501", None, None) == "market"
    v2i = evaluate(q, g, Options(), dataset_format="regdb")
    i2v = evaluate(q, g, Options(protocol="regdb-i2v"))
    assert v2i.protocol == "regdb-v2i" and v2i.metrics.n_query == 3 and v2i.mean["mAP"] == 1.0
    assert list(i2v.q_rows) == [3, 4, 5] and i2v.mean["rank1"] == 1.0
    with pytest.raises(InputError, match="modality"):
        evaluate(split([0.0], [1], [0]), split([0.0], [1], [1]), Options(protocol="regdb-v2i"))


@pytest.mark.parametrize("protocol", ["sysu-all", "sysu-indoor", "regdb-v2i", "regdb-i2v"])
def test_cross_modal_protocols_need_modality_on_both_sides(protocol):
    no_gallery_modality = dict(GALLERY, modality=None)
    with pytest.raises(InputError, match=f"the {protocol} protocol needs each image's modality, but the "
                                         "gallery split of the features file holds no 'modality' array"):
        evaluate(QUERY, no_gallery_modality, Options(protocol=protocol))
    with pytest.raises(InputError, match="the query and gallery splits .* hold no 'modality'"):
        evaluate(dict(QUERY, modality=None), no_gallery_modality, Options(protocol=protocol))
    evaluate(dict(QUERY, modality=None), no_gallery_modality, Options(protocol="market"))  # market needs none


@pytest.mark.skipif(importlib.util.find_spec("reidcli.eval.rerank") is None,
                    reason="reidcli/eval/rerank.py (the clustering helper's) is not there yet")
def test_rerank_wiring():
    from reidcli.eval.rerank import rerank_chunks

    rng = np.random.default_rng(0)
    q = split(rng.normal(size=6), [1, 2, 3, 1, 2, 3], [0] * 6)
    g = split(rng.normal(size=12), np.tile([1, 2, 3], 4), [1] * 12)
    res = evaluate(q, g, Options(rerank=True, k1=4, k2=2))
    chunks = rerank_chunks(q["features"], g["features"], k1=4, k2=2, lambda_value=0.3)
    ref = summarize(rank_queries(chunks, q["pids"], q["camids"], g["pids"], g["camids"]))
    assert res.rerank and res.mean["mAP"] == pytest.approx(ref.mAP, abs=1e-9)
