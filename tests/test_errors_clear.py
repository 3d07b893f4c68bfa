"""Clear one-line errors where "internal error" used to be (issue 16): damaged files, broken
provenance, wrong dtypes, symlink loops, unreadable folders, bad numbers, empty inputs;
validators that refuse what they used to truncate; click's own usage errors as one line."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.io import h5

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "format" / "v1"
runner = CliRunner()


def one_line(res, command: str, code: int = 1) -> str:
    assert res.exit_code == code, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"reid {command}: error: "), lines[0]
    assert "internal error" not in lines[0] and "Traceback" not in res.output
    return lines[0]


def _features(path: Path, n: int = 24, d: int = 8) -> Path:
    rng = np.random.default_rng(0)
    s = h5.SplitFeatures(rng.normal(size=(n, d)).astype(np.float32), [f"{i}.jpg" for i in range(n)],
                         np.arange(n) % 4, np.arange(n) % 2)
    return h5.write_features(path, h5.FeaturesFile({"train": s, "query": s, "gallery": s}))


# --------------------------------------------------------------------------- 7. clear lines
def test_truncated_hdf5_names_the_file(tmp_path):
    f = _features(tmp_path / "f.h5")
    cut = tmp_path / "cut.h5"
    cut.write_bytes(f.read_bytes()[:4000])
    for argv in (["cluster", cut, "-o", tmp_path / "l.h5"], ["info", cut], ["evaluate", cut]):
        line = one_line(runner.invoke(app, [str(a) for a in argv]), argv[0])
        assert f"{cut} is a damaged or truncated HDF5 file" in line


def _edit(src: Path, dst: Path, fn) -> Path:
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        fn(f)
    return dst


def _replace(f, key, data, **kw):
    del f[key]
    f.create_dataset(key, data=data, **kw)


@pytest.mark.parametrize("case,edit,words", [
    ("json", lambda f: _replace(f, "provenance", np.array(["{not json"], dtype=object), dtype=h5.STR),
     "/provenance record 0 is not valid JSON"),
    ("list", lambda f: _replace(f, "provenance", np.array(["[1, 2]"], dtype=object), dtype=h5.STR),
     "/provenance record 0 is a JSON list, not an object"),
    ("paths", lambda f: _replace(f, "train/paths", np.arange(24)),
     "/train/paths must be a 1-D array of strings; found int64 (24,)"),
    ("group", lambda f: (f.__delitem__("train/pids"), f.create_group("train/pids")),
     "/train/pids must be a dataset, not a group"),
])
def test_malformed_files_are_one_line(tmp_path, case, edit, words):
    bad = _edit(_features(tmp_path / "f.h5"), tmp_path / "bad.h5", edit)
    for argv in (["cluster", bad, "-o", tmp_path / "l.h5"], ["info", bad]):
        line = one_line(runner.invoke(app, [str(a) for a in argv]), argv[0])
        assert f"{bad}:" in line and words in line, line
    assert not (tmp_path / "l.h5").exists()


def test_symlink_loop_and_dangling_inputs(tmp_path):
    (tmp_path / "a.h5").symlink_to(tmp_path / "b.h5")
    (tmp_path / "b.h5").symlink_to(tmp_path / "a.h5")
    (tmp_path / "d.h5").symlink_to(tmp_path / "gone.h5")
    line = one_line(runner.invoke(app, ["info", str(tmp_path / "a.h5")]), "info")
    assert line.endswith(f"{tmp_path / 'a.h5'} is a symlink loop; fix the link")
    line = one_line(runner.invoke(app, ["cluster", str(tmp_path / "d.h5"), "-o", str(tmp_path / "l.h5")]), "cluster")
    assert line.endswith(f"{tmp_path / 'd.h5'} is a dangling symlink (to {tmp_path / 'gone.h5'}); fix the link")


def test_unreadable_subfolder_is_an_error_not_silently_skipped(tmp_path, monkeypatch):
    from conftest import write_jpeg

    data = tmp_path / "imgs"
    write_jpeg(data / "ok" / "a.jpg")
    locked = data / "locked"
    write_jpeg(locked / "b.jpg")
    os.chmod(locked, 0)
    try:
        if os.access(locked, os.R_OK):  # root reads anyway: let the listing be refused as it would be
            real = os.scandir

            def scandir(path="."):
                if Path(path) == locked:
                    raise PermissionError(13, "Permission denied", str(path))
                return real(path)

            monkeypatch.setattr(os, "scandir", scandir)
        res = runner.invoke(app, ["-q", "info", str(data), "--format", "unlabelled"])
        line = one_line(res, "info")
        assert line.endswith(f"{locked}: cannot be read (Permission denied); fix its permissions, or move it "
                             "out of the dataset folder")
    finally:
        os.chmod(locked, 0o755)


def test_an_os_error_naming_a_file_is_one_line(tmp_path, monkeypatch):
    import sys

    run = sys.modules["reidcli.cluster.run"]
    f = _features(tmp_path / "f.h5")

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied", str(f))

    monkeypatch.setattr(run, "cluster_features", refuse)
    line = one_line(runner.invoke(app, ["cluster", str(f), "-o", str(tmp_path / "l.h5")]), "cluster")
    assert line == f"reid cluster: error: {f}: Permission denied; check the path and its permissions"


def test_empty_inputs(tmp_path):
    (tmp_path / "e.h5").write_bytes(b"")
    (tmp_path / "e.pt").write_bytes(b"")
    line = one_line(runner.invoke(app, ["cluster", str(tmp_path / "e.h5"), "-o", str(tmp_path / "l.h5")]), "cluster")
    assert "e.h5 is not an HDF5 file" in line
    from conftest import write_jpeg

    write_jpeg(tmp_path / "d" / "a.jpg")
    line = one_line(runner.invoke(app, ["-q", "features", "--format", "unlabelled", "--ckpt", str(tmp_path / "e.pt"), str(tmp_path / "d"),
                                        "-o", str(tmp_path / "f.h5")]), "features")
    assert "e.pt is an empty file, not a reidcli checkpoint" in line


def test_nan_learning_rate(tmp_path):
    (tmp_path / "d").mkdir()
    line = one_line(runner.invoke(app, ["pretrain", str(tmp_path / "d"), "-o", str(tmp_path / "m.pt"),
                                        "--lr", "nan"]), "pretrain")
    assert line.endswith("--lr must be a float > 0; got nan")
