"""`reid cluster` wiring: happy paths write a valid labels file; bad input: one line, exit 1."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.io.h5 import FeaturesFile, SplitFeatures, read_labels, write_features

runner = CliRunner()


def make_features(path, n_ids=6, per=40, d=32, nan=False, pids=True, split="train"):
    rng = np.random.default_rng(0)
    c = rng.normal(size=(n_ids, d))
    x = (np.repeat(c, per, 0) + 0.3 * rng.normal(size=(n_ids * per, d))).astype(np.float32)
    if nan:
        x[3, 0] = np.nan
    n = len(x)
    s = SplitFeatures(features=x, paths=[f"img/{i:04d}.jpg" for i in range(n)],
                      pids=np.repeat(np.arange(n_ids), per) if pids else np.full(n, -1),
                      camids=np.arange(n) % 2)
    if nan:  # the validating writer refuses NaN, so write the bad file by hand
        import h5py

        write_features(path, FeaturesFile(splits={split: SplitFeatures(
            features=np.zeros_like(x), paths=s.paths, pids=s.pids, camids=s.camids)}))
        with h5py.File(path, "r+") as f:
            f[f"{split}/features"][...] = x
        return path
    write_features(path, FeaturesFile(splits={split: s}, attrs={"normalized": False}))
    return path


def test_help():
    res = runner.invoke(app, ["cluster", "--help"])
    assert res.exit_code == 0 and "Example: reid cluster" in res.output


def test_default_jaccard_dbscan_writes_labels_and_quality(tmp_path):
    f = make_features(tmp_path / "f.h5")
    out = tmp_path / "l.h5"
    res = runner.invoke(app, ["cluster", str(f), "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    lf = read_labels(out)
    assert len(lf.labels) == 240 and lf.paths[0] == "img/0000.jpg"
    assert lf.attrs["method"] == "dbscan-jaccard" and lf.attrs["k1"] == 30 and lf.attrs["eps"] == 0.6
    assert lf.attrs["source_digest"].startswith("sha256:") and lf.attrs["n_clusters"] == report["n_clusters"]
    assert report["quality"]["pair_precision"] > 0.95 and report["quality"]["n_ids"] == 6


def test_table_kmeans_centers_and_expansion(tmp_path):
    f = make_features(tmp_path / "f.h5")
    res = runner.invoke(app, ["cluster", str(f), "-o", str(tmp_path / "k.h5"), "--method", "kmeans",
                              "--k", "6", "--centers", "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert "pair_precision" in res.stdout
    lf = read_labels(tmp_path / "k.h5")
    assert lf.centers.shape == (6, 32) and lf.attrs["k"] == 6
    res = runner.invoke(app, ["cluster", str(f), "-o", str(tmp_path / "e.h5"), "--method", "dbscan-euclidean",
                              "--eps", "0.7", "--expand-threshold", "0.8", "--keep-clusters", "4"])
    assert res.exit_code == 0, res.output
    assert read_labels(tmp_path / "e.h5").n_clusters == 4


@pytest.mark.parametrize("value", ["abc", "0.5x", ""])
def test_eps_that_is_not_a_number_is_a_usage_error(tmp_path, value):
    f = make_features(tmp_path / "f.h5")
    res = runner.invoke(app, ["cluster", str(f), "-o", str(tmp_path / "l.h5"), "--eps", value])
    assert res.exit_code == 2, res.output
    said = [line for line in res.stderr.splitlines() if "--eps" in line]
    assert len(said) == 1 and f"must be a float or 'auto'; got '{value}'" in said[0], res.stderr
    assert "internal error" not in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "l.h5").exists()


def test_help_shows_the_option_dataclass_defaults():
    from reidcli.cluster.methods import JaccardDbscanOptions, KMeansOptions

    res = runner.invoke(app, ["cluster", "--help"], env={"COLUMNS": "200"})
    text = " ".join(res.output.split())
    for words in (f"[default: {JaccardDbscanOptions.k1}]", f"[default: {KMeansOptions.k}]",
                  f"[default: {KMeansOptions.kmeans_iter}]", "dbscan-euclidean | dbscan-jaccard | kmeans"):
        assert words in text, words


def test_eps_auto_is_reported(tmp_path):
    f = make_features(tmp_path / "f.h5", pids=False)
    res = runner.invoke(app, ["cluster", str(f), "-o", str(tmp_path / "a.h5"), "--eps", "auto",
                              "--eps-quantile", "0.02", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["params"]["eps_mode"] == "auto" and 0 < report["params"]["eps"] < 1
    assert "quality" not in report  # no true ids in the file


@pytest.mark.parametrize("case,args,words", [
    ("split", ["--split", "query"], ["no 'query' split"]),
    ("nan", [], ["NaN"]),
    ("k1", ["--k1", "500"], ["--k1 must be an int in [1, 240]", "holds 240 features); got 500"]),
    ("eps", ["--eps", "1.5"], ["--eps must be a float in (0, 1]"]),
    ("quantile", ["--eps-quantile", "1"], ["--eps-quantile applies only with eps 'auto'"]),
    ("quantile1", ["--eps", "auto", "--eps-quantile", "1"], ["--eps-quantile must be a float in (0, 1); got 1.0"]),
    ("knn", ["--knn-index", "hnsw"], ["--knn-index must be one of auto, flat, ivf; got 'hnsw'"]),
    ("expand", ["--expand-threshold", "2"], ["--expand-threshold must be a float in [-1, 1]"]),
    ("keep", ["--keep-clusters", "3"], ["--keep-clusters needs --expand-threshold"]),
    ("kmeans-k", ["--method", "kmeans", "--k", "241"], ["--k must be an int in [1, 240]"]),
    ("k-jaccard", ["--k", "5"], ["--k does not apply to --method dbscan-jaccard"]),
    ("k1-kmeans", ["--method", "kmeans", "--k1", "5"], ["--k1 does not apply to --method kmeans"]),
    ("knn-eucl", ["--method", "dbscan-euclidean", "--knn-index", "flat"],
     ["--knn-index does not apply to --method dbscan-euclidean"]),
    ("eps-kmeans", ["--method", "kmeans", "--eps", "0.5"], ["--eps does not apply to --method kmeans"]),
    ("auto-eucl", ["--method", "kmeans", "--eps", "auto"], ["--eps does not apply to --method kmeans"]),
    ("eps0", ["--eps", "0"], ["--eps must be a float in (0, 1]"]),
    ("same", None, ["is the input FEATURES", "give another output name"]),
    ("method", ["--method", "dbscan-jacard"], ["did you mean 'dbscan-jaccard'"]),
])
def test_bad_input_one_line_exit_1_nothing_written(tmp_path, case, args, words):
    """Bad input: one line, exit 1 (2 for a flag that does not apply: bad usage), nothing written."""
    f = make_features(tmp_path / "f.h5", nan=case == "nan")
    out = tmp_path / "l.h5"
    argv = ["cluster", str(f), "-o", str(f)] if args is None else ["cluster", str(f), "-o", str(out), *args]
    before = sorted(p.name for p in tmp_path.iterdir())
    res = runner.invoke(app, argv)
    assert res.exit_code == (2 if any("does not apply" in w for w in words) else 1), res.output
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reid cluster: error:"), res.stderr
    assert all(w in err[0] for w in words), err[0]
    assert "Traceback" not in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def _counts(path):
    lf = read_labels(path)
    return lf.n_clusters, lf.n_outliers


@pytest.mark.parametrize("args,k,advice", [
    (["--eps", "1.0"], 1, "smaller --eps"),                                    # the radius reaches every image
    (["--method", "dbscan-euclidean", "--eps", "1e-6"], 0, "larger --eps"),    # every image alone: outliers
])
def test_degenerate_clustering_warns_with_numbers_and_strict_fails(tmp_path, args, k, advice):
    f = make_features(tmp_path / "f.h5", n_ids=3, per=12)
    out = tmp_path / "l.h5"
    res = runner.invoke(app, ["cluster", str(f), "-o", str(out), "--json", *args])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["n_clusters"] == k == _counts(out)[0]
    [warning] = report["warnings"]
    n_out = report["n_outliers"]
    assert f"{k} cluster" in warning and advice in warning
    assert (f"all {36 - n_out} clustered images" if k == 1 else "all 36 images are outliers") in warning
    shown = " ".join(res.stderr.split())  # the log handler wraps lines
    assert "WARNING" in shown and f"{k} cluster" in shown and advice in shown
    out2 = tmp_path / "strict.h5"
    res = runner.invoke(app, ["cluster", str(f), "-o", str(out2), "--strict", *args])
    assert res.exit_code == 1 and advice in res.stderr and "Traceback" not in res.output
    assert not out2.exists()


def test_a_good_clustering_has_no_warning(tmp_path):
    f = make_features(tmp_path / "f.h5")
    res = runner.invoke(app, ["cluster", str(f), "-o", str(tmp_path / "l.h5"), "--json", "--strict"])
    assert res.exit_code == 0, res.output
    assert "warnings" not in json.loads(res.stdout) and json.loads(res.stdout)["n_clusters"] >= 2


def test_finetune_advice_follows_the_direction_of_the_failure():
    """One cluster for everything needs a smaller --eps, no cluster a larger one."""
    from reidcli.cluster.run import degenerate

    params = {"method": "dbscan-jaccard", "eps": 0.9, "min_samples": 4, "k1": 30}
    one = degenerate(np.zeros(20, np.int64), params, "l.h5")
    assert "smaller --eps" in one and "larger" not in one and "--k1 well below the 20" in one
    none = degenerate(np.full(20, -1), params, "l.h5")
    assert "larger --eps or a smaller --min-samples" in none and "all 20 images are outliers" in none
    assert degenerate(np.array([0, 0, 1, -1]), params) is None
    assert "larger --k" in degenerate(np.zeros(5, np.int64), {"method": "kmeans", "k": 1})


def test_progress_bars_per_stage_on_a_terminal_and_none_when_quiet_or_piped(tmp_path, monkeypatch):
    """Issue 16: `reid cluster` shows a bar per stage (neighbour search, Jaccard, DBSCAN) on
    a terminal; none with -q, and none when stderr is not a TTY (CliRunner's is not)."""
    import reidcli.utils.progress as progress

    f = make_features(tmp_path / "f.h5")
    res = runner.invoke(app, ["cluster", str(f), "-o", str(tmp_path / "l.h5")])
    assert res.exit_code == 0 and "cluster: " not in res.stderr and "240/240" not in res.stderr
    monkeypatch.setattr(progress, "bars_enabled", lambda: not progress.is_quiet())  # as on a terminal
    res = runner.invoke(app, ["cluster", str(f), "-o", str(tmp_path / "l.h5")])
    assert res.exit_code == 0, res.output
    for stage in ("neighbours", "jaccard", "dbscan"):
        assert re.search(rf"cluster: {stage} .*(240/240|3/3)", res.stderr), res.stderr
    res = runner.invoke(app, ["-q", "cluster", str(f), "-o", str(tmp_path / "l.h5")])
    assert res.exit_code == 0 and res.stderr == ""
