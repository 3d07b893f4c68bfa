"""The README's "Python API" block runs as written, and its numbers are those of the
file-level pipeline: the features equal `reid features`' (reidcli.features.extract), the
pseudo-labels equal `reid cluster`'s on that file, the metrics equal `reid evaluate`'s."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _api_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the README's Python API section has no python block"
    return blocks


def test_readme_python_api_runs_and_matches_the_commands(tmp_path, synth_market, tiny_ckpt, monkeypatch):
    (tmp_path / "data").mkdir()
    os.symlink(synth_market, tmp_path / "data" / "market")
    os.symlink(tiny_ckpt, tmp_path / "m.pt")
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in _api_blocks():
            exec(compile(block, "README.md", "exec"), ns)  # noqa: S102
    printed = out.getvalue()
    assert "mAP" in printed and "clusters," in printed
    from reidcli.io.ckpt import load_checkpoint  # the training block: pretrain, then one round

    assert load_checkpoint(tmp_path / "src.pt")["method"] == "supervised"
    assert load_checkpoint(tmp_path / "round1.pt")["method"] == "pseudo"

    from reidcli.cluster import run
    from reidcli.eval import Options, evaluate_file
    from reidcli.features import extract
    from reidcli.io.h5 import read_features, read_labels

    f = extract(tiny_ckpt, synth_market, tmp_path / "f.h5", device="cpu", workers=0)
    ff = read_features(f)
    for split in ("train", "query", "gallery"):
        assert ff.split(split).paths == ns["ds"].arrays(split)[0]
        np.testing.assert_allclose(ns["feats"][split]["features"], ff.split(split).features, atol=1e-5)
    run(f, tmp_path / "l.h5", eps=0.6, k1=20, k2=6)
    np.testing.assert_array_equal(ns["result"].labels, read_labels(tmp_path / "l.h5").labels)
    want = evaluate_file(f, Options(metric="cosine", ranks=(1, 5)))
    assert ns["res"].mean == want.mean


def test_embed_images_takes_a_path_or_a_loaded_network_and_names_a_bad_image(tmp_path, synth_market, tiny_ckpt):
    import pytest

    from reidcli.features import embed_images
    from reidcli.models import load_network
    from reidcli.utils.errors import InputError

    paths = sorted(str(p) for p in (synth_market / "query").glob("*.jpg"))[:3]  # absolute paths
    a = embed_images(tiny_ckpt, paths, device="cpu", workers=0)
    b = embed_images(load_network(tiny_ckpt, "cpu"), paths, device="cpu", workers=0)
    np.testing.assert_array_equal(a, b)
    assert a.shape[0] == 3 and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(InputError, match="bad.jpg"):
        embed_images(tiny_ckpt, [*paths, str(tmp_path / "bad.jpg")], device="cpu", workers=0)
    with pytest.raises(InputError, match="no images"):
        embed_images(tiny_ckpt, [], device="cpu")
