"""RBNet: reverse-backbone shapes, masked heat-map MSE, loss weights, pose targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reidcli.data.records import Record
from reidcli.losses import CrossEntropyLabelSmooth, TripletLoss
from reidcli.losses.heatmap import HeatmapMSELoss, RBNetLoss, RBNetTerms, auto_mse_weight
from reidcli.models import ModelConfig, build_model
from reidcli.models.reverse import ReverseBackbone, group_width
from reidcli.train.methods.options import SupervisedOptions
from reidcli.utils.errors import ConfigError, InputError


def _net(num_classes=3, **rb):
    rb = {"backbone": "resnet18_half", **rb}
    return build_model(ModelConfig(arch="rbnet", num_classes=num_classes, last_stride=2, rbnet=rb))


@pytest.mark.parametrize("hw,mask_path", [((256, 128), "paper"), ((128, 64), "simple"), ((64, 32), "paper")])
def test_reverse_backbone_shapes(hw, mask_path):
    torch.manual_seed(0)
    net = _net(mask_path=mask_path).train()
    H, W = hw
    out = net(torch.randn(2, 3, H, W))
    assert out["heatmaps"].shape == (2, 17, H // 2, W // 2)
    assert out["mask"].shape == (2, 1, H, W)
    assert 0 <= float(out["mask"].detach().min())  # 'paper': ReLU(change_channel); 'simple': sigmoid <= 1
    assert mask_path == "paper" or float(out["mask"].detach().max()) <= 1
    for k in ("feat", "bn_feat", "feat2", "bn_feat2"):
        assert out[k].shape == (2, net.head_dim)
    assert out["logits2"].shape == (2, 3)


def test_reverse_widths_are_17_groups_and_stages_mirror_resnet50():
    channels = (64, 256, 512, 1024, 2048)
    rev = ReverseBackbone(channels, fuse=("conv1", "layer1", "layer2", "layer3", "layer4"))
    assert rev.widths == (68, 255, 510, 1020, 2040) and all(w % 17 == 0 for w in rev.widths)
    assert [len(r.blocks) for r in rev.relayers] == [2, 3, 5, 2]  # re-layer1..4 (paper Table 1)
    feats = [torch.randn(1, c, s, s // 2) for c, s in zip(channels, (32, 16, 8, 4, 4))]
    out = rev(feats)  # last stride 1: layer4 keeps layer3's size
    assert out["layer4"].shape == (1, 1020, 4, 2) and out["layer3"].shape == (1, 510, 8, 4)
    assert out["layer2"].shape == (1, 255, 16, 8) and out["layer1"].shape == (1, 68, 16, 8)
    assert out["conv1"].shape == (1, 68, 32, 16)
    assert rev.heatmaps(out, (32, 16)).shape == (1, 17, 32, 16)
    assert group_width(512) == 510 and group_width(1) == 17
    # 17 groups: keypoint k's heat-map depends only on channel group k of the re-layers
    conv = rev.relayers[0].blocks[0].conv2
    assert conv.groups == 17 and rev.fuse.groups == 17


@pytest.mark.parametrize("feature,dim_mult", [("global", 1), ("masked", 1), ("both", 2)])
def test_inference_feature_choice(feature, dim_mult):
    torch.manual_seed(0)
    net = _net(feature=feature, shared=False, mask="sum", mask_from="heatmaps").eval()
    emb = net(torch.randn(2, 3, 64, 32))
    assert emb.shape == (2, dim_mult * net.head_dim) == (2, net.feat_dim)
    net.reset_classifier(4, torch.randn(4, net.feat_dim))
    assert net.classifier.weight.shape == net.classifier2.weight.shape == (4, net.head_dim)


def test_bad_rbnet_options_are_one_line_errors():
    for rb, words in (({"fuse": ["conv9"]}, "--rb-fuse"), ({"feature": "x"}, "--rb-feature"),
                      ({"backbone": "resnet5"}, "did you mean"), ({"colour": 1}, "unknown RBNet")):
        with pytest.raises(ConfigError, match=words):
            _net(**rb)


def test_masked_mse_on_hand_made_tensors():
    pred = torch.zeros(2, 2, 2, 2)
    target = torch.zeros(2, 2, 2, 2)
    target[0, 0] = 1.0  # map (0, 0) is off by 1 everywhere: per-map MSE 1
    target[1, 1] = 2.0  # map (1, 1): per-map MSE 4
    mse = HeatmapMSELoss()
    assert float(mse(pred, target)) == pytest.approx(5 / 4)  # unmasked: mean over 4 maps
    w = torch.tensor([[1.0, 1.0], [1.0, 0.0]])  # (1, 1) masked: (1 + 0 + 0) / 3
    assert float(mse(pred, target, w)) == pytest.approx(1 / 3)
    zero = mse(pred.requires_grad_(), target, torch.zeros(2, 2))
    assert float(zero.detach()) == 0.0 and zero.requires_grad  # nothing supervised: still in the graph


def test_auto_mse_weight_balances_triplet_margin():
    from reidcli.pose.heatmaps import render_heatmaps

    kp = torch.tensor([[[32.0, 64.0, 1.0]]])
    heat, _ = render_heatmaps(kp, (128, 64), sigma=2.0)
    l3 = auto_mse_weight((128, 64), 2.0, margin=0.3)
    assert l3 == pytest.approx(195.6, abs=0.1)
    assert float(l3 * heat.pow(2).mean()) == pytest.approx(0.3, rel=0.02)


def _fake_out(n=4, k=2):
    g = torch.Generator().manual_seed(0)
    return {"heatmaps": torch.rand(n, 17, 8, 4, generator=g), "feat2": torch.randn(n, 16, generator=g),
            "logits2": torch.randn(n, k, generator=g)}


@pytest.mark.parametrize("off", ["mse", "ce2", "triplet2"])
def test_each_weight_scales_its_term(off):
    out, y = _fake_out(), torch.tensor([0, 0, 1, 1])
    target, w = torch.rand(4, 17, 8, 4), torch.ones(4, 17)
    ce, tri = CrossEntropyLabelSmooth(0.1), TripletLoss(0.3)
    base = {"mse_weight": 1.0, "id2_weight": 1.0, "triplet2_weight": 1.0}
    terms = RBNetLoss(ce, tri, **base).terms(out, y, target, w)
    assert set(terms) == {"mse", "ce2", "triplet2"} and all(float(v) > 0 for _, v in terms.values())
    full = float(RBNetLoss(ce, tri, **base)(out, y, target, w))
    flag = {"mse": "mse_weight", "ce2": "id2_weight", "triplet2": "triplet2_weight"}[off]
    double = float(RBNetLoss(ce, tri, **{**base, flag: 2.0})(out, y, target, w))
    assert double - full == pytest.approx(float(terms[off][1]), rel=1e-5)
    zero = RBNetLoss(ce, tri, **{**base, flag: 0.0})
    assert off not in zero.terms(out, y, target, w)
    assert float(zero(out, y, target, w)) == pytest.approx(full - float(terms[off][1]), rel=1e-5)
    with pytest.raises(ConfigError, match="must be a float >= 0"):
        RBNetLoss(ce, tri, **{**base, flag: -1.0})


def test_terms_render_targets_from_batch_keypoints_and_mask_missing():
    out, y = _fake_out(), torch.tensor([0, 0, 1, 1])
    kp = torch.zeros(4, 17, 3)
    kp[:2, :, :2], kp[:2, :, 2] = torch.tensor([8.0, 8.0]), 1.0  # images 2, 3: no keypoints
    terms = RBNetTerms(SupervisedOptions(), CrossEntropyLabelSmooth(0.1), TripletLoss(0.3))
    got = terms(out, {"img": torch.zeros(4, 3, 16, 8), "keypoints": kp}, y)
    assert terms.loss.weights["mse"] == pytest.approx(auto_mse_weight((8, 4), 2.0))
    only_first = HeatmapMSELoss()(out["heatmaps"][:2], _render(kp[:2]))
    assert float(got["mse"][1]) == pytest.approx(float(only_first), rel=1e-5)
    assert "mse" not in terms(out, {"img": torch.zeros(4, 3, 16, 8)}, y)  # no pose: no MSE


def _render(kp):
    from reidcli.pose.heatmaps import render_heatmaps

    return render_heatmaps(kp, (8, 4), (16, 8), sigma=2.0, min_score=0.3)[0]


def test_pose_transform_moves_keypoints_with_the_image():
    from reidcli.data.pose_targets import PoseTrainTransform
    from reidcli.data.transforms import AugmentConfig

    img = np.zeros((40, 20, 3), np.uint8)
    img[10, 4] = 255  # a bright pixel at the left shoulder (x=4, y=10)
    kp = np.zeros((17, 3), np.float32)
    kp[5] = (4, 10, 1.0)
    t = PoseTrainTransform(AugmentConfig(height=80, width=40, flip=1.0, pad=0, erasing=0.0))
    x, out = t(img, kp)
    # flipped: the point is now the *right* shoulder, mirrored in x, scaled by 2
    assert out[5, 2] == 0 and out[6, 2] == 1.0
    assert out[6, 0] == pytest.approx(40 - 1 - 8) and out[6, 1] == pytest.approx(20)
    yy, xx = np.unravel_index(int(x[0].argmax()), x.shape[1:])
    assert abs(xx - out[6, 0]) <= 1.5 and abs(yy - out[6, 1]) <= 1.5


def test_match_pose_by_path_and_foreign_file(tmp_path):
    from reidcli.data.pose_targets import match_pose
    from reidcli.io.h5 import PoseFile, write_pose

    kps = np.ones((2, 17, 3), np.float32)
    kps[1, :, 2] = 0  # a person was not found in b.jpg
    write_pose(tmp_path / "p.h5", PoseFile(kps, ["a.jpg", "b.jpg"], np.full((2, 2), 8)))
    recs = [Record("a.jpg", 0, 0), Record("b.jpg", 1, 0), Record("c.jpg", 1, 1)]
    m = match_pose(tmp_path / "p.h5", recs)
    assert m.has.tolist() == [True, False, False] and m.n_missing == 2
    with pytest.raises(InputError, match="none of the 1 training images"):
        match_pose(tmp_path / "p.h5", [Record("x/z.jpg", 0, 0)], "DATA")
