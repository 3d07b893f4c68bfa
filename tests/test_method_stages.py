"""Every registered training method, asked of every training stage (``reid pretrain``,
``reid finetune``): it runs (one step), or the command refuses it in one line, exit 2 (bad
usage), naming the methods that stage runs and the command that runs this one, before any
file is written. Never an internal error (``reid pretrain --method pseudo`` once ended in
"internal error: KeyError: 'init'").

The stage of a method is declared with it (`reidcli.train.methods`), so a new method is in
this matrix without touching the test.
"""

from __future__ import annotations

import pytest
import typer
from fixtures_finetune import ARCH, H, W, _base, _run
from fixtures_train import write_styled
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.train.methods import DEFAULT_METHODS, STAGES, TRAINING_METHODS, method_names, method_stage

TRAINING_STAGES = ("pretrain", "finetune")
FAST = ["--epochs", "1", "--iters", "1", "-P", "3", "-K", "2", "--workers", "0", "--device", "cpu",
        "--images-per-bn", "0"]


def _pretrain(uda, out, method):
    args = ["-q", "pretrain", uda["target"], "-o", out, "--method", method, "--arch", ARCH, "--pretrained", "none",
            "--height", H, "--width", W, *FAST]
    return CliRunner().invoke(app, [str(a) for a in args])


def _finetune(uda, out, method):
    args = _base(uda, out)
    if method == "mar":  # no clustering: reference agents from a labelled set instead
        i = args.index("--labels")
        args = args[:i] + args[i + 2:] + ["--reference", uda["source"]]
    if method in ("joint", "camstyle"):
        args += ["--source", uda["source"]]
    if method == "camstyle":
        args += ["--styled", write_styled(uda["target"], uda["tmp"] / "styled")]
    return _run([*args, "--method", method])


@pytest.mark.parametrize("stage", TRAINING_STAGES)
@pytest.mark.parametrize("method", TRAINING_METHODS.names())
def test_every_method_in_every_stage_runs_or_is_one_line_of_bad_usage(uda, method, stage):
    out = uda["tmp"] / "out.pt"
    res = (_pretrain if stage == "pretrain" else _finetune)(uda, out, method)
    assert "internal error" not in res.output and "Traceback" not in res.output, res.output
    runs_in = method_stage(method)
    if runs_in != stage:
        command, _, does = STAGES[runs_in]
        assert res.exit_code == 2, res.output
        assert res.stderr.strip() == (f"reid {stage}: error: --method must be {STAGES[stage][1]} "
                                      f"({', '.join(method_names(stage))}); got '{method}', which runs in "
                                      f"{command} ({does})")
        assert not out.exists()
    elif method == "mrda":  # a visible-infrared method: this visible-only dataset is refused in one line
        assert res.exit_code == 1 and len(res.stderr.strip().splitlines()) == 1, res.output
        assert "--arch mrda" in res.stderr or "infrared" in res.stderr, res.stderr
        assert not out.exists()
    else:
        assert res.exit_code == 0, res.output
        assert out.is_file()


def test_the_stages_partition_the_methods():
    """Each method runs in exactly one command; --help lists a stage's methods from the registry."""
    stages = {name: method_stage(name) for name in TRAINING_METHODS.names()}
    assert set(stages.values()) <= set(STAGES)
    assert sorted(n for s in STAGES for n in method_names(s)) == sorted(stages)
    for stage in TRAINING_STAGES:
        command = typer.main.get_command(app).commands[stage]
        text = next(p.help for p in command.params if "--method" in getattr(p, "opts", []))
        for name in method_names(stage):
            assert f"{name} ({TRAINING_METHODS.describe(name)})" in text, (stage, name)
        assert text.endswith(f"[default: {DEFAULT_METHODS[stage]}]"), text
