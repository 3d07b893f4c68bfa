"""`reid cluster`, `reid evaluate`, `reid info` (features, labels, pose files, dataset folders),
`reid merge` and `reid plot` (a training log, t-SNE, cluster sizes) never import torch on the CPU.

Each command runs in-process in a fresh interpreter (``python -c``) on small files; after
each one the child reports whether ``'torch' in sys.modules`` and the test asserts it is
not. A control run (``evaluate
--device cuda``, which must ask torch for CUDA) shows the check sees an import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import reidcli
from reidcli.io.h5 import FeaturesFile, SplitFeatures, write_features

REPO = Path(reidcli.__file__).resolve().parents[1]

CHILD = """
import json, sys
from reidcli.cli.app import app
for args in json.loads(sys.argv[1]):
    try:
        app(args=args, prog_name="reid")
    except SystemExit as exc:
        assert exc.code in (0, None), f"reid {' '.join(args)} exited {exc.code}"
    print(json.dumps({"args": args, "torch": "torch" in sys.modules}), file=sys.stderr)
"""


def run_child(runs: list[list[str]]) -> tuple[subprocess.CompletedProcess, list[dict]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(runs)], capture_output=True, text=True,
                          env=env, timeout=600, check=False)
    seen = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith('{"args"')]
    return proc, seen


def split(rng, n_ids: int, per: int, d: int, cam_offset: int, tag: str = "") -> SplitFeatures:
    centres = rng.normal(size=(n_ids, d))
    x = (np.repeat(centres, per, 0) + 0.3 * rng.normal(size=(n_ids * per, d))).astype(np.float32)
    n = len(x)
    return SplitFeatures(features=x, paths=[f"img/{tag}{cam_offset}_{i:04d}.jpg" for i in range(n)],
                         pids=np.repeat(np.arange(n_ids), per), camids=(np.arange(n) + cam_offset) % 3)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("light")
    rng = np.random.default_rng(0)
    f = write_features(tmp / "f.h5", FeaturesFile(splits={
        "train": split(rng, 6, 20, 16, 0), "query": split(rng, 5, 2, 16, 1), "gallery": split(rng, 5, 8, 16, 2)},
        attrs={"normalized": False}))
    from reidcli.io.h5 import read_features
    from tests.conftest import write_jpeg

    for name in ("query", "gallery"):  # the images --ranks-png draws (it refuses missing ones)
        for rel in read_features(f).split(name).paths:
            write_jpeg(tmp / "data" / rel, h=16, w=8)
    shards = []
    for i in (1, 2):
        s = split(np.random.default_rng(i), 6, 10, 16, 0, tag=f"s{i}_")
        shards.append(write_features(tmp / f"s{i}.h5", FeaturesFile(
            splits={"train": s}, attrs={"shard_index": i, "shard_count": 2, "split_sizes": {"train": 120}})))
    log = tmp / "m.log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in (
        {"type": "resources", "epoch": 0},
        {"type": "step", "epoch": 1, "iter": 2, "steps": 2, "lr": 1e-4, "loss": 3.0, "acc": 0.2, "img_s": 9.0},
        {"type": "epoch", "epoch": 1, "iter": 2, "loss": 3.0, "acc": 0.2, "img_s": 9.0})))
    return {"f": f, "s1": shards[0], "s2": shards[1], "dir": tmp, "log": log}


def test_cluster_evaluate_info_merge_import_no_torch(files, synth_market):
    f, tmp = str(files["f"]), files["dir"]
    runs = [
        ["cluster", f, "-o", str(tmp / "l.h5"), "--camera-norm", "--k1", "10", "--k2", "4", "--centers", "--json"],
        ["cluster", f, "-o", str(tmp / "k.h5"), "--method", "kmeans", "--k", "6"],
        ["cluster", f, "-o", str(tmp / "e.h5"), "--method", "dbscan-euclidean", "--eps", "0.7",
         "--expand-threshold", "0.8", "--keep-clusters", "3"],
        ["evaluate", f, "--json", "--per-query", str(tmp / "pq.csv"), "--cmc-png", str(tmp / "cmc.png")],
        ["evaluate", f, "--rerank", "--metric", "cosine", "--k1", "6", "--k2", "3", "--ranks-png", str(tmp / "r.png"),
         "--ranks-queries", "worst", "--image-root", str(tmp / "data")],
        ["evaluate", f, "--cmc-single-gallery", "--ap", "sklearn", "--threads", "1"],
        ["evaluate", f, f, "--json"],  # several files (RegDB's trials): each, then mean ± std
        ["info", f], ["info", str(tmp / "l.h5")], ["info", str(synth_market)], ["info", str(synth_market / "pose.h5")],
        ["merge", str(files["s2"]), str(files["s1"]), "-o", str(tmp / "m.h5")],
        ["plot", f, "--tsne", "--labels", str(tmp / "l.h5"), "--max-points", "60", "-o", str(tmp / "tsne.png")],
        ["plot", str(tmp / "l.h5"), "-o", str(tmp / "sizes.png")],
        ["plot", str(files["log"]), "-o", str(tmp / "curves.png")],
    ]
    proc, seen = run_child(runs)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [s["args"] for s in seen] == runs
    imported = [" ".join(s["args"][:1]) for s in seen if s["torch"]]
    assert not imported, f"torch was imported by: {imported}"
    assert (tmp / "l.h5").exists() and (tmp / "m.h5").exists() and (tmp / "pq.csv").exists()
    assert all((tmp / name).stat().st_size > 0 for name in ("tsne.png", "sizes.png", "curves.png"))


def test_the_check_sees_a_torch_import(files):
    """Control: ``--device cuda`` asks torch whether CUDA exists (an error without it)."""
    _, seen = run_child([["info", str(files["f"])]])
    assert seen and not seen[0]["torch"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = ("import sys\nfrom reidcli.cli.app import app\ntry:\n    app(args=['evaluate', sys.argv[1], "
            "'--device', 'cuda'], prog_name='reid')\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(files["f"])], capture_output=True, text=True, env=env,
                         timeout=600, check=False)
    assert out.stdout.strip().splitlines()[-1] == "True", out.stderr[-2000:]
