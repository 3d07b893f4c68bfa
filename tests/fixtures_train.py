"""Fixtures shared by the engine / pretrain / features / stylize / DDP tests: a tiny synthetic
Market-1501 dataset at 64x32, a quickly trained tiny checkpoint and a tiny synthetic
SYSU-MM01 dataset at 32x16. Registered as a pytest plugin in tests/conftest.py: use a fixture
by naming it as an argument, never import it."""

from __future__ import annotations

from pathlib import Path

import pytest

FAST = ["--arch", "resnet18_quarter", "--pretrained", "none", "--height", "64", "--width", "32", "--ids-per-batch", "4",
        "--images-per-id", "2", "--warmup-epochs", "0", "--workers", "0", "--device", "cpu"]


@pytest.fixture(scope="session")
def synth_market(tmp_path_factory) -> Path:
    """6 train identities, 4 test identities, 4 images each, 64x32, Market-1501 layout."""
    from reidcli.data.synth import synthesize

    out = tmp_path_factory.mktemp("synth") / "market"
    synthesize(out, domain="market", ids=6, test_ids=4, images_per_id=4, height=64, width=32,
               seed=0, distractors=2, junk=1)
    return out


@pytest.fixture(scope="session")
def tiny_ckpt(synth_market, tmp_path_factory) -> Path:
    """A tiny checkpoint after 2 training steps (library call, no CLI)."""
    from reidcli.data.transforms import AugmentConfig
    from reidcli.models import ModelConfig
    from reidcli.train.config import TrainConfig
    from reidcli.train.pretrain import pretrain

    out = tmp_path_factory.mktemp("ckpt") / "m.pt"
    pretrain(synth_market, out, model=ModelConfig(arch="resnet18_quarter"),
             train=TrainConfig(epochs=1, iters_per_epoch=2, p=4, k=2, workers=0, warmup_epochs=0),
             augment=AugmentConfig(height=64, width=32), device="cpu")
    return out


@pytest.fixture(scope="module")
def synth_sysu(tmp_path_factory) -> Path:
    """A tiny synthetic SYSU-MM01 dataset: 4 train and 4 test identities, 12 images per
    identity, 32x16; made once per test module."""
    from reidcli.data.synth import synthesize

    out = tmp_path_factory.mktemp("synth") / "sysu"
    synthesize(out, domain="sysu", ids=4, test_ids=4, images_per_id=12, height=32, width=16, seed=0)
    return out


def write_styled(target: Path, out: Path) -> Path:
    """A hand-made ``reid stylize apply`` folder for a dataset of any layout: every training
    image of ``target`` in each other camera (its colours inverted: a stand-in style), as
    ``out/img/<i>_c<cam>.jpg``, with ``manifest.csv`` (the columns apply writes)."""
    import csv

    import cv2

    from reidcli.data.layouts import load_dataset
    from reidcli.stylize.manifest import MANIFEST, MANIFEST_COLUMNS

    ds = load_dataset(target)
    recs = ds.split("train")
    cams = sorted({r.camid for r in recs})
    (out / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, r in enumerate(recs):
        img = cv2.imread(str(ds.abspath(r)))
        for c in cams:
            if c != r.camid:
                rel = f"img/{i}_c{c + 1}.jpg"
                cv2.imwrite(str(out / rel), 255 - img)
                rows.append(("train", r.pid, str(ds.abspath(r)), r.camid + 1, c + 1, rel))
    with open(out / MANIFEST, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(MANIFEST_COLUMNS)
        w.writerows(rows)
    return out
