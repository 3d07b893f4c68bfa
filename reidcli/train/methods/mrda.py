"""MRDA: cross-modality (visible-infrared) training of the two-stream network (``reid
pretrain --method mrda --arch mrda``; Zhang et al. 2023; docs/papers.md section 3).

Each step draws P identities x (K visible + K infrared) images (`CrossModalPKSampler`),
adds the mask-reconstructed copy x_M+ = M+ x of every image (eqs. 1-3,
`reidcli.data.transforms_mask`), routes each image through its modality's stages 0-1
(`reidcli.models.mrda.MrdaNet`) and minimises eq. 23:

    L = w_id L_id + w_hc L_hc,tri + w_mc L_mc + w_ac L_ac

(`reidcli.losses.mrda`; weights and rho in `MrdaOptions`). The ID, hetero-centre and
correlation terms see the original and the masked images alike; the region centre term
compares their stage-1 features.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from reidcli.data.sampler import CrossModalPKSampler
from reidcli.train.methods import TRAINING_METHODS
from reidcli.train.methods.base import EngineContext, Method
from reidcli.train.methods.objective import weighted_result
from reidcli.train.methods.options import MrdaOptions
from reidcli.utils.errors import ConfigError, InputError

log = logging.getLogger(__name__)


@TRAINING_METHODS.register("mrda")
class Mrda(Method):
    """Label-smoothed ID + hetero-centre triplet + modality correlation + region centre."""

    name = "mrda"
    Options = MrdaOptions

    def build(self, ctx: EngineContext) -> None:
        from reidcli.losses import CrossEntropyLabelSmooth
        from reidcli.losses.mrda import (
            HeteroCentreTriplet,
            ModalityCorrelationLoss,
            RegionCentreLoss,
        )
        from reidcli.models import ModelConfig, build_model

        o = self.options
        cfg = ModelConfig.from_dict({**ctx.facts["model_config"], "num_classes": ctx.num_classes})
        if cfg.arch != "mrda":
            raise ConfigError(f"--method mrda trains the two-stream network; got --arch {cfg.arch}, "
                              "use --arch mrda")
        self.nets["model"] = build_model(cfg)
        self.ce = CrossEntropyLabelSmooth(o.label_smooth)
        self.hc = HeteroCentreTriplet(o.rho, o.hc_reduction)
        self.mc = ModalityCorrelationLoss()
        self.ac = RegionCentreLoss()

    def streams(self, ctx: EngineContext) -> dict:
        from reidcli.train.engine import make_stream

        cfg, d = ctx.cfg, ctx.dist
        src = ctx.data["source"]
        modality = np.array([r.modality for r in src.records], dtype=np.int64)
        if not (modality == 1).any() or not (modality == 0).any():
            raise InputError("--method mrda needs visible and infrared images (modality 0 and 1) in the "
                             "training split; this dataset has one modality")
        _check_k([r.pid for r in src.records], src.labels, modality, cfg.k)
        sampler = CrossModalPKSampler(src.labels, modality, cfg.p, cfg.k, seed=cfg.seed, rank=d.rank,
                                      world_size=d.world_size)
        return {"source": make_stream(src, sampler, cfg, ctx.device)}

    def step(self, batch: dict, it: int) -> dict[str, torch.Tensor]:
        from reidcli.data.transforms_mask import mask_reconstruct

        o, src = self.options, batch["source"]
        x, y, mod = src["img"], src["label"], src["modality"].long()
        n = x.shape[0]
        if o.mask:
            x, y, mod = torch.cat([x, mask_reconstruct(x)]), torch.cat([y, y]), torch.cat([mod, mod])
        out = self.net("model")(x, mod)
        terms = {}
        if o.id_weight > 0:
            terms["id"] = (o.id_weight, self.ce(out["logits"], y))
        if o.hc_weight > 0:
            terms["hc_tri"] = (o.hc_weight, self.hc(out["feat"], y, mod))
        if o.mc_weight > 0:
            terms["mc"] = (o.mc_weight, self.mc(out["feat"], mod))
        if o.mask and o.ac_weight > 0:
            s1 = out["stage1"]
            terms["ac"] = (o.ac_weight, self.ac(s1[:n], s1[n:], y[:n], mod[:n]))
        return weighted_result(terms, out, y)


def _check_k(pids, labels, modality: np.ndarray, k: int) -> None:
    """Every sampled identity needs K images of each modality (the paper's batches hold distinct
    images); else a one-line error naming identities and the largest K that fits. Identities
    seen in one modality only are not sampled (`CrossModalPKSampler`): a warning names them."""
    labels = np.asarray(labels)
    short, fit, single = [], k, []
    for lab in np.unique(labels[labels >= 0]):
        n = [int(((labels == lab) & (modality == m)).sum()) for m in (0, 1)]
        pid = int(pids[np.flatnonzero(labels == lab)[0]])
        if min(n) == 0:
            single.append(pid)
        elif min(n) < k:
            short.append(pid)
            fit = min(fit, min(n))
    if single:
        log.warning("%d training identities have images of one modality only and are not sampled "
                    "(MRDA batches need both): %s%s", len(single), single[:5], " ..." if len(single) > 5 else "")
    if short:
        raise InputError(f"identities {short[:5]}{' ...' if len(short) > 5 else ''} have fewer than "
                         f"--images-per-id {k} images of one modality; use -K {fit} or less")
