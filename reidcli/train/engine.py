"""The one training loop, shared by `reid pretrain` and every `reid finetune` method.

`Engine(method, cfg, out=..., meta=...).fit(resume=None)` runs epochs of ``method.step``
under AMP (CUDA) and steps the optimizer(s) and the per-iteration lr schedule. Around the
steps, hooks (`reidcli.train.hooks`) write one JSON line per log interval / epoch /
evaluation to ``<out stem>.log.jsonl``, a resumable checkpoint atomically after every epoch
(rank 0 only under DDP), and evaluate every ``cfg.eval_every`` epochs; ``hooks=`` adds
more. Resuming restores networks, optimizers, scheduler, AMP scaler, data-stream positions
and every RNG, so an interrupted run continues bit for bit (on the same device and thread
count). Intra-op threads and loader workers come from ``cfg.threads`` / ``cfg.workers`` or
the cores and the device (`reidcli.utils.resources`); the choice is logged at debug level
(``reid -v``) and is the first row of the JSONL log. Each step's wait for its batches
(``data_s``) and its forward/backward/update (``compute_s``), and the loader's decoding and
augmentation time per image (``decode_ms`` / ``augment_ms``), are step scalars of the log, so
a slow loader shows as ``data_s`` near ``compute_s``. ``cfg.cache_images`` decodes every
training image once into a shared cache before the first step (`reidcli.data.cache`).
See `reidcli.train.methods` for the plug-in contract.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from reidcli.data.loader import ImageDataset, check_batch, make_loader
from reidcli.io.ckpt import make_checkpoint
from reidcli.models.bn import convert_domain_bn, convert_ghost_bn
from reidcli.train import dist as D
from reidcli.train.config import TrainConfig
from reidcli.train.hooks import (
    Checkpointer,
    Evaluator,
    HookBase,
    JSONLWriter,
    log_path_for,
)
from reidcli.train.methods.base import EngineContext, Method
from reidcli.train.optim import build_optimizer, build_scheduler
from reidcli.utils.errors import ReidError
from reidcli.utils.progress import progress_bar

log = logging.getLogger(__name__)
BN_REFERENCE = 16  # images per BN in the published recipes (64 images on 4 GPUs)
HOST_KEYS = frozenset({"decode_s", "augment_s"})  # batch fields read on the host (timings)


class Stream:
    """An endless, resumable iterator over a DataLoader driven by a seeded batch sampler."""

    def __init__(self, dataset: ImageDataset, sampler, loader):
        self.dataset, self.sampler, self.loader = dataset, sampler, loader
        self.epoch, self.consumed, self._it = 0, 0, None

    def __len__(self) -> int:
        return len(self.sampler)

    def next(self) -> dict:
        while True:
            if self._it is None:
                self.sampler.set_epoch(self.epoch)
                self.sampler.start = self.consumed
                self._it = iter(self.loader)
            try:
                batch = next(self._it)
            except StopIteration:
                self.epoch, self.consumed, self._it = self.epoch + 1, 0, None
                continue
            self.consumed += 1
            check_batch(batch, self.dataset)
            return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "consumed": self.consumed, "seed": self.sampler.seed}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.consumed, self._it = int(state["epoch"]), int(state["consumed"]), None
        self.sampler.seed = int(state["seed"])

    def close(self) -> None:
        self._it = None

    def set_workers(self, n: int) -> None:
        """Decode with ``n`` worker processes from the next pass on."""
        self.loader.num_workers = n
        if n and self.loader.prefetch_factor is None:
            self.loader.prefetch_factor = 2


def make_stream(dataset: ImageDataset, sampler, cfg: TrainConfig, device: torch.device) -> Stream:
    """A `Stream` whose loader draws no global RNG (an explicit generator), for exact resume."""
    loader = make_loader(dataset, batch_sampler=sampler, workers=cfg.workers, device=device)
    loader.generator = torch.Generator().manual_seed(cfg.seed)
    return Stream(dataset, sampler, loader)


class Engine:
    """Train ``method`` with ``cfg``; checkpoints go to ``out`` (see the module docstring).

    Args:
        method: the plug-in (built by the engine).
        cfg: engine settings.
        out: checkpoint path (overwritten atomically every epoch).
        meta: checkpoint header fields: ``input_size``, ``pixel_mean``, ``pixel_std``,
            ``provenance``, optional ``model_config`` (else taken from the model) and
            ``extra`` (more top-level checkpoint fields, e.g. ``kind``).
        ctx: the build context (device, number of classes, data, facts).
        bn_domains: domain names for domain-specific BN (``[]`` = plain BN).
        evaluate: optional ``fn(model) -> dict`` called every ``cfg.eval_every`` epochs.
        hooks: more `HookBase` hooks, run after the built-in ones (log, checkpoint, eval).
        shown_out: the name the log gives the checkpoint (default ``out``; a caller that
            trains into a temporary and renames it at the end gives the final name).
    """

    def __init__(self, method: Method, cfg: TrainConfig, *, out: Path, meta: dict,
                 ctx: EngineContext, bn_domains: Optional[list[str]] = None,
                 evaluate: Optional[Callable[[torch.nn.Module], dict]] = None,
                 hooks: Sequence[HookBase] = (), shown_out: Optional[Path] = None):
        self.method, self.cfg, self.out, self.meta, self.ctx = method, cfg, Path(out), meta, ctx
        self.bn_domains = list(bn_domains or [])
        self.device, self.dist = ctx.device, ctx.dist
        self.log_path = log_path_for(self.out)
        self.epoch, self.it_in_epoch, self.global_it = 0, 0, 0
        self.amp = bool(cfg.amp and self.device.type == "cuda")
        self.resumed = False
        self.ready = False  # `setup` done (a caller may run it before `fit`)
        self.resources = self._resources()
        self.writer = writer = JSONLWriter(self.log_path, cfg.log_every)
        self.hooks: list[HookBase] = [writer, Checkpointer(self.out, shown_out)]
        if evaluate is not None:
            self.hooks.append(Evaluator(evaluate, cfg.eval_every, writer))
        self.hooks += list(hooks)
        for h in self.hooks:
            h.engine = self

    # -- setup -----------------------------------------------------------------------
    def _resources(self):
        """Threads and workers for this process (DDP processes on one machine share its cores)."""
        from reidcli.utils.resources import configure

        share = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if self.dist.enabled else 1
        return configure(self.cfg.threads, self.cfg.workers, device=self.device, loads_data=True, share=share)

    def _share_workers(self) -> None:
        """Automatic workers are the run's total: split them over the data streams (those
        with a loader: `Stream`)."""
        streams = [s for s in self.streams.values() if hasattr(s, "set_workers")]
        if self.cfg.workers is not None or not streams:
            return
        n, total = len(streams), self.resources.workers
        for i, s in enumerate(streams):
            s.set_workers(total // n + (i < total % n))

    def setup(self) -> None:
        m = self.method
        m.ctx = self.ctx
        m.build(self.ctx)
        if m.global_outputs:
            from reidcli.models.rbnet import skip_unused_passes

            skipped = [name for name in m.trained if skip_unused_passes(m.nets[name])]
            if skipped:
                log.debug("RBNet %s: the reverse and masked passes are skipped in training "
                          "(method '%s' reads only the global outputs)", ", ".join(skipped), m.name)
        self.streams: dict[str, Stream] = m.streams(self.ctx)
        if not self.streams:
            raise ReidError(f"method '{m.name}' declared no data streams")
        self._share_workers()
        if self.cfg.cache_images:
            self._cache_images()
        self.main = next(iter(self.streams.values()))
        self.iters = self.cfg.iters_per_epoch or len(self.main)
        self._convert_bn()
        for net in m.nets.values():
            net.to(self.device)
        self.opt = build_optimizer(m.param_groups(), self.cfg)
        self.extra_opts = m.extra_optimizers()
        self.sched = build_scheduler(self.opt, self.iters, self.cfg)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self._wrap_ddp()
        m.after_setup(self.opt)
        self.ready = True

    def _cache_images(self) -> None:
        """Decode the images of every stream's dataset once (`reidcli.data.cache`). DDP
        processes on one machine each hold a cache: each may use its share of the memory."""
        from reidcli.data.cache import cache_datasets
        from reidcli.utils.resources import available_memory

        share = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if self.dist.enabled else 1
        datasets = [s.dataset for s in self.streams.values() if getattr(s, "dataset", None) is not None]
        cache_datasets(datasets, threads=self.resources.threads, available=available_memory() // max(1, share))

    def _convert_bn(self) -> None:
        m, cfg = self.method, self.cfg
        if self.bn_domains:
            for name in m.nets:
                convert_domain_bn(m.nets[name], len(self.bn_domains))
        per_device = getattr(self.main.sampler, "batch_size", cfg.p * cfg.k // self.dist.world_size)
        if self.dist.enabled and self.device.type == "cuda" and cfg.sync_bn:
            for name in m.trained:
                m.nets[name] = torch.nn.SyncBatchNorm.convert_sync_batchnorm(m.nets[name])
            bn_batch, how = per_device * self.dist.world_size, "SyncBN over all processes"
        elif cfg.images_per_bn and per_device > cfg.images_per_bn and per_device % cfg.images_per_bn == 0:
            for name in m.nets:
                convert_ghost_bn(m.nets[name], cfg.images_per_bn)
            bn_batch, how = cfg.images_per_bn, f"groups of --images-per-bn {cfg.images_per_bn}"
        else:
            bn_batch, how = per_device, "the whole per-process batch"
        self.bn_batch = bn_batch
        has_bn = any(isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)
                     for net in m.nets.values() for mod in net.modules())
        if has_bn and not BN_REFERENCE / 2 <= bn_batch <= BN_REFERENCE * 2 and self.dist.is_main:
            log.warning("BatchNorm statistics come from %d images (%s); the published recipes used "
                        "%d, so accuracy may differ: set --images-per-bn %d with a batch that is a "
                        "multiple of it", bn_batch, how, BN_REFERENCE, BN_REFERENCE)

    def _wrap_ddp(self) -> None:
        if not self.dist.enabled:
            return
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        for name in self.method.trained:
            net = self.method.nets[name]
            self.method.set_wrapped(name, DDP(net, device_ids=ids,
                                              find_unused_parameters=getattr(self.method, "find_unused", False)))

    # -- the loop ----------------------------------------------------------------------
    def fit(self, resume: Optional[dict] = None) -> dict[str, Any]:
        """Train to ``cfg.epochs`` (or the budgets); return the last epoch's metrics (runs
        `setup` first unless the caller has)."""
        if not self.ready:
            self.setup()
        if resume is not None:
            self.load_state(resume)
            self.resumed = True
        cfg, last, start_epoch = self.cfg, {}, self.epoch
        try:
            self.call_hooks("before_train")
            while self.epoch < cfg.epochs and not self._budget_done():
                if cfg.stop_after and self.epoch - start_epoch >= cfg.stop_after:
                    break
                last = self._run_epoch()
            self.call_hooks("after_train")
        finally:
            for s in self.streams.values():
                s.close()
            self.writer.discard()  # a log no checkpoint of this run went with (a failed start)
        return last

    def call_hooks(self, point: str) -> None:
        """Run ``point`` (a `HookBase` method name) of every hook, in order."""
        for h in self.hooks:
            getattr(h, point)()

    def _budget_done(self) -> bool:
        return bool(self.cfg.max_iters) and self.global_it >= self.cfg.max_iters

    def _run_epoch(self) -> dict[str, float]:
        cfg, m = self.cfg, self.method
        m.train()
        m.on_epoch_start(self.epoch)
        self.call_hooks("before_epoch")
        sums: dict[str, torch.Tensor] = {}
        t0, n_img, n_steps = time.perf_counter(), 0, 0
        with progress_bar(f"epoch {self.epoch + 1}/{cfg.epochs}", total=self.iters) as self.bar:
            self.bar.advance(self.it_in_epoch)
            while self.it_in_epoch < self.iters and not self._budget_done():
                t_wait = time.perf_counter()
                batch = {name: self._to_device(s.next()) for name, s in self.streams.items()}
                t_step = time.perf_counter()
                self.step_images = sum(int(b["img"].shape[0]) for b in batch.values())
                n_img += self.step_images
                self.call_hooks("before_step")
                self.step_out = self._train_step(batch)
                self.step_out.update(self._timing(batch, t_step - t_wait, time.perf_counter() - t_step))
                for k, v in self.step_out.items():
                    sums[k] = sums.get(k, 0.0) + v
                self.it_in_epoch += 1
                self.global_it += 1
                n_steps += 1
                self.call_hooks("after_step")
                self.bar.advance(1)
        metrics = self.means(sums, max(1, n_steps))
        metrics["img_s"] = n_img * self.dist.world_size / max(1e-9, time.perf_counter() - t0)
        self.epoch_finished = self.it_in_epoch >= self.iters
        if self.epoch_finished:
            m.on_epoch_end(self.epoch)
            self.epoch, self.it_in_epoch = self.epoch + 1, 0
        self.epoch_metrics = metrics
        self.call_hooks("after_epoch")
        return metrics

    def _timing(self, batch: dict, data_s: float, compute_s: float) -> dict[str, torch.Tensor]:
        """Step scalars of time: seconds waiting for the batches and computing the step, and
        the loader's mean decode / augment milliseconds per image (workers run in parallel,
        so these are per-image costs, not the wait)."""
        out = {"data_s": data_s, "compute_s": compute_s}
        for key, name in (("decode_s", "decode_ms"), ("augment_s", "augment_ms")):
            times = [b[key] for b in batch.values() if torch.is_tensor(b.get(key))]
            n = sum(int(t.numel()) for t in times)
            if n:
                out[name] = 1000.0 * sum(float(t.double().sum()) for t in times) / n
        return {k: torch.tensor(float(v)) for k, v in out.items()}

    def _to_device(self, batch: dict) -> dict:
        return {k: (v.to(self.device, non_blocking=True) if torch.is_tensor(v) and k not in HOST_KEYS else v)
                for k, v in batch.items()}

    def _train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        m, names = self.method, self.method.optimizers_to_step(self.global_it)
        opts = [o for k, o in {"main": self.opt, **self.extra_opts}.items() if names is None or k in names]
        with torch.autocast(self.device.type, enabled=self.amp):
            out = m.step(batch, self.global_it)
        loss = out["loss"]
        if not torch.isfinite(loss.detach()).all():
            raise ReidError(f"the loss became {float(loss.detach())} at epoch {self.epoch + 1}, step "
                            f"{self.it_in_epoch + 1}; lower --lr or pass --no-amp")
        for o in opts:
            o.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        for o in opts:
            self.scaler.unscale_(o)
        m.before_optimizer_step()
        if self.cfg.grad_clip > 0:
            params = [p for g in self.opt.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        for o in opts:
            self.scaler.step(o)
        self.scaler.update()
        self.sched.step()
        m.after_step(self.global_it)
        return {k: v.detach().float() for k, v in out.items() if torch.is_tensor(v) and v.numel() == 1}

    def means(self, sums: dict, n: int) -> dict[str, float]:
        """``sums / n`` as floats, averaged over the processes under DDP (a collective)."""
        vals = {k: float(v) / n for k, v in sums.items()}
        return D.mean_over_ranks(vals, self.dist, self.device)

    # -- state -------------------------------------------------------------------------
    def checkpoint(self) -> dict:
        """The checkpoint dict of the current state (deployable and resumable)."""
        m = self.method
        model = m.model
        mcfg = self.meta.get("model_config") or dataclasses.asdict(model.cfg)
        mcfg = dict(mcfg, num_classes=getattr(getattr(model, "cfg", None), "num_classes",
                                              mcfg.get("num_classes", 0)))
        return make_checkpoint(
            model_config=mcfg, model_state=model.state_dict(), input_size=self.meta["input_size"],
            pixel_mean=self.meta["pixel_mean"], pixel_std=self.meta["pixel_std"],
            method=m.name, epoch=self.epoch, iteration=self.global_it,
            feat_dim=int(getattr(model, "feat_dim", 0)), provenance=self.meta.get("provenance"),
            nets={n: net.state_dict() for n, net in m.nets.items() if n != "model"},
            bn={"domains": self.bn_domains, "deploy": self.bn_domains[-1]} if self.bn_domains else {},
            train_state=self.train_state(),
            extra={**({"augment": self.meta["augment"]} if "augment" in self.meta else {}),
                   **(self.meta.get("extra") or {})} or None,
        )

    def train_state(self) -> dict:
        return {
            "config": self.cfg.to_dict(), "options": {**self.ctx.facts, **self.method.options.to_dict()},
            "epoch": self.epoch, "it_in_epoch": self.it_in_epoch, "global_it": self.global_it,
            "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "extra_optimizers": {k: o.state_dict() for k, o in self.extra_opts.items()},
            "scaler": self.scaler.state_dict(), "streams": {k: s.state_dict() for k, s in self.streams.items()},
            "method": self.method.extra_state(), "rng": rng_state(),
        }

    def load_state(self, ck: dict) -> None:
        """Restore everything `checkpoint` saved (call after `setup`)."""
        ts = ck["train_state"]
        m = self.method
        m.model.load_state_dict(ck["model"])
        for name, state in ck.get("nets", {}).items():
            if name in m.nets:
                m.nets[name].load_state_dict(state)
        self.opt.load_state_dict(ts["optimizer"])
        self.sched.load_state_dict(ts["scheduler"])
        for k, state in ts.get("extra_optimizers", {}).items():
            if k in self.extra_opts:
                self.extra_opts[k].load_state_dict(state)
        self.scaler.load_state_dict(ts["scaler"])
        for k, state in ts["streams"].items():
            if k in self.streams:
                self.streams[k].load_state_dict(state)
        m.load_extra_state(ts.get("method", {}))
        self.epoch, self.it_in_epoch, self.global_it = ts["epoch"], ts["it_in_epoch"], ts["global_it"]
        set_rng_state(ts["rng"])


def rng_state() -> dict:
    """Every RNG's state, as weights_only-loadable values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": list(random.getstate()[1]), "python_version": random.getstate()[0],
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate((state["python_version"], tuple(state["python"]), None))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def effective_epochs(cfg: TrainConfig, iters: int) -> int:
    """Epochs the run will actually do under ``max_iters``."""
    if not cfg.max_iters:
        return cfg.epochs
    return min(cfg.epochs, math.ceil(cfg.max_iters / max(1, iters)))
