"""Fixtures shared by the engine / pretrain / features / DDP tests: a tiny synthetic
Market-1501 dataset at 64x32 and a quickly trained tiny checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

FAST = ["--arch", "tiny", "--pretrained", "none", "--height", "64", "--width", "32", "--ids-per-batch", "4",
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
    pretrain(synth_market, out, model=ModelConfig(arch="tiny"),
             train=TrainConfig(epochs=1, iters_per_epoch=2, p=4, k=2, workers=0, warmup_epochs=0),
             augment=AugmentConfig(height=64, width=32), device="cpu")
    return out
