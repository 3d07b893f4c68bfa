"""``reid finetune --method camstyle`` (LSTM-UDA 2021, docs/papers.md section 5): the domain-
connectedness loss against its formula, the batch composition (an image and its styled
versions are one class), a tiny round that changes the weights without reading target ids,
and bad input."""

from __future__ import annotations

import csv
import random

import numpy as np
import pytest
import torch

from fixtures_finetune import H, W, _finetune, _run, _state, _with_pids
from fixtures_train import write_styled


def _reference_ld(fs: np.ndarray, ys, ft: np.ndarray, yt, margin: float) -> float:
    """LSTM-UDA 2021 eq. 3 by loops: per anchor of the union, the farthest same-domain same-label
    image and the closest other image (every source-target pair a negative)."""
    f = np.concatenate([fs, ft]).astype(np.float64)
    dom = [0] * len(ys) + [1] * len(yt)
    y = list(ys) + list(yt)
    losses = []
    for a in range(len(f)):
        d = [float(np.linalg.norm(f[a] - f[j])) for j in range(len(f))]
        pos = [d[j] for j in range(len(f)) if dom[j] == dom[a] and y[j] == y[a]]
        neg = [d[j] for j in range(len(f)) if not (dom[j] == dom[a] and y[j] == y[a])]
        losses.append(max(0.0, margin + max(pos) - min(neg)))
    return float(np.mean(losses))


def test_domain_connectedness_equals_its_formula():
    from reidcli.losses import DomainConnectedness, TripletLoss

    rng = np.random.default_rng(0)
    fs, ft = rng.normal(size=(6, 5)), rng.normal(size=(8, 5))
    ys, yt = [0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2, 3, 3]  # the same label values in both domains
    got = DomainConnectedness(0.5)(torch.tensor(fs, dtype=torch.float32), torch.tensor(ys),
                                   torch.tensor(ft, dtype=torch.float32), torch.tensor(yt))
    assert got.item() == pytest.approx(_reference_ld(fs, ys, ft, yt, 0.5), rel=1e-5)
    # = the batch-hard triplet with the target labels moved past the source ones
    shifted = TripletLoss(0.5)(torch.tensor(np.concatenate([fs, ft]), dtype=torch.float32),
                               torch.tensor(ys + [v + 3 for v in yt]))
    assert got.item() == pytest.approx(shifted.item(), rel=1e-5)


def test_source_target_pairs_are_negatives_and_pushing_them_apart_lowers_ld():
    from reidcli.losses import DomainConnectedness

    ld = DomainConnectedness(0.5)
    y = torch.tensor([0, 0])
    fs = torch.tensor([[0.0], [0.1]])
    ft = torch.tensor([[0.13], [0.25]], requires_grad=True)
    # per anchor m + farthest positive (own domain) - closest negative (the other domain):
    # s0: .5 + .1 - .13, s1: .5 + .1 - .03, t0: .5 + .12 - .03, t1: .5 + .12 - .15
    loss = ld(fs, y, ft, y)
    assert loss.item() == pytest.approx((0.47 + 0.57 + 0.59 + 0.47) / 4, abs=1e-4)  # > 0: not one class
    loss.backward()
    # moving the target domain as a whole by +d (away from the source) lowers every anchor's
    # term by d (each closest negative is across domains): d L_D / d d = -1
    assert ft.grad.sum().item() == pytest.approx(-1.0, abs=1e-4)
    assert ld(fs, y, ft.detach() + 10.0, y).item() == 0.0  # domains far apart: nothing left
    with pytest.raises(Exception, match="margin"):
        type(ld)(-1.0)


class _Stub(torch.nn.Module):
    """A hand-made re-ID network: fixed outputs per image (its first pixel indexes them)."""

    def __init__(self, out: dict):
        super().__init__()
        self.out, self.w = out, torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        i = x[:, 0, 0, 0].long()
        return {k: v[i] * self.w for k, v in self.out.items()}


@pytest.mark.parametrize("local", [True, False])
def test_step_is_source_ce_plus_theta_ld_on_both_branches(local):
    """LSTM-UDA 2021 eq. 4 on each branch: L = CE_ls(source) + theta L_D(source u target u styled
    target), the target only in L_D (no CE: its identities are unknown)."""
    from types import SimpleNamespace

    from reidcli.losses import CrossEntropyLabelSmooth, DomainConnectedness
    from reidcli.train.methods import get_method

    g = torch.Generator().manual_seed(0)
    ns, nt, n_src = 4, 6, 3
    outs = {"logits": torch.randn(ns + nt, n_src, generator=g), "feat": torch.randn(ns + nt, 5, generator=g)}
    if local:
        outs.update(local_logits=torch.randn(ns + nt, n_src, generator=g), local_feat=torch.randn(ns + nt, 4, generator=g))
    m = get_method("camstyle", {})
    ce, ld = CrossEntropyLabelSmooth(0.1), DomainConnectedness(0.5)
    m.objective = SimpleNamespace(ce=ce, triplet=None)
    m.domain = ld
    m.nets["model"] = _Stub(outs)
    ys, yt = torch.tensor([0, 0, 2, 2]), torch.tensor([0, 0, 0, 5, 5, 5])  # a target image + 2 styled, twice
    img = torch.arange(ns + nt).float().view(-1, 1, 1, 1).expand(-1, 3, 2, 2)
    res = m.step({"source": {"img": img[:ns], "label": ys}, "target": {"img": img[ns:], "label": yt}}, 0)
    want = ce(outs["logits"][:ns], ys) + 0.3 * ld(outs["feat"][:ns], ys, outs["feat"][ns:], yt)
    if local:
        want = want + ce(outs["local_logits"][:ns], ys) + 0.3 * ld(outs["local_feat"][:ns], ys,
                                                                  outs["local_feat"][ns:], yt)
    assert torch.allclose(res["loss"], want) and ("domain_local" in res) == local
    # the target logits never enter: changing them leaves the loss as it was
    outs["logits"][ns:] += 100.0
    if local:
        outs["local_logits"][ns:] += 100.0
    again = m.step({"source": {"img": img[:ns], "label": ys}, "target": {"img": img[ns:], "label": yt}}, 0)
    assert torch.allclose(again["loss"], want)


def _styled_run(uda, out, monkeypatch=None, target=None, **kw):
    styled = uda["tmp"] / "styled"
    if not styled.exists():
        write_styled(uda["target"], styled)
    return _finetune(uda["ckpt"], None, target or uda["target"], out, "camstyle", source=uda["source"],
                     styled=styled, **kw)


def test_batches_hold_an_image_with_its_styled_versions_and_the_weights_change(uda, monkeypatch):
    from reidcli.stylize.manifest import read_manifest
    from reidcli.train.methods.camstyle import CamStyle

    seen = []
    step = CamStyle.step

    def spy(self, batch, it):
        recs = self.ctx.data["target"].records
        seen.append({"src": batch["source"]["label"].tolist(), "tgt": batch["target"]["label"].tolist(),
                     "paths": [recs[i].path for i in batch["target"]["index"].tolist()]})
        res = step(self, batch, it)
        assert torch.isfinite(res["loss"]) and res["domain"] > 0
        return res

    monkeypatch.setattr(CamStyle, "step", spy)
    out = _styled_run(uda, uda["tmp"] / "c.pt", train={"p": 3, "k": 2})
    styled = uda["tmp"] / "styled"
    origin = {str((styled / r["output"]).resolve()): r["original"] for r in read_manifest(styled)}
    root = uda["target"].parent
    target = [str((root / f"img/{p:02d}_{j}.jpg").resolve()) for p in range(4) for j in range(4)]
    assert len(seen) == 2
    for b in seen:
        for labels in (b["src"], b["tgt"]):  # P = 3 classes x K = 2 images, in both domains
            assert len(labels) == 6 and len(set(labels)) == 3 and all(labels.count(v) == 2 for v in labels)
        for lab in set(b["tgt"]):
            # one class = one target image (its index, no --labels) and its styled versions
            members = {origin.get(p, str((root / p).resolve())) for p, v in zip(b["paths"], b["tgt"]) if v == lab}
            assert members == {target[lab]}
        assert any(p in origin for p in b["paths"])  # styled images are drawn
    ck = torch.load(out, weights_only=True)
    assert ck["method"] == "camstyle" and ck["epoch"] == 1
    assert any(not torch.equal(v, ck["model"][k]) for k, v in _state(uda["ckpt"]).items()
               if torch.is_floating_point(v) and "classifier" not in k)


def test_target_ground_truth_ids_are_never_read(uda):
    """Shuffled or blanked target ids give bit-identical weights."""
    pids = [r[1] for r in list(csv.reader(open(uda["target"])))[1:]]
    outs = [_styled_run(uda, uda["tmp"] / "orig.pt")]
    for name, ids in (("shuffled", random.Random(1).sample(pids, len(pids))), ("blank", [-1] * len(pids))):
        tgt = _with_pids(uda["target"], uda["target"].with_name(f"{name}.csv"), ids)
        outs.append(_styled_run(uda, uda["tmp"] / f"{name}.pt", target=tgt))
    ref = _state(outs[0])
    for o in outs[1:]:
        st = _state(o)
        assert all(torch.equal(ref[k], st[k]) for k in ref)


def test_labels_make_pseudo_classes_and_options_are_the_papers(uda):
    from reidcli.train.methods.options import CamStyleOptions

    o = CamStyleOptions()
    assert (o.theta, o.margin, o.triplet_weight, o.ce_weight) == (0.3, 0.5, 0.0, 1.0)
    out = _finetune(uda["ckpt"], uda["labels"], uda["target"], uda["tmp"] / "l.pt", "camstyle",
                    source=uda["source"], styled=write_styled(uda["target"], uda["tmp"] / "st"),
                    options={"triplet_weight": 1.0})
    assert torch.load(out, weights_only=True)["method"] == "camstyle"


@pytest.mark.parametrize("drop,words", [("styled", "--styled"), ("source", "--source")])
def test_cli_camstyle_without_styled_or_source_is_one_line(uda, drop, words):
    styled = write_styled(uda["target"], uda["tmp"] / "styled")
    args = [uda["target"], "--ckpt", uda["ckpt"], "-o", uda["tmp"] / "x.pt", "--method", "camstyle",
            "--epochs", 1, "--iters", 1, "-P", 3, "-K", 2, "--workers", 0, "--device", "cpu"]
    if drop != "styled":
        args += ["--styled", styled]
    if drop != "source":
        args += ["--source", uda["source"]]
    res = _run(args)
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if "error" in ln.lower()]
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in res.output
    assert not (uda["tmp"] / "x.pt").exists()


def test_cli_camstyle_round(uda):
    styled = write_styled(uda["target"], uda["tmp"] / "styled")
    res = _run([uda["target"], "--ckpt", uda["ckpt"], "-o", uda["tmp"] / "x.pt", "--method", "camstyle",
                "--source", uda["source"], "--styled", styled, "--theta", 0.5, "--epochs", 1, "--iters", 1,
                "-P", 3, "-K", 2, "--workers", 0, "--device", "cpu", "--images-per-bn", 0])
    assert res.exit_code == 0, res.output
    ck = torch.load(uda["tmp"] / "x.pt", weights_only=True)
    assert ck["provenance"][-1]["params"]["theta"] == 0.5
    assert ck["input_size"] == [H, W] or tuple(ck["input_size"]) == (H, W)
