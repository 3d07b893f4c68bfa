"""RBNet against its paper (Yu & Piao 2024): the paper mask path, BN statistics of the shared
backbone, the masked classifier's initialisation, and `--rb-feature both` with the centre loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from reidcli.models import ModelConfig, build_model

H, W = 64, 32


def _net(num_classes=3, **rb):
    return build_model(ModelConfig(arch="rbnet", num_classes=num_classes, last_stride=2,
                                   rbnet={"backbone": "resnet18_quarter", **rb}))


def _bn_stats(module) -> list[torch.Tensor]:
    return [t.clone() for m in module.modules() if isinstance(m, _BatchNorm)
            for t in (m.running_mean, m.running_var)]


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("mask_path", ["paper", "simple"])
def test_masked_pass_leaves_the_global_bn_statistics_alone_on_the_paper_path(mask_path):
    torch.manual_seed(0)
    net = _net(mask_path=mask_path).train()
    x = torch.randn(4, 3, H, W)
    clean = _net(mask_path=mask_path)
    clean.load_state_dict(net.state_dict())
    clean.train().stages(x)  # what one clean pass does to backbone 1's statistics
    net(x)  # clean pass + masked pass
    if mask_path == "paper":
        assert _same(_bn_stats(net.backbone), _bn_stats(clean.backbone))
        assert not _same(_bn_stats(net.bn2), _bn_stats(clean.bn2))  # the masked pass has its own
        assert len(net.bn2) == sum(isinstance(m, _BatchNorm) for m in net.backbone.modules())
    else:  # the documented 'simple' choice: one set of BN layers for both passes
        assert not _same(_bn_stats(net.backbone), _bn_stats(clean.backbone))
    # the conv weights stay shared (backbone 2 is backbone 1 on the masked input)
    assert net.backbone2 is None


def test_paper_mask_is_change_channel_of_relayer1_into_conv1_input_and_fuses_reverse_features():
    torch.manual_seed(0)
    net = _net().train()
    x = torch.randn(2, 3, H, W)
    rp = net.reverse_pass(x)
    conv = net.mask_channel[0]
    assert conv.in_channels == rp["rev"]["layer1"].shape[1] == net.reverse.out_widths["layer1"]
    want = F.interpolate(F.relu(conv(rp["rev"]["layer1"])), size=(H, W), mode="bilinear", align_corners=False)
    assert torch.allclose(rp["mask"], want)
    # same-layer fusion into backbone 2: zero-initialised, then it changes the masked feature
    plain = net.masked_forward(x, rp["mask"], rp["rev"])["feat"]
    assert torch.allclose(plain, net.masked_forward(x, rp["mask"])["feat"])
    assert set(net.inject.proj) == {"conv1", "layer1"}
    with torch.no_grad():
        for p in net.inject.parameters():
            p.normal_(0, 0.1)
    fused = net.masked_forward(x, rp["mask"], rp["rev"])["feat"]
    assert not torch.allclose(plain, fused)
    # an MMT mean net fuses in its student's reverse maps (train-mode outputs ``rev_<scale>``)
    from reidcli.models.rbnet import mean_output

    student = net(x)
    assert {k for k in student if k.startswith("rev_")} == {"rev_conv1", "rev_layer1"}
    with torch.no_grad():
        net.eval()
        taught = mean_output(net, x, student)["feat"]
        rev = {k[4:]: v for k, v in student.items() if k.startswith("rev_")}
        assert torch.allclose(taught, net.masked_forward(x, student["mask"], rev)["feat"])
        assert not torch.allclose(taught, net.masked_forward(x, student["mask"])["feat"])
    net.train()
    feat2 = net(x)["feat2"]
    feat2.sum().backward()
    assert net.mask_channel[0].weight.grad.abs().sum() > 0
    assert all(p.grad.abs().sum() > 0 for p in net.inject.parameters())


def test_simple_path_keeps_the_sigmoid_of_the_17_maps():
    torch.manual_seed(0)
    net = _net(mask_path="simple").train()
    x = torch.randn(2, 3, H, W)
    rp = net.reverse_pass(x)
    s = net.reverse.maps(rp["rev"], "layer1").sum(1, keepdim=True)
    want = F.interpolate(torch.sigmoid(s), size=(H, W), mode="bilinear", align_corners=False)
    assert torch.allclose(rp["mask"], want)
    assert net.mask_channel is None and net.inject is None and net.bn2 is None


def test_mean_net_keeps_its_global_bn_statistics_on_the_target_images():
    from reidcli.models.rbnet import mean_output

    torch.manual_seed(0)
    student, mean = _net().train(), _net().train()
    x = torch.randn(4, 3, H, W)
    o = student(x)
    before, before2 = _bn_stats(mean.backbone), _bn_stats(mean.bn2)
    with torch.no_grad():
        mean_output(mean, x, o)
    assert not _same(before, _bn_stats(mean.backbone))  # clean pass: target-image statistics
    assert not _same(before2, _bn_stats(mean.bn2))


@pytest.mark.parametrize("feature", ["global", "masked", "both"])
def test_centres_initialise_only_the_classifier_of_the_branch_they_describe(feature):
    torch.manual_seed(0)
    net = _net(feature=feature)
    h = net.head_dim
    centres = torch.randn(5, net.feat_dim)
    net.reset_classifier(5, centres)
    w1, w2 = net.classifier.weight.detach(), net.classifier2.weight.detach()
    parts = {"global": (centres, None), "masked": (None, centres),
             "both": (centres[:, :h], centres[:, h:])}[feature]
    for w, part in zip((w1, w2), parts):
        if part is None:  # a fresh N(0, 0.001) init, not another branch's centres
            assert float(w.std()) < 0.01
        else:
            assert torch.allclose(w, F.normalize(part, dim=1))


def test_both_feature_trains_with_the_centre_loss_under_kd(synth_market, tmp_path):
    """`--rb-feature both` checkpoints embed 2x the head width; the centre loss works on
    the training feature (one head wide) in kd (centre loss on by default) and pretrain."""
    from reidcli.data.layouts import load_dataset
    from reidcli.data.transforms import AugmentConfig
    from reidcli.io.ckpt import load_checkpoint
    from reidcli.io.h5 import LabelsFile, write_labels
    from reidcli.train.config import FinetuneConfig, TrainConfig
    from reidcli.train.finetune import finetune
    from reidcli.train.methods.options import SupervisedOptions
    from reidcli.train.pretrain import pretrain

    cfg = ModelConfig(arch="rbnet", last_stride=2, rbnet={"backbone": "resnet18_quarter", "feature": "both"})
    src = pretrain(synth_market, tmp_path / "src.pt", model=cfg, pose=synth_market / "pose.h5",
                   train=TrainConfig(epochs=1, iters_per_epoch=1, p=3, k=2, workers=0, warmup_epochs=0,
                                     images_per_bn=0),
                   options=SupervisedOptions(center_weight=0.0035), augment=AugmentConfig(height=H, width=W),
                   device="cpu")
    ck = load_checkpoint(src)
    head = ck["feat_dim"] // 2
    assert ck["train_state"]["method"]["center"]["centers"].shape[1] == head
    recs = load_dataset(synth_market).split("train")
    labels = np.arange(len(recs)) % 3
    centres = np.random.default_rng(0).normal(size=(3, ck["feat_dim"])).astype(np.float32)
    write_labels(tmp_path / "l.h5", LabelsFile(labels=labels, paths=[r.path for r in recs], centers=centres))
    out = finetune(src, tmp_path / "l.h5", synth_market, tmp_path / "kd.pt", method="kd", device="cpu",
                   train=FinetuneConfig(iters_per_epoch=1, p=3, k=2, images_per_bn=0, workers=0))
    kd = load_checkpoint(out)
    assert kd["train_state"]["method"]["center"]["centers"].shape == (3, head)


def test_centre_loss_names_a_width_mismatch():
    from reidcli.losses.center import CenterLoss
    from reidcli.utils.errors import ConfigError

    loss = CenterLoss(3, 8)
    with pytest.raises(ConfigError, match="8-d centres but the feature is \\(4,\\)"):
        loss(torch.randn(2, 4), torch.tensor([0, 1]))


def test_version_1_rbnet_checkpoints_load_on_the_simple_path(tmp_path):
    from reidcli.io.ckpt import make_checkpoint, save_checkpoint
    from reidcli.models import load_network

    torch.manual_seed(0)
    old = _net(num_classes=0, mask_path="simple").eval()
    cfg = old.cfg.to_dict()
    del cfg["rbnet"]["mask_path"]  # written before the option existed
    ck = make_checkpoint(model_config=cfg, model_state=old.state_dict(), input_size=(H, W),
                         method="supervised", epoch=1, feat_dim=old.feat_dim)
    ck["version"] = 1
    model, loaded = load_network(save_checkpoint(tmp_path / "v1.pt", ck))
    assert loaded["model_config"]["rbnet"]["mask_path"] == "simple" and not model.paper
    x = torch.randn(2, 3, H, W)
    assert torch.allclose(model(x), old(x))
    assert _net(num_classes=0).paper  # a config without the key, written today: the default
