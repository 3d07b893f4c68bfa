"""`reid stylize apply --shard i/n` + `reid merge` equal one run, and the bad input of the
issue (fewer than two cameras, a camera or image shape the model was not fitted for, a
non-stylize checkpoint, a non-empty output): one line, exit 1, nothing written."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import write_jpeg

runner = CliRunner()


def _invoke(*args):
    from reidcli.cli.app import app

    return runner.invoke(app, [str(a) for a in args])


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.name != "provenance.json"}


@pytest.fixture(scope="module")
def color_model(synth_market, tmp_path_factory):
    from reidcli.stylize import fit_style

    return fit_style(synth_market, tmp_path_factory.mktemp("m") / "style.pt", method="color")


def _two_shards(color_model, data, tmp_path) -> list:
    """``reid stylize apply --shard 1/2`` and ``2/2`` of ``data`` into tmp_path/p1, p2."""
    parts = []
    for i in (1, 2):
        res = _invoke("stylize", "apply", "--model", color_model, data, "-o", tmp_path / f"p{i}", "--shard", f"{i}/2")
        assert res.exit_code == 0, res.output
        parts.append(tmp_path / f"p{i}")
    return parts


def test_shards_merged_equal_one_run(synth_market, color_model, tmp_path):
    from reidcli.stylize.manifest import read_manifest

    split = ["--split", "train", "--split", "query"]
    res = _invoke("stylize", "apply", "--model", color_model, synth_market, "-o", tmp_path / "one", *split)
    assert res.exit_code == 0, res.output
    parts = []
    for i in (3, 1, 2):  # any order
        out = tmp_path / f"part{i}"
        res = _invoke("stylize", "apply", "--model", color_model, synth_market, "-o", out, "--shard", f"{i}/3", *split)
        assert res.exit_code == 0, res.output
        parts.append(out)
    sizes = [len(read_manifest(p)) for p in parts]
    assert all(s > 0 for s in sizes) and sum(sizes) == len(read_manifest(tmp_path / "one"))
    res = _invoke("merge", *parts, "-o", tmp_path / "merged")
    assert res.exit_code == 0, res.output
    one, merged = tmp_path / "one", tmp_path / "merged"
    assert _tree(merged) == _tree(one)  # same names (collisions bumped as in one run), bytes, manifest
    assert sorted(p.name for p in merged.iterdir() if p.is_symlink()) == \
        sorted(p.name for p in one.iterdir() if p.is_symlink())
    from reidcli.data.layouts import load_dataset

    assert [r.path for r in load_dataset(merged).split("train")] == [r.path for r in load_dataset(one).split("train")]
    # a missing shard, or shards of two runs, are refused without writing
    res = _invoke("merge", *parts[:2], "-o", tmp_path / "m2")
    assert res.exit_code == 1 and "missing shard(s) [2]" in res.output and not (tmp_path / "m2").exists()
    res = _invoke("merge", parts[0], tmp_path / "one", "-o", tmp_path / "m3")
    assert res.exit_code == 1 and "not a shard" in res.output and not (tmp_path / "m3").exists()
    res = _invoke("stylize", "apply", "--model", color_model, synth_market, "-o", tmp_path / "x", "--shard", "4/3")
    assert res.exit_code == 1 and "--shard" in res.output and not (tmp_path / "x").exists()


def _two_camera_market(root: Path, cams=(1, 2)) -> Path:
    for i, folder in enumerate(("bounding_box_train", "query", "bounding_box_test")):
        for j, c in enumerate(cams):
            write_jpeg(root / folder / f"000{j + 1}_c{c}s1_000451_0{i + 1}.jpg", h=32, w=16, seed=10 * i + j)
    return root


def _one_error_line(res, words: str) -> None:
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if "error" in ln.lower()]
    assert len(lines) == 1 and lines[0].startswith("reid stylize") and words in lines[0], res.output
    assert "Traceback" not in res.output


def test_bad_input_is_one_line_and_writes_nothing(synth_market, color_model, tmp_path):
    from fixtures_finetune import _source_ckpt

    # fewer than two cameras
    one_cam = _two_camera_market(tmp_path / "one" / "Market-1501", cams=(1,))
    _one_error_line(_invoke("stylize", "fit", one_cam, "-o", tmp_path / "a.pt"), "at least two cameras")
    assert not (tmp_path / "a.pt").exists()
    # a camera of DATA the model was not fitted on (fitted on c1, c2; synth has more)
    two = _two_camera_market(tmp_path / "two" / "Market-1501")
    res = _invoke("stylize", "fit", two, "-o", tmp_path / "two.pt")
    assert res.exit_code == 0, res.output
    _one_error_line(_invoke("stylize", "apply", "--model", tmp_path / "two.pt", synth_market, "-o", tmp_path / "b"),
                    "is not in")
    assert not (tmp_path / "b").exists()
    # a re-ID checkpoint as the style model
    reid = _source_ckpt(tmp_path / "reid.pt")
    _one_error_line(_invoke("stylize", "apply", "--model", reid, synth_market, "-o", tmp_path / "c"),
                    "not a camera-style model")
    assert not (tmp_path / "c").exists()
    # a non-empty output folder without --force: left as it was
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.txt").write_text("mine")
    _one_error_line(_invoke("stylize", "apply", "--model", color_model, synth_market, "-o", tmp_path / "d"),
                    "--force")
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["keep.txt"]
    res = _invoke("stylize", "apply", "--model", color_model, synth_market, "-o", tmp_path / "d", "--force")
    assert res.exit_code == 0 and not (tmp_path / "d" / "keep.txt").exists()
    assert not list(tmp_path.glob(".*tmp-*"))


def test_stargan_refuses_an_image_shape_it_was_not_fitted_for(synth_market, tmp_path):
    from reidcli.stylize.train import fit_stargan, stargan_train_config

    model = fit_stargan(synth_market, tmp_path / "g.pt", options={"g_conv_dim": 8, "d_conv_dim": 8, "g_repeat": 1},
                        train=stargan_train_config(epochs=1, iters_per_epoch=1, p=4, workers=0, amp=False),
                        image_size=(16, 16), device="cpu")  # synth images are 64x32: height/width 2, not 1
    res = _invoke("stylize", "apply", "--model", model, synth_market, "-o", tmp_path / "s", "--device", "cpu")
    _one_error_line(res, "fitted at 16x16")
    assert "64x32" in res.output and not (tmp_path / "s").exists() and not list(tmp_path.glob(".*tmp-*"))


def test_manifest_of_a_shard_lists_only_its_block(synth_market, color_model, tmp_path):
    from reidcli.data.layouts import load_dataset
    from reidcli.stylize import apply_style

    recs = [str(load_dataset(synth_market).abspath(r)) for r in load_dataset(synth_market).split("train")]
    got = []
    for i in (1, 2):
        res = apply_style(color_model, synth_market, tmp_path / f"s{i}", shard=(i, 2))
        with open(res["manifest"], newline="") as fh:
            got.append(list(dict.fromkeys(r["original"] for r in csv.DictReader(fh))))
    half = len(recs) // 2
    assert got == [recs[:half], recs[half:]]


def test_the_tree_layout_is_worked_out_once_per_run(synth_market, color_model, tmp_path, monkeypatch):
    """The styled names (originals linked file by file) and the tree around them come from one
    layout: the styled splits' top folders are computed once per run, not twice."""
    from reidcli.stylize import apply_style
    from reidcli.stylize.naming import Writer

    calls = []
    real = Writer.styled_tops
    monkeypatch.setattr(Writer, "styled_tops", lambda self, *a: calls.append(1) or real(self, *a))
    res = apply_style(color_model, synth_market, tmp_path / "s", split=["train", "query"])
    assert res["images"] > 0 and len(calls) == 1


def test_merge_reads_shard_manifests_with_the_shared_reader(synth_market, color_model, tmp_path):
    """`reid merge` reads each shard's manifest.csv with `read_manifest` (the writer's
    counterpart): a shard without images (header only) is fine, a missing column is the one
    message every reader of the manifest gives."""
    from reidcli.stylize.manifest import MANIFEST, MANIFEST_COLUMNS, read_manifest, write_manifest
    from reidcli.utils.errors import FormatError

    write_manifest(tmp_path, [])
    assert read_manifest(tmp_path, empty_ok=True) == []
    with pytest.raises(FormatError, match="no rows"):
        read_manifest(tmp_path)
    parts = _two_shards(color_model, synth_market, tmp_path)
    manifest = parts[1] / MANIFEST
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(",".join(v.split(",")[:-1]) for v in lines) + "\n")  # drop `output`
    res = _invoke("merge", *parts, "-o", tmp_path / "merged")
    assert res.exit_code == 1 and "Traceback" not in res.output
    errors = [ln for ln in res.stderr.splitlines() if "error" in ln]
    assert errors == [f"reid merge: error: {manifest}: no column {MANIFEST_COLUMNS[-1]}; re-create it with "
                      "'reid stylize apply'"]
    assert not (tmp_path / "merged").exists() and not list(tmp_path.glob(".*tmp-*"))


def test_manifest_originals_match_from_any_working_folder(synth_market, color_model, tmp_path,
                                                           monkeypatch):
    """DATA given relative to the working folder: the manifest still names each original by
    its absolute path, so `finetune --styled` run from elsewhere finds the originals."""
    import numpy as np

    from reidcli.data.layouts import load_dataset
    from reidcli.stylize import apply_style
    from reidcli.stylize.manifest import add_styled, read_manifest

    monkeypatch.chdir(synth_market.parent)
    out = apply_style(color_model, synth_market.name, tmp_path / "s", cams="1")["out"]
    rows = read_manifest(out)
    assert rows and all(Path(r["original"]).is_absolute() and Path(r["original"]).is_file() for r in rows)
    monkeypatch.chdir(tmp_path)
    recs = load_dataset(synth_market).split("train")
    recs2, y2 = add_styled(recs, np.arange(len(recs)), synth_market, out)
    assert len(recs2) == len(recs) + len(rows)
    # an output that is a file: one line naming it, the file left as it was
    (tmp_path / "f").write_text("mine")
    _one_error_line(_invoke("stylize", "apply", "--model", color_model, synth_market, "-o", tmp_path / "f"),
                    "is a file, not a folder")
    assert (tmp_path / "f").read_text() == "mine"


def test_merge_refuses_a_shard_whose_manifest_and_images_disagree(synth_market, color_model, tmp_path):
    """A shard whose manifest.csv lost a row (an image in the folder that no row lists) or lists
    an image that is gone is one line naming the shard, its manifest and the first mismatch;
    nothing is written."""
    from reidcli.stylize.manifest import MANIFEST

    parts = _two_shards(color_model, synth_market, tmp_path)
    manifest = parts[1] / MANIFEST
    text = manifest.read_text()
    header, first, *rest = text.splitlines()
    dropped = first.rsplit(",", 1)[1]
    manifest.write_text("\n".join([header, *rest]) + "\n")  # a row lost: its image is on disk, unlisted
    res = _invoke("merge", *parts, "-o", tmp_path / "merged")
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert res.stderr.strip().splitlines() == [
        f"reid merge: error: {manifest} (shard 2/2) does not list 1 styled image(s) of the folder, first "
        f"{dropped}; the shard is damaged: re-run 'reid stylize apply --shard 2/2' into a new folder, then merge again"]
    manifest.write_text(text)
    gone = next(r.rsplit(",", 1)[1] for r in (parts[0] / MANIFEST).read_text().splitlines()[1:])
    (parts[0] / gone).unlink()  # a listed image is gone
    res = _invoke("merge", *parts, "-o", tmp_path / "merged")
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert res.stderr.strip().splitlines() == [
        f"reid merge: error: {parts[0] / MANIFEST} (shard 1/2) lists 1 image(s) missing from the folder, first "
        f"{gone}; the shard is damaged: re-run 'reid stylize apply --shard 1/2' into a new folder, then merge again"]
    assert not (tmp_path / "merged").exists() and not list(tmp_path.glob(".*tmp-*"))


def test_finetune_refuses_an_unmerged_shard_as_styled(synth_market, color_model, tmp_path):
    """`reid finetune --styled` given one shard of 'reid stylize apply --shard i/n' (part of the
    styled images) is one line saying to merge the shards first, before any work; the merged
    tree is accepted."""
    import numpy as np

    from reidcli.data.layouts import load_dataset
    from reidcli.stylize.manifest import add_styled, require_whole_tree, shard_of
    from reidcli.utils.params import ParamError

    parts = _two_shards(color_model, synth_market, tmp_path)
    ckpt = Path(__file__).parent / "data" / "format" / "v1" / "checkpoint.pt"
    res = _invoke("finetune", synth_market, "--ckpt", ckpt, "-o", tmp_path / "x.pt", "--method", "camstyle",
                  "--source", synth_market, "--styled", parts[1], "--device", "cpu")
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert res.stderr.strip().splitlines() == [
        f"reid finetune: error: --styled {parts[1]} is shard 2/2 of a 'reid stylize apply --shard i/n' run, not "
        "the whole styled tree; join the 2 shard folders first with 'reid merge SHARD... -o STYLED' and pass that "
        "folder"]
    assert not (tmp_path / "x.pt").exists()
    recs = load_dataset(synth_market).split("train")
    with pytest.raises(ParamError, match=r"^styled .*p1 is shard 1/2 of"):
        add_styled(recs, np.arange(len(recs)), synth_market, parts[0])
    res = _invoke("merge", *parts, "-o", tmp_path / "merged")
    assert res.exit_code == 0, res.output
    assert shard_of(tmp_path / "merged") is None and [shard_of(p) for p in parts] == [(1, 2), (2, 2)]
    require_whole_tree(tmp_path / "merged")
    assert len(add_styled(recs, np.arange(len(recs)), synth_market, tmp_path / "merged")[0]) > len(recs)
