"""``stargan``: camera-style StarGAN training as an engine plug-in (`reidcli.stylize.stargan`
has the networks and losses, `reidcli.stylize.train` the entry point).

The engine steps one loss per step; this method alternates: ``n_critic`` discriminator
steps (the extra optimizer ``"d"``), then one generator step (the main optimizer), via
`Method.optimizers_to_step`. ``nets["model"]`` is the generator, ``nets["D"]`` the
discriminator. The target camera of every image is drawn uniformly from the global torch
RNG, which the engine saves and restores, so ``--resume`` continues exactly.
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
    pretrain = False  # run by 'reid stylize fit' (reidcli.stylize.train)

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

    def streams(self, ctx: EngineContext) -> dict:
        from reidcli.data.sampler import SequentialSeeds
        from reidcli.train.engine import make_stream

        ds, cfg, d = ctx.data["images"], ctx.cfg, ctx.dist
        sampler = SequentialSeeds(len(ds), cfg.p * cfg.k, seed=cfg.seed, rank=d.rank, world_size=d.world_size)
        return {"images": make_stream(ds, sampler, cfg, ctx.device)}

    def param_groups(self) -> list[dict]:
        return [{"params": list(self.nets["model"].parameters()), "weight_decay": 0.0}]

    def extra_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        if self._d_opt is None:
            o = self.options
            self._d_opt = torch.optim.Adam(self.nets["D"].parameters(), lr=self.ctx.cfg.lr,
                                           betas=tuple(o.betas))
        return {"d": self._d_opt}

    def after_setup(self, opt: torch.optim.Optimizer) -> None:
        for g in opt.param_groups:  # the engine's Adam has torch's default betas
            g["betas"] = tuple(self.options.betas)

    def is_g_step(self, it: int) -> bool:
        return it % (self.options.n_critic + 1) == self.options.n_critic

    def optimizers_to_step(self, it: int) -> Optional[set[str]]:
        return {"main"} if self.is_g_step(it) else {"d"}

    def step(self, batch: dict, it: int) -> dict[str, torch.Tensor]:
        from reidcli.stylize.stargan import d_loss, g_loss

        o, b = self.options, batch["images"]
        real, cam = b["img"], b["label"].long()
        trg = torch.randint(0, self.num_cams, cam.shape).to(cam.device)
        G, D = self.net("model"), self.net("D")
        if self.is_g_step(it):
            out = g_loss(D, G, real, cam, trg, o.lambda_cls, o.lambda_rec)
            self._last_g = {k: v.detach() for k, v in out.items() if k != "loss"}
            return {**out, "g_loss": out["loss"].detach()}
        with torch.no_grad():
            fake = G(real, trg)
        alpha = torch.rand(real.shape[0]).to(real.device)
        out = d_loss(D, real, fake, cam, o.lambda_cls, o.lambda_gp, alpha)
        # the generator terms of the last G step ride along, so every log window shows them
        return {**out, "d_loss": out["loss"].detach(), **self._last_g}

    def extra_state(self) -> dict:
        return {"last_g": dict(self._last_g)}

    def load_extra_state(self, state: dict) -> None:
        self._last_g = dict(state.get("last_g", {}))
