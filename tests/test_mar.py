"""MAR end to end on tiny data: reference pretraining learns its agents, a `mar` round
starts from them, changes the weights and logs finite losses, never reads target labels
(and needs no --labels), and bad input is one line."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
import numpy as np
import torch

from fixtures_finetune import (
    ARCH,
    DIM,
    _changed,
    _finetune,
    _source_ckpt,
    _state,
    _with_pids,
    _write_csv_dataset,
)

H, W = 32, 16


@pytest.fixture
def mar(tmp_path: Path) -> dict:
    return {"target": _write_csv_dataset(tmp_path / "target"),
            "ref": _write_csv_dataset(tmp_path / "ref", n_ids=4, per_id=4, seed=500),
            "ckpt": _source_ckpt(tmp_path / "m.pt"), "tmp": tmp_path}


def _rows(path: Path) -> list[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh]


def _round(m, out, ckpt=None, options=None, train=None, **kw):
    return _finetune(ckpt or m["ckpt"], None, m["target"], m["tmp"] / out, "mar",
                     options={"mdl_warmup_epochs": 0, **(options or {})}, train=train,
                     reference=m["ref"], **kw)


def _pretrain_agents(m, epochs: int = 3) -> Path:
    from reidcli.data.transforms import AugmentConfig
    from reidcli.models import ModelConfig
    from reidcli.train.config import TrainConfig
    from reidcli.train.pretrain import pretrain

    return pretrain(m["ref"], m["tmp"] / "agents.pt", model=ModelConfig(arch=ARCH),
                    train=TrainConfig(epochs=epochs, iters_per_epoch=10, p=4, k=4, lr=3e-3, workers=0, images_per_bn=0,
                                      milestones=[], warmup_epochs=0, seed=0),
                    augment=AugmentConfig(height=H, width=W, pad=0, erasing=0.0, flip=0.0),
                    method="agents", device="cpu")


def test_mar_round_changes_model_and_agents_and_logs_finite_losses(mar):
    from reidcli.models import load_network
    from reidcli.train.hooks import log_path_for

    out = _round(mar, "m2.pt", train={"iters_per_epoch": 3, "p": 4, "k": 2})
    ck = torch.load(out, weights_only=True)
    assert ck["method"] == "mar" and ck["nets"]["agents"]["weight"].shape == (4, DIM)
    assert _changed(_state(mar["ckpt"]), ck["model"])
    out2 = _round(mar, "m3.pt", ckpt=out, train={"iters_per_epoch": 1, "p": 4, "k": 2})
    assert not torch.equal(ck["nets"]["agents"]["weight"], _state(out2, "agents")["weight"])
    rows = _rows(log_path_for(out))
    steps = [r for r in rows if "mdl" in r]
    assert steps and all(r[k] == r[k] and abs(r[k]) < 1e6 for r in steps for k in ("loss", "mdl", "cml", "al", "rj"))
    assert any(r["cml"] > 0 for r in steps) and any(r["mdl"] > 0 for r in steps)
    model, _ = load_network(out)
    assert model(torch.zeros(2, 3, H, W)).shape == (2, DIM)


def test_mar_never_reads_target_identities(mar):
    """The same target images with shuffled or blanked ids give bit-identical weights."""
    with open(mar["target"]) as fh:
        pids = [r[1] for r in list(csv.reader(fh))[1:]]
    outs = []
    for name, ids in (("orig", None), ("shuffled", random.Random(1).sample(pids, len(pids))),
                      ("blank", [-1] * len(pids))):
        if ids is not None:
            mar["target"] = _with_pids(mar["target"], mar["target"].with_name(f"{name}.csv"), ids)
        outs.append(_round(mar, f"{name}.pt"))
    ref = _state(outs[0])
    for o in outs[1:]:
        assert all(torch.equal(ref[k], v) for k, v in _state(o).items())


def test_agent_pretraining_learns_and_mar_starts_from_its_agents(mar):
    from reidcli.data.layouts import load_dataset
    from reidcli.data.records import relabel
    from reidcli.features import embed_records
    from reidcli.models import load_network
    from reidcli.train.hooks import log_path_for

    path = _pretrain_agents(mar)
    ck = torch.load(path, weights_only=True)
    agents = torch.nn.functional.normalize(ck["nets"]["agents"]["weight"], dim=1)
    model, _ = load_network(path)
    recs = load_dataset(mar["ref"]).split("train")
    f, _ = embed_records(model, mar["ref"].parent, recs, size=(H, W), workers=0)
    y, _ = relabel([r.pid for r in recs])
    acc = float(((torch.as_tensor(f) @ agents.t()).argmax(1) == torch.as_tensor(y)).float().mean())
    assert acc >= 0.75, acc  # chance is 0.25
    log = [r for r in _rows(log_path_for(path)) if "al" in r]
    assert log[-1]["al"] < log[0]["al"]
    out = _round(mar, "from_agents.pt", ckpt=path, train={"lr": 1e-9})  # (almost) no step
    assert torch.allclose(_state(out, "agents")["weight"], ck["nets"]["agents"]["weight"], atol=1e-6)


def test_mar_cli_needs_no_labels(mar):
    from typer.testing import CliRunner

    from reidcli.cli.app import app

    out = mar["tmp"] / "cli.pt"
    args = ["finetune", mar["target"], "--ckpt", mar["ckpt"], "-o", out, "--method", "mar",
            "--reference", mar["ref"], "--iters", "1", "-P", "2", "-K", "2", "--workers", "0",
            "--device", "cpu", "--lambda-2", "10", "--images-per-bn", "0"]
    res = CliRunner().invoke(app, list(map(str, args)))
    assert res.exit_code == 0, res.output
    assert torch.load(out, weights_only=True)["train_state"]["options"]["lambda_2"] == 10.0
    from fixtures_finetune import _labels

    labels = _labels(mar["tmp"] / "l.h5", mar["target"], [0, 1] * 8)
    res = CliRunner().invoke(app, list(map(str, [*args, "--labels", labels])))
    assert res.exit_code == 2 and "--labels does not apply to --method mar" in res.output
    res = CliRunner().invoke(app, list(map(str, [*args[:6], "--beta", "0.1", "--method", "pseudo", "--labels", labels])))
    assert res.exit_code == 2 and "--beta does not apply to --method pseudo" in res.output


@pytest.mark.parametrize("case, match", [
    ("labels", "labels does not apply to --method mar"),
    ("no_reference", "pass --reference"),
    ("unlabelled_reference", "fewer than 2 labelled identities"),
    ("agents_mismatch", "agents are"),
])
def test_mar_bad_input_is_one_line_and_writes_nothing(mar, case, match):
    from reidcli.utils.errors import ReidError

    kw: dict = {}
    ckpt = mar["ckpt"]
    if case == "labels":
        from fixtures_finetune import _labels

        labels = _labels(mar["tmp"] / "l.h5", mar["target"], [0, 1] * 8)
        with pytest.raises(ReidError, match=match):
            _finetune(ckpt, labels, mar["target"], mar["tmp"] / "x.pt", "mar", reference=mar["ref"])
        assert not (mar["tmp"] / "x.pt").exists()
        return
    if case == "no_reference":
        kw["reference"] = None
    if case == "unlabelled_reference":
        kw["reference"] = _with_pids(mar["ref"], mar["ref"].with_name("blank.csv"), [-1] * 16)
    if case == "agents_mismatch":
        ck = torch.load(ckpt, weights_only=True)
        ck.setdefault("nets", {})["agents"] = {"weight": torch.randn(7, DIM)}
        torch.save(ck, mar["tmp"] / "bad.pt")
        ckpt = mar["tmp"] / "bad.pt"
    with pytest.raises(ReidError, match=match) as e:
        _finetune(ckpt, None, mar["target"], mar["tmp"] / "x.pt", "mar",
                  **{"reference": mar["ref"], **kw})
    assert "\n" not in str(e.value)
    assert not (mar["tmp"] / "x.pt").exists()


def test_one_camera_target_drops_cml_with_a_warning(mar, caplog):
    from fixtures_finetune import _write_csv_dataset as _ds

    root = _ds(mar["tmp"] / "onecam")
    with open(root) as fh:
        rows = list(csv.reader(fh))
    with open(root, "w", newline="") as fh:
        csv.writer(fh).writerows([rows[0], *[[r[0], r[1], 0] for r in rows[1:]]])
    mar["target"] = root
    with caplog.at_level("WARNING"):
        out = _round(mar, "onecam.pt")
    assert "one camera" in caplog.text
    from reidcli.train.hooks import log_path_for

    assert all(r.get("cml", 0.0) == 0.0 for r in _rows(log_path_for(out)))


def _cli(*args):
    from typer.testing import CliRunner

    from reidcli.cli.app import app

    return CliRunner().invoke(app, list(map(str, args)))


def _cli_args(m, out, *extra):
    return ["finetune", m["target"], "--ckpt", m["ckpt"], "-o", out, "--method", "mar", "--iters", "1",
            "-P", "2", "-K", "2", "--workers", "0", "--device", "cpu", "--images-per-bn", "0", *extra]


def _one_error_line(res) -> str:
    lines = [x for x in res.output.splitlines() if "error" in x]
    assert res.exit_code == 1 and len(lines) == 1 and "Traceback" not in res.output, res.output
    return lines[0]


@pytest.mark.parametrize("case", ["no_agents", "with_agents", "unlabelled_reference"])
def test_mar_cli_bad_input_is_one_line_exit_1_and_writes_nothing(mar, case):
    out = mar["tmp"] / "x.pt"
    if case == "no_agents":  # a plain source model, no --reference: say both ways to get agents
        line = _one_error_line(_cli(*_cli_args(mar, out)))
        assert "has no reference agents" in line and "reid pretrain --method agents" in line
        assert "--reference" in line
    elif case == "with_agents":  # agents, but RAL still needs the reference images
        ck = torch.load(mar["ckpt"], weights_only=True)
        ck["nets"]["agents"] = {"weight": torch.randn(4, DIM)}
        torch.save(ck, mar["tmp"] / "agents.pt")
        mar["ckpt"] = mar["tmp"] / "agents.pt"
        line = _one_error_line(_cli(*_cli_args(mar, out)))
        assert "pass --reference DATA" in line and "no reference agents" not in line
    else:
        blank = _with_pids(mar["ref"], mar["ref"].with_name("blank.csv"), [-1] * 16)
        line = _one_error_line(_cli(*_cli_args(mar, out, "--reference", blank)))
        assert "fewer than 2 labelled identities" in line and "blank.csv" in line
    assert not out.exists() and not list(mar["tmp"].glob(".x.pt*"))


def test_mar_cli_one_camera_target_warns_that_cml_is_dropped(mar):
    root = mar["target"].with_name("onecam.csv")
    with open(mar["target"]) as fh:
        rows = list(csv.reader(fh))
    with open(root, "w", newline="") as fh:
        csv.writer(fh).writerows([rows[0], *[[r[0], r[1], 0] for r in rows[1:]]])
    mar["target"] = root
    out = mar["tmp"] / "one.pt"
    res = _cli(*_cli_args(mar, out, "--reference", mar["ref"]))
    assert res.exit_code == 0, res.output
    assert "one camera" in res.output and "CML" in res.output and out.exists()


def test_agents_pretraining_resumes_exactly(mar):
    """An interrupted `pretrain --method agents` resumes to the weights, agents and Adam
    moments of an uninterrupted run (the engine saves the agents as an extra net)."""
    from reidcli.data.transforms import AugmentConfig
    from reidcli.io.ckpt import load_checkpoint
    from reidcli.models import ModelConfig
    from reidcli.train.config import TrainConfig
    from reidcli.train.pretrain import pretrain

    def run(out, resume=False, **kw):
        pretrain(mar["ref"], out, model=ModelConfig(arch=ARCH),
                 train=TrainConfig(epochs=2, iters_per_epoch=2, p=2, k=4, workers=0, images_per_bn=0,
                                   warmup_epochs=0.5, seed=1, **kw),
                 augment=AugmentConfig(height=H, width=W, pad=2, erasing=0.0), method="agents",
                 device="cpu", resume=resume)
        return load_checkpoint(out)

    full = run(mar["tmp"] / "full.pt")
    part = run(mar["tmp"] / "part.pt", stop_after=1)
    assert part["iteration"] == 2 and not torch.equal(part["nets"]["agents"]["weight"],
                                                      full["nets"]["agents"]["weight"])
    done = run(mar["tmp"] / "part.pt", resume=True)
    assert done["iteration"] == full["iteration"] == 4
    assert torch.equal(done["nets"]["agents"]["weight"], full["nets"]["agents"]["weight"])
    assert all(torch.equal(done["model"][k], v) for k, v in full["model"].items())
    sa, sb = done["train_state"]["optimizer"]["state"], full["train_state"]["optimizer"]["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)


def test_mar_recipe_pretrains_agents_and_adapts_with_the_fused_network(mar):
    """`--recipe mar` end to end at toy size: the recipe's network (multi-level fusion kept
    at its fused size, no neck) and methods (agents, then mar), only sizes overridden."""
    from reidcli.train.finetune import finetune_from_settings
    from reidcli.train.pretrain import pretrain_from_settings

    small = {"arch": ARCH, "pretrained": "none", "height": H, "width": W, "last_stride": 1, "device": "cpu",
             "workers": 0, "images_per_bn": 0}
    pre = pretrain_from_settings(mar["ref"], mar["tmp"] / "pre.pt", recipe="mar", epochs=1, iters_per_epoch=1,
                                 p=2, k=4, warmup_epochs=0.0, pad=2, **small)
    ck = torch.load(pre, weights_only=True)
    cfg = ck["model_config"]
    assert ck["method"] == "agents" and cfg["multilevel"] and cfg["embed_dim"] == 0 and cfg["neck"] == "none"
    fused = 16 + 64 + 128  # resnet18_quarter: layer1 + layer3 + layer4 channels
    assert ck["feat_dim"] == fused and ck["nets"]["agents"]["weight"].shape == (4, fused)
    out = finetune_from_settings(pre, None, mar["target"], mar["tmp"] / "ft.pt", recipe="mar", reference=mar["ref"],
                                 epochs=1, iters_per_epoch=2, p=2, k=4, milestones=[], mdl_warmup_epochs=0,
                                 device="cpu", workers=0, images_per_bn=0)
    ck2 = torch.load(out, weights_only=True)
    assert ck2["method"] == "mar" and ck2["train_state"]["config"]["weight_decay"] == 0.025
    assert not torch.equal(ck2["nets"]["agents"]["weight"], ck["nets"]["agents"]["weight"])


def test_features_soft_labels_are_mar_eq1_over_the_checkpoints_agents(mar):
    """`reid features --soft-labels` stores softmax(s * f.a_k) over the checkpoint's unit-norm
    agents for each image (checked against the training loss module's formula); a checkpoint
    without agents is one line, nothing written."""
    from typer.testing import CliRunner

    from reidcli.cli.app import app
    from reidcli.io.h5 import read_features
    from reidcli.losses.soft_multilabel import SoftMultilabel

    path = _pretrain_agents(mar, epochs=1)
    out = mar["tmp"] / "f.h5"
    res = CliRunner().invoke(app, list(map(str, ["features", "--ckpt", path, mar["ref"], "-o", out, "--soft-labels",
                                                 "--soft-label-scale", "10", "--workers", "0", "--device", "cpu"])))
    assert res.exit_code == 0, res.output
    split = read_features(out).splits["train"]
    agents = torch.load(path, weights_only=True)["nets"]["agents"]["weight"]
    want = SoftMultilabel(10.0)(torch.as_tensor(split.features), agents)
    got = split.extra["soft_labels"]
    assert got.shape == (len(split.paths), 4) and np.allclose(got.sum(1), 1, atol=1e-5)
    assert np.allclose(got, want.numpy(), atol=1e-5)
    bad = mar["tmp"] / "none.h5"
    res = CliRunner().invoke(app, list(map(str, ["features", "--ckpt", mar["ckpt"], mar["ref"], "-o", bad,
                                                 "--soft-labels", "--workers", "0"])))
    assert res.exit_code == 1 and "holds no reference agents" in res.output and not bad.exists()


def test_mar_steps_draw_half_target_half_reference(mar, monkeypatch):
    """Each step of P x K images is P x K / 2 target images (no identities) and P x K / 2
    labelled reference images (Zhang et al. 2020: batch 368 = 184 + 184)."""
    from reidcli.train.methods.mar import Mar

    seen, step = [], Mar.step

    def spy(self, batch, it):
        t, r = batch["target"], batch["reference"]
        seen.append((t["img"].shape[0], r["img"].shape[0], r["label"].tolist()))
        return step(self, batch, it)

    monkeypatch.setattr(Mar, "step", spy)
    _round(mar, "half.pt", train={"iters_per_epoch": 2, "p": 4, "k": 2})
    assert [(nt, nr) for nt, nr, _ in seen] == [(4, 4), (4, 4)]
    assert all(0 <= y < 4 for _, _, ys in seen for y in ys)  # the reference's 4 identities


def test_mar_recipe_and_defaults_are_the_papers_values():
    """`--recipe mar` and the library defaults hold Zhang et al. 2020's schedule and MAR's
    published loss values (docs/papers.md section 2)."""
    from reidcli.recipes import stage_settings
    from reidcli.train.methods.options import AgentsOptions, MarOptions

    pre, ft = stage_settings("mar", "pretrain"), stage_settings("mar", "finetune")
    assert pre["method"] == "agents" and pre["p"] * pre["k"] == 256
    assert (pre["epochs"], pre["lr"], pre["weight_decay"], pre["scale"]) == (60, 1e-3, 0.025, 30.0)
    assert pre["multilevel"] and pre["embed_dim"] == 0 and (pre["height"], pre["width"], pre["pad"]) == (384, 128, 7)
    assert ft["method"] == "mar" and ft["p"] * ft["k"] == 368 and ft["optimizer"] == "adam"
    assert (ft["epochs"], ft["lr"], ft["weight_decay"]) == (20, 2e-4, 0.025)
    paper = {"scale": 30.0, "lambda_1": 2e-4, "lambda_2": 50.0, "beta": 0.2, "mining_ratio": 0.005, "rj_margin": 1.0}
    assert {k: ft[k] for k in paper} == paper
    assert {k: getattr(MarOptions(), k) for k in paper} == paper and AgentsOptions().scale == 30.0


def test_se_blocks_with_multilevel_fusion_keep_the_fused_dimension():
    """Zhang et al. 2020's network by flags: SE in every bottleneck + GAP after layer1, layer3 and
    layer4 concatenated; --embed-dim 0 keeps 256 + 1024 + 2048, --embed-dim N adds an FC."""
    from reidcli.models import ModelConfig, build_model
    from reidcli.models.se_ibn import SEModule

    net = build_model(ModelConfig(arch="se_resnet50", pretrained="none", multilevel=True, embed_dim=0,
                                  neck="none")).eval()
    assert sum(isinstance(m, SEModule) for m in net.modules()) == 3 + 4 + 6 + 3
    assert net.reduce is None and net.feat_dim == 256 + 1024 + 2048
    x = torch.randn(2, 3, H, W)
    with torch.no_grad():
        maps = net.feature_maps(x)
        want = torch.cat([maps[i].mean((2, 3)) for i in (1, 3, 4)], 1)  # layer1, layer3, layer4 (0: stem)
        assert torch.allclose(net(x), want, atol=1e-5)
    fc = build_model(ModelConfig(arch="se_resnet50", pretrained="none", multilevel=True, embed_dim=2048))
    assert (fc.reduce.in_features, fc.reduce.out_features, fc.feat_dim) == (3328, 2048, 2048)


def test_agents_pretraining_on_an_unlabelled_reference_is_one_line(mar):
    """`reid pretrain --method agents` on images without identities: one line, exit 1, nothing written."""
    blank = _with_pids(mar["ref"], mar["ref"].with_name("blank.csv"), [-1] * 16)
    out = mar["tmp"] / "agents.pt"
    res = _cli("pretrain", blank, "-o", out, "--method", "agents", "--arch", ARCH, "--pretrained", "none",
               "--height", H, "--width", W, "--epochs", 1, "--iters", 1, "-P", 2, "-K", 2, "--workers", 0,
               "--device", "cpu")
    line = _one_error_line(res)
    assert "0 labelled identities" in line and "--method agents" in line and "identity labels" in line
    assert not out.exists() and not list(mar["tmp"].glob(".agents.pt*"))
