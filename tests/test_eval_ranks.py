"""The ranked-list grid (`reid evaluate --ranks-png`): which queries it shows (a seeded
sample, the worst or the best by AP), the order and distances of their gallery items (the
ones the metrics used, re-ranked with --rerank), checked at the level of `ranked_rows`
against independent references, plus the CLI flag."""

from __future__ import annotations

import numpy as np
import pytest

from reidcli.eval import Options, evaluate
from reidcli.eval.plots import hit_caption, query_caption
from reidcli.eval.ranking import RankOptions, rank_queries_reference, top_valid
from reidcli.eval.report import ranked_rows
from reidcli.eval.rerank import rerank_dense
from reidcli.utils.errors import ConfigError
from tests.conftest import write_jpeg
from tests.test_eval_cli import make_file, run


def splits(seed=0, n_ids=6, noise=0.9):
    """One query per identity, three gallery images per identity over three cameras, two
    distractors (pid 0) and one junk image (pid -1); noisy enough that APs differ."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids + 1, 8))
    qp = np.arange(1, n_ids + 1)
    gp = np.r_[np.repeat(qp, 3), [0, 0, -1]]
    qc, gc = np.arange(len(qp)) % 3, np.arange(len(gp)) % 3
    feats = lambda p: (centres[np.maximum(p, 0)] + noise * rng.normal(size=(len(p), 8))).astype(np.float32)
    make = lambda p, c, tag: {"features": feats(p), "pids": p, "camids": c, "modality": None,
                              "paths": [f"{tag}/{i}.jpg" for i in range(len(p))]}
    return make(qp, qc, "q"), make(gp, gc, "g")


def reference_top(dist: np.ndarray, q: dict, g: dict, k: int, cam_filter=True, skip_cams=()) -> list:
    """Per query: (gallery row, distance) of its k nearest valid items by a stable arg-sort,
    junk and (with ``cam_filter``) same identity + camera removed, and the (query camera,
    gallery camera) pairs of ``skip_cams``, written out plainly."""
    out = []
    for i in range(len(dist)):
        qp, qc = q["pids"][i], q["camids"][i]
        keep = [c for c in np.argsort(dist[i], kind="stable")
                if g["pids"][c] >= 0 and not (cam_filter and g["pids"][c] == qp and g["camids"][c] == qc)
                and (qc, g["camids"][c]) not in skip_cams]
        out.append([(int(c), float(dist[i, c])) for c in keep[:k]])
    return out


def hits_of(row: dict, g: dict) -> list[tuple[int, float]]:
    return [(g["paths"].index(path), dist) for path, _, _, dist in row["hits"]]


@pytest.mark.parametrize("cam_filter,skip_cams", [(True, ()), (False, ()), (True, ((0, 1), (2, 0)))])
def test_top_valid_is_a_stable_argsort_of_the_valid_items(cam_filter, skip_cams):
    """Integer distances force ties, also across the k-th place; k larger than some rows'
    valid items pads with -1 / inf."""
    rng = np.random.default_rng(1)
    q, g = splits()
    d = rng.integers(0, 4, size=(len(q["pids"]), len(g["pids"]))).astype(np.float32)
    opts = RankOptions(cam_filter=cam_filter, skip_cams=skip_cams)
    for k in (1, 3, 7, len(g["pids"]) - 1, len(g["pids"]) + 2):
        cols, dist = top_valid(d, q["pids"], q["camids"], g["pids"], g["camids"], opts, k)
        for i, want in enumerate(reference_top(d, q, g, k, cam_filter, skip_cams)):
            n = len(want)
            assert [(int(c), float(v)) for c, v in zip(cols[i, :n], dist[i, :n])] == want
            assert (cols[i, n:] == -1).all() and np.isinf(dist[i, n:]).all()


def test_top_valid_on_tensors_equals_numpy():
    """The device path (torch's top-k leaves ties in any order) gives the same lists."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    q, g = splits()
    d = rng.integers(0, 3, size=(len(q["pids"]), len(g["pids"]))).astype(np.float32)
    for opts in (RankOptions(), RankOptions(skip_cams=((0, 1),))):
        want = top_valid(d, q["pids"], q["camids"], g["pids"], g["camids"], opts, 5)
        got = top_valid(torch.from_numpy(d), q["pids"], q["camids"], g["pids"], g["camids"], opts, 5)
        assert all(np.array_equal(a, b) for a, b in zip(want, got))


@pytest.mark.parametrize("how", ["worst", "best"])
def test_worst_and_best_pick_by_per_query_ap(how):
    q, g = splits()
    res = evaluate(q, g, Options(chunk=2), keep_top=4)
    ap = res.per_query.ap
    valid = [j for j in range(len(ap)) if res.per_query.valid[j]]
    assert len(set(np.round(ap[valid], 6))) > 2  # APs differ, so the choice matters
    key = (lambda j: (ap[j], j)) if how == "worst" else (lambda j: (-ap[j], j))
    want = sorted(valid, key=key)[:3]
    rows = ranked_rows(res, q, g, n=3, top=4, how=how)
    assert [r["index"] for r in rows] == [int(res.q_rows[j]) for j in want]
    assert [r["ap"] for r in rows] == [float(ap[j]) for j in want]
    sq = ((q["features"][:, None] - g["features"][None]) ** 2).sum(2)
    ref = rank_queries_reference(sq, q["pids"], q["camids"], g["pids"], g["camids"])
    assert [r["ap"] for r in rows] == pytest.approx([ref.ap[j] for j in want])
    # more than there are valid queries: every valid one, once
    assert sorted(r["index"] for r in ranked_rows(res, q, g, n=99, top=4, how=how)) == valid


def test_ties_in_ap_keep_query_order():
    q, g = splits(noise=0.05)  # well separated: every query has AP 1
    res = evaluate(q, g, Options(), keep_top=2)
    assert np.allclose(res.per_query.ap[res.per_query.valid], 1.0)
    for how in ("worst", "best"):
        assert [r["index"] for r in ranked_rows(res, q, g, n=3, top=2, how=how)] == [0, 1, 2]


def test_sample_is_the_seeded_draw_in_query_order():
    q, g = splits()
    res = evaluate(q, g, Options(), keep_top=3)
    valid = np.flatnonzero(res.per_query.valid)
    want = np.sort(np.random.default_rng(7).choice(valid, size=3, replace=False))
    assert [r["index"] for r in ranked_rows(res, q, g, n=3, top=3, seed=7)] == list(want)


@pytest.mark.parametrize("how", ["sample", "worst", "best"])
def test_rows_follow_the_reranked_distances(how):
    """With re-ranking the grid ranks by the re-ranked distances the metrics used: each row
    equals a stable arg-sort of `rerank_dense` over the whole query + gallery set, and
    differs from the plain ranking somewhere (so the test tells them apart)."""
    q, g = splits()
    kw = {"k1": 4, "k2": 2, "lambda_value": 0.3}
    res = evaluate(q, g, Options(rerank=True, chunk=2, **kw), keep_top=5)
    rows = ranked_rows(res, q, g, n=6, top=5, how=how)
    dist = rerank_dense(q["features"], g["features"], chunk=2, **kw)
    want = reference_top(dist, q, g, 5)
    assert [hits_of(r, g) for r in rows] == [want[r["index"]] for r in rows]
    for r in rows:
        assert [ok for _, _, ok, _ in r["hits"]] == [bool(g["pids"][c] == r["pid"]) for c, _ in want[r["index"]]]
    plain = ranked_rows(evaluate(q, g, Options(), keep_top=5), q, g, n=6, top=5, how="sample")
    by_index = {r["index"]: [c for c, _ in hits_of(r, g)] for r in plain}
    assert any(by_index[r["index"]] != [c for c, _ in hits_of(r, g)] for r in rows)


def test_plain_rows_follow_the_plain_distances():
    q, g = splits()
    res = evaluate(q, g, Options(metric="cosine"), keep_top=4)
    qn = q["features"] / np.linalg.norm(q["features"], axis=1, keepdims=True)
    gn = g["features"] / np.linalg.norm(g["features"], axis=1, keepdims=True)
    want = reference_top(1.0 - qn @ gn.T, q, g, 4)
    for r in ranked_rows(res, q, g, n=4, top=4, how="worst"):
        got = hits_of(r, g)
        assert [c for c, _ in got] == [c for c, _ in want[r["index"]]]
        assert [v for _, v in got] == pytest.approx([v for _, v in want[r["index"]]], abs=1e-5)


def test_rows_need_the_kept_lists():
    q, g = splits()
    with pytest.raises(ConfigError, match="keep_top=4"):
        ranked_rows(evaluate(q, g, Options(), keep_top=2), q, g, n=2, top=4)
    with pytest.raises(ConfigError, match="keep_top=3"):
        ranked_rows(evaluate(q, g, Options()), q, g, n=2, top=3)


def test_outputs_check_ranks_queries(tmp_path):
    from reidcli.eval import Outputs, evaluate_file
    from reidcli.utils.params import ParamError

    with pytest.raises(ParamError, match=r"^ranks_queries must be one of sample, worst, best; got 'worse'$"):
        evaluate_file(tmp_path / "missing.h5", outputs=Outputs(ranks_queries="worse"))


def test_captions():
    assert hit_caption(3, 17, 0.41234) == ("3: 17", "d 0.412")
    assert hit_caption(10, 1501, 1234.5) == ("10: 1501", "d 1.23e+03")
    assert query_caption({"pid": 17, "camid": 2, "ap": 0.5}) == ("q 17 c3", "AP 0.5")  # camid 0-based


def test_query_captions_show_the_cameras_of_the_file_names(synth_market):
    """A `reid synth` Market tree: each query's caption names the camera its file name does
    (``0003_c2s1_...`` is camid 1, shown ``c2``), not the 0-based camid."""
    import re

    from reidcli.data.layouts import load_dataset

    ds = load_dataset(synth_market)
    rng = np.random.default_rng(0)

    def split(name):
        recs = ds.split(name)
        return {"features": rng.normal(size=(len(recs), 8)).astype(np.float32), "paths": [r.path for r in recs],
                "pids": np.array([r.pid for r in recs]), "camids": np.array([r.camid for r in recs])}

    q, g = split("query"), split("gallery")
    rows = ranked_rows(evaluate(q, g, Options(), keep_top=2), q, g, n=4, top=2)
    assert rows
    for row in rows:
        cam = re.search(r"_c(\d+)", row["path"]).group(1)
        assert query_caption(row)[0] == f"q {row['pid']} c{cam}", row["path"]


def test_cli_worst_reranked(tmp_path):
    f = make_file(tmp_path)
    png = tmp_path / "worst.png"
    res = run(f, "--rerank", "--k1", "4", "--k2", "2", "--ranks-png", png, "--ranks-queries", "worst",
              "--top", "3", "--n-queries", "2")
    assert res.exit_code == 0, res.output
    err = " ".join(res.stderr.split())
    assert f"wrote {png} (2 worst queries (lowest AP) x top 3 gallery images by re-ranked distance)" in err
    assert "before re-ranking" not in err
    import cv2

    grid = cv2.imread(str(png))
    assert grid is not None and grid.shape[0] >= 2 * 128 and grid.shape[1] >= 4 * 64


def test_cli_bad_ranks_queries_is_a_usage_error(tmp_path):
    f = make_file(tmp_path, images=False)
    png = tmp_path / "r.png"
    res = run(f, "--ranks-png", png, "--ranks-queries", "worse")
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == [
        "reid evaluate: error: Invalid value for '--ranks-queries': must be one of sample, worst, best; "
        "got 'worse' (see 'reid evaluate --help')"]
    assert not png.exists()


def test_cli_note_says_how_many_gallery_images_it_drew(tmp_path):
    """--top above the valid gallery items of a query (21 gallery images less one junk and the
    one same-camera match of each query: 19): the note says 19 were drawn, not "top 30"."""
    f = make_file(tmp_path)
    png = tmp_path / "all.png"
    res = run(f, "--ranks-png", png, "--top", "30", "--n-queries", "2")
    assert res.exit_code == 0, res.output
    err = " ".join(res.stderr.split())
    assert f"wrote {png} (2 seeded sample queries x the 19 valid (of --top 30) gallery images by euclidean distance)" \
        in err, err


def _reid(*args):
    """``reid`` in a child process: OpenCV writes its warnings to the process's stderr, past
    Python's ``sys.stderr`` (which CliRunner captures)."""
    import os
    import subprocess
    import sys

    code = "import sys; from reidcli.cli.app import main; sys.argv = ['reid', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)


def test_cli_missing_images_are_one_line_without_opencv_warnings(tmp_path):
    """--ranks-png with a wrong --image-root (or an image gone from the dataset) is one line
    naming the first missing image and --image-root, before any output is written, with no
    OpenCV warning; the right --image-root draws the grid silently."""
    f = make_file(tmp_path)
    wrong, png, pq = tmp_path / "wrong", tmp_path / "r.png", tmp_path / "pq.csv"
    wrong.mkdir()
    res = _reid("-q", "evaluate", f, "--ranks-png", png, "--per-query", pq, "--top", "3", "--n-queries", "2",
                "--image-root", wrong)
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"reid evaluate: error: {wrong}/query/"), res.stderr
    assert lines[0].endswith(f": no such image (8 of the 8 images the --ranks-png grid shows are missing under "
                             f"--image-root {wrong}); give --image-root the dataset folder the features were "
                             "extracted from"), lines[0]
    assert not png.exists() and not pq.exists()
    gone = sorted((tmp_path / "data" / "query").glob("*.jpg"))[-1]  # one image gone: named, even with the rest there
    gone.unlink()
    res = _reid("-q", "evaluate", f, "--ranks-png", png, "--top", "30", "--n-queries", "6")
    assert res.returncode == 1 and res.stderr.strip().splitlines() == [
        f"reid evaluate: error: {gone}: no such image (1 of the {6 + 6 * 19} images the --ranks-png grid shows are "
        f"missing under {tmp_path / 'data'}, the dataset folder the features file records); pass --image-root DIR, "
        "the folder the dataset is in now"], res.stderr
    import shutil

    shutil.copytree(tmp_path / "data", wrong, dirs_exist_ok=True)  # the dataset moved there: --image-root finds it
    write_jpeg(wrong / "query" / gone.name)
    res = _reid("-q", "evaluate", f, "--ranks-png", png, "--top", "3", "--n-queries", "2", "--image-root", wrong)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert png.stat().st_size > 0
