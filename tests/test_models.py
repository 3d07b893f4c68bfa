"""Every registered model and every head switch: build, forward, backward, embed, round trip."""

from __future__ import annotations

import io

import pytest
import torch

from reidcli.models import MODELS, ModelConfig, build_model
from reidcli.utils.errors import ConfigError

H, W = 64, 32


def _roundtrip(net, cfg, x, kw):
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    buf.seek(0)
    with torch.device("meta"):  # the structure from the config alone; every value from the file
        net2 = build_model(ModelConfig.from_dict(cfg.to_dict()), load_pretrained=False)
    net2.load_state_dict(torch.load(buf, weights_only=True), assign=True)
    net2.eval()
    return net2.embed(x, **kw)


def _check(cfg: ModelConfig, batch: int = 4):
    torch.manual_seed(0)
    net = build_model(cfg)
    x = torch.randn(batch, 3, H, W)
    # a two-stream (visible/infrared) net routes each image by its modality: give both
    kw = {"modality": torch.arange(batch) % 2} if getattr(net, "modal", False) else {}
    net.train()
    out = net(x, **kw)
    assert out["feat"].shape == (batch, net.feat_dim)
    assert out["bn_feat"].shape == (batch, net.feat_dim)
    loss = out["feat"].pow(2).mean()
    if cfg.num_classes:
        assert out["logits"].shape == (batch, cfg.num_classes)
        loss = loss + out["logits"].logsumexp(1).mean()
    if cfg.lstm_branch:
        assert out["local_feat"].shape == (batch, cfg.local_dim)
        loss = loss + out["local_feat"].pow(2).mean() + out["local_logits"].sum()
    for key, v in out.items():  # further outputs of richer nets (RBNet: heat-maps, masked branch)
        if key not in ("feat", "bn_feat", "logits", "local_feat", "local_logits"):
            loss = loss + v.float().pow(2).mean()
    loss.backward()
    assert next(net.backbone.parameters()).grad.abs().sum() > 0  # the first layer learns
    # DDP needs every trainable parameter to take part when all outputs are used
    unused = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, unused
    net.eval()
    emb = net(x, **kw)
    assert emb.shape == (batch, net.feat_dim)
    assert torch.isfinite(emb).all()
    torch.testing.assert_close(_roundtrip(net, cfg, x, kw), emb, rtol=0, atol=0)


@pytest.mark.parametrize("arch", MODELS.names())
def test_every_registered_model(arch):
    _check(ModelConfig(arch=arch, num_classes=3), batch=2)


HEADS = {
    "plain": {},
    "no_neck": {"neck": "none"},
    "gem": {"pooling": "gem"},
    "avgmax": {"pooling": "avgmax", "last_stride": 2},
    "attention": {"attention": True},
    "multilevel": {"multilevel": True},
    "lstm": {"lstm_branch": True, "dropout": 0.5},
    "embed": {"embed_dim": 64, "feat_norm": True},
    "no_stem_relu": {"stem_relu": False},
    "all": {"attention": True, "multilevel": True, "lstm_branch": True,
            "pooling": "gem", "embed_dim": 32},
}


@pytest.mark.parametrize("name", sorted(HEADS))
def test_head_switches(name):
    _check(ModelConfig(arch="resnet18_half", num_classes=5, **HEADS[name]))


def test_stem_relu_off_is_the_mmt_base():
    """``stem_relu=False`` (``--no-stem-relu``) is the MMT code's ResNet (``mmt/models/resnet.py``:
    ``base = conv1, bn1, maxpool, layer1..4``): the stem gives maxpool(bn1(conv1(x))), negative
    values kept, with the same parameters; RBNet's and MRDA's backbones follow the switch; a
    network without a ResNet stem is refused; configs written before the switch read as on."""
    from reidcli.utils.params import ParamError

    torch.manual_seed(0)
    on = build_model(ModelConfig(arch="resnet18_quarter"))
    off = build_model(ModelConfig(arch="resnet18_quarter", stem_relu=False))
    off.load_state_dict(on.state_dict())
    x, bb = torch.randn(2, 3, H, W), off.backbone
    torch.testing.assert_close(bb.stem(x), bb.maxpool(bb.bn1(bb.conv1(x))), rtol=0, atol=0)
    assert bb.stem(x).min() < 0 <= on.backbone.stem(x).min()
    for arch in ("rbnet", "mrda"):
        net = build_model(ModelConfig(arch=arch, stem_relu=False, **{arch: {"backbone": "resnet18_quarter"}}))
        assert isinstance(net.backbone.relu, torch.nn.Identity), arch
    with pytest.raises(ParamError, match="stem_relu off applies to ResNet backbones only; arch 'mobilenet_v2'"):
        build_model(ModelConfig(arch="mobilenet_v2", stem_relu=False))
    old = {k: v for k, v in ModelConfig().to_dict().items() if k != "stem_relu"}
    assert ModelConfig.from_dict(old).stem_relu is True


def test_unknown_arch_did_you_mean():
    with pytest.raises(ConfigError, match="did you mean 'resnet50'"):
        build_model(ModelConfig(arch="resnet5"))


@pytest.mark.parametrize("seed", range(5))
def test_model_and_losses_fit_a_batch(seed):
    """CE + triplet on a fixed P x K batch must drive the loss down: the head, the
    BNNeck and the losses are wired so that training works. Asserted with margins measured
    at seeds 0-4 (one CPU, 1 and 2 threads alike): the loss ends at 0.15-0.23x its start
    (bar 0.5), and on the batch statistics the losses saw, every image's true-class logit
    beats the best other class by 1.35-2.05 (bar 0.5). Nearest neighbours are not asserted:
    the hardest negative over the hardest positive distance ranges 0.94-1.40 over these
    seeds, so whether each image's nearest neighbour shares its id depends on the seed and
    on rounding."""
    from reidcli.losses import CrossEntropyLabelSmooth, TripletLoss

    torch.manual_seed(seed)
    net = build_model(ModelConfig(arch="resnet18_half", num_classes=4, last_stride=2))
    opt = torch.optim.Adam(net.param_groups(1e-3))
    ce, tri = CrossEntropyLabelSmooth(0.1), TripletLoss(0.3)
    x, y = torch.randn(8, 3, H, W), torch.arange(4).repeat_interleave(2)
    losses = []
    for _ in range(12):
        out = net(x)
        loss = ce(out["logits"], y) + tri(out["feat"], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    with torch.no_grad():
        out = net(x)
    logits = out["logits"]
    true = logits.gather(1, y[:, None])[:, 0]
    other = logits.masked_fill(torch.nn.functional.one_hot(y, 4).bool(), float("-inf")).max(1).values
    assert (true - other).min() > 0.5, (true - other)
