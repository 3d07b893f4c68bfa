"""`reid features`, `reid merge`, `reid pretrain` through the CLI: outputs and one-line errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.io.h5 import read_features

from fixtures_train import FAST

runner = CliRunner()


def _run(*args):
    res = runner.invoke(app, ["-q", *map(str, args)])
    return res


def _fails(res, *words):
    assert res.exit_code == 1, res.output
    err = res.stderr if hasattr(res, "stderr") else res.output
    errors = [line for line in err.splitlines() if line.startswith("reid ") and ": error: " in line]
    assert "Traceback" not in err and len(errors) == 1, err
    for w in words:
        assert w in errors[0], err


def test_features_every_split_and_flip(synth_market, tiny_ckpt, tmp_path):
    out = tmp_path / "f.h5"
    res = _run("features", synth_market, "--ckpt", tiny_ckpt, "-o", out, "-j", "0", "--device", "cpu", "--flip")
    assert res.exit_code == 0, res.output
    ff = read_features(out)
    assert set(ff.splits) == {"train", "query", "gallery"}
    assert ff.attrs["feature_dim"] == 128 and ff.normalized and ff.attrs["model"] == "resnet18_quarter"
    assert ff.attrs["checkpoint"].startswith("sha256:") and ff.attrs["dataset_format"] == "market1501"
    q = ff.splits["query"].features
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, rtol=1e-5)
    assert len(ff.provenance) >= 2  # the checkpoint's record, then this one


def test_shards_merge_to_the_single_run(synth_market, tiny_ckpt, tmp_path):
    common = ["--ckpt", tiny_ckpt, "-j", "0", "--device", "cpu", "--split", "gallery", "--half"]
    assert _run("features", synth_market, "-o", tmp_path / "all.h5", *common).exit_code == 0
    for i in (1, 2, 3):
        res = _run("features", synth_market, "-o", tmp_path / f"s{i}.h5", "--shard", f"{i}/3", *common)
        assert res.exit_code == 0, res.output
    _fails(_run("merge", tmp_path / "s1.h5", tmp_path / "s3.h5", "-o", tmp_path / "m.h5"), "missing shard(s) [2]")
    res = _run("merge", tmp_path / "s3.h5", tmp_path / "s1.h5", tmp_path / "s2.h5", "-o", tmp_path / "m.h5")
    assert res.exit_code == 0, res.output
    a, b = read_features(tmp_path / "all.h5").splits["gallery"], read_features(tmp_path / "m.h5").splits["gallery"]
    assert a.paths == b.paths and b.features.dtype == np.float16
    np.testing.assert_allclose(a.features.astype(np.float32), b.features.astype(np.float32), atol=1e-3)
    _fails(_run("merge", tmp_path / "all.h5", "-o", tmp_path / "x.h5"), "not a shard")
    _fails(_run("features", synth_market, "-o", tmp_path / "x.h5", "--shard", "4/3", *common), "--shard")


def test_corrupt_images_fail_before_writing_unless_skipped(synth_market, tiny_ckpt, tmp_path):
    data = tmp_path / "market"
    shutil.copytree(synth_market, data)
    bad = sorted((data / "query").glob("*.jpg"))[0]
    bad.write_bytes(b"\xff\xd8not really a jpeg")
    common = ["--ckpt", tiny_ckpt, "-j", "0", "--device", "cpu"]
    res = _run("features", data, "-o", tmp_path / "f.h5", *common)
    _fails(res, "unreadable image", bad.name, "--skip-bad")
    assert not (tmp_path / "f.h5").exists()
    res = _run("features", data, "-o", tmp_path / "f.h5", "--skip-bad", *common)
    assert res.exit_code == 0, res.output
    q = read_features(tmp_path / "f.h5").splits["query"]
    assert f"query/{bad.name}" not in q.paths and len(q.paths) == len(list((data / "query").glob("*.jpg"))) - 1


def test_features_refuses_foreign_checkpoints(synth_market, tmp_path):
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "sd.pt")
    _fails(_run("features", synth_market, "--ckpt", tmp_path / "sd.pt", "-o", tmp_path / "f.h5"),
           "not a reidcli checkpoint")
    assert not (tmp_path / "f.h5").exists()


@pytest.mark.parametrize("extra,words", [
    (["--arch", "resnet5"], ["did you mean 'resnet50'"]),
    (["--height", "70"], ["--height 70 must be a multiple of 16"]),
    (["--optimizer", "adagrad"], ["--optimizer must be one of"]),
])
def test_pretrain_bad_options(synth_market, tmp_path, extra, words):
    _fails(_run("pretrain", synth_market, "-o", tmp_path / "m.pt", *FAST, *extra), *words)
    assert not (tmp_path / "m.pt").exists()


def test_pretrain_one_identity(tmp_path):
    from conftest import write_jpeg

    root = tmp_path / "Market-1501-v15.09.15"
    for i, folder in enumerate(["bounding_box_train"] * 3 + ["query", "bounding_box_test"]):
        write_jpeg(root / folder / f"0002_c{i % 2 + 1}s1_00{i}051_00.jpg", 64, 32, seed=i)
    _fails(_run("pretrain", root, "-o", tmp_path / "m.pt", *FAST), "1 labelled identity", "at least 2")


def test_pretrain_cli_then_info(synth_market, tmp_path):
    out = tmp_path / "m.pt"
    res = _run("pretrain", synth_market, "-o", out, *FAST, "--epochs", "1", "--iters-per-epoch", "1",
               "--center-weight", "0.0035", "--pooling", "gem")
    assert res.exit_code == 0, res.output
    res = _run("info", out, "--json")
    assert res.exit_code == 0 and '"format": "checkpoint"' in res.stdout and '"resumable": true' in res.stdout
    assert (tmp_path / "m.log.jsonl").read_text().count('"center"') >= 1
