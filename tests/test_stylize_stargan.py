"""StarGAN camera-style transfer: shapes, losses against their formulas, a tiny fit through
the engine on `reid synth` data at 32x16, resume, sample sheets and apply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch


TINY = {"g_conv_dim": 8, "d_conv_dim": 8, "g_repeat": 1, "sample_every": 3}


def _train(**kw):
    from reidcli.stylize.train import stargan_train_config

    return stargan_train_config(**{"epochs": 1, "iters_per_epoch": 6, "p": 4, "workers": 0, "amp": False, **kw})


@pytest.mark.parametrize("size", [(32, 16), (64, 32)])
def test_generator_and_discriminator_shapes(size):
    from reidcli.stylize.stargan import Discriminator, Generator, auto_repeat

    h, w = size
    G, D = Generator(3, 8, 1), Discriminator(3, h, w, 8)
    x = torch.randn(2, 3, h, w)
    y = G(x, torch.tensor([0, 2]))
    assert y.shape == x.shape and y.abs().max() <= 1
    src, cls = D(y)
    r = auto_repeat(h, w)
    assert src.shape == (2, 1, h >> r, w >> r) and cls.shape == (2, 3)
    assert not torch.allclose(G(x, torch.tensor([0, 0])), G(x, torch.tensor([1, 1])))


def test_gradient_penalty_equals_its_formula():
    from reidcli.stylize.stargan import gradient_penalty

    w = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[0.0, 1.0], [-1.0, 2.0]]]])  # (2, 1, 2, 2)
    # D(x) = sum(w * x^2) per sample: grad = 2 w x, so the penalty is mean((||2 w x|| - 1)^2)
    gp = gradient_penalty(lambda z: (w * z[:, 0] ** 2).sum((1, 2)), x)
    norms = [(2 * w * x[i, 0]).pow(2).sum().sqrt() for i in range(2)]
    expect = sum((n - 1) ** 2 for n in norms) / 2
    assert torch.allclose(gp, expect)
    gp.backward()  # create_graph: the penalty itself is differentiable


class _LinearD(torch.nn.Module):
    """A hand-made critic: D_src = mean of the pixels, D_cls = fixed logits per sample."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return x.mean((1, 2, 3)).view(-1, 1, 1, 1), self.logits[: x.shape[0]] + 0 * x.sum()


def test_d_and_g_losses_against_their_formulas():
    import torch.nn.functional as F

    from reidcli.stylize.stargan import d_loss, g_loss

    real = torch.full((2, 3, 4, 4), 0.5)
    fake = torch.full((2, 3, 4, 4), -0.25)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    cam = torch.tensor([0, 0])
    D = _LinearD(logits)
    out = d_loss(D, real, fake, cam, lambda_cls=1.0, lambda_gp=10.0, alpha=torch.tensor([0.3, 0.7]))
    # grad of mean over 48 pixels is 1/48 everywhere: norm = sqrt(48) / 48
    gp = (48 ** 0.5 / 48 - 1) ** 2
    ce = F.cross_entropy(logits, cam)
    assert torch.allclose(out["d_adv"], torch.tensor(-0.5 - 0.25))
    assert torch.allclose(out["d_gp"], torch.tensor(gp))
    assert torch.allclose(out["loss"], -0.75 + ce + 10 * gp)

    class Shift(torch.nn.Module):  # G(x, c) = x - 0.5 (c ignored): reconstruction error 1
        num_cams = 2

        def forward(self, x, c):
            return x - 0.5

    g = g_loss(D, Shift(), real, cam, torch.tensor([1, 1]), lambda_cls=1.0, lambda_rec=10.0)
    assert torch.allclose(g["g_adv"], torch.tensor(-0.0))
    assert torch.allclose(g["g_rec"], torch.tensor(1.0))
    assert torch.allclose(g["loss"], F.cross_entropy(logits, torch.tensor([1, 1])) + 10.0)


def test_alternation_steps_the_critic_n_critic_times_per_generator_step():
    from reidcli.train.methods import get_method

    m = get_method("stargan", {})  # StarGAN's n_critic 5 by default
    assert [m.optimizers_to_step(i) for i in range(7)] == [{"d"}] * 5 + [{"main"}, {"d"}]


def test_defaults_are_stargans():
    """Choi et al. 2018: lambda_cls 1, lambda_rec 10, lambda_gp 10, n_critic 5, Adam 1e-4
    with betas (0.5, 0.999); the image size defaults to the re-ID input size."""
    import inspect

    from reidcli.data.transforms import AugmentConfig
    from reidcli.stylize.options import StarGANOptions
    from reidcli.stylize.train import fit_stargan, stargan_train_config

    o = StarGANOptions()
    assert (o.lambda_cls, o.lambda_rec, o.lambda_gp, o.n_critic, tuple(o.betas)) == (1.0, 10.0, 10.0, 5, (0.5, 0.999))
    t = stargan_train_config()
    assert (t.optimizer, t.lr, t.weight_decay) == ("adam", 1e-4, 0.0)
    a = AugmentConfig()
    assert inspect.signature(fit_stargan).parameters["image_size"].default == (a.height, a.width)


def test_tiny_fit_changes_the_generator_logs_finite_losses_and_sheets(synth_market, tmp_path):
    from reidcli.stylize.model import load_style_model
    from reidcli.stylize.train import fit_stargan

    out = fit_stargan(synth_market, tmp_path / "g.pt", options=TINY, train=_train(), image_size=(32, 16),
                      device="cpu")
    sm = load_style_model(out)
    assert sm.method == "stargan" and len(sm.cameras) >= 2 and sm.input_size == (32, 16)
    rows = [json.loads(line) for line in (tmp_path / "g.log.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r["type"] == "step"]
    for key in ("d_loss", "d_gp", "g_loss", "g_rec", "g_cls"):
        assert all(torch.isfinite(torch.tensor(r[key])) for r in steps if key in r)
        assert any(key in r for r in steps)
    # 5 steps are critic steps only: the generator keeps its (seeded) initial weights
    d_only = load_style_model(fit_stargan(synth_market, tmp_path / "d.pt", options=TINY,
                                          train=_train(iters_per_epoch=5), image_size=(32, 16), device="cpu"))
    from reidcli.stylize.stargan import Generator
    from reidcli.utils.seed import seed_everything

    seed_everything(0)  # fit_stargan seeds with TrainConfig.seed before building the networks
    init = Generator(len(sm.cameras), 8, 1).state_dict()
    assert all(torch.equal(v, d_only.state[k]) for k, v in init.items())
    changed = [k for k, v in d_only.state.items() if not torch.equal(v, sm.state[k])]
    assert changed  # the sixth step, a generator step, updated it
    # both optimisers are Adam at StarGAN's lr and betas (the generator's is the engine's)
    from reidcli.io.ckpt import load_checkpoint

    ts = load_checkpoint(tmp_path / "g.pt", kind="stylize")["train_state"]
    for opt in (ts["optimizer"], ts["extra_optimizers"]["d"]):
        assert [(g["lr"], tuple(g["betas"])) for g in opt["param_groups"]] == [(1e-4, (0.5, 0.999))]
    assert {k for k in ts["extra_optimizers"]} == {"d"}
    from tests.fixtures_contracts import check_names, documented  # docs/formats.md names every key

    ck = load_checkpoint(tmp_path / "g.pt", kind="stylize")
    check_names(set(ck), documented(("Checkpoints", "Keys")), "StarGAN checkpoint keys")
    check_names(set(ck["model_config"]), documented(("Style models", "model_config keys of a style model")),
                "StarGAN model_config")
    sheets = sorted((tmp_path / "g.samples").glob("*.png"))
    assert sheets
    from reidcli.data.images import read_image

    img = read_image(sheets[0])
    assert img.shape[1] == (len(sm.cameras) + 1) * (16 + 2)


def test_resume_continues_exactly(synth_market, tmp_path):
    from reidcli.io.ckpt import load_checkpoint
    from reidcli.stylize.train import fit_stargan

    kw = {"options": TINY, "image_size": (32, 16), "device": "cpu"}
    fit_stargan(synth_market, tmp_path / "full.pt", train=_train(epochs=2, iters_per_epoch=3), **kw)
    fit_stargan(synth_market, tmp_path / "part.pt", train=_train(epochs=2, iters_per_epoch=3, stop_after=1), **kw)
    assert load_checkpoint(tmp_path / "part.pt", kind="stylize")["epoch"] == 1
    import shutil

    from reidcli.utils.errors import InputError

    other = tmp_path / "other"  # another dataset (one image fewer): refused, the checkpoint unchanged
    shutil.copytree(synth_market, other)
    sorted((other / "bounding_box_train").glob("*.jpg"))[0].unlink()
    before = (tmp_path / "part.pt").read_bytes()
    with pytest.raises(InputError, match=rf"^--resume: .*part.pt was started on DATA {synth_market.resolve()} \("):
        fit_stargan(other, tmp_path / "part.pt", train=_train(epochs=2, iters_per_epoch=3), resume=True, **kw)
    assert (tmp_path / "part.pt").read_bytes() == before
    fit_stargan(synth_market, tmp_path / "part.pt", train=_train(epochs=2, iters_per_epoch=3), resume=True, **kw)
    a, b = (load_checkpoint(tmp_path / f, kind="stylize") for f in ("full.pt", "part.pt"))
    assert b["epoch"] == 2
    for k in a["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], atol=1e-6), k
    for k in a["nets"]["D"]:
        assert torch.allclose(a["nets"]["D"][k], b["nets"]["D"][k], atol=1e-6), k


def test_stargan_apply_and_refusals(synth_market, tmp_path):
    from reidcli.data.layouts import load_dataset
    from reidcli.io.ckpt import load_checkpoint
    from reidcli.stylize import apply_style
    from reidcli.stylize.train import fit_stargan
    from reidcli.utils.errors import FormatError, InputError

    model = fit_stargan(synth_market, tmp_path / "g.pt", options=TINY, train=_train(iters_per_epoch=1),
                        image_size=(32, 16), device="cpu")
    with pytest.raises(FormatError, match="camera-style model"):
        load_checkpoint(model)
    res = apply_style(model, synth_market, tmp_path / "s", cams="1", device="cpu")
    back = load_dataset(Path(res["out"]))
    assert res["images"] == len(back.split("train")) > 0
    assert {r.camid for r in back.split("train")} == {0}
    # batched through the generator (a last partial batch too) = one image at a time
    import numpy as np

    from reidcli.data.images import read_image
    from reidcli.stylize.manifest import read_manifest

    one = apply_style(model, synth_market, tmp_path / "b1", cams="all", device="cpu", batch_size=1)["out"]
    many = apply_style(model, synth_market, tmp_path / "b7", cams="all", device="cpu", batch_size=7)["out"]
    rows = read_manifest(one)
    cams = {str(c + 1) for c in load_checkpoint(model, kind="stylize")["model_config"]["cameras"]}
    assert len(rows) % 7 and rows == read_manifest(many) and {r["style_cam"] for r in rows} == cams
    diff = [np.abs(read_image(Path(one) / r["output"]).astype(int) - read_image(Path(many) / r["output"]))
            for r in rows]
    assert all(d.shape == (32, 16, 3) for d in diff)
    assert max(d.max() for d in diff) <= 3 and np.mean(diff) < 0.05  # JPEG of float-level differences
    from reidcli.stylize.apply import styler
    from reidcli.stylize.model import load_style_model

    sm = load_style_model(model)
    st = styler(sm, "cpu")
    imgs = [st.prepare(read_image(r["original"])) for r in rows[:5]]
    srcs, dsts = [int(r["source_cam"]) - 1 for r in rows[:5]], [int(r["style_cam"]) - 1 for r in rows[:5]]
    batch = st.run(imgs, srcs, dsts)
    for i in range(5):
        assert np.abs(batch[i].astype(int) - st.run(imgs[i:i + 1], srcs[i:i + 1], dsts[i:i + 1])[0]).max() <= 1
    with pytest.raises(Exception, match="batch_size"):
        apply_style(model, synth_market, tmp_path / "b0", device="cpu", batch_size=0)
    assert not (tmp_path / "b0").exists()
    with pytest.raises(InputError, match="multiples of 4"):
        fit_stargan(synth_market, tmp_path / "x.pt", options=TINY, train=_train(), image_size=(30, 16))
    assert not (tmp_path / "x.pt").exists()
