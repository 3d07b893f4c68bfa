"""`reid plot` and reidcli.plot.figures: training curves from the JSONL log, t-SNE of a
features file coloured by camera / cluster / identity, and the cluster-size histogram.

The drawn data is checked against the inputs (each series against the log's records, the
histogram against a bincount, the t-SNE colours against the rows drawn, and the 2-D map
against the identities it must keep apart); the pictures are checked to be real images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.io.h5 import FeaturesFile, LabelsFile, SplitFeatures, write_features, write_labels
from reidcli.plot import figures

runner = CliRunner()


def _log(tmp_path: Path) -> tuple[Path, list[dict]]:
    """Two epochs of 4 steps logged every 2, an eval after epoch 2, then a resume from
    epoch 1 that relogs epoch 2 (the later records must replace the earlier ones)."""
    recs = [{"type": "resources", "epoch": 0, "cores": 2, "threads": 2, "workers": 0, "cores_from": "x",
             "device": "cpu", "processes": 1}]
    for it, loss, acc, lr in ((2, 5.0, 0.1, 1e-4), (4, 4.0, 0.2, 2e-4)):
        recs.append({"type": "step", "epoch": 1, "iter": it, "steps": 2, "lr": lr, "loss": loss, "ce": loss - 1,
                     "acc": acc, "img_s": 10.0})
    recs.append({"type": "epoch", "epoch": 1, "iter": 4, "loss": 4.5, "ce": 3.5, "acc": 0.15, "img_s": 10.0})
    recs += [{"type": "step", "epoch": 2, "iter": 6, "steps": 2, "lr": 3e-4, "loss": 9.0, "ce": 8.0, "acc": 0.0,
              "img_s": 10.0},
             {"type": "epoch", "epoch": 2, "iter": 6, "loss": 9.0, "ce": 8.0, "acc": 0.0, "img_s": 10.0},
             {"type": "eval", "epoch": 2, "mAP": 0.01, "rank1": 0.02}]
    # resumed at the end of epoch 1: epoch 2 again, different numbers
    recs += [{"type": "resources", "epoch": 1, "cores": 2, "threads": 2, "workers": 0, "cores_from": "x",
              "device": "cpu", "processes": 1},
             {"type": "step", "epoch": 2, "iter": 6, "steps": 2, "lr": 3e-4, "loss": 3.0, "ce": 2.0, "acc": 0.4,
              "img_s": 10.0},
             {"type": "step", "epoch": 2, "iter": 8, "steps": 2, "lr": 4e-4, "loss": 2.0, "ce": 1.0, "acc": 0.6,
              "img_s": 10.0},
             {"type": "epoch", "epoch": 2, "iter": 8, "loss": 2.5, "ce": 1.5, "acc": 0.5, "img_s": 10.0},
             {"type": "eval", "epoch": 2, "mAP": 0.3, "rank1": 0.5}]
    path = tmp_path / "m.log.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path, recs


def _is_picture(path: Path) -> tuple[int, int]:
    import matplotlib.image

    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0.01  # not a blank canvas
    return img.shape[:2]


def test_curves_follow_the_log_and_a_resume_replaces_what_it_repeats(tmp_path):
    log, _ = _log(tmp_path)
    report = figures.plot(log, tmp_path / "curves.png")
    s = report.data["series"]
    assert report.kind == "curves" and report.panels == ["loss", "accuracy", "learning rate", "evaluation"]
    # the steps of the first run up to iter 4, then the resumed run's 6 and 8 (its 9.0 at iter 6 is gone)
    assert s["loss/loss"] == ([2, 4, 6, 8], [5.0, 4.0, 3.0, 2.0])
    assert s["loss/ce"] == ([2, 4, 6, 8], [4.0, 3.0, 2.0, 1.0])
    assert s["accuracy/acc"] == ([2, 4, 6, 8], [0.1, 0.2, 0.4, 0.6])
    assert s["learning rate/lr"] == ([2, 4, 6, 8], [1e-4, 2e-4, 3e-4, 4e-4])
    assert s["loss/loss (epoch mean)"] == ([4, 8], [4.5, 2.5])
    assert s["accuracy/acc (epoch mean)"] == ([4, 8], [0.15, 0.5])
    assert s["evaluation/mAP"] == ([8], [0.3]) and s["evaluation/rank1"] == ([8], [0.5])  # at epoch 2's last step
    assert not any("img_s" in k or "steps" in k for k in s)
    _is_picture(tmp_path / "curves.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "m.log.jsonl"]  # no temporary left


def test_curves_of_a_real_training_log(tiny_ckpt, tmp_path):
    """The engine's own log (tests/fixtures_train.py's tiny pretrain, beside its checkpoint)."""
    log = tiny_ckpt.with_name("m.log.jsonl")
    steps = [r for r in map(json.loads, log.read_text().splitlines()) if r["type"] == "step"]
    assert steps
    report = figures.plot(log, tmp_path / "c.svg")
    assert report.data["series"]["loss/loss"] == ([r["iter"] for r in steps], [r["loss"] for r in steps])
    assert (tmp_path / "c.svg").read_text().lstrip().startswith("<?xml")


def _features(tmp_path: Path, n_ids=6, per=10, d=16, seed=0) -> tuple[Path, SplitFeatures]:
    rng = np.random.default_rng(seed)
    centres = 5 * rng.normal(size=(n_ids, d))
    x = (np.repeat(centres, per, 0) + 0.2 * rng.normal(size=(n_ids * per, d))).astype(np.float32)
    n = len(x)
    s = SplitFeatures(features=x, paths=[f"img/{i:04d}.jpg" for i in range(n)], pids=np.repeat(np.arange(n_ids), per),
                      camids=np.arange(n) % 3)
    return write_features(tmp_path / "f.h5", FeaturesFile(splits={"train": s}, attrs={"normalized": False})), s


def _nn_agreement(xy: np.ndarray, classes: np.ndarray) -> float:
    d = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float((classes[d.argmin(1)] == classes).mean())


def test_tsne_keeps_identities_apart_and_colours_the_rows_it_drew(tmp_path):
    f, s = _features(tmp_path)
    rep = figures.plot(f, tmp_path / "t.png", tsne=True, color="identity", max_points=40, seed=3)
    rows = rep.data["rows"]
    assert len(rows) == 40 and len(set(rows.tolist())) == 40 and rep.notes  # a sample, and it says so
    assert np.array_equal(rep.data["classes"], s.pids[rows])
    assert rep.data["xy"].shape == (40, 2)
    assert _nn_agreement(rep.data["xy"], rep.data["classes"]) == 1.0  # separated identities stay separated
    again = figures.plot(f, tmp_path / "t2.png", tsne=True, color="identity", max_points=40, seed=3)
    assert np.array_equal(again.data["rows"], rows) and np.allclose(again.data["xy"], rep.data["xy"])
    cams = figures.plot(f, tmp_path / "t.png", tsne=True)  # default: camera
    assert cams.data["color"] == "camera" and np.array_equal(cams.data["classes"], s.camids)
    _is_picture(tmp_path / "t.png")


def _distinct_8bit(colors) -> int:
    return len({tuple(round(255 * c) for c in rgba[:3]) for rgba in colors})


def test_tsne_gives_every_class_its_own_colour_and_says_how_many(tmp_path):
    """173 clusters get 173 distinct colours (not a cycle of 20), the title says how many
    classes are drawn and that there is no legend; up to 20 classes, tab20 and a legend."""
    rng = np.random.default_rng(0)
    classes = np.r_[np.repeat(np.arange(173), 2), [-1, -1]]
    drawn = figures.tsne_figure(rng.normal(size=(len(classes), 2)), classes, tmp_path / "many.png",
                                title="f.h5 [train] by cluster", what="cluster")
    assert len(drawn["colors"]) == 173 and _distinct_8bit(drawn["colors"].values()) == 173
    assert not drawn["legend"] and "173 cluster classes (too many for a legend)" in drawn["title"]
    _is_picture(tmp_path / "many.png")
    f, _ = _features(tmp_path, n_ids=30, per=2)  # through plot: 30 identities, 30 colours
    rep = figures.plot(f, tmp_path / "t.png", tsne=True, color="identity")
    assert _distinct_8bit(rep.data["colors"].values()) == 30 and not rep.data["legend"]
    assert rep.data["title"] == "f.h5 [train] by identity: 60 images, 30 identity classes (too many for a legend)"
    few = figures.plot(f, tmp_path / "t.png", tsne=True)  # 3 cameras
    assert few.data["legend"] and list(few.data["colors"].values()) == figures.class_palette(3)
    assert few.data["title"].endswith(": 60 images, 3 camera classes")


def test_tsne_by_cluster_matches_labels_by_path(tmp_path):
    f, s = _features(tmp_path)
    order = np.random.default_rng(1).permutation(len(s))  # the labels file lists the images in another order
    labels = (s.pids * 7 % 5 - 1)[order]  # -1 (outliers) among them
    write_labels(tmp_path / "l.h5", LabelsFile(labels=labels, paths=[s.paths[i] for i in order]))
    rep = figures.plot(f, tmp_path / "t.png", tsne=True, labels=tmp_path / "l.h5")
    assert rep.data["color"] == "cluster"
    assert np.array_equal(rep.data["classes"], s.pids * 7 % 5 - 1)
    write_labels(tmp_path / "short.h5", LabelsFile(labels=labels[:-1], paths=[s.paths[i] for i in order[:-1]]))
    with pytest.raises(Exception, match="has no label for 1 of the 60 images"):
        figures.plot(f, tmp_path / "t.png", tsne=True, labels=tmp_path / "short.h5")


def test_cluster_size_histogram_counts(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, 12, size=300)
    write_labels(tmp_path / "l.h5", LabelsFile(labels=labels, paths=[f"{i}.jpg" for i in range(300)]))
    rep = figures.plot(tmp_path / "l.h5", tmp_path / "h.png")
    sizes = np.bincount(labels[labels >= 0])
    sizes = sizes[sizes > 0]
    want_bins, want_counts = np.unique(sizes, return_counts=True)
    assert np.array_equal(np.sort(rep.data["sizes"]), np.sort(sizes))
    assert np.array_equal(rep.data["bins"], want_bins) and np.array_equal(rep.data["counts"], want_counts)
    assert (rep.data["clusters"], rep.data["outliers"], rep.data["images"]) == (12, int((labels < 0).sum()), 300)
    _is_picture(tmp_path / "h.png")


def test_cli_writes_and_reports(tmp_path):
    log, _ = _log(tmp_path)
    res = runner.invoke(app, ["plot", str(log), "-o", str(tmp_path / "c.png"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["kind"] == "curves" and out["series"]["loss/loss"] == 4 and "wrote" in res.stderr
    f, _ = _features(tmp_path)
    res = runner.invoke(app, ["plot", str(f), "--tsne", "--color", "camera", "-o", str(tmp_path / "t.pdf"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["classes"] == 3
    assert (tmp_path / "t.pdf").read_bytes()[:4] == b"%PDF"


@pytest.mark.parametrize("args,words", [
    (["{f}", "-o", "{t}/x.png"], "is a features file: draw it with --tsne"),
    (["{f}", "--tsne", "-o", "{t}/x.jpg"], "--output must end in .png | .pdf | .svg"),
    (["{f}", "--tsne", "--color", "cluster", "-o", "{t}/x.png"], "--color cluster needs --labels"),
    (["{f}", "--tsne", "--color", "hue", "-o", "{t}/x.png"], "--color must be one of camera | cluster | identity"),
    (["{f}", "--tsne", "--split", "query", "-o", "{t}/x.png"], "has no 'query' split"),
    (["{f}", "--tsne", "--perplexity", "0", "-o", "{t}/x.png"], "--perplexity must be a float > 0"),
    (["{log}", "--tsne", "-o", "{t}/x.png"], "--tsne apply only to a features file"),
    (["{bad}", "-o", "{t}/x.png"], "bad.jsonl:2 is not JSON"),
    (["{t}/missing.jsonl", "-o", "{t}/x.png"], "no such file"),
])
def test_cli_errors_are_one_line_and_write_nothing(tmp_path, args, words):
    f, _ = _features(tmp_path)
    log, _ = _log(tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"type": "step", "iter": 1, "loss": 1}\nnot json\n')
    names = {"f": f, "log": log, "t": tmp_path, "bad": tmp_path / "bad.jsonl"}
    res = runner.invoke(app, ["plot", *[a.format(**names) for a in args]])
    assert res.exit_code == 1, res.output
    assert words in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not list(tmp_path.glob("x.*"))
