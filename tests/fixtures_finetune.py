"""Fixtures and helpers shared by the `reid finetune` tests (test_finetune, test_camstyle,
test_mar, test_train_schedule, test_recipes_*, test_output_safety, ...): a tiny UDA round's
inputs (a CSV-layout target and source, a source checkpoint, imperfect pseudo-labels), one
round through the library (`_finetune`) or the CLI (`_run`, `_base`), and checks of its
weights. Registered as a pytest plugin in tests/conftest.py: use ``uda`` as an argument,
import the helpers from here."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_jpeg

H, W = 32, 16
ARCH, DIM = "resnet18_quarter", 128  # the smallest backbone and its embedding size: the methods are tested
FAST = dict(epochs=1, iters_per_epoch=2, p=3, k=2, images_per_bn=0, workers=0, seed=0)


def _finetune(ckpt, labels, target, out, method, *, options=None, train=None, **kw):
    """One tiny round on CPU (`FAST` engine settings, changed by ``train``)."""
    from reidcli.train.config import FinetuneConfig
    from reidcli.train.finetune import finetune

    return finetune(ckpt, labels, target, out, method=method, options=options,
                    train=FinetuneConfig(**{**FAST, **(train or {})}), device="cpu", **kw)


def _write_csv_dataset(root: Path, n_ids: int = 4, per_id: int = 4, seed: int = 0) -> Path:
    """A CSV-layout dataset (pids in a column, so they can be changed without moving files)."""
    rows = []
    for pid in range(n_ids):
        for j in range(per_id):
            rel = f"img/{pid:02d}_{j}.jpg"
            write_jpeg(root / rel, H, W, seed=seed + 10 * pid + j)
            rows.append((rel, pid, j % 2))
    with open(root / "list.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("path", "pid", "camid"), *rows])
    return root / "list.csv"


def _with_pids(src_csv: Path, dst_csv: Path, pids) -> Path:
    rows = list(csv.reader(open(src_csv)))
    with open(dst_csv, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(rows[0])
        for r, pid in zip(rows[1:], pids):
            w.writerow([r[0], pid, r[2]])
    return dst_csv


def _source_ckpt(path: Path, method: str = "supervised", num_classes: int = 4, seed: int = 0) -> Path:
    import torch

    from reidcli.io.ckpt import make_checkpoint, save_checkpoint
    from reidcli.models import ModelConfig, build_model

    torch.manual_seed(seed)
    cfg = ModelConfig(arch=ARCH, num_classes=num_classes)
    net = build_model(cfg)
    ck = make_checkpoint(model_config=cfg.to_dict(), model_state=net.state_dict(), input_size=(H, W),
                         method=method, epoch=1, feat_dim=net.feat_dim)
    return save_checkpoint(path, ck)


def _labels(path: Path, target_csv: Path, labels, dim: int = DIM, paths=None, attrs=None) -> Path:
    from reidcli.data.layouts import load_dataset
    from reidcli.io.h5 import LabelsFile, write_labels

    recs = load_dataset(target_csv).split("train")
    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max()) + 1
    centers = np.random.default_rng(0).normal(size=(max(k, 1), dim)).astype(np.float32)
    lf = LabelsFile(labels=labels, paths=paths or [r.path for r in recs], centers=centers,
                    attrs=attrs or {"method": "test"})
    return write_labels(path, lf)


@pytest.fixture
def uda(tmp_path: Path) -> dict:
    tgt = _write_csv_dataset(tmp_path / "target")
    src = _write_csv_dataset(tmp_path / "source", seed=500)
    pseudo = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 0, 3, 3, 3, 3, -1]  # imperfect clusters, one outlier
    return {"target": tgt, "source": src, "ckpt": _source_ckpt(tmp_path / "m.pt"),
            "labels": _labels(tmp_path / "labels.h5", tgt, pseudo), "tmp": tmp_path}


def _state(path: Path, key: str = "model") -> dict:
    import torch

    ck = torch.load(path, weights_only=True)
    return ck[key] if key == "model" else ck["nets"][key]


def _changed(a: dict, b: dict) -> bool:
    import torch

    return any(not torch.equal(a[k], b[k]) for k in a if k in b and "classifier" not in k
               and torch.is_floating_point(a[k]))


def _run(args):
    from typer.testing import CliRunner

    from reidcli.cli.app import app

    return CliRunner().invoke(app, ["finetune", *map(str, args)])


def _base(uda, out, labels=None, ckpt=None):
    return [uda["target"], "--ckpt", ckpt or uda["ckpt"], "--labels", labels or uda["labels"],
            "-o", out, "--epochs", 1, "--iters", 1, "-P", 3, "-K", 2, "--workers", 0,
            "--device", "cpu", "--images-per-bn", 0]
