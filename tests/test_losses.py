"""Losses against their formulas, computed by explicit loops on hand-made tensors."""

from __future__ import annotations

import math

import pytest
import torch

from reidcli.losses import (
    CenterLoss,
    CrossEntropyLabelSmooth,
    SoftEntropy,
    SoftTripletLoss,
    TripletLoss,
)
from reidcli.utils.errors import ConfigError

FEATS = torch.tensor(
    [[0.0, 0.0], [2.0, 0.0], [1.0, 1.0], [0.5, 2.0], [3.0, 3.0], [1.5, 1.7]]
)
LABELS = torch.tensor([0, 0, 1, 1, 2, 2])


def _d(a, b):
    return math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b)))


def _hard(i, feats=FEATS, labels=LABELS):
    pos = [j for j in range(len(feats)) if labels[j] == labels[i]]
    neg = [j for j in range(len(feats)) if labels[j] != labels[i]]
    p = max(pos, key=lambda j: _d(feats[i], feats[j]))
    n = min(neg, key=lambda j: _d(feats[i], feats[j]))
    return p, n


def test_label_smooth_ce_matches_formula():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    y = [0, 1]
    eps, k = 0.1, 3
    want = 0.0
    for i, row in enumerate(logits.tolist()):
        z = math.log(sum(math.exp(v) for v in row))
        for c in range(k):
            q = (1 - eps) * (c == y[i]) + eps / k
            want -= q * (row[c] - z)
    want /= 2
    got = CrossEntropyLabelSmooth(eps)(logits, torch.tensor(y))
    assert got.item() == pytest.approx(want, rel=1e-6)
    plain = torch.nn.functional.cross_entropy(logits, torch.tensor(y))
    assert CrossEntropyLabelSmooth(0.0)(logits, torch.tensor(y)).item() == pytest.approx(plain.item())


@pytest.mark.parametrize("soft", [False, True])
def test_batch_hard_triplet_matches_formula(soft):
    m = 0.3
    terms = []
    for i in range(len(FEATS)):
        p, n = _hard(i)
        x = _d(FEATS[i], FEATS[p]) - _d(FEATS[i], FEATS[n])
        terms.append(math.log1p(math.exp(x)) if soft else max(0.0, x + m))
    want = sum(terms) / len(terms)
    got = TripletLoss(margin=m, soft_margin=soft)(FEATS, LABELS)
    assert got.item() == pytest.approx(want, rel=1e-5)
    assert want > 0


def test_triplet_zero_when_separated_and_single_identity():
    far = torch.tensor([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [10.1, 0.0]])
    assert TripletLoss(0.3)(far, torch.tensor([0, 0, 1, 1])).item() == 0.0
    one = TripletLoss(0.3)(far.requires_grad_(), torch.zeros(4, dtype=torch.long))
    assert one.item() == 0.0
    one.backward()


def test_triplet_gradient_flows():
    f = FEATS.clone().requires_grad_()
    TripletLoss(0.3)(f, LABELS).backward()
    assert f.grad.abs().sum() > 0


def test_center_loss_formula_and_update():
    crit = CenterLoss(num_classes=3, feat_dim=2, weight=0.5, lr=0.5)
    centers = torch.tensor([[0.0, 1.0], [1.0, 1.0], [3.0, 3.0]])
    crit.reset(centers)
    want = sum(
        0.5 * sum((float(FEATS[i][d]) - float(centers[LABELS[i]][d])) ** 2 for d in range(2))
        for i in range(6)
    ) / 6
    loss = crit(FEATS, LABELS)
    assert loss.item() == pytest.approx(want, rel=1e-6)
    opt = crit.make_optimizer()
    (crit.weight * loss).backward()
    crit.step_centers(opt)
    # the weight is undone: c_k <- c_k - lr * (1/N) sum_{i: y_i = k} (c_k - x_i)
    for k in range(3):
        idx = [i for i in range(6) if LABELS[i] == k]
        grad = [sum(float(centers[k][d]) - float(FEATS[i][d]) for i in idx) / 6 for d in range(2)]
        want_c = [float(centers[k][d]) - 0.5 * grad[d] for d in range(2)]
        assert crit.centers[k].tolist() == pytest.approx(want_c, rel=1e-6)
    assert crit.centers.grad is None


def test_center_loss_bad_label():
    with pytest.raises(ConfigError, match="3 classes"):
        CenterLoss(3, 2)(FEATS, torch.tensor([0, 1, 2, 3, 0, 1]))


def test_soft_entropy_matches_formula():
    s = torch.tensor([[1.0, 2.0, 0.0], [0.5, -0.5, 1.5]])
    t = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 0.0]])
    want = 0.0
    for i in range(2):
        zs = math.log(sum(math.exp(v) for v in s[i].tolist()))
        zt = sum(math.exp(v) for v in t[i].tolist())
        for k in range(3):
            want -= math.exp(float(t[i][k])) / zt * (float(s[i][k]) - zs)
    assert SoftEntropy()(s, t).item() == pytest.approx(want / 2, rel=1e-6)


def test_soft_triplet_matches_formula():
    teacher = FEATS * torch.tensor([1.5, 0.5]) + 0.2
    hard, soft = 0.0, 0.0
    for i in range(6):
        p, n = _hard(i)
        dap, dan = _d(FEATS[i], FEATS[p]), _d(FEATS[i], FEATS[n])
        t_i = math.exp(dan) / (math.exp(dap) + math.exp(dan))
        tap, tan = _d(teacher[i], teacher[p]), _d(teacher[i], teacher[n])
        q_i = math.exp(tan) / (math.exp(tap) + math.exp(tan))
        hard -= math.log(t_i)
        soft -= q_i * math.log(t_i) + (1 - q_i) * math.log(1 - t_i)
    crit = SoftTripletLoss()
    assert crit(FEATS, LABELS).item() == pytest.approx(hard / 6, rel=1e-5)
    f = FEATS.clone().requires_grad_()
    t = teacher.clone().requires_grad_()
    got = crit(f, LABELS, t)
    assert got.item() == pytest.approx(soft / 6, rel=1e-5)
    got.backward()
    assert t.grad is None and f.grad.abs().sum() > 0


def test_bad_params():
    with pytest.raises(ConfigError, match=r"^epsilon must be a float in \[0, 1\); got 1.5"):
        CrossEntropyLabelSmooth(1.5)
    with pytest.raises(ConfigError, match="^margin must be a float >= 0"):
        TripletLoss(-1.0)
    with pytest.raises(ConfigError, match="^lr must be a float > 0"):
        CenterLoss(3, 4, weight=0.1, lr=0.0)
