"""Paper recipes: each paper's hyper-parameters one flag away (``--recipe NAME``).

A recipe maps a stage (``pretrain``, ``finetune``, ``cluster``, ``stylize``: ``reid stylize
fit``) to settings named as the stage's library parameters (the same names as its CLI flags'
Python parameters). A stage takes the recipe's values for the settings the caller did not
give; explicit settings win. Every value, the paper's own value and each deviation with its
reason are in docs/recipes.md; `tests/test_recipes.py` checks that each recipe value reaches the configs.

>>> stage_settings("rbnet", "cluster")["eps"]
0.42
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from reidcli.utils.registry import Registry


STAGES = ("pretrain", "finetune", "cluster", "stylize")


@dataclass(frozen=True)
class Recipe:
    """The settings of one paper, per stage (see docs/recipes.md for their sources)."""

    paper: str
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)


RECIPES: Registry[Recipe] = Registry("recipe")

# RBNet (Yu & Piao 2024; docs/papers.md section 1): RBNet pre-training, Adam, 60 epochs x0.1
# every 20; MMT adaptation on k-reciprocal Jaccard DBSCAN pseudo-labels (k1 30, k2 6, eps 0.42,
# min 4), with the MMT code's Jaccard distance, a new Adam each round and decay on every
# parameter (issue 23).
RECIPES.add("rbnet", Recipe("RBNet (Yu & Piao 2024) + MMT", {
    "pretrain": {"arch": "rbnet", "rb_backbone": "resnet50", "optimizer": "adam", "lr": 3.5e-4,
                 "epochs": 60, "schedule": "step", "milestones": [20, 40], "gamma": 0.1,
                 "margin": 0.3, "height": 256, "width": 128, "stem_relu": True},
    "finetune": {"method": "mmt", "alpha": 0.999, "soft_ce_weight": 0.5, "soft_tri_weight": 0.8,
                 "lr": 3.5e-4, "fresh_optimizer": True, "weight_decay_all": True},
    "cluster": {"method": "dbscan-jaccard", "eps": 0.42, "k1": 30, "k2": 6, "min_samples": 4, "jaccard": "mmt"},
}))

# CSAM + ULA + KD (Chen et al. 2022; docs/papers.md section 4): attention after layer2/3/4, BoT
# losses with 0.0035 x BoT code's centre loss (no 1/2: 0.007 x reidcli's, centres at twice its
# rate; issue 23), 120 epochs x0.1 every 50, jitter; ULA: Euclidean DBSCAN eps 1.0, 750 base
# classes, cosine 0.8; KD mu 0.5 every 5 epochs.
RECIPES.add("csam-kd", Recipe("CSAM-ReID + ULA + KD (Chen et al. 2022)", {
    "pretrain": {"attention": True, "label_smooth": 0.1, "margin": 0.3, "center_weight": 0.007, "center_lr": 1.0,
                 "optimizer": "adam", "epochs": 120, "schedule": "step", "milestones": [50, 100],
                 "gamma": 0.1, "p": 16, "k": 4, "jitter": 0.2, "flip": 0.5, "erasing": 0.5},
    "finetune": {"method": "kd", "mu": 0.5, "kd_every": 5, "center_weight": 0.007, "center_lr": 1.0,
                 "label_smooth": 0.1, "margin": 0.3, "epochs": 5},
    "cluster": {"method": "dbscan-euclidean", "eps": 1.0, "expand_threshold": 0.8, "keep_clusters": 750},
}))

# LSTM local branch + camera style (LSTM-UDA 2021; docs/papers.md section 5): Adam 3e-4, 30
# epochs, random resized crop scale [0.64, 1] aspect [2, 3], margin 0.5, dropout 0.5, avg+max
# pooling, 128-d triplet embedding; camstyle: source CE + theta 0.3 x the source-vs-(styled)
# target triplet, no clustering (`reid finetune --method camstyle --styled`).
RECIPES.add("lstm-camstyle", Recipe("LSTM local branch + StarGAN camera style (LSTM-UDA 2021)", {
    "pretrain": {"lstm_branch": True, "pooling": "avgmax", "dropout": 0.5, "local_dim": 128,
                 "optimizer": "adam", "lr": 3e-4, "epochs": 30, "resized_crop": True,
                 "flip": 0.5, "margin": 0.5},
    "finetune": {"method": "camstyle", "theta": 0.3, "margin": 0.5, "triplet_weight": 0.0, "optimizer": "adam",
                 "lr": 3e-4},
    # StarGAN as published (Choi et al. 2018, yunjey/stargan solver.py): 200,000 critic
    # iterations of batch 16 (200 epochs of 1,000 critic + 200 generator steps), Adam 1e-4
    # decayed linearly to 0 over the last half, n_critic 5, the generator step on the critic
    # step's batch, target cameras a permutation of the batch's own
    "stylize": {"method": "stargan", "epochs": 200, "iters_per_epoch": 1200, "p": 16, "lr": 1e-4,
                "n_critic": 5, "lambda_cls": 1.0, "lambda_rec": 10.0, "lambda_gp": 10.0, "lr_decay": 0.5,
                "g_batch": "critic", "target_cameras": "permute"},
}))


# MRDA (Zhang et al. 2023; docs/papers.md section 3): two-stream ResNet-50 with dynamic
# attention, trained on batches of 3 identities x (6 visible + 6 infrared) = 36 images, SGD
# momentum 0.9, lr 0.1 with warm-up, x0.1 at epochs 20 and 50; eq. 23 weighs every loss term 1.
# Where the paper is silent (epochs, warm-up length, input size, top-k, rho, BN grouping)
# docs/recipes.md states the choice.
RECIPES.add("mrda", Recipe("MRDA: mask reconstruction + dynamic attention, visible-infrared (Zhang et al. 2023)", {
    "pretrain": {"method": "mrda", "arch": "mrda", "mrda_backbone": "resnet50", "mrda_attn_topk": 8,
                 "mrda_two_stream": True, "mrda_attention": True, "last_stride": 1, "gem_p": 3.0,
                 "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "warmup_epochs": 10.0,
                 "schedule": "step", "milestones": [20, 50], "gamma": 0.1, "epochs": 80,
                 "p": 3, "k": 6, "images_per_bn": 0, "height": 288, "width": 144,
                 "id_weight": 1.0, "label_smooth": 0.1, "hc_weight": 1.0, "rho": 0.3,
                 "mc_weight": 1.0, "ac_weight": 1.0, "mask": True, "hc_reduction": "mean"},
}))

# Soft multilabel + multi-level fusion (Zhang et al. 2020; docs/papers.md section 2) on MAR (Yu
# et al. CVPR 2019): the paper's best network (ResNet-50, GAP after layer1/3/4 concatenated and
# kept, no SE); reference pretraining with L_AL only (60 epochs, batch 256, lr 1e-3, wd 0.025);
# then mar with half target / half reference batches of 368, lr 2e-4, wd 0.025, 20 epochs, and
# the MAR public run's loss weights. Input, padding, stride, neck and schedule from MAR's code.
RECIPES.add("mar", Recipe("Soft multilabel + multi-level fusion (Zhang et al. 2020) on MAR (Yu et al. 2019)", {
    "pretrain": {"method": "agents", "arch": "resnet50", "multilevel": True, "embed_dim": 0,
                 "last_stride": 2, "neck": "none", "scale": 30.0,
                 "optimizer": "adam", "epochs": 60, "p": 64, "k": 4, "lr": 1e-3, "weight_decay": 0.025,
                 "height": 384, "width": 128, "pad": 7, "flip": 0.5, "erasing": 0.0},
    "finetune": {"method": "mar", "optimizer": "adam", "lr": 2e-4, "weight_decay": 0.025, "epochs": 20,
                 "iters_per_epoch": 0, "p": 92, "k": 4, "schedule": "step", "milestones": [12, 17],
                 "gamma": 0.1, "warmup_epochs": 0.0, "scale": 30.0, "lambda_1": 2e-4, "lambda_2": 50.0,
                 "beta": 0.2, "mining_ratio": 0.005, "rj_margin": 1.0, "mdl_warmup_epochs": 1,
                 "memory_momentum": 0.1, "threshold_momentum": 0.1, "memory_start": "mdl",
                 "cml_target": "cameras"},
}))


def recipe_names() -> list[str]:
    return RECIPES.names()


def stage_settings(name: str, stage: str) -> dict[str, Any]:
    """The settings recipe ``name`` gives ``stage`` (empty when it has none for it)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}; got {stage!r}")
    return {k: (list(v) if isinstance(v, list) else v) for k, v in RECIPES.get(name).stages.get(stage, {}).items()}


def with_recipe(name: str | None, stage: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` settings over recipe ``name``'s settings of ``stage``: explicit ones win.
    A given value of None counts as not given (the CLI's unset flags). A recipe without
    settings for ``stage`` (``mrda`` has no finetune, ``lstm-camstyle`` and ``mar`` no
    cluster stage) is a `ParamError` rather than a silent no-op."""
    from reidcli.utils.params import ParamError

    base = stage_settings(name, stage) if name else {}
    if name and not base:
        stages = ", ".join(RECIPES.get(name).stages)
        raise ParamError("recipe", f"{name} has no {stage} settings (it sets {stages}); drop --recipe "
                                   f"for reid {stage}")
    if given.get("method") is not None and "method" in base and given["method"] != base["method"]:
        raise ParamError("method", f"{given['method']!r} differs from recipe {name}'s {stage} method "
                                   f"{base['method']!r}; drop --method or --recipe")
    return {**base, **{k: v for k, v in given.items() if v is not None or k not in base}}
