"""MAR's losses (soft multilabel, agreement, MDL, CML, AL, RJ) against their formulas written
out with plain loops on fixed tensors."""

from __future__ import annotations

import math

import pytest
import torch

from reidcli.losses.agents import AgentLoss, RJLoss
from reidcli.losses.soft_multilabel import (
    CMLLoss,
    MDLLoss,
    SoftMultilabel,
    label_agreement,
)

G = torch.Generator().manual_seed(0)
FEAT = torch.randn(6, 4, generator=G)
AGENTS = torch.randn(3, 4, generator=G)


def _unit(v):
    n = math.sqrt(sum(float(x) ** 2 for x in v))
    return [float(x) / n for x in v]


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def _sq(a, b):
    return sum((x - y) ** 2 for x, y in zip(a, b))


def _softmax(z):
    m = max(z)
    e = [math.exp(v - m) for v in z]
    return [v / sum(e) for v in e]


def _ml(feat, agents, s=30.0):
    return [_softmax([s * _dot(_unit(f), _unit(a)) for a in agents]) for f in feat]


def test_soft_multilabel_and_agreement_match_the_formulas():
    y = SoftMultilabel(30.0)(FEAT, AGENTS)
    want = _ml(FEAT, AGENTS)
    assert torch.allclose(y, torch.tensor(want), atol=1e-5)
    A = label_agreement(y)
    for i in range(6):
        for j in range(6):
            assert float(A[i, j]) == pytest.approx(sum(min(a, b) for a, b in zip(y[i].tolist(), y[j].tolist())), abs=1e-5)


def _mdl_by_hand(f, y, ratio):
    f, y = f.tolist(), y.tolist()
    pairs = [(i, j) for i in range(len(f)) for j in range(i + 1, len(f))]
    agree = {p: sum(min(a, b) for a, b in zip(y[p[0]], y[p[1]])) for p in pairs}
    d2 = {p: _sq(f[p[0]], f[p[1]]) for p in pairs}
    n = max(1, int(len(pairs) * ratio))
    T = sorted(agree.values(), reverse=True)[n - 1]
    near = sorted(pairs, key=lambda p: d2[p])[:n]
    pos = [math.exp(-d2[p]) for p in near if agree[p] >= T]
    neg = [math.exp(-d2[p]) for p in near if agree[p] < T]
    P = sum(pos) / len(pos) if pos else 1.0
    N = sum(neg) / len(neg) if neg else 0.5
    return -math.log(P / (P + N)), len(pos), len(neg)


@pytest.mark.parametrize("ratio", [0.005, 0.2, 0.5])
def test_mdl_mines_near_pairs_by_agreement_and_matches_the_formula(ratio):
    f = torch.nn.functional.normalize(FEAT, dim=1)
    y = SoftMultilabel(3.0)(FEAT, AGENTS)  # a soft scale so agreements differ
    want, n_pos, n_neg = _mdl_by_hand(f, y, ratio)
    loss = MDLLoss(ratio)(f.clone().requires_grad_(), y)
    assert float(loss.detach()) == pytest.approx(want, rel=1e-5)
    if ratio == 0.5:
        assert n_pos and n_neg  # both sets are exercised


def test_mdl_threshold_is_a_running_average_of_the_batch_quantile():
    f = torch.nn.functional.normalize(FEAT, dim=1)
    y1, y2 = SoftMultilabel(3.0)(FEAT, AGENTS), SoftMultilabel(1.0)(FEAT, AGENTS)
    mdl = MDLLoss(0.2, momentum=0.1)
    mdl(f, y1)
    t1 = float(mdl.threshold)
    mdl(f, y2)
    a2 = label_agreement(y2)
    i, j = torch.triu_indices(6, 6, 1)
    t2 = float(a2[i, j].topk(3).values[-1])  # 15 pairs x 0.2
    assert float(mdl.threshold) == pytest.approx(0.9 * t1 + 0.1 * t2, rel=1e-6)


def test_cml_matches_the_per_camera_moment_distance():
    x = torch.log(SoftMultilabel(5.0)(FEAT, AGENTS))
    cams = torch.tensor([0, 0, 1, 1, 1, 2])  # camera 2 has one image: skipped
    rows = x.tolist()

    def mean(r):
        return [sum(c) / len(r) for c in zip(*r)]

    def std(r):
        m = mean(r)
        return [math.sqrt(sum((v - mk) ** 2 for v in c) / (len(r) - 1)) for c, mk in zip(zip(*r), m)]

    mu, sd = mean(rows), std(rows)
    terms = []
    for v in (0, 1):
        rv = [r for r, c in zip(rows, cams.tolist()) if c == v]
        terms += [_sq(mean(rv), mu), _sq(std(rv), sd)]
    assert float(CMLLoss()(x, cams)) == pytest.approx(sum(terms) / len(terms), rel=1e-5)
    assert float(CMLLoss()(x, torch.zeros(6, dtype=torch.long))) == pytest.approx(0.0, abs=1e-6)


def test_agent_loss_is_scaled_cross_entropy_over_the_agents():
    y = [0, 2, 1, 1, 0, 2]
    want = 0.0
    for f, c in zip(FEAT.tolist(), y):
        z = [30.0 * _dot(_unit(f), _unit(a)) for a in AGENTS.tolist()]
        want -= math.log(_softmax(z)[c])
    got = AgentLoss(30.0)(FEAT, AGENTS, torch.tensor(y))
    assert float(got) == pytest.approx(want / 6, rel=1e-5)


def test_rj_pulls_own_agent_and_pushes_agents_within_the_margin():
    ref, tgt, y, m = FEAT[:3], FEAT[3:], [0, 2, 1], 1.5
    A = [_unit(a) for a in AGENTS.tolist()]
    terms = []
    for f, c in zip(ref.tolist(), y):
        f = _unit(f)
        terms.append(_sq(f, A[c]))
        near = [m - _sq(f, a) for k, a in enumerate(A) if k != c and _sq(f, a) < m]
        if near:
            terms.append(sum(near) / len(near))
    for f in tgt.tolist():
        f = _unit(f)
        near = [m - _sq(f, a) for a in A if _sq(f, a) < m]
        if near:
            terms.append(sum(near) / len(near))
    got = RJLoss(m)(ref, AGENTS, torch.tensor(y), tgt)
    assert len(terms) > 3  # some pushes happen with these tensors
    assert float(got) == pytest.approx(sum(terms) / len(terms), rel=1e-5)
