"""`reid evaluate` wiring: table / JSON, per-query CSV, pictures, protocols, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.io.h5 import FeaturesFile, SplitFeatures, write_features
from tests.conftest import write_jpeg

runner = CliRunner()


def _split(root: Path, name: str, pids, camids, feats, modality=None, images=True) -> SplitFeatures:
    paths = [f"{name}/{p:04d}_c{c + 1}_{i:03d}.jpg" for i, (p, c) in enumerate(zip(pids, camids))]
    if images:
        for i, rel in enumerate(paths):
            write_jpeg(root / rel, h=32, w=16, seed=100 * int(pids[i] + 1) + i)
    return SplitFeatures(np.asarray(feats, np.float32), paths, np.asarray(pids), np.asarray(camids),
                         None if modality is None else np.asarray(modality))


def make_file(tmp_path: Path, *, cams=3, n_ids=6, dim=8, normalized=False, images=True, fmt="market1501",
              name="f.h5", attrs=None) -> Path:
    """Identity centres plus noise: queries (one per id) retrieve their id mostly first."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(n_ids, dim))
    root = tmp_path / "data"
    qp = np.arange(1, n_ids + 1)
    gp = np.r_[np.repeat(qp, 3), [0, 0, -1]]
    qc = np.arange(n_ids) % cams
    gc = np.arange(len(gp)) % cams
    feat = lambda p: np.array([centers[x - 1] if x > 0 else rng.normal(size=dim) for x in p]) \
        + 0.3 * rng.normal(size=(len(p), dim))
    qf, gf = feat(qp), feat(gp)
    if normalized:
        qf, gf = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (qf, gf))
    ff = FeaturesFile({"query": _split(root, "query", qp, qc, qf, images=images),
                       "gallery": _split(root, "gallery", gp, gc, gf, images=images)},
                      root=str(root), attrs={"normalized": normalized, "dataset_format": fmt, **(attrs or {})})
    return write_features(tmp_path / name, ff)


def run(*args):
    res = runner.invoke(app, ["evaluate", *map(str, args)])
    assert "Traceback" not in res.output
    return res


def test_help():
    assert run("--help").exit_code == 0


def test_table_and_json(tmp_path):
    f = make_file(tmp_path)
    res = run(f)
    assert res.exit_code == 0, res.output
    assert "mAP" in res.stdout and "Rank-1" in res.stdout and "non-interpolated" in res.stdout
    res = run(f, "--json", "--ranks", "1,3", "--ap", "devkit", "--metric", "cosine")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out) >= {"mAP", "mINP", "rank1", "rank3", "ap_formula", "n_valid_query"}
    assert out["ap"] == "devkit" and "devkit" in out["ap_formula"] and 0 < out["mAP"] <= 1


def test_query_gallery_files_and_per_query(tmp_path):
    f = make_file(tmp_path)
    csv_path = tmp_path / "pq.csv"
    res = run("--query", f, "--gallery", f, "--per-query", csv_path, "--json")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(csv_path.read_text().splitlines()))
    assert len(rows) == 6 and {"query", "ap", "first_hit_rank"} <= set(rows[0])
    one = json.loads(run(f, "--json").stdout)
    assert json.loads(res.stdout)["mAP"] == pytest.approx(one["mAP"])
    assert np.mean([float(r["ap"]) for r in rows]) == pytest.approx(one["mAP"], abs=1e-6)


def test_pictures(tmp_path):
    f = make_file(tmp_path)
    ranks, cmc = tmp_path / "ranks.png", tmp_path / "cmc.png"
    res = run(f, "--ranks-png", ranks, "--top", "5", "--n-queries", "4", "--cmc-png", cmc)
    assert res.exit_code == 0, res.output
    import cv2

    grid = cv2.imread(str(ranks))
    assert grid.shape[0] >= 4 * 128 and grid.shape[1] >= 6 * 64
    assert cv2.imread(str(cmc)) is not None
    # a true match has a green border and a miss a red one (BGR)
    greens = ((grid[..., 1] > 150) & (grid[..., 0] < 40) & (grid[..., 2] < 40)).sum()
    reds = ((grid[..., 2] > 200) & (grid[..., 0] < 40) & (grid[..., 1] < 40)).sum()
    assert greens > 0 and reds > 0


def test_pictures_say_what_they_wrote(tmp_path):
    f = make_file(tmp_path)
    ranks, cmc, pq = tmp_path / "ranks.png", tmp_path / "cmc.png", tmp_path / "pq.csv"
    res = run(f, "--ranks-png", ranks, "--top", "5", "--n-queries", "4", "--cmc-png", cmc, "--per-query", pq)
    assert res.exit_code == 0, res.output
    err = " ".join(res.stderr.split())
    assert f"wrote {ranks} (4 seeded sample queries x top 5 gallery images by euclidean distance)" in err
    assert f"wrote {cmc} (CMC at ranks 1-50)" in err and f"wrote {pq} (one row per query: 6 rows)" in err


def _drawn_curves(monkeypatch) -> list[tuple[dict, str]]:
    """Record the curves and title of every CMC picture drawn (and still draw it)."""
    from reidcli.eval import plots

    drawn, draw = [], plots.cmc_curve

    def record(path, curves, title="CMC"):
        drawn.append((dict(curves), title))
        draw(path, curves, title)

    monkeypatch.setattr(plots, "cmc_curve", record)
    return drawn


def test_cmc_legend_names_the_features_file_not_the_protocol(tmp_path, monkeypatch):
    """Duke features evaluate under the market protocol; the legend says duke.h5."""
    f = make_file(tmp_path, fmt="dukemtmc", name="duke.h5", images=False)
    drawn = _drawn_curves(monkeypatch)
    res = run(f, "--cmc-png", tmp_path / "cmc.png")
    assert res.exit_code == 0, res.output
    [(curves, title)] = drawn
    [label] = curves
    assert label.startswith("duke.h5 (mAP ") and "market" not in label
    assert title == "CMC, market protocol, euclidean distance"


def test_several_files_draw_one_cmc_curve_each(tmp_path, monkeypatch):
    """Models compared: `reid evaluate a.h5 b.h5 --cmc-png` draws both curves on one picture,
    labelled with the file names; the table is still the one of several files."""
    a = make_file(tmp_path, name="a.h5", images=False)
    b = make_file(tmp_path, name="b.h5", images=False, dim=4)
    drawn = _drawn_curves(monkeypatch)
    png = tmp_path / "cmc.png"
    res = run(a, b, "--cmc-png", png)
    assert res.exit_code == 0, res.output
    [(curves, _)] = drawn
    assert [k.split(" (")[0] for k in curves] == ["a.h5", "b.h5"]
    one = [json.loads(run(f, "--json").stdout) for f in (a, b)]
    for curve, ref in zip(curves.values(), one):
        assert list(curve)[:len(ref["cmc"])] == pytest.approx(ref["cmc"])
    import cv2

    assert cv2.imread(str(png)) is not None
    assert f"wrote {png} (2 CMC curves, one per features file)" in " ".join(res.stderr.split())
    assert "2 files (mean ± std over files)" in res.stdout


def _digest(path) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.parametrize("rerank", [False, True])
def test_json_is_self_describing(tmp_path, rerank):
    """Inputs with digests and checkpoints, the re-ranking settings, and the whole CMC
    curve, which equals the rate of first hits at or before each rank (per-query CSV)."""
    f = make_file(tmp_path, attrs={"checkpoint": "sha256:abc", "checkpoint_path": "m.pt", "model": "resnet50"})
    pq = tmp_path / "pq.csv"
    args = ["--rerank", "--k1", "4", "--k2", "2", "--lambda", "0.2"] if rerank else []
    res = run(f, "--json", "--per-query", pq, *args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    want = {"path": str(f), "digest": _digest(f), "checkpoint": "sha256:abc", "checkpoint_path": "m.pt",
            "model": "resnet50"}
    assert out["inputs"] == {"query": want, "gallery": want}
    assert out["rerank"] is rerank and out["cmc_kind"] == "standard"
    assert out.get("rerank_options") == ({"k1": 4, "k2": 2, "lambda": 0.2} if rerank else None)
    first = np.array([int(r["first_hit_rank"]) for r in csv.DictReader(pq.read_text().splitlines())])
    first = first[first > 0]
    curve = [float(np.mean(first <= r)) for r in range(1, first.max() + 1)]
    assert out["cmc"] == pytest.approx(curve) and out["cmc"][-1] == pytest.approx(1.0)
    for k in (1, 5, 10):
        assert out[f"rank{k}"] == pytest.approx(curve[min(k, len(curve)) - 1])


def test_query_and_gallery_from_different_checkpoints_warn(tmp_path):
    a = make_file(tmp_path, name="a.h5", attrs={"checkpoint": "sha256:aaa", "checkpoint_path": "a.pt"})
    b = make_file(tmp_path, name="b.h5", attrs={"checkpoint": "sha256:bbb", "checkpoint_path": "b.pt"})
    res = run("--query", a, "--gallery", b, "--json")
    assert res.exit_code == 0, res.output
    notes = json.loads(res.stdout)["notes"]
    assert any("sha256:aaa (a.pt)" in n and "sha256:bbb (b.pt)" in n and "same --ckpt" in n for n in notes)
    assert "same --ckpt" in " ".join(res.stderr.split())
    same = run("--query", a, "--gallery", a, "--json")
    assert not any("checkpoint" in n for n in json.loads(same.stdout)["notes"])


def test_missing_images_are_refused(tmp_path):
    """Images gone from the features file's root: one line naming the first and --image-root
    (no grid of grey boxes); tests/test_eval_ranks.py has the wrong --image-root."""
    f = make_file(tmp_path, images=False)
    res = run(f, "--ranks-png", tmp_path / "r.png", "--top", "3")
    assert res.exit_code == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert res.stderr.startswith(f"reid evaluate: error: {tmp_path / 'data' / 'query'}/") and "pass --image-root DIR" in res.stderr
    assert not (tmp_path / "r.png").exists()


def test_single_camera_suggests_no_cam_filter(tmp_path):
    f = make_file(tmp_path, cams=1, images=False)
    res = run(f)
    assert res.exit_code == 1 and "--no-cam-filter" in res.stderr and "camera id 0" in res.stderr
    res = run(f, "--no-cam-filter", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["mAP"] > 0


@pytest.mark.parametrize("args,words", [
    (["--metric", "manhattan"], "--metric"),
    (["--ap", "voc"], "--ap"),
    (["--ranks", "0,5"], "--ranks"),
    (["--protocol", "sysu"], "did you mean"),
])
def test_bad_options(tmp_path, args, words):
    res = run(make_file(tmp_path, images=False), *args)
    assert res.exit_code == 1 and words in res.stderr


def test_bad_files(tmp_path):
    f = make_file(tmp_path, images=False)
    res = run(tmp_path / "nope.h5")
    assert res.exit_code == 1 and "no such file" in res.stderr
    other = make_file(tmp_path, dim=5, images=False, name="g.h5")
    res = run("--query", f, "--gallery", other)
    assert res.exit_code == 1 and "8-d" in res.stderr and "5-d" in res.stderr
    res = run()
    assert res.exit_code == 1 and "--query" in res.stderr
    train_only = write_features(tmp_path / "t.h5", FeaturesFile(
        {"train": SplitFeatures(np.ones((2, 3), np.float32), ["a", "b"], np.array([1, 2]), np.array([0, 1]))}))
    res = run(train_only)
    assert res.exit_code == 1 and "no 'query' split" in res.stderr


def test_empty_split(tmp_path):
    empty = SplitFeatures(np.zeros((0, 4), np.float32), [], np.zeros(0, np.int64), np.zeros(0, np.int64))
    full = SplitFeatures(np.ones((2, 4), np.float32), ["a", "b"], np.array([1, 2]), np.array([0, 1]))
    f = write_features(tmp_path / "e.h5", FeaturesFile({"query": full, "gallery": empty}))
    res = run(f)
    assert res.exit_code == 1 and "gallery split is empty" in res.stderr


# ----------------------------------------------------------------- RegDB: ten trials, one command
def _regdb_trial(path: Path, gallery_x) -> Path:
    """Three identities on a line: visible queries at 0, 1, 2; thermal gallery at ``gallery_x``
    (identity i at gallery_x[i - 1]); 1-D features, so every rank is worked out by hand."""
    def part(xs, mod):
        n = len(xs)
        return SplitFeatures(np.stack([np.asarray(xs, np.float32), np.zeros(n, np.float32)], 1),
                             [f"{'vt'[mod]}{i}.jpg" for i in range(n)], np.arange(1, n + 1),
                             np.full(n, mod), np.full(n, mod, np.int8))
    ff = FeaturesFile({"query": part([0.0, 1.0, 2.0], 0), "gallery": part(gallery_x, 1)}, root="/data",
                      attrs={"normalized": False, "dataset_format": "regdb"})
    return write_features(path, ff)


# trial1: every query's nearest gallery image is its identity (AP 1, rank 1).
# trial2: identities 1 and 2 swapped places: queries 1, 2 find their match second (AP 1/2), 3 first:
#         mAP = (0.5 + 0.5 + 1) / 3 = 66.67, Rank-1 = 1/3 = 33.33, Rank-2 = 100, mINP = mAP here.
# mean over the two files 83.33 / 66.67 / 100 / 83.33; population std 16.67 / 33.33 / 0 / 16.67.
REGDB_TWO_TRIALS = """\
regdb-v2i protocol, euclidean distance, 2 files (mean ± std over files)
┏━━━━━━━━━━━┳━━━━━━━━┳━━━━━━━━┳━━━━━━━━┳━━━━━━━━┓
┃ file      ┃    mAP ┃ Rank-1 ┃ Rank-2 ┃   mINP ┃
┡━━━━━━━━━━━╇━━━━━━━━╇━━━━━━━━╇━━━━━━━━╇━━━━━━━━┩
│ trial1.h5 │ 100.00 │ 100.00 │ 100.00 │ 100.00 │
│ trial2.h5 │  66.67 │  33.33 │ 100.00 │  66.67 │
│ mean      │  83.33 │  66.67 │ 100.00 │  83.33 │
│ std       │  16.67 │  33.33 │   0.00 │  16.67 │
└───────────┴────────┴────────┴────────┴────────┘
values in %; AP: non-interpolated AP = mean_i(i / rank_i) (torchreid / fast-reid); CMC: standard
"""


def test_regdb_trials_in_one_command_exact_output(tmp_path, monkeypatch):
    from fixtures_contracts import reid_ok

    monkeypatch.chdir(tmp_path)
    _regdb_trial(tmp_path / "trial1.h5", [0.1, 1.1, 2.1])
    _regdb_trial(tmp_path / "trial2.h5", [1.1, 0.1, 2.1])
    res = reid_ok("evaluate", "trial1.h5", "trial2.h5", "--protocol", "regdb-v2i", "--ranks", "1,2")
    got = "\n".join(ln.rstrip() for ln in res.stdout.splitlines()) + "\n"
    assert got == REGDB_TWO_TRIALS, "\n" + res.stdout
    out = json.loads(reid_ok("evaluate", "trial1.h5", "trial2.h5", "--protocol", "regdb-v2i", "--ranks", "1",
                             "--json").stdout)
    assert out["n_files"] == 2 and [f["file"] for f in out["files"]] == ["trial1.h5", "trial2.h5"]
    assert out["mAP"] == pytest.approx(5 / 6) and out["std"]["rank1"] == pytest.approx(1 / 3)
    assert [f["rank1"] for f in out["files"]] == pytest.approx([1.0, 1 / 3])


def test_several_files_bad_input(tmp_path):
    t1 = _regdb_trial(tmp_path / "trial1.h5", [0.1, 1.1, 2.1])
    market = make_file(tmp_path, images=False)
    res = run(t1, market)  # regdb-v2i (from dataset_format) vs market
    assert res.exit_code == 1 and "different protocols" in res.stderr and "pass --protocol" in res.stderr
    res = run(t1, t1, "--per-query", tmp_path / "pq.csv")
    assert res.exit_code == 1 and "give one" in res.stderr and not (tmp_path / "pq.csv").exists()
    res = run(t1, market, "--protocol", "regdb-v2i")  # the market file has no modality
    errors = [ln for ln in res.stderr.splitlines() if ": error: " in ln]
    assert res.exit_code == 1 and len(errors) == 1, res.stderr
    assert str(market) in errors[0] and "needs each image's modality" in errors[0]
