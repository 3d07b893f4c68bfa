"""`reid stylize apply` on every layout it writes (msmt17, sysu, csv; market in
test_stylize.py): the styled tree parses back with the originals' ids and the style
cameras, the manifest rows are exactly the styled images, and ``--shard`` + ``reid merge``
give the tree one run gives. Layouts whose names cannot carry a camera are refused with
one line and nothing written."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest


def _synth(tmp: Path, domain: str, cams=None, per_id=3) -> Path:
    from reidcli.data.synth import synthesize

    out = tmp / domain
    synthesize(out, domain=domain, ids=3, test_ids=2, images_per_id=per_id, cams=cams, height=32, width=16, seed=1)
    return out


def _csv_of(market: Path, tmp: Path) -> Path:
    """A csv list of the market tree's train and query images (absolute paths: the list
    lives beside the images' root, so give it that folder's paths relative to it)."""
    from reidcli.data.layouts import load_dataset

    ds = load_dataset(market)
    path = market / "list.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(("path", "pid", "camid", "modality", "split"))
        for s in ("train", "query"):
            for r in ds.split(s):
                w.writerow((r.path, r.pid, r.camid, 0, s))
    return path


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def datasets(synth_market, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("layouts")
    import shutil

    market = tmp / "market"
    shutil.copytree(synth_market, market)
    return {"msmt17": _synth(tmp, "msmt", cams=3), "sysu": _synth(tmp, "sysu"), "csv": _csv_of(market, tmp)}


def _check_round_trip(data: Path, out: Path, fmt: str, split=("train",)):
    from reidcli.data.layouts import load_dataset
    from reidcli.stylize.naming import styled_dataset_path

    src = load_dataset(data)
    back = load_dataset(styled_dataset_path(out, src))
    assert src.format == back.format == fmt
    rows = _rows(out / "manifest.csv")
    orig = {str(src.abspath(r)): r for s in split for r in src.split(s)}
    styled_back = {r.path: r for s in split for r in back.split(s)}
    # every styled image parses back, and nothing else is in the styled splits
    assert sorted(styled_back) == sorted(row["output"] for row in rows)
    n_cams = len({r.camid for s in split for r in src.split(s)})
    assert len(rows) == len(orig) * (n_cams - 1)
    for row in rows:
        rec, o = styled_back[row["output"]], orig[row["original"]]
        assert rec.pid == o.pid == int(row["pid"])
        assert rec.camid + 1 == int(row["style_cam"]) != int(row["source_cam"]) == o.camid + 1
        assert (out / row["output"]).is_file() and not (out / row["output"]).is_symlink()
    for s in src.splits:  # the splits not styled are DATA's own
        if s not in split and not (fmt == "msmt17" and s == "val"):
            assert [(r.path, r.pid, r.camid) for r in back.split(s)] == \
                [(r.path, r.pid, r.camid) for r in src.split(s)]
    return src, back, rows


@pytest.mark.parametrize("fmt", ["msmt17", "sysu", "csv"])
def test_apply_round_trips_every_layout(datasets, fmt, tmp_path):
    from reidcli.stylize import apply_style, fit_style

    data = datasets[fmt]
    model = fit_style(data, tmp_path / "style.pt", method="color", max_images=4)
    res = apply_style(model, data, tmp_path / "styled")
    src, back, rows = _check_round_trip(data, tmp_path / "styled", fmt)
    assert res["images"] == len(rows)
    if fmt == "msmt17":  # list_val images (part of train) stay in list_val
        val = {str(src.abspath(r)) for r in src.split("val")}
        assert val and {r.path for r in back.split("val")} == {row["output"] for row in rows if row["original"] in val}
    if fmt == "sysu":  # the modality follows the style camera, as the parser has it
        assert {(r.camid, r.modality) for r in back.split("train")} <= {(2, 1), (5, 1), (0, 0), (1, 0), (3, 0), (4, 0)}


def test_msmt17_query_styled_keeps_gallery_and_train(datasets, tmp_path):
    """Styling a split that shares its image folder with one not styled (query / gallery
    in test/): the originals are linked file by file, their list copied."""
    from reidcli.stylize import apply_style, fit_style

    data = datasets["msmt17"]
    model = fit_style(data, tmp_path / "style.pt", method="color", split="query", max_images=4)
    apply_style(model, data, tmp_path / "styled", split=("query",), cams="1,3")
    _, back, rows = _check_round_trip(data, tmp_path / "styled", "msmt17", split=("query",))
    assert {int(row["style_cam"]) for row in rows} == {1, 3}
    assert (tmp_path / "styled" / "list_gallery.txt").read_text() == (data / "list_gallery.txt").read_text()


@pytest.mark.parametrize("fmt", ["msmt17", "csv"])
def test_shards_merge_into_one_run(datasets, fmt, tmp_path):
    from reidcli.data.layouts import load_dataset
    from reidcli.stylize import apply_style, fit_style
    from reidcli.stylize.merge import merge_styled
    from reidcli.stylize.naming import styled_dataset_path

    data = datasets[fmt]
    model = fit_style(data, tmp_path / "style.pt", method="color", max_images=4)
    apply_style(model, data, tmp_path / "one")
    parts = [apply_style(model, data, tmp_path / f"s{i}", shard=(i, 2))["out"] for i in (1, 2)]
    merge_styled(parts, tmp_path / "merged")
    src = load_dataset(data)
    one, merged = (load_dataset(styled_dataset_path(tmp_path / n, src)) for n in ("one", "merged"))
    for s in src.splits:
        assert [(r.path, r.pid, r.camid) for r in merged.split(s)] == [(r.path, r.pid, r.camid) for r in one.split(s)]
    assert _rows(tmp_path / "merged" / "manifest.csv") == _rows(tmp_path / "one" / "manifest.csv")


def _one_line_error(args, needle):
    from typer.testing import CliRunner

    from reidcli.cli.app import app

    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if "error" in ln.lower()]  # INFO lines of the parser aside
    assert len(lines) == 1 and lines[0].startswith("reid stylize apply: error") and needle in lines[0], res.output
    assert "Traceback" not in res.output


def test_unsupported_layouts_are_one_line_and_write_nothing(synth_market, datasets, tmp_path):
    import shutil

    from reidcli.stylize import fit_style

    model = fit_style(synth_market, tmp_path / "style.pt", method="color", max_images=4)
    regdb = _synth(tmp_path, "regdb", per_id=2)
    flat = tmp_path / "flat"  # an unlabelled folder (cameras in the names, but no --cam-regex)
    shutil.copytree(synth_market / "bounding_box_train", flat)
    pids = tmp_path / "pids"  # the labelled <pid>/<image> folder layout
    for p in sorted(flat.iterdir()):
        (pids / p.name[:4]).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, pids / p.name[:4] / p.name)
    for data, needle in ((regdb, "two modalities"), (flat, "--cam-regex"), (pids, "--cam-regex")):
        out = tmp_path / f"out-{data.name}"
        _one_line_error(["stylize", "apply", "--model", model, data, "-o", out], needle)
        assert not out.exists() and not list(tmp_path.glob(f".{out.name}*"))
    sysu_model = fit_style(datasets["sysu"], tmp_path / "sysu.pt", method="color", max_images=4)
    out = tmp_path / "out-sysu"
    _one_line_error(["stylize", "apply", "--model", sysu_model, datasets["sysu"], "-o", out, "--split", "query"],
                    "change split")
    assert not out.exists()
