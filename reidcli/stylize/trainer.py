"""The ``stargan`` training method: camera-style StarGAN training (Choi et al. 2018;
docs/papers.md section 6) as a plug-in to the one training engine (`reidcli.train.engine`),
which ``reid stylize fit --method stargan`` runs. `reidcli.stylize.stargan` has the
networks and losses, `reidcli.stylize.train` the entry point (`fit_stargan`: data,
checkpoint, sample sheets). It is registered in `reidcli.train.methods.TRAINING_METHODS` as
a method of neither ``reid pretrain`` nor ``reid finetune`` (``pretrain`` and ``finetune``
False), so those stages name 'reid stylize fit' when asked for it.

The engine steps one loss per step; this method alternates: ``n_critic`` discriminator
steps (the extra optimizer ``"d"``), then one generator step (the main optimizer), via
`Method.optimizers_to_step`. ``nets["model"]`` is the generator, ``nets["D"]`` the
discriminator. The loop of the published code (yunjey/stargan ``solver.py``, `StarGANOptions`):
the generator step reuses the images and target cameras of the critic step before it
(``g_batch`` 'critic'; the batch the engine draws for it is left unused), the target cameras
are a permutation of the batch's own (``target_cameras`` 'permute'), and both learning rates
fall linearly to 0 over the last ``lr_decay`` of the run's critic iterations (set before
each optimizer step from the step index, then reset, so the optimizers' saved rate is the
base one). Targets and the gradient-penalty mix come from the global torch RNG, which the
engine saves and restores; the critic batch a generator step still needs is saved with the
method's state, so ``--resume`` continues exactly.
"""

from __future__ import annotations

from typing import Optional

import torch

from reidcli.stylize.options import StarGANOptions
from reidcli.train.methods import TRAINING_METHODS
from reidcli.train.methods.base import EngineContext, Method


@TRAINING_METHODS.register("stargan")
class StarGAN(Method):
    name = "stargan"
    Options = StarGANOptions

    def build(self, ctx: EngineContext) -> None:
        from reidcli.stylize.stargan import Discriminator, Generator

        o, f = self.options, ctx.facts
        self.num_cams = int(f["num_cams"])
        h, w = f["image_size"]
        self.nets["model"] = Generator(self.num_cams, o.g_conv_dim, o.g_repeat)
        self.nets["D"] = Discriminator(self.num_cams, h, w, o.d_conv_dim, o.d_repeat)
        self.trained = ["model", "D"]
        self._d_opt: Optional[torch.optim.Optimizer] = None
        self._last_g: dict[str, torch.Tensor] = {}
        self._critic: dict[str, torch.Tensor] = {}  # the last critic step's images, cameras, targets
        self._it, self._steps = 0, 0
        self._main_opt: Optional[torch.optim.Optimizer] = None

    def streams(self, ctx: EngineContext) -> dict:
        from reidcli.data.sampler import SequentialSeeds
        from reidcli.train.engine import make_stream

        ds, cfg, d = ctx.data["images"], ctx.cfg, ctx.dist
        sampler = SequentialSeeds(len(ds), cfg.p * cfg.k, seed=cfg.seed, rank=d.rank, world_size=d.world_size)
        stream = make_stream(ds, sampler, cfg, ctx.device)
        self._steps = cfg.epochs * (cfg.iters_per_epoch or len(stream))  # the run's engine steps
        return {"images": stream}

    def param_groups(self) -> list[dict]:
        return [{"params": list(self.nets["model"].parameters()), "weight_decay": 0.0}]

    def extra_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        if self._d_opt is None:
            o = self.options
            self._d_opt = torch.optim.Adam(self.nets["D"].parameters(), lr=self.ctx.cfg.lr,
                                           betas=tuple(o.betas))
        return {"d": self._d_opt}

    def is_g_step(self, it: int) -> bool:
        return it % (self.options.n_critic + 1) == self.options.n_critic

    def optimizers_to_step(self, it: int) -> Optional[set[str]]:
        return {"main"} if self.is_g_step(it) else {"d"}

    def critic_iteration(self, it: int) -> int:
        """The 0-based critic iteration engine step ``it`` belongs to (a generator step: the
        critic step before it, as in the published loop, where it ends that iteration)."""
        period = self.options.n_critic + 1
        return it - it // period - (1 if self.is_g_step(it) else 0)

    def lr_factor(self, it: int) -> float:
        """StarGAN's schedule: 1, then linearly to 0 over the last ``lr_decay`` of the run's
        critic iterations (the rate of critic iteration i is lr (N - i) / (lr_decay N))."""
        decay = self.options.lr_decay
        n = self._steps - self._steps // (self.options.n_critic + 1)  # critic iterations of the run
        if decay <= 0 or n <= 0:
            return 1.0
        return min(1.0, (n - self.critic_iteration(it)) / (decay * n))

    def _targets(self, cam: torch.Tensor) -> torch.Tensor:
        if self.options.target_cameras == "permute":
            return cam[torch.randperm(cam.shape[0]).to(cam.device)]
        return torch.randint(0, self.num_cams, cam.shape).to(cam.device)

    def step(self, batch: dict, it: int) -> dict[str, torch.Tensor]:
        from reidcli.stylize.stargan import d_loss, g_loss

        o, b = self.options, batch["images"]
        self._it = it
        G, D = self.net("model"), self.net("D")
        lr = {"lr": torch.tensor(self.ctx.cfg.lr * self.lr_factor(it))}
        if self.is_g_step(it):
            if o.g_batch == "critic" and self._critic:
                real, cam, trg = (self._critic[k].to(b["img"].device) for k in ("img", "cam", "trg"))
            else:
                real, cam = b["img"], b["label"].long()
                trg = self._targets(cam)
            out = g_loss(D, G, real, cam, trg, o.lambda_cls, o.lambda_rec)
            self._last_g = {k: v.detach() for k, v in out.items() if k != "loss"}
            return {**out, "g_loss": out["loss"].detach(), **lr}
        real, cam = b["img"], b["label"].long()
        trg = self._targets(cam)
        if o.g_batch == "critic":
            self._critic = {"img": real.detach(), "cam": cam, "trg": trg}
        with torch.no_grad():
            fake = G(real, trg)
        alpha = torch.rand(real.shape[0]).to(real.device)
        out = d_loss(D, real, fake, cam, o.lambda_cls, o.lambda_gp, alpha)
        # the generator terms of the last G step ride along, so every log window shows them
        return {**out, "d_loss": out["loss"].detach(), **self._last_g, **lr}

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        return [o for o in (self._main_opt, self._d_opt) if o is not None]

    def after_setup(self, opt: torch.optim.Optimizer) -> None:
        for g in opt.param_groups:  # the engine's Adam has torch's default betas
            g["betas"] = tuple(self.options.betas)
        self._main_opt = opt

    def before_optimizer_step(self) -> None:
        f = self.lr_factor(self._it)
        for opt in self._optimizers():
            for g in opt.param_groups:
                g["lr"] = g.setdefault("initial_lr", g["lr"]) * f

    def after_step(self, it: int) -> None:
        for opt in self._optimizers():  # back to the base rate: the schedule is a function of the step
            for g in opt.param_groups:
                g["lr"] = g["initial_lr"]

    def extra_state(self) -> dict:
        state: dict = {"last_g": dict(self._last_g)}
        if self._critic and self.is_g_step(self._it + 1):  # the next step needs this critic batch
            state["critic"] = {k: v.detach().cpu() for k, v in self._critic.items()}
        return state

    def load_extra_state(self, state: dict) -> None:
        self._last_g = dict(state.get("last_g", {}))
        self._critic = dict(state.get("critic", {}))
