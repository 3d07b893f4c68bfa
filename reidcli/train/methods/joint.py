"""Joint source + target training with domain connectedness (LSTM-UDA 2021:
LSTM local branch + StarGAN camera style; docs/papers.md section 5), for now without the
camera-style images.

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

from reidcli.models import network_from_checkpoint
from reidcli.train.methods import TRAINING_METHODS
from reidcli.train.methods.base import EngineContext
from reidcli.train.methods.options import JointOptions
from reidcli.train.methods.pseudo import Pseudo
from reidcli.train.methods.uda import init_classifier, pk_stream
from reidcli.utils.errors import ConfigError


@TRAINING_METHODS.register("joint")
class Joint(Pseudo):
    """Source CE + triplet, target triplet, and source-vs-target negatives."""

    name = "joint"
    Options = JointOptions
    uses_source = True
    # checkpoints whose classifier is a source classifier (kept when its size matches)
    SOURCE_CLASSIFIER = ("supervised", "joint", "camstyle")

    def build(self, ctx: EngineContext) -> None:
        if ctx.data.get("source") is None:
            raise ConfigError(f"--method {self.name} trains on labelled source images too; pass --source DATA")
        self.n_source = int(ctx.facts["source_classes"])
        self.build_objective(ctx)
        ck = ctx.data["init"]
        net = network_from_checkpoint(ck)
        if int(ck["model_config"].get("num_classes", 0)) != self.n_source or ck.get("method") not in self.SOURCE_CLASSIFIER:
            init_classifier(net, self.n_source, None)  # a new source classifier
        self.nets["model"] = net

    def streams(self, ctx: EngineContext) -> dict:
        return {"target": pk_stream(ctx, ctx.data["target"]),
                "source": pk_stream(ctx, ctx.data["source"], seed_offset=1)}

    def step(self, batch: dict, it: int) -> dict[str, torch.Tensor]:
        s, t = batch["source"], batch["target"]
        ce, triplet, o = self.objective.ce, self.objective.triplet, self.options
        ns = s["img"].shape[0]
        out = self.net("model")(torch.cat([s["img"], t["img"]]))
        ys, yt = s["label"], t["label"]
        feat_s, feat_t = out["feat"][:ns], out["feat"][ns:]
        res = {"ce": ce(out["logits"][:ns], ys), "tri_s": triplet(feat_s, ys), "tri_t": triplet(feat_t, yt)}
        # target pseudo-ids shifted past the source ids: every cross-domain pair is a negative
        y_union = torch.cat([ys, yt + self.n_source])
        res["domain"] = triplet(out["feat"], y_union)
        if "local_feat" in out:
            res["ce_local"] = ce(out["local_logits"][:ns], ys)
            res["tri_local"] = triplet(out["local_feat"][:ns], ys) + triplet(out["local_feat"][ns:], yt)
        total = (o.ce_weight * (res["ce"] + res.get("ce_local", 0.0))
                 + o.triplet_weight * (res["tri_s"] + res["tri_t"] + res.get("tri_local", 0.0))
                 + o.theta * res["domain"])
        out_d = {"loss": total, **{k: v.detach() for k, v in res.items()}}
        out_d["acc"] = (out["logits"][:ns].argmax(1) == ys).float().mean()
        return out_d
