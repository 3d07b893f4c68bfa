"""`reid stylize` with the colour-statistics method: the transfer's moments, the styled
tree's naming and manifest, the checkpoint kind and bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner


runner = CliRunner()


def _rows(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _lab_pixels(rng, n, mean, scale):
    return (rng.normal(size=(n, 3)) @ np.diag(scale) + mean).astype(np.float64)


def test_color_transfer_maps_source_onto_target_moments_exactly():
    from reidcli.stylize.color import CameraStats, PairTransform

    rng = np.random.default_rng(0)
    src = CameraStats.from_pixels(_lab_pixels(rng, 4000, [40, 10, -5], [8, 6, 3]))
    mix = np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.4], [0.2, 0.0, 1.0]])
    dst = CameraStats.from_pixels(_lab_pixels(rng, 3000, [60, -4, 12], [12, 3, 5]) @ mix.T)
    out = PairTransform.between(src, dst).lab(src.sample)
    np.testing.assert_allclose(out.mean(0), dst.mean, atol=1e-3)
    np.testing.assert_allclose(np.cov(out, rowvar=False, bias=True), dst.cov, atol=1e-2)
    assert not np.allclose(src.mean, dst.mean, atol=1)  # the test moves something


def test_fast_image_path_equals_the_exact_lab_map():
    from reidcli.stylize.color import CameraStats, PairTransform, lab_to_rgb, rgb_to_lab

    rng = np.random.default_rng(3)
    src = CameraStats.from_pixels(rgb_to_lab(rng.integers(0, 256, (4000, 1, 3), dtype=np.uint8)).reshape(-1, 3))
    dst = CameraStats.from_pixels(rgb_to_lab(rng.integers(40, 200, (4000, 1, 3), dtype=np.uint8)).reshape(-1, 3))
    t = PairTransform.between(src, dst)
    img = rng.integers(0, 256, (64, 32, 3), dtype=np.uint8)
    exact = lab_to_rgb(t.lab(rgb_to_lab(img)))
    fast = t.image(img)
    assert np.abs(exact.astype(int) - fast).max() <= 1 and (exact != fast).mean() < 0.01
    assert np.abs(fast.astype(int) - img).mean() > 5  # it changes the image


def test_tone_curve_matches_lightness_quantiles():
    from reidcli.stylize.color import N_QUANTILES, CameraStats, tone_curve

    rng = np.random.default_rng(1)
    src = CameraStats.from_pixels(np.c_[rng.uniform(10, 50, 5000), np.zeros((5000, 2))])
    dst = CameraStats.from_pixels(np.c_[rng.beta(5, 2, 5000) * 100, np.zeros((5000, 2))])
    mapped = tone_curve(src.sample[:, 0].astype(np.float64), src, dst)
    levels = np.linspace(0, 1, N_QUANTILES)
    np.testing.assert_allclose(np.quantile(mapped, levels[5:-5]), dst.quantiles[5:-5], atol=1.0)


def test_lab_round_trip():
    from reidcli.stylize.color import lab_to_rgb, rgb_to_lab

    img = np.random.default_rng(2).integers(0, 256, (8, 4, 3), dtype=np.uint8)
    assert np.abs(lab_to_rgb(rgb_to_lab(img)).astype(int) - img).max() <= 1


def _cam_mean(root: Path, cam: int, split: str = "train") -> np.ndarray:
    from reidcli.data.images import read_image
    from reidcli.data.layouts import load_dataset
    from reidcli.stylize.color import rgb_to_lab

    ds = load_dataset(root)
    return np.mean([rgb_to_lab(read_image(ds.abspath(r))).reshape(-1, 3).mean(0)
                    for r in ds.split(split) if r.camid == cam], axis=0)


@pytest.fixture(scope="module")
def styled(synth_market, tmp_path_factory):
    from reidcli.stylize import apply_style, fit_style

    tmp = tmp_path_factory.mktemp("stylize")
    model = fit_style(synth_market, tmp / "style.pt", method="color")
    res = apply_style(model, synth_market, tmp / "styled", cams="all")
    return model, Path(res["out"]), res


def test_apply_moves_images_toward_the_style_camera(synth_market, styled):
    from reidcli.data.layouts import load_dataset

    _, out, _ = styled
    rows = _rows(out / "manifest.csv")
    ds = load_dataset(synth_market)
    cams = sorted({r.camid for r in ds.split("train")})
    means = {c: _cam_mean(synth_market, c) for c in cams}
    from reidcli.data.images import read_image
    from reidcli.stylize.color import rgb_to_lab

    before, after = [], []
    for row in rows:
        t = int(row["style_cam"]) - 1
        orig = rgb_to_lab(read_image(row["original"])).reshape(-1, 3).mean(0)
        new = rgb_to_lab(read_image(out / row["output"])).reshape(-1, 3).mean(0)
        before.append(np.linalg.norm(orig - means[t]))
        after.append(np.linalg.norm(new - means[t]))
    assert np.mean(after) < 0.6 * np.mean(before)


def test_styled_tree_reparses_with_same_ids_and_style_cameras(synth_market, styled):
    from reidcli.data.layouts import load_dataset

    _, out, res = styled
    src = load_dataset(synth_market)
    back = load_dataset(out)
    assert back.format == src.format
    rows = _rows(out / "manifest.csv")
    assert res["images"] == len(rows) == len(back.split("train"))
    n_cams = len({r.camid for r in src.split("train")})
    assert len(rows) == len(src.split("train")) * (n_cams - 1)
    by_path = {r.path: r for r in back.split("train")}
    orig = {str(src.abspath(r)): r for r in src.split("train")}
    for row in rows:
        rec, o = by_path[row["output"]], orig[row["original"]]
        assert rec.pid == o.pid == int(row["pid"])
        assert rec.camid + 1 == int(row["style_cam"]) != int(row["source_cam"]) == o.camid + 1
    assert [r.path for r in back.split("query")] == [r.path for r in src.split("query")]


def test_name_collisions_are_bumped():
    from reidcli.stylize.naming import Namer

    n = Namer()
    a = n.name("bounding_box_train/0002_c1s1_000451_03.jpg", 2)
    b = n.name("bounding_box_train/0002_c2s1_000451_03.jpg", 2)
    assert a == "bounding_box_train/0002_c3s1_000451_03.jpg"
    assert b == "bounding_box_train/0002_c3s1_000451_04.jpg"
    assert n.name("0001_c2_f0046182.jpg", 0) == "0001_c1_f0046182.jpg"


def test_checkpoint_kind_refused_by_reid_loaders_and_described(styled):
    from reidcli.io.ckpt import describe_checkpoint, load_checkpoint
    from reidcli.utils.errors import FormatError

    model, _, _ = styled
    with pytest.raises(FormatError, match="camera-style model"):
        load_checkpoint(model)
    info = describe_checkpoint(model)
    assert info["kind"] == "stylize" and info["method"] == "color"


def test_cli_fit_apply_and_bad_input(synth_market, styled, tmp_path):
    from reidcli.cli.app import app

    model, out, _ = styled
    res = runner.invoke(app, ["features", "--ckpt", str(model), str(synth_market), "-o", str(tmp_path / "f.h5")])
    assert res.exit_code == 1 and "camera-style model" in res.output and not (tmp_path / "f.h5").exists()
    res = runner.invoke(app, ["stylize", "apply", "--model", str(model), str(synth_market), "-o", str(out)])
    assert res.exit_code == 1 and "--force" in res.output
    res = runner.invoke(app, ["stylize", "apply", "--model", str(model), str(synth_market), "-o",
                              str(tmp_path / "s"), "--cams", "1,42"])
    assert res.exit_code == 1 and "c42" in res.output and not (tmp_path / "s").exists()
    res = runner.invoke(app, ["stylize", "fit", str(synth_market), "-o", str(tmp_path / "m.pt"),
                              "--max-images", "0"])
    assert res.exit_code == 1 and "--max-images" in res.output and not (tmp_path / "m.pt").exists()
    res = runner.invoke(app, ["stylize", "fit", str(synth_market), "-o", str(tmp_path / "m.pt"), "--max-images", "2"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["stylize", "apply", "--model", str(tmp_path / "m.pt"), str(synth_market),
                              "-o", str(tmp_path / "s"), "--cams", "2", "--split", "query"])
    assert res.exit_code == 0, res.output
    rows = _rows(tmp_path / "s" / "manifest.csv")
    assert rows and {r["style_cam"] for r in rows} == {"2"} and {r["split"] for r in rows} == {"query"}


def test_fewer_than_two_cameras_is_refused(tmp_path):
    from reidcli.stylize import fit_style
    from reidcli.utils.errors import InputError
    from tests.conftest import write_jpeg

    root = tmp_path / "Market-1501"
    for i, folder in enumerate(("bounding_box_train", "query", "bounding_box_test")):
        write_jpeg(root / folder / f"000{i + 1}_c1s1_000451_01.jpg", seed=i)
    with pytest.raises(InputError, match="at least two cameras"):
        fit_style(root, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()
    # images without cameras (a <pid>/<image> folder): said so, for either method
    for pid in (1, 2):
        write_jpeg(tmp_path / "plain" / f"{pid:04d}" / f"{pid}.jpg", seed=pid)
    for method in ("color", "stargan"):
        with pytest.raises(InputError, match="no camera ids"):
            fit_style(tmp_path / "plain", tmp_path / "p.pt", method=method)
    assert not list(tmp_path.glob("p.*"))


def test_styled_images_join_their_originals_label(synth_market, styled):
    from reidcli.data.layouts import load_dataset
    from reidcli.stylize.manifest import add_styled

    _, out, _ = styled
    ds = load_dataset(synth_market)
    recs = ds.split("train")
    y = np.arange(len(recs)) % 3 - (np.arange(len(recs)) == 0)  # first one an outlier (-1)
    recs2, y2 = add_styled(recs, y, ds.root, out)
    n_cams = len({r.camid for r in recs})
    assert len(recs2) == len(recs) * n_cams and recs2[: len(recs)] == recs
    orig = {str(ds.abspath(r)): i for i, r in enumerate(recs)}
    for row in _rows(out / "manifest.csv"):
        j = next(k for k in range(len(recs), len(recs2)) if recs2[k].path == str((out / row["output"]).resolve()))
        assert y2[j] == y[orig[row["original"]]] and recs2[j].camid == int(row["style_cam"]) - 1
        assert Path(recs2[j].path).is_file()


@pytest.mark.parametrize("method", ["pseudo", "joint"])
def test_finetune_with_styled_positives(synth_market, styled, tmp_path, caplog, method):
    import logging

    import torch

    from reidcli.data.layouts import load_dataset
    from reidcli.io.ckpt import make_checkpoint, save_checkpoint
    from reidcli.io.h5 import LabelsFile, write_labels
    from reidcli.models import ModelConfig, build_model
    from reidcli.train.config import FinetuneConfig
    from reidcli.train.finetune import finetune
    from reidcli.utils.errors import InputError

    _, out, _ = styled
    cfg = ModelConfig(arch="resnet18_quarter", num_classes=4)
    net = build_model(cfg)
    ckpt = save_checkpoint(tmp_path / "m.pt", make_checkpoint(
        model_config=cfg.to_dict(), model_state=net.state_dict(), input_size=(32, 16), method="supervised",
        epoch=1, feat_dim=net.feat_dim))
    recs = load_dataset(synth_market).split("train")
    pids = sorted({r.pid for r in recs})
    labels = write_labels(tmp_path / "l.h5", LabelsFile(
        labels=np.array([pids.index(r.pid) for r in recs]), paths=[r.path for r in recs],
        centers=np.zeros((len(pids), net.feat_dim), np.float32), attrs={"method": "test"}))
    train = FinetuneConfig(epochs=1, iters_per_epoch=1, p=3, k=2, images_per_bn=0, workers=0)
    with caplog.at_level(logging.INFO, logger="reidcli.train.finetune"):
        res = finetune(ckpt, labels, synth_market, tmp_path / "m2.pt", method=method, train=train,
                       styled=out, device="cpu", source=synth_market if method == "joint" else None)
    n_cams = len({r.camid for r in recs})
    n_styled = len(recs) * (n_cams - 1)
    assert f"{len(recs) * n_cams} target images ({n_styled} styled), {len(pids)} clusters" in caplog.text
    ck = torch.load(res, weights_only=True)
    assert ck["method"] == method and ck["epoch"] == 1
    with pytest.raises(InputError, match="manifest.csv: no such file"):
        finetune(ckpt, labels, synth_market, tmp_path / "m3.pt", method="pseudo", train=train,
                 styled=tmp_path, device="cpu")


def test_docs_name_every_style_model_and_manifest_field(styled):
    """docs/formats.md documents the stylize checkpoint (its kind, model_config) and the
    styled folder's manifest columns (as tests/test_contract_formats.py does for the rest)."""
    import torch

    from reidcli.stylize.manifest import MANIFEST_COLUMNS
    from tests.fixtures_contracts import check_names, documented

    model, out, _ = styled
    ck = torch.load(model, weights_only=True)
    check_names(set(ck), documented(("Checkpoints", "Keys")), "style model keys")
    check_names(set(ck["model_config"]), documented(("Style models", "model_config keys of a style model")),
                "color model_config")
    with open(out / "manifest.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == list(MANIFEST_COLUMNS)
    check_names(set(header), documented(("Styled datasets", "manifest.csv columns")), "manifest.csv")

