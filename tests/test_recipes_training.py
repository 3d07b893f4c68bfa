"""The `rbnet` recipe's adaptation rounds train as the MMT code does (issue 23).

A few optimizer steps of `reid finetune --recipe rbnet` (MMT, Ge et al. ICLR 2020), two
rounds from one fixed initialisation, against a straightforward loop written here from the
paper (eqs. 5, 8-12) and the public code (github.com/yxgeee/MMT: ``mmt/trainers.py``,
``mmt/loss``, ``examples/mmt_train_dbscan.py``): each round the four classifiers are set to
the normalised cluster centres and a new Adam is built over both networks, weight decay 5e-4
on every trained parameter; every step takes the losses of eq. 12 and moves the mean nets
with alpha_t = min(1 - 1/(t+1), alpha), t counted across rounds. The loop reads the engine's
own batches (recorded as they reach the method), so the two see the same images; the
network is reidcli's (its forward is not what is tested here). The engine with the previous
loop (Adam carried over, no decay on norms and biases) must differ, so the test does catch
each of the two differences.

The reference keeps the paper's K-way classifiers; the MMT code's classifier has one row
per target image, of which the first K are set to the centres (its other rows stay in the
softmax): that is not reproduced here.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fixtures_finetune import _labels, _source_ckpt, _write_csv_dataset

ALPHA, LR, WD, EPS = 0.999, 3.5e-4, 5e-4, 0.1  # MMT code: --alpha, --lr, --weight-decay; CE smoothing
W_CE, W_TRI = 0.5, 0.8  # --soft-ce-weight, --soft-tri-weight
ROUND1 = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 0, 3, 3, 3, 3, -1]  # 4 clusters, one outlier
ROUND2 = [0, 0, 1, 1, 2, 2, 0, 1, -1, 2, 3, 3, 4, 4, 3, 4]  # re-clustered: 5 clusters
STEPS = (3, 2)  # optimizer steps in round 1, round 2


# -- the reference: the paper's losses, the MMT code's loop ---------------------------------

def _dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances, |a|^2 + |b|^2 - 2 a.b clamped at 1e-12 before the root (as
    ``mmt/loss/triplet.py:euclidean_dist``; written without its ``addmm``, whose different
    rounding alone moves a few near-zero-gradient weights by ~1e-5 through Adam's
    normalisation, more than the tolerance below)."""
    return (a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1, keepdim=True).t() - 2.0 * a @ b.t()).clamp(min=1e-12).sqrt()


def _ce(logits, y):
    """Label-smoothed CE, target (1 - eps) onehot + eps / K."""
    q = (1 - EPS) * F.one_hot(y, logits.size(1)).float() + EPS / logits.size(1)
    return (-q * F.log_softmax(logits, 1)).mean(0).sum()


def _soft_ce(logits, teacher_logits):  # eq. 8
    return (-F.softmax(teacher_logits, 1).detach() * F.log_softmax(logits, 1)).mean(0).sum()


def _triplet(f, y, teacher_f=None):
    """Softmax-triplet on the batch-hard pair (eq. 9, margin 0), or against the teacher's
    probabilities at the same pair (eqs. 10-11)."""
    d = _dist(f, f)
    same = (y[:, None] == y[None]).float()
    pos = torch.sort(d + -9999999.0 * (1 - same), dim=1, descending=True)[1][:, 0]
    neg = torch.sort(d + 9999999.0 * same, dim=1, descending=False)[1][:, 0]
    i = torch.arange(len(y))
    log_t = F.log_softmax(torch.stack([d[i, pos], d[i, neg]], 1), 1)
    if teacher_f is None:
        return -log_t[:, 1].mean()
    dt = _dist(teacher_f, teacher_f)
    q = F.softmax(torch.stack([dt[i, pos], dt[i, neg]], 1), 1).detach()
    return (-q * log_t).mean(0).sum()


def reference_rounds(start: dict, rounds: list[tuple[np.ndarray, np.ndarray, list]]) -> dict[str, nn.Module]:
    """Nets θ1, θ2 and mean nets after ``rounds`` of (labels, centres, batches)."""
    from reidcli.models import network_from_checkpoint

    net = network_from_checkpoint(start)
    nets = {"net1": net, "net2": copy.deepcopy(net), "mean1": copy.deepcopy(net), "mean2": copy.deepcopy(net)}
    for n in nets.values():
        n.train()
    t = 0
    for labels, centres, batches in rounds:
        uniq = np.unique(labels[labels >= 0])
        init = F.normalize(torch.from_numpy(centres[uniq]).float(), dim=1)
        for n in nets.values():  # each round: classifiers = normalised cluster centres
            n.classifier = nn.Linear(init.shape[1], len(uniq), bias=False)
            n.classifier.weight.data.copy_(init)
        for n in ("mean1", "mean2"):
            for p in nets[n].parameters():
                p.requires_grad_(False)
        params = [p for n in ("net1", "net2") for p in nets[n].parameters() if p.requires_grad]
        opt = torch.optim.Adam([{"params": [p], "lr": LR, "weight_decay": WD} for p in params])  # new each round
        for x1, x2, y in batches:
            o1, o2 = nets["net1"](x1), nets["net2"](x2)
            with torch.no_grad():
                e1, e2 = nets["mean1"](x1), nets["mean2"](x2)
            loss = ((_ce(o1["logits"], y) + _ce(o2["logits"], y)) * (1 - W_CE)
                    + (_triplet(o1["feat"], y) + _triplet(o2["feat"], y)) * (1 - W_TRI)
                    + (_soft_ce(o1["logits"], e2["logits"]) + _soft_ce(o2["logits"], e1["logits"])) * W_CE
                    + (_triplet(o1["feat"], y, e2["feat"]) + _triplet(o2["feat"], y, e1["feat"])) * W_TRI)
            opt.zero_grad()
            loss.backward()
            opt.step()
            a = min(1 - 1 / (t + 1), ALPHA)  # eq. 5 with the code's warm-up
            for mean, student in (("mean1", "net1"), ("mean2", "net2")):
                with torch.no_grad():
                    for e, p in zip(nets[mean].parameters(), nets[student].parameters()):
                        e.mul_(a).add_(p, alpha=1 - a)
            t += 1
    return nets


# -- reidcli's engine ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("mmt_loop")
    target = _write_csv_dataset(tmp / "target")
    return {"tmp": tmp, "target": target, "ckpt": _source_ckpt(tmp / "m.pt"),
            "labels": [_labels(tmp / "l1.h5", target, ROUND1), _labels(tmp / "l2.h5", target, ROUND2)]}


def run_rounds(data: dict, name: str, monkeypatch, rounds: int = 2, **settings) -> tuple[list[Path], list[list]]:
    """``rounds`` `finetune_from_settings` rounds with ``--recipe rbnet``; the batches each used."""
    from reidcli.train.finetune import finetune_from_settings
    from reidcli.train.methods.mmt import MMT

    seen: list = []
    step = MMT.step

    def recording(self, batch, it):
        b = batch["target"]
        seen.append((b["img"].clone(), b["img2"].clone(), b["label"].clone()))
        return step(self, batch, it)

    monkeypatch.setattr(MMT, "step", recording)
    outs, batches, start = [], [], data["ckpt"]
    for r, (labels, steps) in enumerate(zip(data["labels"][:rounds], STEPS)):
        out = data["tmp"] / f"{name}{r + 1}.pt"
        finetune_from_settings(start, labels, data["target"], out, recipe="rbnet", epochs=1, iters_per_epoch=steps,
                               p=3, k=2, images_per_bn=0, workers=0, seed=r, device="cpu", **settings)
        batches.append(seen[:])
        seen.clear()
        outs.append(start := out)
    return outs, batches


def _engine_nets(path: Path) -> dict[str, dict]:
    ck = torch.load(path, weights_only=True)
    return {"mean1": ck["model"], "mean2": ck["nets"]["mean2"], "net1": ck["nets"]["net1"], "net2": ck["nets"]["net2"]}


def _max_gap(engine: dict[str, dict], ref: dict[str, nn.Module]) -> float:
    gap = 0.0
    for name, state in engine.items():
        want = ref[name].state_dict()
        assert sorted(state) == sorted(want), name
        for k, v in state.items():
            if torch.is_floating_point(v):
                gap = max(gap, float((v - want[k]).abs().max()))
    return gap


def _reference_for(data: dict, batches: list[list], rounds: int) -> dict[str, nn.Module]:
    from reidcli.io.h5 import read_labels

    files = [read_labels(p) for p in data["labels"][:rounds]]
    return reference_rounds(torch.load(data["ckpt"], weights_only=True),
                            [(np.asarray(f.labels), np.asarray(f.centers), b) for f, b in zip(files, batches)])


TOL = 1e-6  # float rounding of the same arithmetic (the loss formulas are not the same expressions)


def test_rbnet_recipe_rounds_equal_the_mmt_loop(data, monkeypatch):
    torch.manual_seed(0)
    outs, batches = run_rounds(data, "recipe", monkeypatch)
    assert [len(b) for b in batches] == list(STEPS)
    ck2 = torch.load(outs[1], weights_only=True)
    assert ck2["train_state"]["method"]["ema_step"] == sum(STEPS)  # the mean nets went on
    assert {float(s["step"]) for s in ck2["train_state"]["optimizer"]["state"].values()} == {float(STEPS[1])}
    assert [len(g["params"]) for g in ck2["train_state"]["optimizer"]["param_groups"]][1] == 0  # one decay group
    for r in (1, 2):
        gap = _max_gap(_engine_nets(outs[r - 1]), _reference_for(data, batches, r))
        assert gap < TOL, f"round {r}: the engine's weights differ from the MMT loop's by {gap:.3g}"


@pytest.mark.parametrize("setting", [{"fresh_optimizer": False}, {"weight_decay_all": False}])
def test_the_previous_loop_differs_from_the_mmt_loop(data, monkeypatch, setting):
    """Either earlier choice (Adam moments carried into round 2; no decay on norms and
    biases) moves the weights by far more than the tolerance: the test above sees each."""
    rounds = 2 if "fresh_optimizer" in setting else 1  # Adam's moments matter from round 2 on
    torch.manual_seed(0)
    outs, batches = run_rounds(data, "old" + "".join(setting), monkeypatch, rounds, **setting)
    gap = _max_gap(_engine_nets(outs[rounds - 1]), _reference_for(data, batches, rounds))
    assert gap > 100 * TOL
