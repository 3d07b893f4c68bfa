"""The test bed's helpers (`reidcli.eval.bed`): calibration targets, the cross-modal ratios
against a straightforward mAP written here, and the learning-curve writer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reidcli.eval import bed


def test_gap_closed_is_the_share_of_the_direct_to_oracle_gap():
    assert bed.gap_closed(30.0, 20.0, 60.0) == pytest.approx(0.25)
    assert bed.gap_closed(10.0, 20.0, 60.0) == pytest.approx(-0.25)
    assert math.isnan(bed.gap_closed(30.0, 60.0, 60.0))


def test_calibration_checks_at_and_beyond_their_bounds():
    inside = bed.calibration_checks(direct=0.20, oracle=0.50, pseudo=0.30)  # ratio 0.4, 1/3 closed
    assert [c.holds for c in inside] == [True, True]
    assert inside[1].value == pytest.approx(1 / 3)
    outside = bed.calibration_checks(direct=0.10, oracle=0.60, pseudo=0.20)  # ratio 0.167, 20%
    assert [c.holds for c in outside] == [False, False]
    assert not bed.calibration_checks(direct=0.30, oracle=0.60)[0].holds  # 0.5 > 0.45
    block = bed.calibration_block(inside)
    assert block.splitlines()[0].startswith("calibration") and "all targets hold" in block
    assert "SOME TARGETS DO NOT HOLD" in bed.calibration_block(outside)
    cm = bed.calibration_checks(0.2, 0.5, cross_modal={"ir2vis": 0.3, "vis2vis": 0.6, "chance": 0.05})
    assert [round(c.value, 3) for c in cm[1:]] == [6.0, 0.5] and all(c.holds for c in cm)
    cm = bed.calibration_checks(0.2, 0.5, cross_modal={"ir2vis": 0.1, "vis2vis": 0.1, "chance": 0.05})
    assert [c.holds for c in cm[1:]] == [False, False]


def _reference_map(qf, qp, qc, gf, gp, gc) -> float:
    """Market-rule mAP, written out: cosine distance, same id and camera left out, AP as the
    mean precision at each hit; queries without a valid match are skipped."""
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    aps = []
    for i in range(len(qf)):
        d = 1 - gn @ qn[i]
        valid = ~((gp == qp[i]) & (gc == qc[i]))
        order = [j for j in np.argsort(d, kind="stable") if valid[j]]
        hits = [gp[j] == qp[i] for j in order]
        if not any(hits):
            continue
        precisions = [sum(hits[: k + 1]) / (k + 1) for k, h in enumerate(hits) if h]
        aps.append(sum(precisions) / len(precisions))
    return float(np.mean(aps))


def test_cross_modal_maps_equal_a_straightforward_market_map(tmp_path):
    from reidcli.io.h5 import FeaturesFile, SplitFeatures, write_features

    rng = np.random.default_rng(0)
    n_ids, dim = 6, 8
    centres = rng.normal(size=(n_ids, dim))

    def split(n, modality, cams):
        pids = rng.integers(0, n_ids, n)
        noise = 1.5 if modality == 1 else 0.8  # infrared images are the harder queries
        feats = (centres[pids] + rng.normal(scale=noise, size=(n, dim))).astype(np.float32)
        return SplitFeatures(features=feats, paths=[f"{modality}/{i}.jpg" for i in range(n)], pids=pids,
                             camids=rng.choice(cams, n), modality=np.full(n, modality))

    q, g = split(30, 1, [2, 5]), split(40, 0, [0, 1, 3, 4])
    path = write_features(tmp_path / "f.h5", FeaturesFile(splits={"query": q, "gallery": g}))
    got = bed.cross_modal_maps(path)
    assert got["ir2vis"] == pytest.approx(_reference_map(q.features, q.pids, q.camids,
                                                         g.features, g.pids, g.camids), abs=1e-6)
    assert got["vis2vis"] == pytest.approx(_reference_map(g.features, g.pids, g.camids,
                                                          g.features, g.pids, g.camids), abs=1e-6)
    assert got["ir2ir"] == pytest.approx(_reference_map(q.features, q.pids, q.camids,
                                                        q.features, q.pids, q.camids), abs=1e-6)
    assert got["chance"] < got["ir2vis"] < got["vis2vis"]


def test_write_curves_draws_every_row(tmp_path):
    import cv2

    out = tmp_path / "curves.png"
    bed.write_curves(out, {"pseudo": [(0, 20.0), (100, 25.0), (200, 31.0)], "mmt": [(0, 20.0), (200, 27.0)]},
                     references={"direct transfer": 20.0, "oracle": 50.0})
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] > 300 and img.shape[1] > 500
    one = tmp_path / "one.png"
    bed.write_curves(one, {"pseudo": [(0, 20.0), (100, 25.0), (200, 31.0)]})
    assert not np.array_equal(cv2.imread(str(one)), img)  # another row changes the picture
    with pytest.raises(ValueError, match="no curve"):
        bed.write_curves(tmp_path / "none.png", {})
    assert not (tmp_path / "none.png").exists()


def test_agreement_auc_equals_a_pairwise_count(tmp_path):
    """The AUC is the share of (same-id pair, different-id pair) couples where the same-id
    pair agrees more (ties count half): counted here pair by pair."""
    from reidcli.io.h5 import FeaturesFile, SplitFeatures, write_features

    rng = np.random.default_rng(1)
    n, agents = 24, 5
    pids = rng.integers(0, 6, n)
    logits = rng.normal(size=(n, agents)) + 2.0 * np.eye(agents)[pids % agents]
    soft = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    split = SplitFeatures(features=rng.normal(size=(n, 4)).astype(np.float32), paths=[f"{i}.jpg" for i in range(n)],
                          pids=pids, camids=rng.integers(0, 3, n), extra={"soft_labels": soft})
    path = write_features(tmp_path / "f.h5", FeaturesFile(splits={"train": split}))
    pos, neg = [], []
    for i in range(n):
        for j in range(i + 1, n):
            a = float(np.minimum(soft[i], soft[j]).sum())
            (pos if pids[i] == pids[j] else neg).append(a)
    want = np.mean([1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg])
    assert bed.agreement_auc(path) == pytest.approx(want, abs=1e-9)
    assert 0.5 < want < 1.0
    plain = write_features(tmp_path / "g.h5", FeaturesFile(splits={"train": SplitFeatures(
        features=split.features, paths=split.paths, pids=pids, camids=split.camids)}))
    with pytest.raises(ValueError, match="--soft-labels"):
        bed.agreement_auc(plain)
