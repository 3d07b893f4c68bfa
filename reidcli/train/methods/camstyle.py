"""``camstyle``: LSTM-UDA 2021's training with camera-style positives and domain connectedness
(LSTM local branch + StarGAN camera style, sec. 2.2-2.4; docs/papers.md section 5).

Each step draws a P x K batch of labelled source images and a P x K batch of target
classes. A target class is one target training image with its camera-styled versions
(``reid stylize apply``, ``--styled``): "the original and its generated images are one
class, every other image another" (sec. 2.2). With ``--labels`` a class is a pseudo-label
instead (the styled versions join their original's cluster). Target identities are never
read.

    L = ce_weight * [CE_ls(source, global) + CE_ls(source, local)]         (eq. 1)
      + theta * [L_D(global) + L_D(local)]                                    (eqs. 3, 4)
      [+ triplet_weight * (per-domain triplets: source ids, target classes)]

L_D (`reidcli.losses.DomainConnectedness`) is the batch-hard triplet (eq. 2, margin 0.5)
over source u target u styled target in which every source-target pair is a negative;
theta 0.3. The local terms apply when the checkpoint has the bi-LSTM local branch
(``--lstm-branch``); the target gets no CE (its identities are unknown). Settings:
`CamStyleOptions` (``triplet_weight`` 0 is the paper's eq. 4).
"""

from __future__ import annotations

import logging

import torch

from reidcli.train.methods import TRAINING_METHODS
from reidcli.train.methods.base import EngineContext
from reidcli.train.methods.joint import Joint
from reidcli.train.methods.options import CamStyleOptions
from reidcli.utils.errors import ConfigError

log = logging.getLogger(__name__)


@TRAINING_METHODS.register("camstyle")
class CamStyle(Joint):
    """Source CE + theta x domain-connectedness triplet over source u target u styled target."""

    name = "camstyle"
    Options = CamStyleOptions
    uses_styled = True
    labels_optional = True

    def build(self, ctx: EngineContext) -> None:
        from reidcli.losses import DomainConnectedness

        if not ctx.facts.get("styled_images"):
            raise ConfigError("--method camstyle trains on camera-styled target images; pass --styled DIR "
                              "(the output of 'reid stylize apply' on the target)")
        super().build(ctx)
        self.domain = DomainConnectedness(self.options.margin)
        if "lstm_branch" in ctx.facts["model_config"] and not ctx.facts["model_config"]["lstm_branch"]:
            log.info("the checkpoint has no LSTM local branch: global-branch losses only")

    def step(self, batch: dict, it: int) -> dict[str, torch.Tensor]:
        s, t = batch["source"], batch["target"]
        o, ce, triplet = self.options, self.objective.ce, self.objective.triplet
        ns = s["img"].shape[0]
        out = self.net("model")(torch.cat([s["img"], t["img"]]))
        ys, yt = s["label"], t["label"]
        res = {"ce": ce(out["logits"][:ns], ys),
               "domain": self.domain(out["feat"][:ns], ys, out["feat"][ns:], yt)}
        if "local_feat" in out:
            res["ce_local"] = ce(out["local_logits"][:ns], ys)
            res["domain_local"] = self.domain(out["local_feat"][:ns], ys, out["local_feat"][ns:], yt)
        total = o.ce_weight * (res["ce"] + res.get("ce_local", 0.0)) \
            + o.theta * (res["domain"] + res.get("domain_local", 0.0))
        if o.triplet_weight > 0:
            feats = [out["feat"]] + ([out["local_feat"]] if "local_feat" in out else [])
            res["tri_s"] = sum(triplet(f[:ns], ys) for f in feats)
            res["tri_t"] = sum(triplet(f[ns:], yt) for f in feats)
            total = total + o.triplet_weight * (res["tri_s"] + res["tri_t"])
        result = {"loss": total, **{k: v.detach() for k, v in res.items()}}
        result["acc"] = (out["logits"][:ns].argmax(1) == ys).float().mean()
        return result
