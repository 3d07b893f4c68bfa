"""Joint source + target training with domain connectedness (METHODS.md section 5:
LSTM local branch + StarGAN camera style, 2021), for now without the camera-style images.

Each step draws a P x K batch of labelled source images and a P x K batch of target
images with their pseudo-labels:

    L = CE_ls(source) + Tri(source) + Tri(target) + theta * Tri(source u target)

CE on the source identities only (label-smoothed, eps 0.1), batch-hard triplets with
margin 0.5 (the paper's value), and the domain-connectedness term L_D = L_T(X_s u X_t):
one triplet over the union in which no source image shares an identity with a target
image, so every source-target pair is a negative (theta 0.3). With the LSTM branch the
local feature gets the same terms. Camera-style positives (X_t*) come with ``stylize``.
"""

from __future__ import annotations

import torch

from reidcli.train.methods import METHODS, EngineContext
from reidcli.train.methods.pseudo import DEFAULTS as PSEUDO_DEFAULTS
from reidcli.train.methods.pseudo import Pseudo
from reidcli.train.methods.uda import init_classifier, net_from_checkpoint, pk_stream
from reidcli.utils.errors import ConfigError

DEFAULTS = {**PSEUDO_DEFAULTS, "margin": 0.5, "theta": 0.3}


@METHODS.register("joint")
class Joint(Pseudo):
    """Source CE + triplet, target triplet, and source-vs-target negatives."""

    name = "joint"
    defaults = DEFAULTS

    def build(self, ctx: EngineContext) -> None:
        if ctx.data.get("source") is None:
            raise ConfigError("--method joint trains on labelled source images too; pass --source DATA")
        self.n_source = int(ctx.options["source_classes"])
        self.build_losses(ctx, self.nets_feat_dim(ctx))
        if self.o["theta"] < 0:
            raise ConfigError(f"--theta must be a float >= 0; got {self.o['theta']}")
        ck = ctx.data["init"]
        net = net_from_checkpoint(ck)
        if int(ck["model_config"].get("num_classes", 0)) != self.n_source or ck.get("method") not in ("supervised", "joint"):
            init_classifier(net, self.n_source, None)  # a new source classifier
        self.nets["model"] = net

    def streams(self, ctx: EngineContext) -> dict:
        return {"target": pk_stream(ctx, ctx.data["target"]),
                "source": pk_stream(ctx, ctx.data["source"], seed_offset=1)}

    def step(self, batch: dict, it: int) -> dict[str, torch.Tensor]:
        s, t = batch["source"], batch["target"]
        ns = s["img"].shape[0]
        out = self.net("model")(torch.cat([s["img"], t["img"]]))
        ys, yt = s["label"], t["label"]
        feat_s, feat_t = out["feat"][:ns], out["feat"][ns:]
        res = {"ce": self.ce(out["logits"][:ns], ys),
               "tri_s": self.triplet(feat_s, ys), "tri_t": self.triplet(feat_t, yt)}
        # target pseudo-ids shifted past the source ids: every cross-domain pair is a negative
        y_union = torch.cat([ys, yt + self.n_source])
        res["domain"] = self.triplet(out["feat"], y_union)
        if "local_feat" in out:
            res["ce_local"] = self.ce(out["local_logits"][:ns], ys)
            res["tri_local"] = self.triplet(out["local_feat"][:ns], ys) + self.triplet(out["local_feat"][ns:], yt)
        o = self.o
        total = (o["ce_weight"] * (res["ce"] + res.get("ce_local", 0.0))
                 + o["triplet_weight"] * (res["tri_s"] + res["tri_t"] + res.get("tri_local", 0.0))
                 + o["theta"] * res["domain"])
        out_d = {"loss": total, **{k: v.detach() for k, v in res.items()}}
        out_d["acc"] = (out["logits"][:ns].argmax(1) == ys).float().mean()
        return out_d
