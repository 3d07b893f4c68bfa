"""The HDF5 contract: round trips, every validation failure, atomicity, provenance."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from reidcli.io import h5
from reidcli.utils.errors import FormatError, InputError


def _split(n=3, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return h5.SplitFeatures(rng.normal(size=(n, d)).astype(np.float32),
                            [f"img_{i}.jpg" for i in range(n)], np.arange(n) - 1, np.zeros(n, int))


def _write(path, **splits):
    return h5.write_features(path, h5.FeaturesFile(splits=splits or {"train": _split()}, root="/r"))


def test_features_roundtrip_all_fields(tmp_path):
    s = _split(5, 6)
    s.modality = np.array([0, 1, 0, 1, 1], dtype=np.int8)
    s.features = s.features.astype(np.float16)
    h5.write_features(tmp_path / "f.h5", h5.FeaturesFile({"query": s, "gallery": _split(2, 6, 1)},
                                                         root="/data", attrs={"model": "tiny", "cfg": {"a": 1}}))
    back = h5.read_features(tmp_path / "f.h5")
    q = back.splits["query"]
    assert q.features.dtype == np.float16
    np.testing.assert_array_equal(q.features, s.features)
    np.testing.assert_array_equal(q.pids, s.pids)
    np.testing.assert_array_equal(q.modality, s.modality)
    assert back.attrs["model"] == "tiny" and back.attrs["cfg"] == '{"a": 1}'
    assert back.attrs["reid_format"] == "features" and back.attrs["reid_format_version"] == 1
    assert back.attrs["created_by"].startswith("reidcli ")
    assert list(back.splits) == ["gallery", "query"]
    assert h5.read_features(tmp_path / "f.h5", splits=["query"]).splits.keys() == {"query"}


def test_labels_and_pose_roundtrip(tmp_path):
    lf = h5.LabelsFile(np.array([0, 1, -1, 1]), list("abcd"), attrs={"method": "dbscan", "eps": 0.6},
                       centers=np.ones((2, 3), np.float32))
    h5.write_labels(tmp_path / "l.h5", lf)
    back = h5.read_labels(tmp_path / "l.h5")
    assert back.attrs["n_clusters"] == 2 and back.attrs["n_outliers"] == 1
    assert back.centers.shape == (2, 3) and back.attrs["eps"] == 0.6
    kp = np.random.default_rng(0).uniform(0, 10, size=(2, 17, 3)).astype(np.float32)
    h5.write_pose(tmp_path / "p.h5", h5.PoseFile(kp, ["x.jpg", "y.jpg"], np.array([[128, 64]] * 2),
                                                 root="/d", attrs={"backend": "gt"}))
    p = h5.read_pose(tmp_path / "p.h5")
    np.testing.assert_array_equal(p.keypoints, kp)
    assert p.attrs["keypoint_names"][0] == "nose" and p.root == "/d"


def test_provenance_chains_inputs(tmp_path):
    _write(tmp_path / "f.h5")
    h5.write_labels(tmp_path / "l.h5", h5.LabelsFile(np.zeros(3, int), ["a", "b", "c"]),
                    inputs=[tmp_path / "f.h5"], seed=7)
    prov = h5.read_labels(tmp_path / "l.h5").provenance
    assert len(prov) == 2
    assert prov[1]["seed"] == 7 and prov[1]["inputs"][0]["digest"].startswith("sha256:")
    assert prov[0] == h5.read_features(tmp_path / "f.h5").provenance[0]


@pytest.mark.parametrize("mutate, key", [
    (lambda s: setattr(s, "features", s.features[:2]), "rows"),
    (lambda s: setattr(s, "features", np.where(np.eye(3, 4) > 0, np.nan, s.features).astype(np.float32)), "NaN"),
    (lambda s: setattr(s, "paths", ["a", "a", "b"]), "duplicate"),
    (lambda s: setattr(s, "features", s.features.astype(np.float64)), "float32"),
    (lambda s: setattr(s, "features", s.features[:, 0]), "2-D"),
])
def test_writer_refuses_invalid(tmp_path, mutate, key):
    s = _split()
    mutate(s)
    with pytest.raises(FormatError, match=key):
        _write(tmp_path / "f.h5", train=s)
    assert not (tmp_path / "f.h5").exists()
    assert not list(tmp_path.iterdir())


def _tamper(path, fn):
    with h5py.File(path, "a") as f:
        fn(f)


@pytest.mark.parametrize("fn, key", [
    (lambda f: f.attrs.__setitem__("reid_format", "labels"), "'labels' file but a 'features'"),
    (lambda f: f.attrs.__setitem__("reid_format_version", 2), "version 2"),
    (lambda f: f.attrs.__delitem__("reid_format"), "not a reidcli file"),
    (lambda f: (f["train"].__delitem__("pids"), f["train"].create_dataset("pids", data=np.zeros(2, int))), "rows"),
    (lambda f: f["train"].__delitem__("camids"), "missing"),
    (lambda f: f["train/features"].__setitem__((0, 0), np.inf), "NaN/Inf"),
])
def test_reader_refuses_invalid(tmp_path, fn, key):
    path = _write(tmp_path / "f.h5")
    _tamper(path, fn)
    with pytest.raises(FormatError, match=key):
        h5.read_features(path)


def test_reader_refuses_non_hdf5_and_missing(tmp_path):
    (tmp_path / "x.h5").write_text("hello")
    with pytest.raises(FormatError, match="not an HDF5 file"):
        h5.read_features(tmp_path / "x.h5")
    with pytest.raises(InputError, match="no such file"):
        h5.read_features(tmp_path / "nope.h5")
    with pytest.raises(InputError, match="no 'query' split"):
        h5.read_features(_write(tmp_path / "f.h5"), splits=["query"])


def test_exception_midway_keeps_old_file(tmp_path, monkeypatch):
    path = _write(tmp_path / "f.h5")
    before = path.read_bytes()
    real = h5py.Group.create_dataset

    def boom(self, name, *a, **k):
        if name == "pids":
            raise RuntimeError("disk full")
        return real(self, name, *a, **k)

    monkeypatch.setattr(h5py.Group, "create_dataset", boom)
    with pytest.raises(RuntimeError):
        _write(path, train=_split(9))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["f.h5"]


def test_killed_write_keeps_old_file(tmp_path):
    path = _write(tmp_path / "f.h5")
    before = path.read_bytes()
    script = textwrap.dedent(f"""
        import time, h5py, numpy as np
        from reidcli.io import h5
        real = h5py.Group.create_dataset
        def slow(self, name, *a, **k):
            out = real(self, name, *a, **k)
            if name == "features":
                self.file.flush(); print("midway", flush=True); time.sleep(60)
            return out
        h5py.Group.create_dataset = slow
        s = h5.SplitFeatures(np.ones((50, 8), np.float32), [str(i) for i in range(50)],
                             np.zeros(50, int), np.zeros(50, int))
        h5.write_features({str(path)!r}, h5.FeaturesFile({{"train": s}}))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "midway"
    # the file is built in memory, so even SIGKILL midway leaves nothing on disk
    assert not any(p.name.startswith(".f.h5.tmp") for p in tmp_path.iterdir())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert path.read_bytes() == before
    assert h5.read_features(path).splits["train"].features.shape == (3, 4)


def test_labels_validation(tmp_path):
    with pytest.raises(FormatError, match="rows"):
        h5.write_labels(tmp_path / "l.h5", h5.LabelsFile(np.zeros(3, int), ["a", "b"]))
    with pytest.raises(FormatError, match="below -1"):
        h5.write_labels(tmp_path / "l.h5", h5.LabelsFile(np.array([0, -2]), ["a", "b"]))
    with pytest.raises(FormatError, match="centers"):
        h5.write_labels(tmp_path / "l.h5", h5.LabelsFile(np.array([0, 3]), ["a", "b"], centers=np.ones((2, 4))))
    assert not list(tmp_path.iterdir())


def test_pose_validation(tmp_path):
    with pytest.raises(FormatError, match=r"\[N, 17, 3\]"):
        h5.write_pose(tmp_path / "p.h5", h5.PoseFile(np.zeros((1, 16, 3)), ["a"], np.zeros((1, 2))))
