"""No dead heads: every training method x every architecture cheap enough at 64x32.

In the spirit of timm's tests over its model registry: one step, built through the real
engine and method plug-ins on a tiny synthetic dataset, must give a non-zero gradient to

* every trained parameter the loss depends on (in the autograd graph but getting exactly
  zero would mean a head that never learns), and
* every student parameter behind a *teacher output* (MMT's mean nets are EMAs of their
  students: a parameter the teacher scores with but the student never trains stays at its
  initialisation forever - RBNet + MMT's untrained bnneck2/classifier2 teacher head).

Zero-initialised residual gates (BN weights that start at 0, Goyal et al. 2017) are opened
first: they stop gradients at step one by design, not because a head is dead.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

H, W = 64, 32
SMALL = "resnet18_quarter"
ARCHS = {  # label -> ModelConfig fields
    SMALL: {"arch": SMALL},
    "quarter+every-head-option": {"arch": SMALL, "attention": True, "lstm_branch": True, "pooling": "gem",
                                  "multilevel": True, "embed_dim": 64},
    "mobilenet_v2": {"arch": "mobilenet_v2"},  # the test bed's backbone (make compare)
    "rbnet": {"arch": "rbnet", "rbnet": {"backbone": SMALL}},
    "rbnet-simple": {"arch": "rbnet", "rbnet": {"backbone": SMALL, "mask_path": "simple"}},
    "rbnet-both-separate": {"arch": "rbnet", "rbnet": {"backbone": SMALL, "feature": "both", "shared": False}},
}
NOT_RUN = {  # registered archs too costly for this CPU matrix (their head code is the same): one
    # supervised step each in the slow test below
    "resnet18_half": "2.8M parameters: resnet18_quarter's builder at twice the width",
    "resnet18": "11M parameters (tiny is its alias)",
    "mrda": "routes images by modality (tests/test_mrda.py)",
    "resnet34": "21M parameters",
    "resnet50": "24M parameters",
    "resnet101": "43M parameters",
    "se_resnet50": "26M parameters",
    "resnet50_ibn_a": "24M parameters",
}
METHOD_NAMES = ("supervised", "agents", "pseudo", "mmt", "kd", "joint", "camstyle", "mar")
METHODS_NOT_RUN = {  # methods whose data this matrix does not build (their own tests train them)
    "mrda": "visible + infrared batches of --arch mrda (tests/test_mrda_train.py)",
    "stargan": "a GAN, not a re-ID network (tests/test_stylize_stargan.py)",
}
REFUSED = {  # method x arch pairs the method refuses in one line (the test checks the refusal)
    ("agents", "rbnet-both-separate"): "trains the global embedding, but this RBNet deploys the 'both'",
    ("mar", "rbnet-both-separate"): "trains the global embedding, but this RBNet deploys the 'both'",
}
TEACHERS = {"mmt": {"model": "net1", "mean2": "net2"}}  # mean net -> the student it averages
N_SOURCE = 6  # identities of synth_market's train split
_CKPTS: dict[str, dict] = {}


def test_the_matrix_covers_every_registered_arch_and_method():
    from reidcli.models import MODELS
    from reidcli.train.methods import TRAINING_METHODS

    run = {cfg["arch"] for cfg in ARCHS.values()}
    assert set(MODELS.names()) == run | set(NOT_RUN), "classify a new arch in ARCHS or NOT_RUN"
    assert not run & set(NOT_RUN)
    assert set(TRAINING_METHODS.names()) == set(METHOD_NAMES) | set(METHODS_NOT_RUN), \
        "add the new method to METHOD_NAMES (or METHODS_NOT_RUN, saying why)"


def _datasets(root, method: str, model_cfg, pose: bool):
    from reidcli.data.layouts import load_dataset
    from reidcli.data.loader import ImageDataset
    from reidcli.data.records import relabel
    from reidcli.data.transforms import AugmentConfig, build_train_transform
    from reidcli.train.methods.uda import TwoViewDataset

    aug = AugmentConfig(height=H, width=W)
    recs = [r for r in load_dataset(root).split("train") if r.pid >= 0]
    y, _ = relabel([r.pid for r in recs])
    cls = TwoViewDataset if method == "mmt" else ImageDataset
    ds = cls(root, recs, build_train_transform(aug), labels=y, size=(H, W))
    if pose:
        from reidcli.data.pose_targets import attach_pose

        ds = attach_pose(ds, root / "pose.h5", aug)
    return ds, int(y.max()) + 1


def _context(method: str, model_fields: dict, root):
    from reidcli.io.ckpt import make_checkpoint
    from reidcli.models import ModelConfig, build_model
    from reidcli.train.config import TrainConfig
    from reidcli.train.dist import DistInfo
    from reidcli.train.methods.base import EngineContext

    cfg = ModelConfig(last_stride=2, **model_fields)
    train = TrainConfig(epochs=1, iters_per_epoch=1, p=3, k=2, workers=0, warmup_epochs=0,
                        images_per_bn=0, amp=False, seed=0).validate()
    ds, k = _datasets(root, method, cfg, pose=method == "supervised" and cfg.arch == "rbnet")
    if method in ("supervised", "agents"):  # agents: MAR's reference pretraining (L_AL)
        return train, EngineContext(cfg=train, device=torch.device("cpu"), dist=DistInfo(), num_classes=k,
                                    data={"source": ds}, facts={"model_config": cfg.to_dict()})
    cfg.num_classes = N_SOURCE
    key = repr(cfg.to_dict())
    if key not in _CKPTS:  # one source checkpoint per architecture, shared by the methods
        net = build_model(cfg)
        _CKPTS[key] = make_checkpoint(model_config=cfg.to_dict(), model_state=net.state_dict(),
                                      input_size=(H, W), method="supervised", epoch=1, feat_dim=net.feat_dim)
    ck = _CKPTS[key]
    data = {"target": ds, "init": ck, "init2": None, "centers": torch.randn(k, ck["feat_dim"])}
    options = {"model_config": cfg.to_dict(), "method": method}
    if method in ("joint", "camstyle"):  # camstyle: the target classes stand in for original + styled
        data["source"] = _datasets(root, "joint", cfg, pose=False)[0]
        options["source_classes"] = N_SOURCE
    if method == "camstyle":
        options["styled_images"] = len(ds)
    if method == "mar":  # the labelled reference set: the same identities (agents from their means)
        data["reference"], options["reference_classes"] = ds, N_SOURCE
    return train, EngineContext(cfg=train, device=torch.device("cpu"), dist=DistInfo(), num_classes=k,
                                data=data, facts=options)


def _open_zero_gates(nets) -> None:
    """Fill all-zero trainable tensors (zero-initialised gates: residual BN gammas, RBNet's
    fusion convs) with small values, so one step reaches what lies behind them."""
    for net in nets:
        for p in net.parameters():
            if p.is_floating_point() and not p.detach().any():
                with torch.no_grad():
                    p.normal_(0.5, 0.1)


class _Reads(dict):
    """A teacher output that records which of its entries the method's losses read."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def _spy_teachers(monkeypatch, method: str, seen: list) -> None:
    """Keep each mean-net output's graph (its parameters made differentiable) beside the
    detached output the step gets, so the test can ask what the entries it read depend on."""
    if method != "mmt":
        return
    import reidcli.train.methods.mmt as mmt

    real = mmt.mean_output

    def spy(mean_net, x, student_out):
        for p in mean_net.parameters():
            p.requires_grad_(True)
        with torch.enable_grad():
            out = real(mean_net, x, student_out)
        reads = _Reads({k: (v.detach() if torch.is_tensor(v) else v) for k, v in out.items()})
        seen.append((mean_net, out, reads))
        return reads

    monkeypatch.setattr(mmt, "mean_output", spy)


def _teacher_needs(mean_net, out: dict, reads: _Reads) -> set[str]:
    """Names of the parameters the entries the losses read depend on (graph reachability)."""
    named = list(mean_net.named_parameters())
    with torch.enable_grad():
        probe = sum((out[k] * torch.randn_like(out[k])).sum() for k in sorted(reads.read))
        grads = torch.autograd.grad(probe, [p for _, p in named], allow_unused=True)
    return {n for (n, _), g in zip(named, grads) if g is not None}


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_one_step_trains_every_parameter_a_loss_or_teacher_uses(method, arch, synth_market,
                                                                tmp_path, monkeypatch):
    _check_one_step(method, arch, ARCHS[arch], synth_market, tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("arch", [a for a in NOT_RUN if a != "mrda"])
def test_the_costly_backbones_train_every_parameter(arch, synth_market, tmp_path, monkeypatch):
    """The registered backbones the matrix leaves out (3-13 s a step on 2 busy cores): one
    supervised step (their heads are the matrix's) reaches every parameter (`-m slow`)."""
    _check_one_step("supervised", arch, {"arch": arch}, synth_market, tmp_path, monkeypatch)


def _check_one_step(method: str, arch: str, fields: dict, root, tmp_path, monkeypatch) -> None:
    from reidcli.train.engine import Engine
    from reidcli.train.methods import get_method

    torch.manual_seed(0)
    np.random.seed(0)
    train, ctx = _context(method, fields, root)
    meth = get_method(method, {})
    engine = Engine(meth, train, out=tmp_path / "m.pt", ctx=ctx,
                    meta={"input_size": [H, W], "pixel_mean": [0.5] * 3, "pixel_std": [0.25] * 3})
    if (method, arch) in REFUSED:
        from reidcli.utils.errors import ConfigError

        with pytest.raises(ConfigError, match=REFUSED[method, arch]):
            engine.setup()
        return
    engine.setup()
    _open_zero_gates(meth.nets.values())
    seen: list = []
    _spy_teachers(monkeypatch, method, seen)
    batch = {name: s.next() for name, s in engine.streams.items()}
    meth.train()
    loss = meth.step(batch, 0)["loss"]

    grads: dict[str, dict[str, torch.Tensor | None]] = {}
    for name in meth.trained:
        named = [(n, p) for n, p in meth.nets[name].named_parameters() if p.requires_grad]
        g = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True, retain_graph=True)
        grads[name] = dict(zip([n for n, _ in named], g))
    dead = [f"{net}.{n}" for net, gs in grads.items() for n, g in gs.items() if g is not None and not g.any()]
    assert not dead, f"{method} x {arch}: in the loss's graph but a zero gradient: {dead[:6]}"
    assert any(g is not None for gs in grads.values() for g in gs.values())

    for teacher, student in TEACHERS.get(method, {}).items():
        outs = [(o, r) for net, o, r in seen if net is meth.nets[teacher] and r.read]
        assert outs, f"{method}: no output of mean net '{teacher}' was read by a loss"
        needs = set().union(*(_teacher_needs(meth.nets[teacher], o, r) for o, r in outs))
        trainable = {n for n, p in meth.nets[student].named_parameters() if p.requires_grad}
        untrained = sorted(n for n in needs & trainable if grads[student].get(n) is None
                           or not grads[student][n].any())
        assert not untrained, (f"{method} x {arch}: mean net '{teacher}' scores with parameters its "
                               f"student '{student}' never trains (the EMA keeps them at their "
                               f"initialisation): {untrained[:6]}")
        assert all("bnneck" in n for n in needs - trainable)  # only BoT's frozen BNNeck shift
