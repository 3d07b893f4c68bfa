"""`reid synth`: determinism, real layouts, keypoints, presets, atomicity, CLI wiring."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from reidcli.data.synth import DOMAINS, get_preset, synthesize
from reidcli.data.synth.identity import sample_identities
from reidcli.io.h5 import read_pose

TINY = dict(ids=3, images_per_id=4, height=32, width=16)
MARKET_RE = re.compile(r"^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")
DUKE_RE = re.compile(r"^(\d{4})_c(\d)_f(\d{7})\.jpg$")
MSMT_RE = re.compile(r"^(\d{4})/\1_(\d{3})_(\d{2})_(\d{4})(morning|noon|afternoon)_(\d{4})_(\d)\.jpg (\d+)$")
SYSU_RE = re.compile(r"^cam([1-6])/(\d{4})/(\d{4})\.jpg$")


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in ("pose.h5", "synth.json")}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("synth")
    return {d: Path(synthesize(base / d, domain=d, seed=1, **TINY)["out"]) for d in DOMAINS}


def test_same_seed_same_bytes_other_seed_differs(tmp_path, tiny):
    a = _files(tiny["market"])
    synthesize(tmp_path / "again", domain="market", seed=1, workers=2, **TINY)
    assert _files(tmp_path / "again") == a  # also: worker count does not change a byte
    assert np.array_equal(read_pose(tmp_path / "again/pose.h5").keypoints,
                          read_pose(tiny["market"] / "pose.h5").keypoints)
    synthesize(tmp_path / "other", domain="market", seed=2, **TINY)
    b = _files(tmp_path / "other")
    assert set(a) != set(b) or any(a[k] != b[k] for k in a)


def test_market_and_duke_names_folders_and_protocol(tiny):
    for dom, rx in (("market", MARKET_RE), ("duke", DUKE_RE)):
        root = tiny[dom]
        assert {p.name for p in root.iterdir() if p.is_dir()} == {"bounding_box_train", "query", "bounding_box_test"}
        for folder in ("bounding_box_train", "query", "bounding_box_test"):
            names = [p.name for p in (root / folder).iterdir()]
            assert names and all(rx.match(n) for n in names), (dom, folder, names[:3])
        q = {n.split("_")[0] for n in (p.name for p in (root / "query").iterdir())}
        g = {n.split("_")[0] for n in (p.name for p in (root / "bounding_box_test").iterdir())}
        t = {n.split("_")[0] for n in (p.name for p in (root / "bounding_box_train").iterdir())}
        assert q <= g and not (q & t) and len(t) == TINY["ids"]
    market_gallery = [p.name for p in (tiny["market"] / "bounding_box_test").iterdir()]
    assert any(n.startswith("0000_") for n in market_gallery) and any(n.startswith("-1_") for n in market_gallery)
    assert all(n.endswith("_00.jpg") for n in (p.name for p in (tiny["market"] / "query").iterdir()))


def test_msmt_and_sysu_layouts(tiny):
    root = tiny["msmt"]
    for name, folder in (("train", "train"), ("val", "train"), ("query", "test"), ("gallery", "test")):
        lines = (root / f"list_{name}.txt").read_text().splitlines()
        assert all(MSMT_RE.match(line) for line in lines), lines[:2]
        assert all((root / folder / line.split()[0]).is_file() for line in lines)
    root = tiny["sysu"]
    rel = [p.relative_to(root).as_posix() for p in root.rglob("*.jpg")]
    assert rel and all(SYSU_RE.match(r) for r in rel)
    ids = {s: (root / f"exp/{s}_id.txt").read_text().strip().split(",") for s in ("train", "val", "test")}
    assert all(v and all(x.isdigit() for x in v) for v in ids.values())
    for pid in ids["test"]:  # every identity is seen in both modalities
        cams = {int(r.split("/")[0][3:]) for r in rel if r.split("/")[1] == f"{int(pid):04d}"}
        assert cams & {3, 6} and cams - {3, 6}


def test_infrared_cameras_are_grey(tiny):
    def chroma(cam):
        imgs = [cv2.imread(str(p)).astype(float) for p in (tiny["sysu"] / cam).rglob("*.jpg")]
        return np.mean([np.abs(i - i.mean(2, keepdims=True)).mean() for i in imgs])
    assert chroma("cam3") < 1.5 and chroma("cam6") < 1.5 and chroma("cam1") > 4 and chroma("cam4") > 4


def test_layouts_load_with_the_parsers(tiny):
    layouts = pytest.importorskip("reidcli.data.layouts")
    expect = {"market": "market1501", "duke": "dukemtmc", "msmt": "msmt17", "sysu": "sysu", "regdb": "regdb"}
    for dom, root in tiny.items():
        ds = layouts.load_dataset(root)
        assert ds.format.startswith(expect[dom][:4])
        pose = set(read_pose(root / "pose.h5").paths)
        recs = [r for rs in ds.splits.values() for r in rs]
        assert recs and {r.path for r in recs} <= pose
        assert len({r.pid for r in ds.split("train")}) >= 2


def test_pose_paths_match_files_and_keypoints_inside(tiny):
    for dom, root in tiny.items():
        pf = read_pose(root / "pose.h5")
        assert set(pf.paths) == {p.relative_to(root).as_posix() for p in root.rglob("*.jpg")}
        k = pf.keypoints
        h, w = TINY["height"], TINY["width"]
        assert (pf.image_size == [h, w]).all()
        assert (k[..., 0] >= 0).all() and (k[..., 0] <= w - 1).all()
        assert (k[..., 1] >= 0).all() and (k[..., 1] <= h - 1).all()
        assert np.isin(k[..., 2], np.float32([0.0, 0.2, 0.5, 1.0])).all()
        full = (k[:, [0, 15, 16], 2] > 0).all(1)  # nose above ankles, shoulders above hips
        assert full.any() and (k[full, 0, 1] < k[full, 15, 1]).all()
        assert (k[:, 5:7, 1].mean(1) < k[:, 11:13, 1].mean(1))[(k[:, [5, 6, 11, 12], 2] > 0).all(1)].all()


def test_back_view_hides_the_face():
    from reidcli.data.synth.body import Placement, Pose, keypoint_visibility, render_parts

    ident = sample_identities(get_preset("market").clothing, 1, np.random.default_rng(0))[0]
    place = Placement(100, 40, 5)
    vis = {}
    for yaw in (0.0, np.pi):
        pmap, _, deps, kp, kd = render_parts(ident, Pose(yaw, 0.3), place, (110, 80))
        vis[yaw] = keypoint_visibility(pmap, deps, kp, kd)
        assert pmap[int(kp[0, 1]), int(kp[0, 0])] > 0  # the nose lies on the body
    assert (vis[0.0][:3] == 1).all() and (vis[np.pi][:3] < 1).all()


def test_presets_differ_in_clothing_and_camera_style(tiny):
    def stats(root):
        imgs = [cv2.imread(str(p)) for p in sorted(root.rglob("*.jpg"))]
        hsv = np.stack([cv2.cvtColor(i, cv2.COLOR_BGR2HSV).reshape(-1, 3).mean(0) for i in imgs])
        return hsv.mean(0)
    m, d = stats(tiny["market"]), stats(tiny["duke"])
    assert m[2] - d[2] > 15 and m[1] > d[1]  # Market brighter and more saturated than Duke
    rng = np.random.default_rng
    mk = sample_identities(get_preset("market").clothing, 200, rng(0))
    dk = sample_identities(get_preset("duke").clothing, 200, rng(0))
    assert np.mean([i.long_sleeve for i in dk]) - np.mean([i.long_sleeve for i in mk]) > 0.4
    assert np.mean([i.hat != "none" for i in dk]) > 2 * np.mean([i.hat != "none" for i in mk])
    assert sum(i.parent >= 0 for i in mk) > 30  # near-duplicate identities: hard negatives


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    from reidcli.data.synth import generate

    calls = {"n": 0}
    real = generate.render_job

    def flaky(ctx, job):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real(ctx, job)

    monkeypatch.setattr(generate, "render_job", flaky)
    with pytest.raises(KeyboardInterrupt):
        synthesize(tmp_path / "ds", **TINY)
    assert list(tmp_path.iterdir()) == []


def test_bad_parameters():
    from reidcli.utils.errors import ConfigError

    # library messages name the Python parameter; the CLI shows its --flag (test_cli)
    for kw, word in (({"domain": "dukee"}, "did you mean 'duke'"),
                     ({"ids": 0}, r"^ids must be an int in \[1, 100000\]; got 0"),
                     ({"domain": "sysu", "cams": 4}, "^cams must be at least"),
                     ({"domain": "regdb", "cams": 3}, "^cams must be 2 for --domain regdb"),
                     ({"domain": "regdb", "images_per_id": 5}, "^images_per_id must be even"),
                     ({"height": 2}, "^height must be an int"), ({"junk": 1.5}, "^junk must be an int")):
        with pytest.raises(ConfigError, match=word):
            synthesize("/nonexistent/never", **{**TINY, **kw})


def test_cli(tmp_path):
    from reidcli.cli.app import app

    runner = CliRunner()
    args = ["synth", str(tmp_path / "d"), "--ids", "2", "--images-per-id", "3", "--height", "32", "--width", "16"]
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    assert '"layout": "market1501"' in r.stdout and (tmp_path / "d/pose.h5").is_file()
    r = runner.invoke(app, args)
    assert r.exit_code == 1 and "not empty" in r.output and "--force" in r.output and "Traceback" not in r.output
    assert runner.invoke(app, [*args, "--force", "--domain", "duke", "-q"]).exit_code == 0
    assert (tmp_path / "d/bounding_box_train").is_dir() and not list(tmp_path.glob(".d.*"))
    r = runner.invoke(app, ["synth", str(tmp_path / "e"), "--domain", "marke"])
    assert r.exit_code == 1 and "did you mean 'market'" in r.output and not (tmp_path / "e").exists()
    r = runner.invoke(app, ["synth", str(tmp_path / "e"), "--domain", "sysu", "--cams", "4"])
    assert r.exit_code == 1 and "error: --cams must be at least" in r.output and not (tmp_path / "e").exists()


REGDB_RE = re.compile(r"^(Visible|Thermal)/(\d+)/(female|male)_(front|back)_([vt])_(\d{5})_(\d+)\.jpg$")


def test_regdb_pairs_and_ten_trials(tmp_path):
    from reidcli.data.layouts import load_dataset

    out = Path(synthesize(tmp_path / "regdb", domain="regdb", ids=3, test_ids=2, height=32, width=16, seed=0)["out"])
    rel = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg"))
    m = [REGDB_RE.match(r) for r in rel]
    assert all(m) and len(rel) == 5 * 20  # default: ten visible + ten thermal images per identity
    for g in m:  # folder, modality letter and the pid in the folder and the name agree
        assert (g[1] == "Visible") == (g[5] == "v") and g[2] == g[7]
    visible = [r for r in rel if r.startswith("Visible/")]
    twins = [r.replace("Visible/", "Thermal/").replace("_v_", "_t_") for r in visible]
    assert sorted(twins) == [r for r in rel if r.startswith("Thermal/")]
    pf = read_pose(out / "pose.h5")  # a thermal image is its visible twin's moment: same pose and place
    kp = dict(zip(pf.paths, pf.keypoints))
    assert all(np.array_equal(kp[v], kp[t]) for v, t in zip(visible, twins))
    splits = []
    for t in range(1, 11):
        ids = {}
        for part in ("train", "test"):
            lines = {mod: (out / f"idx/{part}_{mod}_{t}.txt").read_text().splitlines() for mod in ("visible", "thermal")}
            ids[part] = {int(ln.split()[1]) for ln in lines["visible"]}
            assert ids[part] == {int(ln.split()[1]) for ln in lines["thermal"]}
            assert all(int(ln.split()[0].split("/")[1]) == int(ln.split()[1]) + 1 for ln in lines["visible"])
        assert len(ids["train"]) == 3 and len(ids["test"]) == 2 and not ids["train"] & ids["test"]
        splits.append(tuple(sorted(ids["test"])))
        ds = load_dataset(out, "regdb", regdb_trial=t) if t in (1, 10) else None
        if ds is not None:
            assert {r.modality for r in ds.split("query")} == {0} and {r.modality for r in ds.split("gallery")} == {1}
            assert {r.pid for r in ds.split("query")} == ids["test"] and len(ds.split("train")) == 3 * 20
    assert len(set(splits)) > 1  # the trials split the identities differently


def _gap(root: Path, same_camera_ok: bool):
    """Rank-1 of a plain appearance matcher (each image shrunk to 8x16 pixels, standardised,
    nearest neighbour) for visible -> visible and infrared -> visible queries: what a model
    that has not learnt the modality gap sees. Also the largest channel spread of infrared."""
    from reidcli.data.layouts import load_dataset

    ds = load_dataset(root)
    recs = list({r.path: r for s in ("query", "gallery") for r in ds.split(s)}.values())
    imgs = [cv2.imread(str(ds.root / r.path)) for r in recs]
    f = np.stack([cv2.resize(i[..., ::-1].astype(np.float32), (8, 16), interpolation=cv2.INTER_AREA).ravel()
                  for i in imgs])
    f = (f - f.mean(1, keepdims=True)) / f.std(1, keepdims=True)
    pid, cam, mod = (np.array([getattr(r, k) for r in recs]) for k in ("pid", "camid", "modality"))
    spread = max(int(np.ptp(i.astype(int), axis=2).max()) for i, m in zip(imgs, mod) if m == 1)

    def rank1(q_mod):
        hits = []
        for i in np.flatnonzero(mod == q_mod):
            g = np.flatnonzero((mod == 0) & ((np.arange(len(recs)) != i) if same_camera_ok else (cam != cam[i])))
            hits.append(pid[g[np.argmin(((f[g] - f[i]) ** 2).sum(1))]] == pid[i])
        return float(np.mean(hits))
    return rank1(0), rank1(1), spread, 1 / len(set(pid.tolist()))


@pytest.mark.parametrize("domain", ["sysu", "regdb"])
def test_infrared_renders_open_a_modality_gap(tmp_path, domain):
    out = synthesize(tmp_path / domain, domain=domain, ids=1, test_ids=12, height=64, width=32, seed=0)["out"]
    vis, ir, spread, chance = _gap(Path(out), same_camera_ok=domain == "regdb")
    assert spread <= 2  # infrared (NIR or thermal) renders carry no colour at all
    # the same matcher that finds a visible image's identity among other visible images
    # mostly fails from infrared: colour is gone and garments change their contrast (NIR:
    # reflectance by material, thermal: heat, prints vanish)
    assert ir < 0.55 * vis and ir < 4 * chance, (vis, ir, chance)


def test_camera_shift_scales_how_far_cameras_differ():
    """--camera-shift s moves each camera's light and colour toward the domain's centre by
    s (0: all cameras alike), keeping every other draw (scene, optics) as at s = 1."""
    import dataclasses

    import numpy as np

    from reidcli.data.synth import build_context

    ctx = {s: build_context("duke", n_identities=0, cams=8, height=64, width=32, seed=0, camera_shift=s)
           for s in (1.0, 0.5, 0.0)}
    preset = ctx[1.0].preset.camera
    for c1, ch, c0 in zip(ctx[1.0].cameras, ctx[0.5].cameras, ctx[0.0].cameras):
        for name in ("gain", "gamma", "contrast", "saturation"):
            centre = sum(getattr(preset, name)) / 2
            assert getattr(c0, name) == pytest.approx(centre)
            assert getattr(ch, name) - centre == pytest.approx((getattr(c1, name) - centre) / 2)
        assert np.allclose(c0.cast, preset.cast)
        assert np.allclose(np.subtract(ch.cast, preset.cast), np.subtract(c1.cast, preset.cast) / 2)
        same = {"gain", "gamma", "contrast", "saturation", "cast"}
        assert {k: v for k, v in dataclasses.asdict(c1).items() if k not in same} == \
               {k: v for k, v in dataclasses.asdict(c0).items() if k not in same}
