"""Format contract: the v1 golden files still read with the current readers, and
docs/formats.md names exactly the fields the writers wrote into them.

Golden files: tests/data/format/v1/, written by `tests/data/format/make_v1.py`.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from fixtures_contracts import (
    COMMON,
    GOLDEN,
    check_ckpt_against_docs,
    check_h5_against_docs,
    check_names,
    ckpt_fields,
    documented,
    h5_fields,
    reid_ok,
)

from reidcli.io.ckpt import load_checkpoint
from reidcli.io.h5 import read_features, read_labels, read_pose

FILES = {"features.h5": "features", "labels.h5": "labels", "pose.h5": "pose", "checkpoint.pt": "checkpoint"}


def _digest(path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _programs(records) -> list[str]:
    return [r["program"] for r in records]


@pytest.mark.parametrize("name", sorted(FILES))
def test_reid_info_accepts_each_golden_file(name):
    info = json.loads(reid_ok("info", GOLDEN / name, "--json").stdout)
    assert info["valid"] is True and info["format"] == FILES[name] and info["version"] == 1


def test_golden_files_stay_tiny():
    for name in FILES:
        limit = 400_000 if name.endswith(".pt") else 64_000
        assert (GOLDEN / name).stat().st_size < limit, f"{name} grew; keep golden files tiny"


def test_features_read_back():
    ff = read_features(GOLDEN / "features.h5")
    ck = load_checkpoint(GOLDEN / "checkpoint.pt")
    assert set(ff.splits) == {"train", "query", "gallery"}
    assert ff.attrs["reid_format_version"] == 1 and ff.normalized
    assert ff.attrs["checkpoint"] == _digest(GOLDEN / "checkpoint.pt")
    assert ff.attrs["model"] == ck["model_config"]["arch"] and ff.attrs["input_size"] == ck["input_size"]
    for s in ff.splits.values():
        assert s.features.dtype == np.float32 and s.features.shape == (len(s), ck["feat_dim"])
        assert ff.attrs["feature_dim"] == ck["feat_dim"]
        np.testing.assert_allclose(np.linalg.norm(s.features, axis=1), 1.0, rtol=1e-5)
        assert len(set(s.paths)) == len(s) and not any(p.startswith("/") for p in s.paths)
        assert s.pids.dtype == np.int64 and s.camids.dtype == np.int64 and s.modality is None
    gallery = ff.splits["gallery"].pids
    assert (gallery == -1).any() and (gallery == 0).any()  # Market junk and distractor
    assert _programs(ff.provenance) == ["reid pretrain", "reid features"]
    assert ff.provenance[-1]["inputs"] == [{"path": "checkpoint.pt", "digest": ff.attrs["checkpoint"]}]


def test_labels_read_back():
    lf = read_labels(GOLDEN / "labels.h5")
    ff = read_features(GOLDEN / "features.h5")
    train = ff.splits[lf.attrs["split"]]
    assert lf.paths == train.paths and lf.labels.dtype == np.int64
    k = lf.n_clusters
    assert k >= 2 and lf.n_outliers >= 1
    assert set(lf.labels.tolist()) == set(range(k)) | {-1}
    assert (lf.attrs["n_clusters"], lf.attrs["n_outliers"]) == (k, lf.n_outliers)
    assert lf.centers.shape == (k, train.features.shape[1]) and lf.centers.dtype == np.float32
    assert lf.attrs["source_digest"] == _digest(GOLDEN / "features.h5")
    assert lf.provenance[:len(ff.provenance)] == ff.provenance  # the chain continues
    assert _programs(lf.provenance)[-1] == "reid cluster"


def test_pose_read_back():
    pf = read_pose(GOLDEN / "pose.h5")
    ff = read_features(GOLDEN / "features.h5")
    assert pf.root == ff.root
    assert set(pf.paths) == {p for s in ff.splits.values() for p in s.paths}
    n = len(pf.paths)
    assert pf.keypoints.shape == (n, 17, 3) and pf.keypoints.dtype == np.float32
    assert pf.image_size.shape == (n, 2)
    assert pf.attrs["keypoint_names"][:3] == ["nose", "left_eye", "right_eye"]
    assert len(pf.attrs["keypoint_names"]) == 17
    seen = pf.keypoints[..., 2] > 0
    h, w = pf.image_size[:, None, 0], pf.image_size[:, None, 1]
    x, y = pf.keypoints[..., 0], pf.keypoints[..., 1]
    assert ((x >= 0) & (x <= w) & (y >= 0) & (y <= h))[seen].all()
    assert pf.attrs["n_no_person"] == int((~seen.any(axis=1)).sum())


def test_checkpoint_read_back():
    ck = load_checkpoint(GOLDEN / "checkpoint.pt")
    assert ck["format"] == "reidcli-checkpoint" and ck["version"] == 1
    assert ck["method"] == "supervised" and ck["epoch"] >= 1 and ck["iteration"] >= 1
    assert len(ck["pixel_mean"]) == len(ck["pixel_std"]) == 3 and len(ck["input_size"]) == 2
    assert all(hasattr(v, "shape") for v in ck["model"].values())
    assert ck["train_state"]["global_it"] == ck["iteration"]  # resumable
    assert _programs(ck["provenance"]) == ["reid pretrain"]


# --------------------------------------------------------------------------- docs/formats.md
@pytest.mark.parametrize("kind", ["features", "labels", "pose"])
def test_docs_name_every_h5_field(kind):
    check_h5_against_docs(GOLDEN / f"{kind}.h5", kind)


def test_docs_name_every_checkpoint_key():
    check_ckpt_against_docs(GOLDEN / "checkpoint.pt")


def test_docs_name_every_provenance_key():
    records, inputs = set(), set()
    for name in ("features.h5", "labels.h5", "pose.h5"):
        found = h5_fields(GOLDEN / name)
        records |= found["provenance"]
        inputs |= found["provenance_inputs"]
    records |= ckpt_fields(GOLDEN / "checkpoint.pt")["provenance"]
    check_names(records, documented((COMMON, "Provenance record")), "provenance records")
    check_names(inputs, documented((COMMON, "Provenance input entry")), "provenance inputs")
