"""Engine hooks in the manner of fast-reid's ``engine/train_loop.py``: what happens around
the training steps (writing the JSONL log, checkpointing, periodic evaluation) is a hook,
so neither a method nor an entry point subclasses the loop.

A hook subclasses `HookBase` and overrides any of ``before_train``, ``before_epoch``,
``before_step``, ``after_step``, ``after_epoch``, ``after_train``; ``self.engine`` is the
running `Engine` (its ``epoch``, ``it_in_epoch``, ``global_it``, ``iters``, ``cfg``,
``method``, ``dist``, the last step's scalar outputs ``step_out`` and, after an epoch,
``epoch_metrics`` and ``epoch_finished``). Hooks run in list order on every process (they
may all-reduce), so a hook that writes files checks ``engine.dist.is_main``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Callable, Optional

from reidcli.train import dist as D

log = logging.getLogger(__name__)


class HookBase:
    """Called by the engine at each point of the loop; every method is a no-op here."""

    engine = None  # set by `Engine` before `before_train`

    def before_train(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def before_epoch(self) -> None:
        pass

    def after_epoch(self) -> None:
        pass

    def before_step(self) -> None:
        pass

    def after_step(self) -> None:
        pass

    def after_checkpoint(self) -> None:
        """The epoch's checkpoint is on disk (rank 0; not for a device or FIFO output)."""


def log_path_for(out: Path) -> Optional[Path]:
    """The JSONL log beside checkpoint ``out`` (``m.pt`` -> ``m.log.jsonl``); None when ``out``
    is a device node or a FIFO (no side files, `reidcli.io.atomic.side_file`)."""
    from reidcli.io.atomic import side_file

    return side_file(out, ".log.jsonl")


class JSONLWriter(HookBase):
    """The training log (``<out stem>.log.jsonl``, documented in docs/formats.md): a first
    ``resources`` line (threads, loader workers, cores) at the start of each run, one
    ``step`` line per window of ``log_every`` steps (the mean of each step scalar over the
    steps the window really holds, the lr after the window's last step and the images/s of
    the window), one ``epoch`` line per epoch (epoch means) and one line per `write` call
    (e.g. ``eval`` results). A window cut short by the end of an epoch or by ``--max-iters``
    / ``--stop-after`` is written with the steps it holds. The file is started afresh unless
    the run resumes: a new run writes a temporary sibling that replaces ``path`` once the
    first checkpoint is written (`after_checkpoint`), so a run that fails
    before it (a bad image, a full disk) leaves the previous log of the previous checkpoint as
    it was and no log of its own (`discard`). It also feeds the progress bar the values of
    each ``step`` line. ``path`` None (an output with no side files): nothing is written, the
    bar is still fed."""

    def __init__(self, path: Optional[Path], log_every: int):
        self.path, self.log_every = (Path(path) if path is not None else None), log_every
        self._file: Optional[Path] = None  # where rows go: path, or its temporary until the first checkpoint
        self._reset()

    def _reset(self) -> None:
        self.window: dict = {}
        self.t0, self.n_img, self.n_window = time.perf_counter(), 0, 0

    def write(self, row: dict) -> None:
        if self.engine.dist.is_main and self._file is not None:
            with open(self._file, "a") as fh:
                fh.write(json.dumps(row) + "\n")

    def after_checkpoint(self) -> None:
        """The checkpoint of this run is written: its log replaces the previous one."""
        if self.engine.dist.is_main and self._file is not None and self._file != self.path:
            os.replace(self._file, self.path)
        self._file = self.path

    def discard(self) -> None:
        """The run ends without a checkpoint of its own: remove its uncommitted log."""
        if self.engine.dist.is_main and self._file is not None and self._file != self.path:
            self._file.unlink(missing_ok=True)
            self._file = None

    def before_train(self) -> None:
        if self.path is not None:
            from reidcli.io.atomic import remove_stale_temporaries, temp_sibling

            self._file = self.path if self.engine.resumed else temp_sibling(self.path)
            if not self.engine.resumed and self.engine.dist.is_main:
                remove_stale_temporaries(self.path)  # the logs of killed runs (SIGKILL)
                self._file.unlink(missing_ok=True)  # a link there is removed, never followed
                self._file.write_text("")
        res = getattr(self.engine, "resources", None)
        if res is not None:
            self.write({"type": "resources", "epoch": self.engine.epoch, **res.as_dict(),
                        "device": str(self.engine.device), "processes": self.engine.dist.world_size})

    def before_epoch(self) -> None:
        self._reset()

    def after_step(self) -> None:
        e = self.engine
        self.n_img += e.step_images
        self.n_window += 1
        for k, v in e.step_out.items():
            self.window[k] = self.window.get(k, 0.0) + v
        if e.it_in_epoch % self.log_every == 0 or e.it_in_epoch == e.iters:
            self._flush()

    def _flush(self) -> None:
        """Write the window's ``step`` line (means over its ``n_window`` steps) and start a new one."""
        e = self.engine
        speed = self.n_img * e.dist.world_size / max(1e-9, time.perf_counter() - self.t0)
        row = {"type": "step", "epoch": e.epoch + 1, "iter": e.global_it, "steps": self.n_window,
               "lr": e.opt.param_groups[0]["lr"], **e.means(self.window, self.n_window), "img_s": speed}
        self.write(row)
        e.bar.set(**{k: v for k, v in row.items() if k in ("loss", "acc", "img_s")})
        self._reset()

    def after_epoch(self) -> None:
        e = self.engine
        if self.n_window:  # a budget stopped the epoch in the middle of a window
            self._flush()
        self.write({"type": "epoch", "epoch": e.epoch, "iter": e.global_it, **e.epoch_metrics})


# metrics an evaluation returns as fractions; the log line shows them in percent, as
# `reid evaluate` prints them (the JSONL eval record keeps the fractions)
FRACTION_METRICS = ("mAP", "mINP")


def metrics_text(res: dict) -> str:
    """An evaluation's metrics for the log line: ``mAP 41.20%  rank1 63.00%`` (mAP, mINP
    and rank-k in percent, anything else as it is)."""
    def one(k, v) -> str:
        if k in FRACTION_METRICS or (k.startswith("rank") and k[4:].isdigit()):
            return f"{k} {100 * v:.2f}%"
        return f"{k} {v:.4g}"

    return "  ".join(one(k, v) for k, v in res.items())


def epoch_text(e) -> str:
    """The epoch that just ended, 1-based, as the log names it: ``epoch 3/10``, or ``epoch
    1/1 (stopped by --max-iters after 2 of 5 steps)`` for one a step budget cut short."""
    if e.epoch_finished:
        return f"epoch {e.epoch}/{e.cfg.epochs}"
    return f"epoch {e.epoch + 1}/{e.cfg.epochs} (stopped by --max-iters after {e.it_in_epoch} of {e.iters} steps)"


class Checkpointer(HookBase):
    """Write the resumable checkpoint atomically after every epoch (rank 0 only). An output
    that is a device node or a FIFO (``-o /dev/null``) is written once, after training: each
    epoch's checkpoint is kept in memory (a FIFO's reader sees one checkpoint, and a failed
    run writes nothing). ``shown`` is the name the log gives the output (default ``out``;
    finetune writes a hidden temporary renamed onto its ``-o`` at the end)."""

    def __init__(self, out: Path, shown: Optional[Path] = None):
        from reidcli.io.atomic import is_special

        self.out = Path(out)
        self.shown = Path(shown) if shown is not None else self.out
        self.once = is_special(self.out)
        self._last: Optional[bytes] = None

    def after_epoch(self) -> None:
        from reidcli.io.ckpt import checkpoint_bytes, save_checkpoint

        e = self.engine
        if e.dist.is_main:
            if self.once:
                self._last = checkpoint_bytes(e.checkpoint())
            else:
                save_checkpoint(self.out, e.checkpoint())
                e.call_hooks("after_checkpoint")
            shown = "  ".join(f"{k} {v:.4g}" for k, v in e.epoch_metrics.items())
            log.info("%s: %s -> %s", epoch_text(e), shown, self.shown)
        D.barrier(e.dist)

    def after_train(self) -> None:
        from reidcli.io.atomic import atomic_write_bytes

        if self.once and self._last is not None and self.engine.dist.is_main:
            atomic_write_bytes(self.out, self._last)
            self._last = None


class Evaluator(HookBase):
    """Every ``every`` finished epochs, ``evaluate(model) -> dict`` on rank 0; a non-empty
    result is logged (mAP and rank-k in percent, `metrics_text`) and written to ``writer``
    (as returned: fractions). The method returns to training mode."""

    def __init__(self, evaluate: Callable, every: int, writer: Optional[JSONLWriter] = None):
        self.evaluate, self.every, self.writer = evaluate, every, writer

    def after_epoch(self) -> None:
        e = self.engine
        if not (e.epoch_finished and self.every and e.epoch % self.every == 0):
            return
        if e.dist.is_main:
            res = self.evaluate(e.method.model)
            if res:
                if self.writer is not None:
                    self.writer.write({"type": "eval", "epoch": e.epoch, **res})
                log.info("eval after epoch %d: %s", e.epoch, metrics_text(res))
        D.barrier(e.dist)
        e.method.train()
