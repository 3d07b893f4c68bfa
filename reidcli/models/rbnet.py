"""RBNet: a re-ID network guided by body keypoints through a reverse backbone (arch ``rbnet``).

Yu & Piao, "Reverse backbone net for unsupervised person re-identification", Journal of
Jilin University 2024 (docs/papers.md section 1). Three steps (paper Fig. 1):

1. backbone 1 (a ResNet) gives the global feature: GAP -> BNNeck -> ID + triplet loss;
2. the reverse backbone (`reidcli.models.reverse`) learns 17 keypoint heat-maps at half the
   input size from the backbone's stage features (MSE against Gaussian targets, eq. 3);
3. the reverse output at one scale (re-layer1 by default, the paper's best) becomes a spatial
   mask M(x) that multiplies the input; "backbone 2" (the same weights by default, or a
   separate copy) embeds x * M(x) into the masked feature: ID2 + triplet2 (eqs. 1-2).

Two mask paths (``mask_path``):

* ``paper`` (paper sec. 1.1, step 3): "the re-layer1 output, as the mask, passes through a
  change_channel into conv1's input" - M(x) = ReLU(1x1 conv(re-layer1 features)), upsampled
  to the input (`reverse.MaskChannel`) - and "the same-layer features of the backbone and the
  reverse backbone are fused into backbone 2": each fused scale's reverse output is added,
  through a zero-initialised 1x1 conv, where backbone 2 meets that scale (`reverse.Injection`).
  With shared weights, backbone 2 has its own BatchNorm layers (statistics and affine), so
  the masked pass never moves the statistics the global feature is computed with: inference
  on clean images sees clean-image statistics.
* ``simple`` (the first implementation): M(x) = sigmoid (or normalised sum) of the 17
  maps of one scale; no fusion into backbone 2; one set of BN layers for both passes (the
  masked pass updates the statistics the global feature uses at inference).

'paper' is the default because it measured better: ``benchmarks/bench_rbnet_ablation.py
--arms rbnet,rbnet_simple`` (synthetic Market -> Duke, 16 ids, resnet18_half at 64x32, 8
epochs; 2 seeds) gave +3.7 mAP on the source, +1.9 direct transfer and +2.5 after a short
MMT round, on average (Rank-1 mixed; tiny runs, so a few points of noise).

Total loss (eq. 4): L = l1 ID + l2 Tri + l3 MSE + l4 ID2 + l5 Tri2 (see
`reidcli.losses.heatmap.RBNetLoss`). RBNet-specific settings live in ``ModelConfig.rbnet``
(a dict, stored in checkpoints; keys and defaults in `RBNetOptions`).

Train-mode output: ReidNet's ``feat``/``bn_feat``/``logits`` (backbone 1) plus ``heatmaps``
[N, 17, H/2, W/2], ``mask`` [N, 1, H, W], ``feat2``/``bn_feat2``/``logits2`` (backbone 2
on the masked input) and, on the 'paper' path, ``rev_<scale>`` (the reverse maps fused into
backbone 2) - or, after `skip_unused_passes` (a method whose losses read only backbone 1's
outputs), just ``feat``/``bn_feat``/``logits``. Eval mode returns the inference feature chosen by ``feature``:
``global`` (backbone 1), ``masked`` (backbone 2) or ``both`` (concatenated; 2x the width).
No pose file is needed at inference: the network predicts its own heat-maps.
"""

from __future__ import annotations

import copy
import dataclasses
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from reidcli.models.config import ModelConfig
from reidcli.models.net import (
    ReidNet,
    _bnneck,
    _classifier,
    build_backbone,
    register_network,
)
from reidcli.models.rbnet_options import RBNetOptions
from reidcli.models.reverse import (
    SCALES,
    Injection,
    K,
    MaskChannel,
    ReverseBackbone,
)
from reidcli.utils.errors import ConfigError


class RBNet(ReidNet):
    """`ReidNet` (backbone 1 and its head) + reverse backbone + backbone-2 head."""

    def __init__(self, cfg: ModelConfig, backbone: nn.Module):
        if cfg.lstm_branch:
            raise ConfigError("--lstm-branch cannot be combined with --arch rbnet")
        self.rb = RBNetOptions.from_dict(cfg.rbnet)
        super().__init__(cfg, backbone)
        self.head_dim = self.feat_dim
        if self.rb.feature == "both":
            self.feat_dim = 2 * self.head_dim
        if not cfg.num_classes:
            self.classifier2 = None
        self.paper = self.rb.mask_path == "paper"
        extra = [] if self.paper or self.rb.mask_from == "heatmaps" else [self.rb.mask_from]
        self.reverse = ReverseBackbone(backbone.channels, self.rb.fuse, extra, self.rb.blocks)
        self.backbone2 = None if self.rb.shared else copy.deepcopy(backbone)
        self.bnneck2 = _bnneck(self.head_dim) if cfg.neck == "bnneck" else None
        self.global_only = False  # train mode: backbone 1 alone (`skip_unused_passes`)
        self.mask_channel = self.inject = self.bn2 = None
        self._bn2_paths: list[str] = []
        if self.paper:
            src = K if self.rb.mask_from == "heatmaps" else self.reverse.out_widths[self.rb.mask_from]
            self.mask_channel = MaskChannel(src)
            self.inject = Injection(self.reverse.out_widths, backbone.channels, self.rb.fuse)
            if self.rb.shared:  # backbone 2 = backbone 1's convolutions with its own BN layers
                self._bn2_paths = [n for n, m in backbone.named_modules() if isinstance(m, _BatchNorm)]
                self.bn2 = nn.ModuleDict({n.replace(".", "-"): copy.deepcopy(backbone.get_submodule(n))
                                          for n in self._bn2_paths})

    # -- building blocks -------------------------------------------------------------
    def _make_classifiers(self, num_classes: int) -> None:
        dim = getattr(self, "head_dim", self.feat_dim)  # ReidNet.__init__ calls this first
        self.classifier = _classifier(dim, num_classes)
        self.classifier2 = _classifier(dim, num_classes)

    def stages(self, x: torch.Tensor, backbone: Optional[nn.Module] = None,
               inject: Optional[dict[str, torch.Tensor]] = None) -> list[torch.Tensor]:
        """(conv1 before the max-pool, layer1, ..., layer4), attention as in `ReidNet`;
        ``inject`` maps are added to conv1's output (``conv1``) or to layer k's input."""
        bb = backbone or self.backbone
        inject = inject or {}
        c1 = bb.relu(bb.bn1(bb.conv1(x)))
        if "conv1" in inject:
            c1 = c1 + inject["conv1"]
        maps, h = [c1], bb.maxpool(c1)
        for i, layer in enumerate(bb.layers()):
            if SCALES[i + 1] in inject:
                h = h + inject[SCALES[i + 1]]
            h = layer(h)
            if self.attention is not None and i >= 1:
                h = self.attention[i - 1](h)
            maps.append(h)
        return maps

    def heatmap_size(self, x: torch.Tensor) -> tuple[int, int]:
        return (x.shape[-2] + 1) // 2, (x.shape[-1] + 1) // 2

    def make_mask(self, rev: dict[str, torch.Tensor], heat: torch.Tensor,
                  size: Sequence[int]) -> torch.Tensor:
        """M(x) [N, 1, *size] from ``mask_from``: ReLU(1x1 conv) of its features ('paper',
        >= 0) or sigmoid / normalised sum of its 17 maps ('simple', in [0, 1])."""
        if self.paper:
            src = heat if self.rb.mask_from == "heatmaps" else rev[self.rb.mask_from]
            m = self.mask_channel(src)
        else:
            maps = heat if self.rb.mask_from == "heatmaps" else self.reverse.maps(rev, self.rb.mask_from)
            s = maps.float().sum(1, keepdim=True)
            if self.rb.mask == "sigmoid":
                m = torch.sigmoid(s)
            else:
                s = F.relu(s)
                m = s / s.amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)
        return F.interpolate(m, size=tuple(size), mode="bilinear", align_corners=False).to(heat.dtype)

    @contextmanager
    def _masked_bn(self) -> Iterator[None]:
        """Backbone 1's BN layers swapped for backbone 2's own while the block runs."""
        saved = []
        try:
            for path in self._bn2_paths:
                parent, _, name = path.rpartition(".")
                owner = self.backbone.get_submodule(parent) if parent else self.backbone
                saved.append((owner, name, getattr(owner, name)))
                setattr(owner, name, self.bn2[path.replace(".", "-")])
            yield
        finally:
            for owner, name, module in reversed(saved):
                setattr(owner, name, module)

    def _head2(self, xm: torch.Tensor, rev: Optional[dict[str, torch.Tensor]] = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        inject = self.inject(rev) if self.inject is not None and rev is not None else None
        with self._masked_bn() if self.bn2 is not None else nullcontext():
            stages = self.stages(xm, self.backbone2, inject)
        feat2 = self.global_feat(stages)
        return feat2, (self.bnneck2(feat2) if self.bnneck2 is not None else feat2)

    def reverse_pass(self, x: torch.Tensor, stages: Optional[list] = None) -> dict[str, Any]:
        """Heat-maps [N, 17, H/2, W/2], mask [N, 1, H, W], the reverse maps by scale (``rev``)
        and the stage maps used."""
        stages = stages if stages is not None else self.stages(x)
        rev = self.reverse(stages)
        heat = self.reverse.heatmaps(rev, self.heatmap_size(x))
        return {"stages": stages, "heatmaps": heat, "rev": rev,
                "mask": self.make_mask(rev, heat, x.shape[-2:])}

    def fused(self, rev: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The reverse maps backbone 2 takes in ('paper' path; empty for 'simple')."""
        return {s: rev[s] for s in self.inject.proj} if self.inject is not None else {}

    # -- forward ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor):
        stages = self.stages(x)
        feat = self.global_feat(stages)
        bn_feat = self.bnneck(feat) if self.bnneck is not None else feat
        if not self.training:
            return self._embedding(x, stages, bn_feat)
        if self.global_only:
            out = {"feat": feat, "bn_feat": bn_feat}
            if self.classifier is not None:
                out["logits"] = self.classifier(self.dropout(bn_feat))
            return out
        rp = self.reverse_pass(x, stages)
        feat2, bn_feat2 = self._head2(x * rp["mask"], rp["rev"])
        out = {"feat": feat, "bn_feat": bn_feat, "heatmaps": rp["heatmaps"], "mask": rp["mask"],
               "feat2": feat2, "bn_feat2": bn_feat2}
        out.update({f"rev_{s}": t for s, t in self.fused(rp["rev"]).items()})
        if self.classifier is not None:
            out["logits"] = self.classifier(self.dropout(bn_feat))
            out["logits2"] = self.classifier2(self.dropout(bn_feat2))
        return out

    def _embedding(self, x, stages, bn_feat) -> torch.Tensor:
        if self.rb.feature != "global":
            rp = self.reverse_pass(x, stages)
            _, bn2 = self._head2(x * rp["mask"], rp["rev"])
            bn_feat = bn2 if self.rb.feature == "masked" else torch.cat([bn_feat, bn2], 1)
        return F.normalize(bn_feat, dim=1) if self.cfg.feat_norm else bn_feat

    def masked_forward(self, x: torch.Tensor, mask: torch.Tensor,
                       rev: Optional[dict[str, torch.Tensor]] = None) -> dict[str, torch.Tensor]:
        """Backbone 2 on ``x * mask`` with a given mask (and, on the 'paper' path, given
        reverse maps to fuse in): ``feat``, ``bn_feat``, ``logits``.

        MMT with RBNet (paper Fig. 2, eqs. 7-8): a mean net embeds the input masked by its
        network's M(x), f = F(M(x | θ) x | E[θ]).
        """
        feat2, bn2 = self._head2(x * mask, rev)
        out = {"feat": feat2, "bn_feat": bn2}
        if self.classifier2 is not None:
            out["logits"] = self.classifier2(self.dropout(bn2))
        return out

    @torch.no_grad()
    def predict_heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 17, H/2, W/2] heat-maps in eval mode (for ``--save-heatmaps`` / pose)."""
        was = self.training
        self.eval()
        try:
            return self.reverse_pass(x)["heatmaps"]
        finally:
            self.train(was)

    # -- for training methods ----------------------------------------------------------
    def reset_classifier(self, num_classes: int, weight: Optional[torch.Tensor] = None) -> None:
        """Replace both classifiers. ``weight`` [K, feat_dim] holds class centres of the
        *inference* feature (e.g. cluster centres), so it initialises the classifier of the
        branch it describes: the global one for ``feature='global'``, the masked one
        (classifier2) for 'masked', each its half for 'both'. The other classifier starts
        fresh (N(0, 0.001), as ``_classifier``): one branch's centres are not centres of
        the other branch's BNNeck output. Cluster ``--rb-feature both`` features to
        initialise both classifiers from centres."""
        if num_classes < 0:
            raise ConfigError(f"num_classes must be an int >= 0; got {num_classes}")
        if weight is not None and tuple(weight.shape) != (num_classes, self.feat_dim):
            raise ConfigError(f"classifier init weight is {tuple(weight.shape)} but the model needs "
                              f"({num_classes}, {self.feat_dim}); pass one centre per class of the "
                              "model's feature dimension")
        ref = next(self.parameters())
        self.cfg = dataclasses.replace(self.cfg, num_classes=num_classes)
        self.classifier = self.classifier2 = None
        if num_classes == 0:
            return
        self._make_classifiers(num_classes)
        if weight is not None:
            w, h = weight.detach().float(), self.head_dim
            parts = {"global": (w, None), "masked": (None, w), "both": (w[:, :h], w[:, h:])}[self.rb.feature]
            with torch.no_grad():
                for clf, part in zip((self.classifier, self.classifier2), parts):
                    if part is not None:
                        clf.weight.copy_(F.normalize(part, dim=1))
        self.to(device=ref.device, dtype=ref.dtype)


def build_rbnet(cfg: ModelConfig, load_pretrained: bool = True) -> RBNet:
    """Build an RBNet from ``cfg`` (arch 'rbnet'; backbone from ``cfg.rbnet['backbone']``)."""
    return RBNet(cfg, build_backbone(RBNetOptions.from_dict(cfg.rbnet).backbone, cfg, load_pretrained))


register_network("rbnet", build_rbnet)  # `build_model` builds the whole network through this


def is_rbnet(net: nn.Module) -> bool:
    """Whether ``net`` (or the module inside a DDP wrapper) is an RBNet."""
    return isinstance(getattr(net, "module", net), RBNet)


def mean_output(mean_net: nn.Module, x: torch.Tensor, student_out: dict) -> dict:
    """A mean net's output in MMT. For RBNet the mean net embeds the input masked by its
    network's mask, f = F(M(x | θ) x | E[θ]) (paper eqs. 7-8, Fig. 2), taking in its
    network's reverse maps on the 'paper' path; its ``logits`` come from the masked head
    (bnneck2 / classifier2), which the students train through `masked_id_loss`. On the
    'paper' path a mean net in training mode also runs backbone 1 on ``x`` so the BN
    statistics its deployed global feature uses follow the target images (the masked pass
    has its own); else ``mean_net(x)``."""
    net = getattr(mean_net, "module", mean_net)
    if isinstance(net, RBNet) and "mask" in student_out:
        if net.paper and net.training:
            net.stages(x)
        rev = {k[4:]: v.detach() for k, v in student_out.items() if k.startswith("rev_")}
        return net.masked_forward(x, student_out["mask"].detach(), rev)
    return mean_net(x)


def skip_unused_passes(net: nn.Module) -> bool:
    """Train ``net`` (an RBNet; anything else is left alone) on backbone 1 alone: its
    train-mode forward then returns ``feat``, ``bn_feat`` and ``logits`` without running the
    reverse backbone and the masked pass. For methods whose losses read only those
    (pseudo, kd, joint, camstyle, mar, agents: the BoT / agent objectives), whose gradients
    never reach the skipped modules; about half the forward and backward time is saved.

    Applied only where skipping changes nothing the run keeps or deploys, so the weights,
    the backbone-1 statistics and the deployed feature equal those of the full forward:
    the inference feature is 'global' (a 'masked' or 'both' feature uses the masked pass's
    BatchNorm statistics, which training on the target moves), backbone 2 has BatchNorm
    layers of its own ('paper' path or ``shared`` False: on the shared 'simple' path the
    masked images move backbone 1's statistics) and dropout is 0 (the second classifier's
    dropout draws from the RNG). The skipped modules keep their statistics from the
    checkpoint. Returns whether it was applied."""
    net = getattr(net, "module", net)
    if not isinstance(net, RBNet):
        return False
    own_bn = net.paper or not net.rb.shared
    net.global_only = net.rb.feature == "global" and own_bn and not net.cfg.dropout
    return net.global_only


def student_output(out: dict) -> dict:
    """A network's output for MMT's losses. For RBNet the (soft) triplet terms use the masked
    feature f(x M(x)) (paper eqs. 9-11) and the (soft) ID terms the global classifier."""
    if "feat2" not in out:
        return out
    return {**out, "feat": out["feat2"]}


def masked_id_loss(out: dict, y: torch.Tensor, ce: nn.Module):
    """RBNet's l4 ID2 term (eq. 4) on a network output: ``ce(logits2, y)``, or 0 for other
    networks. MMT adds it to each student's ID loss so the head its mean nets score with
    (bnneck2 / classifier2, `mean_output`) is trained, and the EMA moves the teacher's head."""
    return ce(out["logits2"], y) if "logits2" in out else 0.0


def train_feat_dim(model_config: dict, feat_dim: int) -> int:
    """Width of the training feature ``out['feat']`` (triplet, centre loss) of a network with
    inference width ``feat_dim``: half of it for an RBNet whose inference feature is 'both'
    (global and masked concatenated), else ``feat_dim``."""
    rb = model_config.get("rbnet") or {}
    if model_config.get("arch") == "rbnet" and rb.get("feature") == "both":
        return feat_dim // 2
    return feat_dim
