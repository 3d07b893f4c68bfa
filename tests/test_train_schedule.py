"""Warm-up and step milestones longer than the run (issue 22): a default one is scaled to
the run's length with one info line; one the user set is refused with one line naming it
and its bound. In the library (`fit_schedule`, `pretrain`, `finetune`) and the CLI."""

from __future__ import annotations

import json
import logging

import pytest
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.train.config import FinetuneConfig, TrainConfig, fit_schedule
from reidcli.utils.params import ParamError

from fixtures_finetune import _finetune

TINY = ["--arch", "resnet18_quarter", "--pretrained", "none", "--height", "64", "--width", "32", "-P", "4", "-K", "2",
        "--workers", "0", "--device", "cpu", "--iters", "1"]


@pytest.mark.parametrize("epochs,warmup,milestones", [
    (1, 0.125, []), (2, 0.25, [1]), (5, 0.625, [2, 4]), (60, 7.5, [30, 52]), (80, 10.0, [40, 70]), (200, 10.0, [40, 70])])
def test_the_default_schedule_is_scaled_to_a_shorter_run(epochs, warmup, milestones, caplog):
    """10 warm-up epochs of 80 and x0.1 at 40 and 70: the same fractions of a shorter run
    (milestones rounded down, those at 0 dropped), one info line; a run they fit is unchanged."""
    with caplog.at_level(logging.INFO, logger="reidcli.train.config"):
        cfg = fit_schedule(TrainConfig(epochs=epochs))
    assert (cfg.warmup_epochs, cfg.milestones, cfg.epochs) == (warmup, milestones, epochs)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == (epochs < 80)
    if epochs == 2:
        assert lines[0].startswith("warm-up 10 -> 0.25, step milestones 40,70 -> 1: the defaults (for 80 epochs)")


def test_only_the_schedule_in_use_is_fitted():
    cosine = fit_schedule(TrainConfig(epochs=2, schedule="cosine"))
    assert cosine.warmup_epochs == 0.25 and cosine.milestones == [40, 70]  # unused without 'step'
    kept = TrainConfig(epochs=12, warmup_epochs=3)  # a warm-up of one's own stays; the milestones fit the run
    assert (fit_schedule(kept).warmup_epochs, fit_schedule(kept).milestones) == (3, [6, 10])
    fits = TrainConfig(epochs=2, warmup_epochs=1, milestones=[1])
    assert fit_schedule(fits) == fits and fit_schedule(FinetuneConfig()) == FinetuneConfig()


@pytest.mark.parametrize("cfg,given,message", [
    (TrainConfig(epochs=2, warmup_epochs=3), (), r"^warmup_epochs must be less than the run's epochs \(2\): "
                                                 r"the learning rate would never reach lr; got 3$"),
    (TrainConfig(epochs=2, milestones=[1, 2]), (), r"^milestones must be less than the run's epochs \(2\) with "
                                                   r"schedule 'step': 2 never reached; got 1,2$"),
    (TrainConfig(epochs=2), ("warmup_epochs",), r"^warmup_epochs must be less .* got 10$"),  # given = the default
    (TrainConfig(epochs=2), ("milestones",), r"^milestones must be less .* got 40,70$"),
    (FinetuneConfig(epochs=1, warmup_epochs=1), (), r"^warmup_epochs must be less than the run's epochs \(1\)"),
])
def test_a_schedule_set_longer_than_the_run_is_refused(cfg, given, message):
    with pytest.raises(ParamError, match=message):
        fit_schedule(cfg, given)


def test_a_recipes_schedule_is_scaled_from_its_own_epochs():
    """--recipe rbnet sets 60 epochs, x0.1 at 20 and 40; with --epochs 6 those become 2 and 4."""
    from reidcli.train.settings import recipe_schedule

    ref = recipe_schedule("rbnet", "pretrain", TrainConfig)
    assert (ref.epochs, ref.milestones) == (60, [20, 40])
    cfg = fit_schedule(TrainConfig(epochs=6, milestones=[20, 40]), reference=ref)
    assert cfg.milestones == [2, 4] and cfg.warmup_epochs == 1.0
    assert recipe_schedule(None, "finetune", FinetuneConfig) == FinetuneConfig()


# -- tiny runs ------------------------------------------------------------------------------
def test_library_pretrain_reaches_the_base_rate_in_a_short_run(synth_market, tmp_path, caplog):
    """`pretrain` with the default schedule and 2 epochs: the warm-up takes a quarter epoch,
    so the learning rate reaches lr (it peaked at 1% of it before); a warm-up set as long as
    the run is refused before any file is written."""
    from reidcli.data.transforms import AugmentConfig
    from reidcli.io.ckpt import load_checkpoint
    from reidcli.models import ModelConfig
    from reidcli.train.pretrain import pretrain

    out = tmp_path / "m.pt"
    train = dict(epochs=2, iters_per_epoch=2, p=4, k=2, workers=0, log_every=1)
    args = dict(model=ModelConfig(arch="resnet18_quarter"), augment=AugmentConfig(height=64, width=32), device="cpu")
    with caplog.at_level(logging.INFO, logger="reidcli.train.config"):
        pretrain(synth_market, out, train=TrainConfig(**train), **args)
    saved = load_checkpoint(out)["train_state"]["config"]
    assert (saved["warmup_epochs"], saved["milestones"]) == (0.25, [1])
    assert sum("scaled to this 2-epoch run" in r.getMessage() for r in caplog.records) == 1
    steps = [json.loads(x) for x in (tmp_path / "m.log.jsonl").read_text().splitlines() if '"type": "step"' in x]
    assert max(s["lr"] for s in steps) == pytest.approx(TrainConfig.lr)

    with pytest.raises(ParamError, match=r"^warmup_epochs must be less than the run's epochs \(2\)"):
        pretrain(synth_market, tmp_path / "w.pt", train=TrainConfig(**train, warmup_epochs=2), **args)
    assert not list(tmp_path.glob("w.*"))


def test_library_finetune_fits_the_default_schedule_and_refuses_a_set_one(uda):
    from reidcli.io.ckpt import load_checkpoint
    from reidcli.train.finetune import finetune

    out = uda["tmp"] / "r1.pt"
    finetune(uda["ckpt"], uda["labels"], uda["target"], out, method="pseudo", device="cpu",
             train=TrainConfig(epochs=2, iters_per_epoch=1, p=3, k=2, images_per_bn=0, workers=0))
    saved = load_checkpoint(out)["train_state"]["config"]
    assert (saved["warmup_epochs"], saved["milestones"]) == (0.25, [1])
    with pytest.raises(ParamError, match=r"^milestones must be less than the run's epochs \(1\)"):
        _finetune(uda["ckpt"], uda["labels"], uda["target"], uda["tmp"] / "r2.pt", "pseudo",
                  train={"schedule": "step", "milestones": [1]})
    assert not (uda["tmp"] / "r2.pt").exists()


@pytest.mark.parametrize("flags,line", [
    (["--warmup-epochs", "2"], "--warmup-epochs must be less than the run's epochs (2): the learning rate would "
                               "never reach lr; got 2"),
    (["--warmup-epochs", "10"], "--warmup-epochs must be less than the run's epochs (2)"),  # the default, but given
    (["--milestones", "1,2"], "--milestones must be less than the run's epochs (2) with schedule 'step': 2 never "
                              "reached; got 1,2"),
])
def test_cli_pretrain_refuses_a_schedule_set_longer_than_the_run(synth_market, tmp_path, flags, line):
    out = tmp_path / "m.pt"
    res = CliRunner().invoke(app, ["pretrain", str(synth_market), "-o", str(out), *TINY, "--epochs", "2", *flags])
    assert res.exit_code == 1, res.output
    errors = [ln for ln in res.stderr.splitlines() if "error" in ln]
    assert len(errors) == 1 and errors[0].startswith(f"reid pretrain: error: {line}"), res.stderr
    assert not out.exists()


def test_cli_pretrain_scales_the_default_schedule_and_says_so(synth_market, tmp_path):
    from reidcli.io.ckpt import load_checkpoint

    out = tmp_path / "m.pt"
    res = CliRunner().invoke(app, ["pretrain", str(synth_market), "-o", str(out), *TINY, "--epochs", "2"])
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())  # log lines may be wrapped
    assert "warm-up 10 -> 0.25, step milestones 40,70 -> 1: the defaults (for 80 epochs) scaled to this 2-epoch " \
           "run; set --warmup-epochs / --milestones to choose" in said, res.stderr
    saved = load_checkpoint(out)["train_state"]["config"]
    assert (saved["warmup_epochs"], saved["milestones"]) == (0.25, [1])


def test_cli_finetune_refuses_a_config_files_warmup_as_long_as_the_round(uda):
    """reid finetune has no --warmup-epochs: a config file sets it, and it counts as set."""
    cfg = uda["tmp"] / "r.toml"
    cfg.write_text("[finetune]\nwarmup_epochs = 1.0\n")
    out = uda["tmp"] / "x.pt"
    res = CliRunner().invoke(app, ["finetune", str(uda["target"]), "--ckpt", str(uda["ckpt"]), "--labels",
                                   str(uda["labels"]), "-o", str(out), "--method", "pseudo", "--epochs", "1",
                                   "--config", str(cfg), "--device", "cpu"])
    assert res.exit_code == 1, res.output
    errors = [ln for ln in res.stderr.splitlines() if "error" in ln]
    assert errors == ["reid finetune: error: warmup_epochs must be less than the run's epochs (1): the learning "
                      "rate would never reach lr; got 1"], res.stderr
    assert not out.exists()
