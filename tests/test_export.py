"""`reid export`: ONNX and TorchScript files compute what `reid features` computes (checked
with onnxruntime and torch.jit.load on the images themselves), and `--slim` drops the
training state but keeps the network."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures_contracts import reid, reid_ok

from reidcli.io.ckpt import load_checkpoint
from reidcli.io.h5 import read_features


def _images(root, paths, size):
    """Decode as documented for the exported input: RGB, 0-255, bilinear to (h, w)."""
    import cv2

    h, w = size
    out = []
    for p in paths:
        img = cv2.cvtColor(cv2.imread(str(root / p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        if img.shape[:2] != (h, w):
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
        out.append(img.transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)


@pytest.fixture(scope="module")
def query_features(synth_market, tiny_ckpt, tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    out = {}
    for flip in (False, True):
        f = d / f"f{int(flip)}.h5"
        reid_ok("features", "--ckpt", tiny_ckpt, synth_market, "-o", f, "--split", "query", "-j", "0",
                "--device", "cpu", *(["--flip"] if flip else []))
        out[flip] = read_features(f).split("query")
    return out


@pytest.mark.parametrize("suffix,flip", [(".onnx", False), (".onnx", True), (".ts", False)])
def test_export_equals_reid_features(tiny_ckpt, synth_market, query_features, tmp_path, suffix, flip):
    out = tmp_path / f"m{suffix}"
    res = reid_ok("export", "--ckpt", tiny_ckpt, "-o", out, "--json", *(["--flip"] if flip else []))
    report = json.loads(res.stdout)
    ck = load_checkpoint(tiny_ckpt)
    split = query_features[flip]
    x = _images(synth_market, split.paths, ck["input_size"])
    if suffix == ".onnx":
        ort = pytest.importorskip("onnxruntime")
        import onnx

        sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = sess.run(["features"], {"images": x})[0]
        meta = {p.key: json.loads(p.value) for p in onnx.load(str(out)).metadata_props}
        assert report["checked_with"] == "onnxruntime"
    else:
        import torch

        from reidcli.models.export import load_torchscript

        module, meta = load_torchscript(out)
        got = module(torch.from_numpy(x)).detach().numpy()
    assert got.shape == split.features.shape
    np.testing.assert_allclose(got, split.features, atol=1e-4, rtol=0)
    assert meta["input_size"] == list(ck["input_size"]) and meta["flip"] is flip and meta["normalized"] is True
    assert meta["pixel_mean"] == list(ck["pixel_mean"]) and meta["feat_dim"] == got.shape[1]
    assert meta["checkpoint"].startswith("sha256:") and report["max_abs_diff"] < 1e-4


def test_slim_drops_the_training_state_and_keeps_the_network(tiny_ckpt, synth_market, query_features, tmp_path):
    import torch

    out = tmp_path / "slim.pt"
    res = reid_ok("export", "--ckpt", tiny_ckpt, "-o", out, "--slim", "--json")
    assert json.loads(res.stdout)["meta"]["dropped"] == ["train_state"]
    full, slim = load_checkpoint(tiny_ckpt), load_checkpoint(out)
    assert "train_state" in full and "train_state" not in slim
    assert out.stat().st_size < tiny_ckpt.stat().st_size
    assert set(slim["model"]) == set(full["model"])
    assert all(torch.equal(slim["model"][k], full["model"][k]) for k in full["model"])
    assert [r["program"] for r in slim["provenance"]][-1] == "reid export"
    f = tmp_path / "f.h5"
    reid_ok("features", "--ckpt", out, synth_market, "-o", f, "--split", "query", "-j", "0", "--device", "cpu")
    np.testing.assert_array_equal(read_features(f).split("query").features, query_features[False].features)


@pytest.mark.parametrize("args,words", [
    (["-o", "{tmp}/m.zip"], ".onnx (ONNX) or .ts (TorchScript)"),
    (["-o", "{tmp}/s.pt", "--slim", "--flip"], "--slim copies the checkpoint's weights"),
])
def test_bad_export_is_one_line(tiny_ckpt, tmp_path, args, words):
    res = reid("export", "--ckpt", tiny_ckpt, *[a.format(tmp=tmp_path) for a in args])
    assert res.exit_code == 1 and words in res.stderr and "Traceback" not in res.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix,target", [(".onnx", "torch.onnx.export"), (".ts", "torch.jit.save")])
def test_exporter_failure_is_one_line_and_writes_nothing(tiny_ckpt, tmp_path, monkeypatch, suffix, target):
    """An error inside the ONNX / TorchScript exporter: one line, exit 1, the previous file
    intact and no temporary beside it (the file is built in memory, then written atomically)."""
    import torch

    def boom(*args, **kwargs):
        raise RuntimeError("\nexporter exploded: unsupported operator aten::foo\n  more detail")

    mod, name = target.rsplit(".", 1)
    monkeypatch.setattr(torch.onnx if mod == "torch.onnx" else torch.jit, name, boom)
    out = tmp_path / f"m{suffix}"
    out.write_bytes(b"previous export")
    res = reid("export", "--ckpt", tiny_ckpt, "-o", out)
    assert res.exit_code == 1, res.output
    lines = res.stderr.strip().splitlines()
    what = "ONNX" if suffix == ".onnx" else "TorchScript"
    assert lines == [f"reid export: error: {what} export of arch resnet18_quarter failed (RuntimeError: exporter exploded: "
                     f"unsupported operator aten::foo); nothing was written; "
                     + ("try another --opset (now 17) or -o NAME.ts for TorchScript" if suffix == ".onnx"
                        else "try -o NAME.onnx for ONNX")], res.stderr
    assert out.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_export_goes_through_atomic_write_bytes(tiny_ckpt, tmp_path, monkeypatch):
    """The bytes written are the ones reported (size) and arrive through `atomic_write_bytes`;
    a device output (/dev/null-like) is written directly and gets no temporary."""
    import reidcli.io.atomic as atomic

    seen = []
    real = atomic.atomic_write_bytes
    monkeypatch.setattr(atomic, "atomic_write_bytes", lambda p, d: seen.append((p, len(d))) or real(p, d))
    out = tmp_path / "m.ts"
    res = reid("export", "--ckpt", tiny_ckpt, "-o", out, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert seen == [(out, out.stat().st_size)] and report["size_bytes"] == out.stat().st_size
    assert report["max_abs_diff"] is not None and report["max_abs_diff"] < 1e-4
    import os
    import stat

    dev = tmp_path / "dev" / "m.ts"
    dev.parent.mkdir()
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a private /dev/null
    except OSError:
        return
    res = reid("export", "--ckpt", tiny_ckpt, "-o", dev)  # checked from memory, not read back from -o
    assert res.exit_code == 0, res.output
    assert stat.S_ISCHR(os.stat(dev).st_mode) and sorted(p.name for p in dev.parent.iterdir()) == ["m.ts"]
