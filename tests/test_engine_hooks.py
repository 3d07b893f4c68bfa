"""Engine hooks (fast-reid style): called in order around epochs and steps; the built-in
ones (JSONL log, checkpoint) run before user hooks; the method's after_setup callback."""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from reidcli.train.config import TrainConfig
from reidcli.train.dist import DistInfo
from reidcli.train.engine import Engine
from reidcli.train.hooks import Evaluator, HookBase
from reidcli.train.methods.base import EngineContext, Method


class _Stream:
    """Four fixed batches, endlessly (a stand-in for `reidcli.train.engine.Stream`)."""

    sampler = None  # the engine reads its batch_size when present

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.batches = [{"img": torch.randn(4, 3, generator=g), "label": torch.tensor([0, 0, 1, 1])}
                        for _ in range(4)]
        self.i = 0

    def __len__(self):
        return len(self.batches)

    def next(self):
        self.i += 1
        return self.batches[(self.i - 1) % len(self.batches)]

    def state_dict(self):
        return {"i": self.i}

    def load_state_dict(self, state):
        self.i = state["i"]

    def close(self):
        pass


class _Toy(Method):
    name = "toy"

    def build(self, ctx):
        torch.manual_seed(0)
        self.nets["model"] = nn.Linear(3, 2)
        self.setup_calls = []

    def streams(self, ctx):
        return {"main": _Stream()}

    def step(self, batch, it):
        b = batch["main"]
        return {"loss": nn.functional.cross_entropy(self.net()(b["img"]), b["label"])}

    def after_setup(self, opt):
        self.setup_calls.append(opt)


class _Recorder(HookBase):
    def __init__(self, out):
        self.calls, self.out = [], out

    def _rec(self, point):
        e = self.engine
        self.calls.append((point, e.epoch, e.it_in_epoch))

    def before_train(self):
        self._rec("before_train")

    def before_epoch(self):
        self._rec("before_epoch")

    def before_step(self):
        self._rec("before_step")

    def after_step(self):
        self._rec("after_step")
        assert set(self.engine.step_out) == {"loss", "data_s", "compute_s"}  # no loader timings: a plain dataset

    def after_epoch(self):
        self._rec("after_epoch")
        assert self.out.exists()  # the checkpoint hook ran before this one
        rows = [json.loads(x) for x in self.out.with_name("m.log.jsonl").read_text().splitlines()]
        assert rows[-1]["type"] == "epoch" and rows[-1]["epoch"] == self.engine.epoch

    def after_train(self):
        self._rec("after_train")


def _engine(tmp_path, **cfg):
    cfg = TrainConfig(**{"epochs": 2, "iters_per_epoch": 2, "warmup_epochs": 0, "amp": False,
                         "images_per_bn": 0, "log_every": 1, **cfg})
    ctx = EngineContext(cfg=cfg, device=torch.device("cpu"), dist=DistInfo())
    rec = _Recorder(tmp_path / "m.pt")
    meta = {"input_size": [4, 2], "pixel_mean": [0, 0, 0], "pixel_std": [1, 1, 1],
            "model_config": {"arch": "toy"}}
    return Engine(_Toy(), cfg, out=tmp_path / "m.pt", meta=meta, ctx=ctx, hooks=[rec]), rec


def test_hooks_are_called_in_order(tmp_path):
    engine, rec = _engine(tmp_path)
    engine.fit()
    step = [("before_step", None, 0), ("after_step", None, 1), ("before_step", None, 1), ("after_step", None, 2)]
    want = [("before_train", 0, 0)]
    for epoch in (0, 1):
        want += [("before_epoch", epoch, 0)] + [(p, epoch, i) for p, _, i in step] + [("after_epoch", epoch + 1, 0)]
    want += [("after_train", 2, 0)]
    assert rec.calls == want
    assert engine.hooks[-1] is rec and [type(h).__name__ for h in engine.hooks[:2]] == ["JSONLWriter", "Checkpointer"]
    assert engine.method.setup_calls == [engine.opt]  # once, with the built optimizer


def test_a_stopped_run_ends_with_after_train_and_resumes(tmp_path):
    engine, rec = _engine(tmp_path, stop_after=1)
    engine.fit()
    assert rec.calls[-1] == ("after_train", 1, 0) and sum(c[0] == "after_epoch" for c in rec.calls) == 1
    from reidcli.io.ckpt import load_checkpoint

    again, rec2 = _engine(tmp_path)
    again.fit(resume=load_checkpoint(tmp_path / "m.pt"))
    assert rec2.calls[0] == ("before_train", 1, 0) and rec2.calls[-1] == ("after_train", 2, 0)
    lines = (tmp_path / "m.log.jsonl").read_text().splitlines()
    assert [json.loads(x)["type"] for x in lines].count("epoch") == 2  # the log went on, not restarted


def test_step_rows_average_the_steps_of_their_window(tmp_path):
    """log_every 2 over 3 steps an epoch: rows after steps 2 and 3; the second row is the
    mean of its one step (not that step divided by 2), as the epoch row confirms."""
    engine, _ = _engine(tmp_path, epochs=1, iters_per_epoch=3, log_every=2)
    engine.hooks = engine.hooks[:2]  # the built-in log and checkpoint only
    engine.fit()
    rows = [json.loads(x) for x in (tmp_path / "m.log.jsonl").read_text().splitlines()]
    steps, epoch = [r for r in rows if r["type"] == "step"], rows[-1]
    assert [r["iter"] for r in steps] == [2, 3]
    assert (2 * steps[0]["loss"] + steps[1]["loss"]) / 3 == pytest.approx(epoch["loss"], rel=1e-6)


def test_a_window_cut_by_a_budget_is_written_with_its_own_step_count(tmp_path):
    """log_every 4, 6 steps an epoch, --max-iters 6 + 3: the second epoch stops after 3 steps,
    in the middle of a window; its row says steps 3 and holds the mean of those 3 steps."""
    engine, _ = _engine(tmp_path, epochs=2, iters_per_epoch=6, log_every=4, max_iters=9)
    seen: list[float] = []

    class _Losses(HookBase):
        def after_step(self):
            seen.append(float(self.engine.step_out["loss"]))

    engine.hooks = engine.hooks[:2] + [_Losses()]
    engine.hooks[-1].engine = engine
    engine.fit()
    rows = [json.loads(x) for x in (tmp_path / "m.log.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r["type"] == "step"]
    assert [(r["epoch"], r["iter"], r["steps"]) for r in steps] == [(1, 4, 4), (1, 6, 2), (2, 9, 3)]
    windows = [seen[0:4], seen[4:6], seen[6:9]]
    for r, w in zip(steps, windows):
        assert r["loss"] == pytest.approx(sum(w) / len(w), rel=1e-6)
    epochs = [r for r in rows if r["type"] == "epoch"]
    assert epochs[-1]["loss"] == pytest.approx(sum(seen[6:9]) / 3, rel=1e-6)


def test_docs_formats_name_every_key_of_the_training_log(synth_market, tmp_path):
    """A real `pretrain` run (with --eval-every) writes only keys docs/formats.md names,
    and every MUST key; the method's extra scalars are the documented MAY row."""
    from fixtures_contracts import check_names, documented

    from reidcli.data.transforms import AugmentConfig
    from reidcli.models import ModelConfig
    from reidcli.train.pretrain import pretrain

    out = tmp_path / "m.pt"
    pretrain(synth_market, out, model=ModelConfig(arch="resnet18_quarter"),
             train=TrainConfig(epochs=1, iters_per_epoch=3, p=4, k=2, workers=0, warmup_epochs=0,
                               log_every=2, eval_every=1),
             augment=AugmentConfig(height=32, width=16), device="cpu")
    rows = [json.loads(x) for x in out.with_name("m.log.jsonl").read_text().splitlines()]
    assert [r["type"] for r in rows] == ["resources", "step", "step", "epoch", "eval"]
    scalars = {"acc", "ce", "triplet", "center"}  # the supervised method's per-step scalars
    section = "Training log"
    for kind in ("resources", "step", "epoch", "eval"):
        written = set().union(*(set(r) for r in rows if r["type"] == kind))
        if kind in ("step", "epoch"):
            assert written & scalars, f"{kind}: the method's scalars are missing"
            written -= scalars
        check_names(written, documented((section, f"{kind} record")), f"{kind} records")


@contextmanager
def _logged(name: str = "reidcli.train.hooks"):
    """The messages logged by ``name`` at info level and above inside the block (a handler
    of its own: the CLI's logging setup stops propagation to pytest's)."""
    messages: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    logger, handler = logging.getLogger(name), _Keep(logging.INFO)
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def test_a_max_iters_stop_logs_the_epoch_it_stopped_in(tmp_path):
    """--max-iters 2 of a 4-step epoch: the log names epoch 1 of 1 and the cut, never "epoch 0/1"."""
    engine, _ = _engine(tmp_path, epochs=1, iters_per_epoch=4, max_iters=2)
    with _logged() as messages:
        engine.fit()
    [line] = [m for m in messages if m.startswith("epoch ")]
    assert line.startswith("epoch 1/1 (stopped by --max-iters after 2 of 4 steps): loss "), line
    (tmp_path / "full").mkdir()
    engine, _ = _engine(tmp_path / "full", epochs=2)
    with _logged() as messages:
        engine.fit()
    assert [m.split(":")[0] for m in messages if m.startswith("epoch ")] == ["epoch 1/2", "epoch 2/2"]


def test_the_eval_line_shows_percent_and_the_log_keeps_fractions(tmp_path):
    """Training-time evaluation reads like `reid evaluate` (percent); the JSONL eval record
    holds the fractions docs/formats.md describes."""
    engine, _ = _engine(tmp_path, epochs=1, eval_every=1)
    engine.hooks.append(Evaluator(lambda model: {"mAP": 0.41234, "rank1": 0.5}, 1, engine.writer))
    engine.hooks[-1].engine = engine
    with _logged() as messages:
        engine.fit()
    assert "eval after epoch 1: mAP 41.23%  rank1 50.00%" in messages, messages
    rows = [json.loads(x) for x in (tmp_path / "m.log.jsonl").read_text().splitlines()]
    assert [(r["mAP"], r["rank1"]) for r in rows if r["type"] == "eval"] == [(0.41234, 0.5)]

