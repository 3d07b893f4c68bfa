"""Write the golden files of format version 1 into tests/data/format/v1/.

Run from the repository root (one command; it replaces the four files):

    PYTHONPATH=$PWD python tests/data/format/make_v1.py

The files are written by the real `reid` commands (synth -> pretrain -> features -> cluster,
and extract-pose with the ground-truth backend), in a fixed scratch folder so the paths
stored in them are the same on every run. Only the timestamps and digests change.

Every built-in architecture is at least a half-width ResNet-18 (11 MB of weights, 33 MB
with the Adam state), so the checkpoint is trained with ``golden_micro``: the same
ResNet-18 layout at 2-16 channels (about 11k weights), registered here only. Reading the
checkpoint (`load_checkpoint`, `reid info`) does not need the architecture; rebuilding
the network does, through `register_micro`.

Keep these files once written: tests/test_contract_formats.py checks that the current
readers still read them. A new format version gets a new folder (v2/) and script. If they
must be rewritten anyway, the expected outputs in tests/test_cli_output.py change with them
(digests, times): paste the new text each failing case prints.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "v1"
SCRATCH = Path("/tmp/reidcli-format-v1")  # fixed, so the stored paths do not change
MICRO = "golden_micro"
FILES = ("features.h5", "labels.h5", "pose.h5", "checkpoint.pt")


def register_micro() -> None:
    """Register ``golden_micro`` (ResNet-18 layout, 2-16 channels) in `MODELS` if absent."""
    from reidcli.models import MODELS
    from reidcli.models.backbones import ResNetBackbone, _narrow_resnet18

    if MICRO not in MODELS:
        MODELS.add(MICRO, lambda last_stride=2, pretrained="none":
                   ResNetBackbone(_narrow_resnet18(2), MICRO, last_stride))


def reid(*args: str) -> str:
    """Run ``reid ARGS`` in this process (argv recorded as the shell would) and return stdout."""
    from typer.testing import CliRunner

    from reidcli.cli.app import app

    sys.argv = ["reid", *args]
    res = CliRunner().invoke(app, list(args))
    if res.exit_code != 0:
        raise SystemExit(f"reid {' '.join(args)} failed ({res.exit_code}):\n{res.output}")
    return res.stdout


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    register_micro()
    shutil.rmtree(SCRATCH, ignore_errors=True)
    SCRATCH.mkdir(parents=True)
    os.chdir(SCRATCH)
    reid("-q", "synth", "data", "--ids", "3", "--test-ids", "3", "--images-per-id", "4", "--cams", "2",
         "--height", "32", "--width", "16", "--distractors", "1", "--junk", "1")
    reid("-q", "pretrain", "data", "-o", "checkpoint.pt", "--arch", MICRO, "--pretrained", "none",
         "--height", "32", "--width", "16", "-P", "3", "-K", "2", "--epochs", "1", "--max-iters", "2",
         "--warmup-epochs", "0", "-j", "0", "--device", "cpu")
    reid("-q", "features", "--ckpt", "checkpoint.pt", "data", "-o", "features.h5", "-j", "0", "--device", "cpu")
    reid("-q", "cluster", "features.h5", "-o", "labels.h5", "--k1", "4", "--k2", "2", "--min-samples", "2",
         "--centers")
    reid("-q", "extract-pose", "data", "--backend", "gt", "-o", "pose.h5")
    OUT.mkdir(exist_ok=True)
    for name in FILES:
        shutil.copyfile(SCRATCH / name, OUT / name)
        print(f"{OUT / name}: {(OUT / name).stat().st_size} bytes")
    shutil.rmtree(SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    main()
