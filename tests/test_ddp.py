"""DDP: two CPU processes (gloo) under torchrun train and write one usable checkpoint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

from reidcli.io.ckpt import load_checkpoint
from reidcli.models import load_network

from fixtures_train import FAST


@pytest.mark.slow
def test_torchrun_two_cpu_processes(synth_market, tmp_path):
    out = tmp_path / "m.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1", REIDCLI_QUIET="1")
    reid = shutil.which("reid") or os.path.join(os.path.dirname(sys.executable), "reid")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           reid, "pretrain", str(synth_market), "-o", str(out), *FAST, "--epochs", "1",
           "--iters-per-epoch", "2"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    ck = load_checkpoint(out)
    assert ck["iteration"] == 2 and ck["epoch"] == 1
    assert ck["train_state"]["streams"]["source"]["consumed"] == 2
    model, _ = load_network(out)
    with torch.no_grad():
        f = model(torch.randn(2, 3, 64, 32))
    assert f.shape == (2, 128) and torch.isfinite(f).all()
    log = (tmp_path / "m.log.jsonl").read_text().splitlines()
    assert len([x for x in log if '"type": "epoch"' in x]) == 1  # rank 0 only


@pytest.mark.slow
def test_torchrun_stargan_two_cpu_processes(synth_market, tmp_path):
    """`reid stylize fit --method stargan` under torchrun: both nets wrapped in DDP (the
    critic's gradient penalty is a double backward through it), one checkpoint, one log."""
    out = tmp_path / "g.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1", REIDCLI_QUIET="1")
    reid = shutil.which("reid") or os.path.join(os.path.dirname(sys.executable), "reid")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           reid, "stylize", "fit", str(synth_market), "-o", str(out), "--method", "stargan", "--image-size", "32x16",
           "--epochs", "1", "--iters", "6", "--batch-size", "4", "--g-conv-dim", "8", "--d-conv-dim", "8",
           "--g-repeat", "1", "--sample-every", "3", "--workers", "0", "--device", "cpu"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    ck = load_checkpoint(out, kind="stylize")
    assert ck["iteration"] == 6 and ck["model_config"]["method"] == "stargan"
    assert set(ck["train_state"]["extra_optimizers"]) == {"d"}
    log = (tmp_path / "g.log.jsonl").read_text().splitlines()
    assert len([x for x in log if '"type": "epoch"' in x]) == 1 and '"processes": 2' in log[0]
    assert sorted(p.name for p in (tmp_path / "g.samples").glob("*.png")) == ["step_0000003.png", "step_0000006.png"]
