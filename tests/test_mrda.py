"""MRDA (Zhang et al. 2023): mask transform, losses and dynamic attention against their formulas
written out by hand; routing by modality checked by gradients."""

from __future__ import annotations

import math

import pytest
import torch

from reidcli.data.transforms_mask import background_mask, body_mask, mask_reconstruct
from reidcli.losses import CrossEntropyLabelSmooth
from reidcli.losses.mrda import (
    HeteroCentreTriplet,
    ModalityCorrelationLoss,
    RegionCentreLoss,
)
from reidcli.models import ModelConfig, build_model
from reidcli.models.mrda import DynamicAttention
from reidcli.utils.errors import ConfigError, InputError


def test_mask_on_a_hand_made_image():
    # a 2-channel 1x3 image: pixel values (c0, c1) = (0, 0), (2, 0), (4, 4); min 0, max 4
    x = torch.tensor([[[[0.0, 2.0, 4.0]], [[0.0, 0.0, 4.0]]]])
    m = body_mask(x)
    expected = [0.0, 0.5, math.sqrt(2.0)]  # ||(x - 0) / 4||_2 over the channels, pixel by pixel
    assert m.shape == (1, 1, 1, 3)
    torch.testing.assert_close(m.flatten(), torch.tensor(expected))
    torch.testing.assert_close(background_mask(x).flatten(), 1 - torch.tensor(expected))
    xm = mask_reconstruct(x)
    torch.testing.assert_close(xm[0, :, 0, 1], torch.tensor([2.0 * 0.5, 0.0]))
    torch.testing.assert_close(xm[0, :, 0, 2], torch.tensor([4.0, 4.0]) * math.sqrt(2.0))


def test_mask_min_max_is_per_image():
    x = torch.rand(2, 3, 4, 2)
    x[1] = x[0] * 10 - 3  # an affine change of one image's intensities leaves its mask alone
    m = body_mask(x)
    torch.testing.assert_close(m[0], m[1], rtol=1e-5, atol=1e-5)


def test_label_smoothed_id_is_eq_18():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    y = torch.tensor([0, 2])
    xi, n = 0.1, 3
    want = 0.0
    for i in range(2):
        logp = torch.log_softmax(logits[i], 0)
        q = [1 - (n - 1) / n * xi if c == y[i] else xi / n for c in range(n)]
        want += -sum(q[c] * logp[c] for c in range(n))
    torch.testing.assert_close(CrossEntropyLabelSmooth(xi)(logits, y), want / 2)


def _dist(a, b):
    return math.sqrt(sum((u - v) ** 2 for u, v in zip(a, b)))


def test_hetero_centre_triplet_is_eq_20():
    # two identities, one visible and one infrared image each, plus a second visible image of id 0
    feat = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [3.0, 1.0]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    mod = torch.tensor([0, 0, 1, 0, 1])
    rho = 2.0
    cv = {0: [1.0, 0.0], 1: [3.0, 0.0]}
    cr = {0: [0.0, 1.0], 1: [3.0, 1.0]}
    want = 0.0
    for anchor, other in ((cv, cr), (cr, cv)):
        for i in (0, 1):
            j = 1 - i
            hardest = min(_dist(anchor[i], cv[j]), _dist(anchor[i], cr[j]))
            want += max(0.0, rho + _dist(cv[i], cr[i]) - hardest)
    got = HeteroCentreTriplet(rho)(feat, labels, mod)
    assert want > 0
    torch.testing.assert_close(got, torch.tensor(want))


def test_hetero_centre_triplet_needs_both_modalities():
    with pytest.raises(InputError, match=r"identities \[1\]"):
        HeteroCentreTriplet()(torch.rand(3, 2), torch.tensor([0, 0, 1]), torch.tensor([0, 1, 0]))


def test_modality_correlation_is_eqs_21_22():
    fv = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    fr = torch.tensor([[0.0, 2.0], [1.0, 0.0]])
    feat = torch.cat([fv, fr])
    mod = torch.tensor([0, 0, 1, 1])

    def g(f):
        rows = [[sum(a * b for a, b in zip(f[i], f[j])) for j in range(2)] for i in range(2)]
        norm = math.sqrt(sum(v * v for r in rows for v in r))
        return [[v / norm for v in r] for r in rows]

    gv, gr = g(fv.tolist()), g(fr.tolist())
    want = math.sqrt(sum((gv[i][j] - gr[i][j]) ** 2 for i in range(2) for j in range(2)))
    torch.testing.assert_close(ModalityCorrelationLoss()(feat, mod), torch.tensor(want))
    with pytest.raises(InputError, match="as many of each"):
        ModalityCorrelationLoss()(feat[:3], mod[:3])


def test_region_centre_loss_is_eq_7():
    s1 = torch.zeros(4, 2, 1, 2)
    s1[0, 0] = 1.0   # visible id 0: pooled (1, 0)
    s1[1, 1] = 2.0   # infrared id 0: pooled (0, 2)
    s1[2, 0, 0, 0] = 4.0  # visible id 1: pooled (2, 0)
    s1[3] = 0.0      # infrared id 1: pooled (0, 0)
    masked = s1.clone()
    masked[0, 0] = 0.0  # only image 0's masked copy differs: pooled (0, 0)
    labels, mod = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
    mask_term = (1.0 + 0 + 0 + 0) / 4
    modal_term = (_dist([1, 0], [0, 2]) + _dist([2, 0], [0, 0])) / 2
    got = RegionCentreLoss()(s1, masked, labels, mod)
    torch.testing.assert_close(got, torch.tensor(mask_term + modal_term))


def test_dynamic_attention_is_eqs_9_to_15():
    torch.manual_seed(0)
    att = DynamicAttention(4, topk=2, reduction=2)
    f = torch.randn(1, 4, 3, 2)
    with torch.no_grad():
        q, k, v = att.q(f)[0], att.k(f)[0], att.v(f)[0]  # [C', H, W]
        got = att(f)[0]
    h, w = 3, 2
    qa = [q[:, r, :].mean(1) for r in range(h)]  # stripe means, eq. 10
    ka = [k[:, r, :].mean(1) for r in range(h)]
    score = [sum(float(qa[i] @ ka[j]) for j in range(h)) for i in range(h)]  # row sums of eq. 11
    keep = sorted(range(h), key=lambda i: -score[i])[:2]  # eq. 12
    keys = [k[:, r, c] for r in range(h) for c in range(w)]
    vals = [v[:, r, c] for r in range(h) for c in range(w)]
    rows = []
    for r in keep:  # eqs. 13-15
        for c in range(w):
            logits = torch.stack([q[:, r, c] @ kk for kk in keys])
            a = torch.softmax(logits, 0)
            rows.append(sum(a[i] * vals[i] for i in range(len(vals))))
    want = torch.stack(rows).mean(0)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def _net(**mrda):
    cfg = ModelConfig(arch="mrda", num_classes=3, last_stride=2,
                      mrda={"backbone": "resnet18_half", **mrda})
    return build_model(cfg)


def test_infrared_image_never_touches_the_visible_stem():
    torch.manual_seed(0)
    net = _net().train()
    x = torch.randn(2, 3, 64, 32)
    out = net(x, torch.tensor([1, 1]))
    out["feat"].sum().backward()
    assert net.backbone.conv1.weight.grad is None and net.backbone.layer1[0].conv1.weight.grad is None
    assert net.ir["conv1"].weight.grad.abs().sum() > 0
    assert net.backbone.layer2[0].conv1.weight.grad.abs().sum() > 0  # shared stages


def test_routing_keeps_batch_order():
    torch.manual_seed(0)
    net = _net().eval()
    x = torch.randn(3, 3, 64, 32)
    mixed = net(x, torch.tensor([1, 0, 1]))
    alone = torch.cat([net(x[:1], torch.tensor([1])), net(x[1:2], torch.tensor([0])),
                       net(x[2:], torch.tensor([1]))])
    torch.testing.assert_close(mixed, alone, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(net(x[:1], torch.tensor([0])), mixed[:1])


def test_one_stream_ablation_routes_both_modalities_through_the_visible_stem():
    torch.manual_seed(0)
    net = _net(two_stream=False).train()
    assert net.ir is None
    x = torch.randn(2, 3, 64, 32)
    net(x, torch.tensor([1, 1]))["feat"].sum().backward()
    assert net.backbone.conv1.weight.grad.abs().sum() > 0  # the one stem serves infrared too
    net.eval()
    torch.testing.assert_close(net(x, torch.tensor([1, 1])), net(x, torch.tensor([0, 0])))


def test_attention_ablation_leaves_gem_alone():
    torch.manual_seed(0)
    full, plain = _net(), _net(attention=False)
    assert plain.dyn_attention is None
    plain.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith("dyn_attention.")})
    x, mod = torch.randn(2, 3, 64, 32), torch.tensor([0, 1])
    full.train(), plain.train()
    f = full.feature_maps(x, mod)[-1]
    torch.testing.assert_close(plain(x, mod)["feat"], full.pool(f))  # F = GeM(f)
    torch.testing.assert_close(full(x, mod)["feat"], full.pool(f) + full.dyn_attention(f))  # eq. 16


def test_bad_mrda_options():
    with pytest.raises(ConfigError, match="unknown MRDA"):
        _net(topk=3)
    with pytest.raises(ConfigError, match="attn_topk"):
        _net(attn_topk=0)
    with pytest.raises(ConfigError, match="two_stream"):
        _net(two_stream="no")
    with pytest.raises(ConfigError, match="--lstm-branch"):
        build_model(ModelConfig(arch="mrda", lstm_branch=True, mrda={"backbone": "resnet18_half"}))


def _cross_modal_labels():
    # 4 identities: 5 visible + 3 infrared images each; identity 4 has no infrared image
    labels, mod = [], []
    for pid in range(4):
        labels += [pid] * 8
        mod += [0] * 5 + [1] * 3
    return labels + [4, 4], mod + [0, 0]


def test_cross_modal_sampler_gives_k_visible_then_k_infrared():
    from reidcli.data.sampler import CrossModalPKSampler

    labels, mod = _cross_modal_labels()
    s = CrossModalPKSampler(labels, mod, p=2, k=2, seed=3)
    assert s.batch_size == 8
    batches = list(s)
    assert batches
    for b in batches:
        ix = [i for i, _ in b]
        assert len(ix) == 8
        for g in range(2):
            grp = ix[g * 4:(g + 1) * 4]
            assert len({labels[i] for i in grp}) == 1 and labels[grp[0]] != 4
            assert [mod[i] for i in grp] == [0, 0, 1, 1]
    # resumable: a sampler started at batch 1 yields the rest of the same epoch
    r = CrossModalPKSampler(labels, mod, p=2, k=2, seed=3)
    r.load_state_dict({"seed": 3, "epoch": 0, "start": 1})
    assert list(r) == batches[1:]


def test_cross_modal_sampler_needs_two_modalities():
    from reidcli.data.sampler import CrossModalPKSampler

    with pytest.raises(InputError, match="both visible and infrared"):
        CrossModalPKSampler([0, 0, 1, 1], [0, 0, 0, 0], p=2, k=1)


def test_mrda_feature_is_gem_p3_plus_attended_average():
    """Eq. 16 with eq. 17 written out: F = (mean f^3)^(1/3) + avg(attended), p = 3 by default."""
    torch.manual_seed(0)
    net = _net().train()
    assert net.pool.p.item() == 3.0
    x, mod = torch.randn(2, 3, 64, 32), torch.tensor([0, 1])
    f = net.feature_maps(x, mod)[-1]
    gem = f.clamp_min(1e-6).pow(3).mean((2, 3)).pow(1 / 3)
    torch.testing.assert_close(net(x, mod)["feat"], gem + net.dyn_attention(f), rtol=1e-5, atol=1e-5)


def test_features_route_each_image_by_its_modality(tmp_path):
    """`reid features`' embedding (`embed_records`) passes each record's modality to a
    two-stream net, in order; a plain net gets none."""
    from conftest import write_jpeg

    from reidcli.data.records import Record
    from reidcli.features.extract import embed_records

    write_jpeg(tmp_path / "a.jpg", 64, 32)
    recs = [Record("a.jpg", 1, 0, 0), Record("a.jpg", 1, 2, 1), Record("a.jpg", 1, 5, 1), Record("a.jpg", 1, 1, 0)]

    class Spy(torch.nn.Module):
        modal = True

        def __init__(self):
            super().__init__()
            self.seen = []

        def forward(self, x, modality=None):
            self.seen += modality.tolist()
            return x.flatten(1)[:, :4] + modality.view(-1, 1).float()

    spy = Spy()
    embed_records(spy, tmp_path, recs, size=(64, 32), batch_size=3, workers=0, normalize=False)
    assert spy.seen == [0, 1, 1, 0]

    class Plain(torch.nn.Module):  # no ``modal``: called without the keyword
        def forward(self, x):
            return x.flatten(1)[:, :4]

    embed_records(Plain(), tmp_path, recs, size=(64, 32), workers=0)

    torch.manual_seed(0)
    net = _net()
    with torch.no_grad():  # make the infrared stem differ from the visible one it was copied from
        net.ir["conv1"].weight.mul_(-1.0)
    f, ok = embed_records(net, tmp_path, recs, size=(64, 32), workers=0)
    assert ok.all()
    f = torch.from_numpy(f)
    torch.testing.assert_close(f[0], f[3])  # the same image, both visible
    torch.testing.assert_close(f[1], f[2])  # the same image, both infrared
    assert not torch.allclose(f[0], f[1], atol=1e-4)


def test_mrda_k_check_names_short_identities_and_warns_on_one_modality(caplog):
    import numpy as np

    from reidcli.train.methods.mrda import _check_k

    # pid 10: 3 visible + 2 infrared; pid 20: 4 + 4; pid 30: visible only (not sampled)
    pids = np.array([10] * 5 + [20] * 8 + [30] * 3)
    mod = np.array([0, 0, 0, 1, 1] + [0] * 4 + [1] * 4 + [0] * 3)
    labels = np.unique(pids, return_inverse=True)[1]
    with caplog.at_level("WARNING", logger="reidcli.train.methods.mrda"):
        _check_k(pids, labels, mod, 2)
    assert "one modality only" in caplog.text and "[30]" in caplog.text
    with pytest.raises(InputError, match=r"identities \[10\] have fewer than --images-per-id 3 .* use -K 2 or less"):
        _check_k(pids, labels, mod, 3)
