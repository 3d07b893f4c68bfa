"""`reid finetune` / `reidcli.train.finetune`: one tiny round of each method, bad input, and the
guarantee that target ground-truth ids are never read."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
import torch

from fixtures_finetune import DIM, H, W, _base, _changed, _finetune, _labels, _run, _source_ckpt, _state, _with_pids


def _adaptation_methods() -> list[str]:
    from reidcli.train.methods import method_names

    return method_names("finetune")


@pytest.mark.parametrize("method", _adaptation_methods())
def test_one_round_changes_weights(uda, method):
    from reidcli.models import load_network
    from reidcli.train.methods import TRAINING_METHODS

    kind = TRAINING_METHODS.get(method)
    extra = {"source": uda["source"]} if kind.uses_source else {}
    if kind.uses_reference:
        extra["reference"] = uda["source"]
    if kind.uses_styled:
        from fixtures_train import write_styled

        extra["styled"] = write_styled(uda["target"], uda["tmp"] / "styled")
    options = {"kd_every": 1} if "kd_every" in kind.Options.field_names() else None  # blend this round
    labels = uda["labels"] if kind.uses_labels else None
    out = _finetune(uda["ckpt"], labels, uda["target"], uda["tmp"] / "m2.pt", method,
                    options=options, **extra)
    ck = torch.load(out, weights_only=True)
    assert ck["method"] == method and ck["epoch"] == 1
    assert _changed(_state(uda["ckpt"]), ck["model"])
    model, _ = load_network(out)  # deployable as `reid features` loads it
    assert model(torch.zeros(2, 3, H, W)).shape == (2, DIM)
    if method == "mmt":
        assert set(ck["nets"]) == {"mean2", "net1", "net2"}
        assert ck["train_state"]["method"]["ema_step"] == 2
        _check_net_choice(out, ck)


def _check_net_choice(out: Path, ck: dict) -> None:
    """`reid features --net`: the deployed model is mean net 1; the others can be picked."""
    from reidcli.models import load_network
    from reidcli.utils.errors import InputError

    key = "backbone.conv1.weight"
    for name, want in (("mean1", ck["model"]), ("model", ck["model"]), ("net2", ck["nets"]["net2"])):
        got = load_network(out, net=name)[0].state_dict()
        assert torch.equal(got[key], want[key]), name
    with pytest.raises(InputError, match="mean2"):
        load_network(out, net="mean3")
    # --net mean: the average of both mean nets' L2-normalised embeddings (MMT's clustering input)
    x = torch.randn(3, 3, H, W)
    both = [torch.nn.functional.normalize(load_network(out, net=n)[0](x), dim=1) for n in ("model", "mean2")]
    mean_net = load_network(out, net="mean")[0]
    assert torch.allclose(mean_net(x), (both[0] + both[1]) / 2, atol=1e-6)
    assert not torch.allclose(both[0], both[1])  # two different mean nets, so the average is not either


def test_cli_cache_images_gives_the_same_mmt_round(uda):
    """``--cache-images`` with MMT's two views of each image (`TwoViewDataset`) and a worker
    process: every net of the checkpoint is bit-identical to the round without it."""
    outs = {}
    for name, extra in (("plain", []), ("cached", ["--cache-images", "--workers", "1"])):
        res = _run(_base(uda, uda["tmp"] / f"{name}.pt") + ["--method", "mmt", *extra])
        assert res.exit_code == 0, res.output
        outs[name] = torch.load(uda["tmp"] / f"{name}.pt", weights_only=True)
    a, b = outs["plain"], outs["cached"]
    assert b["train_state"]["config"]["cache_images"] is True
    for key in ("model", *a["nets"]):
        sa, sb = (a["model"], b["model"]) if key == "model" else (a["nets"][key], b["nets"][key])
        assert all(torch.equal(sa[k], sb[k]) for k in sa), key


def test_net_mean_is_refused_for_a_single_network(uda):
    from reidcli.models import load_network
    from reidcli.utils.errors import InputError

    with pytest.raises(InputError, match="--net mean averages the mean nets of an MMT checkpoint"):
        load_network(uda["ckpt"], net="mean")


def test_mmt_round_two_continues_mean_nets_and_adam(uda):
    from reidcli.train.methods.options import MMTOptions

    r1 = _finetune(uda["ckpt"], uda["labels"], uda["target"], uda["tmp"] / "r1.pt", "mmt")
    r2 = _finetune(r1, uda["labels"], uda["target"], uda["tmp"] / "r2.pt", "mmt", train={"iters_per_epoch": 1},
                   options={"fresh_optimizer": False})
    c1, c2 = torch.load(r1, weights_only=True), torch.load(r2, weights_only=True)
    t = c1["train_state"]["method"]["ema_step"]
    assert c2["train_state"]["method"]["ema_step"] == t + 1
    a = min(1 - 1 / (t + 1), MMTOptions().alpha)
    # one EMA step from round 1's mean nets (not from fresh copies of the nets)
    for mean, net in (("model", "net1"), ("mean2", "net2")):
        old = c1["model"] if mean == "model" else c1["nets"][mean]
        new = c2["model"] if mean == "model" else c2["nets"][mean]
        key = "backbone.conv1.weight" if "backbone.conv1.weight" in new else next(iter(new))
        expect = a * old[key] + (1 - a) * c2["nets"][net][key]
        torch.testing.assert_close(new[key], expect, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(old[key], c1["nets"][net][key])
    # Adam moments continued: more steps recorded than this round made
    steps = [float(s["step"]) for s in c2["train_state"]["optimizer"]["state"].values()]
    assert max(steps) == 3.0 and min(steps) == 1.0  # backbone continued, classifier new
    # the default (as the MMT code): a new Adam each round, the mean nets still continued
    r3 = _finetune(r1, uda["labels"], uda["target"], uda["tmp"] / "r3.pt", "mmt", train={"iters_per_epoch": 1})
    c3 = torch.load(r3, weights_only=True)
    assert {float(s["step"]) for s in c3["train_state"]["optimizer"]["state"].values()} == {1.0}
    assert c3["train_state"]["method"]["ema_step"] == t + 1


def test_ema_update_formula():
    from reidcli.train.methods.uda import blend_, ema_update_

    net, ema = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 2.0]]))
        net.bias.fill_(4.0)
        ema.weight.copy_(torch.tensor([[3.0, -1.0]]))
        ema.bias.fill_(0.0)
    a = ema_update_(ema, net, alpha=0.999, step=1000)
    assert a == pytest.approx(0.999)
    torch.testing.assert_close(ema.weight, torch.tensor([[0.999 * 3 + 0.001 * 1, -0.999 + 0.002]]))
    torch.testing.assert_close(ema.bias, torch.tensor([0.004]))
    assert ema_update_(ema, net, alpha=0.999, step=0) == 0.0  # warm-up: a copy at step 0
    torch.testing.assert_close(ema.weight, net.weight)
    blend_(ema, torch.nn.Linear(2, 1).requires_grad_(False).apply(
        lambda m: (m.weight.data.fill_(3.0), m.bias.data.fill_(0.0))), mu=0.5)
    torch.testing.assert_close(ema.weight, torch.tensor([[2.0, 2.5]]))


def test_mmt_losses_equal_their_formulas():
    import torch.nn.functional as F

    from reidcli.losses import CrossEntropyLabelSmooth, SoftEntropy, SoftTripletLoss
    from reidcli.train.methods.mmt import mmt_losses

    g = torch.Generator().manual_seed(0)
    y = torch.tensor([0, 0, 1, 1])
    mk = lambda: {"logits": torch.randn(4, 2, generator=g), "feat": torch.randn(4, 3, generator=g)}
    o1, o2, e1, e2 = mk(), mk(), mk(), mk()
    L = mmt_losses(o1, o2, e1, e2, y, CrossEntropyLabelSmooth(0.1), SoftTripletLoss(), SoftEntropy())

    def soft_ce(p, q):  # eq. 8
        return -(F.softmax(q, 1) * F.log_softmax(p, 1)).sum(1).mean()

    def trip_probs(f, pos, neg):  # eqs. 9-11: softmax over (d_ap, d_an)
        d = torch.cdist(f, f)
        i = torch.arange(4)
        return F.softmax(torch.stack([d[i, pos], d[i, neg]], 1), 1)

    def soft_tri(f, ft):
        d = torch.cdist(f, f)
        same = y[:, None] == y[None]
        pos = d.masked_fill(~same, -1e9).argmax(1)
        neg = d.masked_fill(same, 1e9).argmin(1)
        t, q = trip_probs(f, pos, neg), trip_probs(ft, pos, neg)
        return -(q * t.log()).sum(1).mean(), -t[:, 1].log().mean()

    s12, h1 = soft_tri(o1["feat"], e2["feat"])
    s21, h2 = soft_tri(o2["feat"], e1["feat"])
    torch.testing.assert_close(L["soft_ce"], soft_ce(o1["logits"], e2["logits"]) + soft_ce(o2["logits"], e1["logits"]))
    torch.testing.assert_close(L["soft_triplet"], s12 + s21, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(L["triplet"], h1 + h2, rtol=1e-4, atol=1e-5)


def test_target_ground_truth_ids_are_never_read(uda):
    """The same images with shuffled or blanked ids give bit-identical weights."""
    n = 16
    pids = [r[1] for r in list(csv.reader(open(uda["target"])))[1:]]
    shuffled = random.Random(1).sample(pids, n)
    outs = []
    for name, ids in (("orig", None), ("shuffled", shuffled), ("blank", [-1] * n)):
        tgt = uda["target"] if ids is None else _with_pids(uda["target"], uda["target"].with_name(f"{name}.csv"), ids)
        outs.append(_finetune(uda["ckpt"], uda["labels"], tgt, uda["tmp"] / f"{name}.pt", "pseudo"))
    ref = _state(outs[0])
    for o in outs[1:]:
        st = _state(o)
        assert all(torch.equal(ref[k], st[k]) for k in ref)


# -- the command ----------------------------------------------------------------------------
def test_cli_happy_path_and_output_equal_to_ckpt(uda):
    from reidcli.io.ckpt import describe_checkpoint

    ck = uda["tmp"] / "round.pt"
    ck.write_bytes(uda["ckpt"].read_bytes())
    res = _run(_base(uda, ck, ckpt=ck) + ["--method", "pseudo"])
    assert res.exit_code == 0, res.output
    info = describe_checkpoint(ck)
    assert info["method"] == "pseudo" and info["num_classes"] == 4
    assert not list(uda["tmp"].glob(".*.partial"))
    from reidcli.train.settings import read_config

    resolved = read_config(ck.with_name("round.config.toml"), "finetune")
    assert resolved["method"] == "pseudo" and resolved["lr"] == info["provenance"][-1]["params"]["config"]["lr"]


def test_cli_output_to_a_fifo_writes_one_checkpoint_and_no_side_files(uda):
    """-o a FIFO (or a device such as /dev/null): the checkpoint goes into it once, at the
    end; no .partial, log or config is written beside it (that would be /dev for /dev/null)."""
    import os

    from fixtures_contracts import fifo_drained_into

    from reidcli.io.ckpt import describe_checkpoint

    folder = uda["tmp"] / "pipes"
    folder.mkdir()
    fifo = folder / "round.pt"
    os.mkfifo(fifo)
    with fifo_drained_into(fifo, uda["tmp"] / "copy.pt") as copy:
        res = _run(_base(uda, fifo) + ["--method", "pseudo", "--epochs", 2])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in folder.iterdir()) == ["round.pt"]  # the FIFO alone
    info = describe_checkpoint(copy)
    assert info["method"] == "pseudo" and info["epoch"] == 2  # the last epoch's, written once


@pytest.mark.parametrize("case,words", [
    ("other_paths", "another features file"),
    ("fewer_paths", "training images"),
    ("all_outliers", "0 cluster"),
    ("one_cluster", "1 cluster holds all 16 clustered images (0 outliers of 16; dbscan-jaccard, --eps 0.9, --min-samples 4"),
    ("joint_no_source", "--source"),
    ("foreign_method", "cannot start from"),
    ("bad_method", "did you mean 'mmt'"),
])
def test_cli_bad_input_one_line_and_checkpoint_untouched(uda, case, words):
    tmp, ck = uda["tmp"], uda["tmp"] / "prev.pt"
    ck.write_bytes(uda["ckpt"].read_bytes())
    before = ck.read_bytes()
    labels, extra = uda["labels"], []
    if case == "other_paths":
        labels = _labels(tmp / "l.h5", uda["target"], [0] * 8 + [1] * 8,
                         paths=[f"other/{i}.jpg" for i in range(16)])
    elif case == "fewer_paths":
        labels = _labels(tmp / "l.h5", uda["source"], [0, 1], paths=["img/00_0.jpg", "img/00_1.jpg"])
    elif case == "all_outliers":
        labels = _labels(tmp / "l.h5", uda["target"], [-1] * 16)
    elif case == "one_cluster":  # everything in one cluster: the radius was too large
        labels = _labels(tmp / "l.h5", uda["target"], [0] * 16,
                         attrs={"method": "dbscan-jaccard", "eps": 0.9, "min_samples": 4})
        words += "); pseudo-labels need at least 2 clusters: re-cluster with a smaller --eps"
    elif case == "joint_no_source":
        extra = ["--method", "joint"]
    elif case == "foreign_method":
        _source_ckpt(ck, method="cyclegan")
        before = ck.read_bytes()
    elif case == "bad_method":
        extra = ["--method", "mmtt"]
    res = _run(_base(uda, ck, labels=labels, ckpt=ck) + extra)
    assert res.exit_code == 1, res.output
    err = res.stderr if hasattr(res, "stderr") else res.output
    lines = [ln for ln in err.splitlines() if "error" in ln.lower()]
    assert len(lines) == 1 and lines[0].startswith("reid finetune: error:"), err
    assert words in lines[0] and "Traceback" not in err
    assert ck.read_bytes() == before
    assert not list(tmp.glob(".*.partial"))


def test_kd_blends_every_n_epochs_across_rounds(uda):
    src = _state(uda["ckpt"])
    r1 = _finetune(uda["ckpt"], uda["labels"], uda["target"], uda["tmp"] / "k1.pt", "kd",
                   options={"kd_every": 2})
    c1 = torch.load(r1, weights_only=True)
    assert c1["train_state"]["method"]["kd_epochs"] == 1
    assert not _changed(src, c1["model"])  # W waits for the blend
    assert _changed(src, c1["nets"]["intermediate"])
    r2 = _finetune(r1, uda["labels"], uda["target"], uda["tmp"] / "k2.pt", "kd", options={"kd_every": 2})
    c2 = torch.load(r2, weights_only=True)
    assert c2["train_state"]["method"]["kd_epochs"] == 2
    key = "backbone.conv1.weight"
    torch.testing.assert_close(c2["model"][key], 0.5 * src[key] + 0.5 * c2["nets"]["intermediate"][key])


# -- options that do not apply are errors, never dropped --------------------------------------
@pytest.mark.parametrize("method,options,param", [
    ("pseudo", {"alpha": 0.9}, "alpha"),          # an MMT option
    ("mmt", {"margin": 0.5}, "margin"),           # MMT's triplet is margin-free (softmax triplet)
    ("kd", {"theta": 0.1}, "theta"),
    ("joint", {"wings": 2}, "wings"),
])
def test_library_rejects_an_option_of_another_method(uda, method, options, param):
    from reidcli.utils.params import ParamError

    with pytest.raises(ParamError, match=rf"^{param} does not apply to --method {method}") as e:
        _finetune(uda["ckpt"], uda["labels"], uda["target"], uda["tmp"] / "x.pt", method, options=options)
    assert e.value.param == param
    assert not (uda["tmp"] / "x.pt").exists()


def test_library_rejects_the_options_object_of_another_method(uda):
    from reidcli.train.methods.options import KDOptions
    from reidcli.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="--method pseudo takes PseudoOptions, not KDOptions"):
        _finetune(uda["ckpt"], uda["labels"], uda["target"], uda["tmp"] / "x.pt", "pseudo", options=KDOptions())


def test_library_rejects_source_for_a_target_only_method(uda):
    from reidcli.utils.params import ParamError

    with pytest.raises(ParamError, match="source does not apply to --method pseudo"):
        _finetune(uda["ckpt"], uda["labels"], uda["target"], uda["tmp"] / "x.pt", "pseudo", source=uda["source"])


def test_options_object_equals_its_dict(uda):
    """PseudoOptions(margin=0.5) and {"margin": 0.5} train the same weights."""
    from reidcli.train.methods.options import PseudoOptions

    a = _finetune(uda["ckpt"], uda["labels"], uda["target"], uda["tmp"] / "a.pt", "pseudo",
                  options=PseudoOptions(margin=0.5))
    b = _finetune(uda["ckpt"], uda["labels"], uda["target"], uda["tmp"] / "b.pt", "pseudo",
                  options={"margin": 0.5})
    c = _finetune(uda["ckpt"], uda["labels"], uda["target"], uda["tmp"] / "c.pt", "pseudo")
    sa, sb = _state(a), _state(b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    triplet = [json.loads(p.with_name(p.stem + ".log.jsonl").read_text().splitlines()[-1])["triplet"]
               for p in (a, c)]
    assert triplet[0] > triplet[1]  # the larger margin (0.5 vs 0.3) reached the loss


@pytest.mark.parametrize("args,flag", [
    (["--method", "pseudo", "--alpha", "0.9"], "--alpha does not apply to --method pseudo"),
    (["--method", "mmt", "--margin", "0.5"], "--margin does not apply to --method mmt"),
    (["--method", "joint", "--source", "SRC", "--kd-every", "2"], "--kd-every does not apply to --method joint"),
    (["--method", "kd", "--mu", "0"], "--mu must be a float in (0, 1]; got 0.0"),
])
def test_cli_inapplicable_or_bad_flag_is_one_line(uda, args, flag):
    out = uda["tmp"] / "x.pt"
    args = [str(uda["source"]) if a == "SRC" else a for a in args]
    res = _run(_base(uda, out) + args)
    assert res.exit_code == (2 if "does not apply" in flag else 1), res.output  # 2: bad usage
    err = res.stderr if hasattr(res, "stderr") else res.output
    lines = [ln for ln in err.splitlines() if "error" in ln.lower()]
    assert len(lines) == 1 and lines[0].startswith(f"reid finetune: error: {flag}"), err
    assert not out.exists()


def test_cli_passes_only_given_flags(uda, monkeypatch):
    """No flag given: the library gets no setting, so its dataclasses decide every default."""
    import reidcli.train.finetune as ft

    seen = {}
    monkeypatch.setattr(ft, "finetune", lambda *a, **kw: seen.update(kw) or Path(a[3]))
    res = _run([uda["target"], "--ckpt", uda["ckpt"], "--labels", uda["labels"], "-o", uda["tmp"] / "x.pt"])
    assert res.exit_code == 0, res.output
    assert seen["method"] == ft.DEFAULT_METHOD and seen["options"] == {} and seen["augment"] == {}
    assert seen["train"] == ft.FinetuneConfig()
    res = _run([uda["target"], "--ckpt", uda["ckpt"], "--labels", uda["labels"], "-o", uda["tmp"] / "x.pt",
                "--method", "kd", "--mu", "0.25", "--iters", "7", "--no-amp", "--erasing", "0"])
    assert res.exit_code == 0, res.output
    assert seen["options"] == {"mu": 0.25} and seen["augment"] == {"erasing": 0.0}
    assert seen["train"] == ft.FinetuneConfig(iters_per_epoch=7, amp=False)


def test_cli_config_file_under_the_command_line(uda, monkeypatch):
    """Keys of a [finetune] table (flag names or setting names) reach the library; a flag
    given on the command line wins; keys of [pretrain] are ignored."""
    import reidcli.train.finetune as ft

    seen = {}
    monkeypatch.setattr(ft, "finetune", lambda *a, **kw: seen.update(kw) or Path(a[3]))
    cfg = uda["tmp"] / "r.toml"
    cfg.write_text('[pretrain]\nlr = 9.0\n[finetune]\nmethod = "kd"\nmu = 0.25\niters = 7\nlr = 0.001\n'
                   'amp = false\n')
    base = [uda["target"], "--ckpt", uda["ckpt"], "--labels", uda["labels"], "-o", uda["tmp"] / "x.pt"]
    res = _run([*base, "--config", cfg, "--iters", "5"])
    assert res.exit_code == 0, res.output
    assert seen["method"] == "kd" and seen["options"] == {"mu": 0.25}
    assert seen["train"] == ft.FinetuneConfig(iters_per_epoch=5, lr=0.001, amp=False)
    assert seen["config_file"] == cfg


def _help_of(command: str) -> dict[str, str]:
    """``--flag -> help text`` of a command's options (as ``--help`` renders them)."""
    import typer

    from reidcli.cli.app import app

    cmd = typer.main.get_command(app).commands[command]
    return {o: p.help or "" for p in cmd.params for o in getattr(p, "opts", []) if o.startswith("--")}


def test_cli_help_shows_the_dataclass_defaults():
    from reidcli.train.config import FinetuneConfig
    from reidcli.train.methods.options import JointOptions, KDOptions, MMTOptions

    helps = _help_of("finetune")
    for flag, value in (("--iters", FinetuneConfig().iters_per_epoch), ("--alpha", MMTOptions().alpha),
                        ("--kd-every", KDOptions().kd_every), ("--theta", JointOptions().theta)):
        assert helps[flag].endswith(f"[default: {value}]"), (flag, helps[flag])
    assert FinetuneConfig().workers is None and "default: auto" in helps["--workers"]  # from the cores
    assert helps["--margin"].endswith(f"joint {JointOptions().margin:g}]")
    assert f"kd {KDOptions().center_weight:g}" in helps["--center-weight"]


def test_cli_a_round_failing_on_a_bad_image_leaves_no_log_and_the_previous_files(uda):
    """A target image found unreadable in the first batches: one line that says how to fix it
    once, exit 1, the previous checkpoint and its log as they were, no hidden .partial or log."""
    tmp = uda["tmp"]
    for img in (uda["target"].parent / "img").glob("*.jpg"):
        img.write_bytes(b"")  # every image: whichever the sampler draws first is bad
    out, log = tmp / "round.pt", tmp / "round.log.jsonl"
    out.write_bytes(b"previous checkpoint")
    log.write_text('{"type": "epoch"}\n')
    res = _run(_base(uda, out) + ["--method", "pseudo"])
    assert res.exit_code == 1, res.output
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("reid finetune: error: ") and "zero-byte image; replace or delete it and rerun " \
        "(training images must all be readable)" in line, res.stderr
    assert out.read_bytes() == b"previous checkpoint" and log.read_text() == '{"type": "epoch"}\n'
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith(".")) == []


def test_the_log_names_the_output_not_its_temporary(uda):
    """finetune trains into a hidden ``.m2.pt.partial`` renamed at the end; its epoch line
    names ``m2.pt``, the file the user will find."""
    import logging

    messages: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    logger, handler = logging.getLogger("reidcli.train.hooks"), _Keep(logging.INFO)
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    out = uda["tmp"] / "m2.pt"
    try:
        _finetune(uda["ckpt"], uda["labels"], uda["target"], out, "pseudo", train={"iters_per_epoch": 1})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    [line] = [m for m in messages if m.startswith("epoch ")]
    assert line.endswith(f"-> {out}") and ".partial" not in line, line
