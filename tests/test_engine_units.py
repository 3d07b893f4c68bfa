"""Unit tests of the training building blocks: sampler, BN variants, schedule, checkpoints."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

from reidcli.data.sampler import PKBatchSampler, SequentialSeeds
from reidcli.io.ckpt import describe_checkpoint, load_checkpoint, make_checkpoint, save_checkpoint
from reidcli.models.bn import (DomainBatchNorm, GhostBatchNorm, collapse_domain_bn, convert_domain_bn,
                              convert_ghost_bn, use_domain)
from reidcli.train.config import TrainConfig
from reidcli.train.optim import lr_factor
from reidcli.utils.errors import ConfigError, FormatError, InputError

LABELS = [i // 5 for i in range(40)] + [8, 8, 9]  # 8 ids x 5 images, id 8 x 2, id 9 x 1


def test_pk_batches_hold_p_identities_times_k():
    s = PKBatchSampler(LABELS, p=4, k=3, seed=1)
    s.set_epoch(0)
    batches = list(s)
    assert len(batches) == len(s) > 0
    for b in batches:
        labs = [LABELS[i] for i, _ in b]
        assert len(b) == 12
        assert sorted(Counter(labs).values()) == [3, 3, 3, 3]


def test_pk_sampler_is_deterministic_per_epoch_and_resumable():
    a, b = PKBatchSampler(LABELS, 4, 2, seed=7), PKBatchSampler(LABELS, 4, 2, seed=7)
    a.set_epoch(3)
    b.set_epoch(3)
    full = list(a)
    assert full == list(b)
    b.set_epoch(4)
    assert list(b) != full  # another epoch, another permutation
    b.load_state_dict({"seed": 7, "epoch": 3, "start": 2})
    assert list(b) == full[2:]


def test_pk_sampler_ddp_ranks_partition_the_global_batch():
    single = PKBatchSampler(LABELS, 4, 2, seed=0)
    ranks = [PKBatchSampler(LABELS, 4, 2, seed=0, rank=r, world_size=2) for r in range(2)]
    for s in (single, *ranks):
        s.set_epoch(1)
    for whole, r0, r1 in zip(single, *ranks):
        assert len(r0) == len(r1) == 4
        assert sorted(whole) == sorted(r0 + r1)
        assert not {LABELS[i] for i, _ in r0} & {LABELS[i] for i, _ in r1}


def test_pk_sampler_rejects_one_identity_and_bad_p():
    with pytest.raises(InputError, match="1 labelled identity"):
        PKBatchSampler([3, 3, 3, -1], 2, 2)
    with pytest.raises(ConfigError, match="divisible"):
        PKBatchSampler(LABELS, 3, 2, world_size=2)


def test_sequential_seeds_cover_the_set():
    s = SequentialSeeds(10, 4, seed=0, drop_last=False)
    s.set_epoch(0)
    idx = [i for b in s for i, _ in b]
    assert set(idx) == set(range(10)) and len(s) == 3


def test_ghost_bn_normalises_each_group_and_tracks_stats():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3)
    x = torch.randn(8, 3, 4, 2) * 3 + 1
    net = convert_ghost_bn(nn.Sequential(bn), 4)
    g = net[0]
    assert isinstance(g, GhostBatchNorm) and g.weight is bn.weight
    y = net.train()(x)
    ref = torch.cat([nn.functional.batch_norm(c, None, None, training=True) for c in x.split(4)])
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    means = torch.stack([c.mean((0, 2, 3)) for c in x.split(4)]).mean(0)
    torch.testing.assert_close(g.running_mean, 0.1 * means, atol=1e-5, rtol=1e-5)
    assert set(net.state_dict()) == set(nn.Sequential(nn.BatchNorm2d(3)).state_dict())


def test_domain_bn_routes_and_collapses():
    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2))
    convert_domain_bn(net, 2)
    assert isinstance(net[1], DomainBatchNorm)
    x = torch.randn(4, 3, 2, 2) + 5
    with use_domain(net, 1):
        net.train()(x)
    assert net[1].bns[0].running_mean.abs().sum() == 0
    assert net[1].bns[1].running_mean.abs().sum() > 0
    collapse_domain_bn(net, 1)
    assert isinstance(net[1], nn.BatchNorm2d) and net[1].running_mean.abs().sum() > 0


def test_lr_schedule_warmup_step_and_cosine():
    cfg = TrainConfig(epochs=10, warmup_epochs=2, warmup_factor=0.1, milestones=[5, 8], gamma=0.1)
    assert lr_factor(0, 10, cfg) == pytest.approx(0.1)
    assert lr_factor(10, 10, cfg) == pytest.approx(0.55)
    assert lr_factor(30, 10, cfg) == 1.0
    assert lr_factor(60, 10, cfg) == pytest.approx(0.1)
    assert lr_factor(90, 10, cfg) == pytest.approx(0.01)
    cos = TrainConfig(epochs=10, warmup_epochs=0, schedule="cosine")
    assert lr_factor(50, 10, cos) == pytest.approx(0.5)
    assert lr_factor(100, 10, cos) == pytest.approx(0.0, abs=1e-12)
    assert math.isclose(lr_factor(25, 10, cos), 0.5 * (1 + math.cos(math.pi * 0.25)))


def test_train_config_messages():
    with pytest.raises(ConfigError, match="^optimizer must be one of adam, sgd, adamw; got 'adagrad'"):
        TrainConfig(optimizer="adagrad").validate()
    with pytest.raises(ConfigError, match="^milestones must be increasing positive epochs"):
        TrainConfig(milestones=[70, 40]).validate()
    with pytest.raises(ConfigError, match=r"^p must be an int >= 2; got 1"):
        TrainConfig(p=1).validate()


def _ck(**kw):
    return make_checkpoint(model_config={"arch": "tiny"}, model_state={"w": torch.ones(2)},
                           input_size=(64, 32), method="supervised", epoch=1, **kw)


def test_checkpoint_roundtrip_and_describe(tmp_path):
    p = save_checkpoint(tmp_path / "m.pt", _ck(provenance=[{"program": "reid pretrain"}],
                                              train_state={"rng": {"torch": torch.get_rng_state()}}))
    ck = load_checkpoint(p)
    assert ck["format"] == "reidcli-checkpoint" and ck["input_size"] == [64, 32]
    assert torch.equal(ck["model"]["w"], torch.ones(2))
    info = describe_checkpoint(p)
    assert info["format"] == "checkpoint" and info["resumable"] and info["arch"] == "tiny"
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("obj,match", [
    ({"conv.weight": torch.zeros(1)}, "bare state dict"),
    ({"state_dict": {}, "epoch": 3}, "another tool"),
    ([1, 2], "holding a list"),
])
def test_foreign_checkpoints_are_refused(tmp_path, obj, match):
    torch.save(obj, tmp_path / "x.pt")
    with pytest.raises(FormatError, match=match):
        load_checkpoint(tmp_path / "x.pt")


def test_newer_and_non_torch_files_are_refused(tmp_path):
    ck = _ck()
    ck["version"] = 99
    torch.save(ck, tmp_path / "new.pt")
    with pytest.raises(FormatError, match="version 99"):
        load_checkpoint(tmp_path / "new.pt")
    (tmp_path / "t.pt").write_text("hello")
    with pytest.raises(FormatError, match="not a PyTorch file"):
        load_checkpoint(tmp_path / "t.pt")
    with pytest.raises(InputError, match="no such file"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rng_state_roundtrip():
    from reidcli.train.engine import rng_state, set_rng_state

    s = rng_state()
    a = (np.random.rand(), torch.rand(1).item(), __import__("random").random())
    set_rng_state(s)
    assert (np.random.rand(), torch.rand(1).item(), __import__("random").random()) == a


def test_ghost_bn_equals_the_elementwise_formula_with_gradients():
    """The fused per-group kernel equals the textbook formula (Ioffe & Szegedy 2015, eq. in
    Alg. 1, per group of `virtual` images): outputs, input/weight/bias gradients and the
    running statistics (mean of the groups' means and unbiased variances)."""
    torch.manual_seed(1)
    x = (torch.randn(12, 5, 3, 2) * 2 + 0.5).requires_grad_()
    bn = nn.BatchNorm2d(5)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    g = convert_ghost_bn(nn.Sequential(bn), 4)[0].train()
    y = g(x)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    gx, gw, gb = x.grad.clone(), g.weight.grad.clone(), g.bias.grad.clone()

    x2 = x.detach().clone().requires_grad_()
    w2, b2 = g.weight.detach().clone().requires_grad_(), g.bias.detach().clone().requires_grad_()
    xs = x2.reshape(3, 4, 5, 3, 2)
    mean = xs.mean((1, 3, 4), keepdim=True)
    var = xs.var((1, 3, 4), unbiased=False, keepdim=True)
    ref = ((xs - mean) / torch.sqrt(var + 1e-5) * w2.view(1, 1, 5, 1, 1) + b2.view(1, 1, 5, 1, 1)).reshape(x.shape)
    (ref * w).sum().backward()
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    for got, want in ((gx, x2.grad), (gw, w2.grad), (gb, b2.grad)):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    unbiased = xs.detach().var((1, 3, 4), unbiased=True).mean(0)
    torch.testing.assert_close(g.running_var, 0.9 + 0.1 * unbiased, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g.running_mean, 0.1 * mean.detach().reshape(3, 5).mean(0), atol=1e-5, rtol=1e-5)
