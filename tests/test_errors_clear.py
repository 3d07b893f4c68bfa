"""Clear one-line errors where "internal error" used to be (issue 16): damaged files, broken
provenance, wrong dtypes, symlink loops, unreadable folders, bad numbers, empty inputs;
validators that refuse what they used to truncate; click's own usage errors as one line."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.io import h5

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "format" / "v1"
runner = CliRunner()


def one_line(res, command: str, code: int = 1) -> str:
    assert res.exit_code == code, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"reid {command}: error: "), lines[0]
    assert "internal error" not in lines[0] and "Traceback" not in res.output
    return lines[0]


def _features(path: Path, n: int = 24, d: int = 8) -> Path:
    rng = np.random.default_rng(0)
    s = h5.SplitFeatures(rng.normal(size=(n, d)).astype(np.float32), [f"{i}.jpg" for i in range(n)],
                         np.arange(n) % 4, np.arange(n) % 2)
    return h5.write_features(path, h5.FeaturesFile({"train": s, "query": s, "gallery": s}))


# --------------------------------------------------------------------------- 7. clear lines
def test_truncated_hdf5_names_the_file(tmp_path):
    f = _features(tmp_path / "f.h5")
    cut = tmp_path / "cut.h5"
    cut.write_bytes(f.read_bytes()[:4000])
    for argv in (["cluster", cut, "-o", tmp_path / "l.h5"], ["info", cut], ["evaluate", cut]):
        line = one_line(runner.invoke(app, [str(a) for a in argv]), argv[0])
        assert f"{cut} is a damaged or truncated HDF5 file" in line


def _edit(src: Path, dst: Path, fn) -> Path:
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        fn(f)
    return dst


def _replace(f, key, data, **kw):
    del f[key]
    f.create_dataset(key, data=data, **kw)


@pytest.mark.parametrize("case,edit,words", [
    ("json", lambda f: _replace(f, "provenance", np.array(["{not json"], dtype=object), dtype=h5.STR),
     "/provenance record 0 is not valid JSON"),
    ("list", lambda f: _replace(f, "provenance", np.array(["[1, 2]"], dtype=object), dtype=h5.STR),
     "/provenance record 0 is a JSON list, not an object"),
    ("paths", lambda f: _replace(f, "train/paths", np.arange(24)),
     "/train/paths must be a 1-D array of strings; found int64 (24,)"),
    ("group", lambda f: (f.__delitem__("train/pids"), f.create_group("train/pids")),
     "/train/pids must be a dataset, not a group"),
])
def test_malformed_files_are_one_line(tmp_path, case, edit, words):
    bad = _edit(_features(tmp_path / "f.h5"), tmp_path / "bad.h5", edit)
    for argv in (["cluster", bad, "-o", tmp_path / "l.h5"], ["info", bad]):
        line = one_line(runner.invoke(app, [str(a) for a in argv]), argv[0])
        assert f"{bad}:" in line and words in line, line
    assert not (tmp_path / "l.h5").exists()


def test_symlink_loop_and_dangling_inputs(tmp_path):
    (tmp_path / "a.h5").symlink_to(tmp_path / "b.h5")
    (tmp_path / "b.h5").symlink_to(tmp_path / "a.h5")
    (tmp_path / "d.h5").symlink_to(tmp_path / "gone.h5")
    line = one_line(runner.invoke(app, ["info", str(tmp_path / "a.h5")]), "info")
    assert line.endswith(f"{tmp_path / 'a.h5'} is a symlink loop; fix the link")
    line = one_line(runner.invoke(app, ["cluster", str(tmp_path / "d.h5"), "-o", str(tmp_path / "l.h5")]), "cluster")
    assert line.endswith(f"{tmp_path / 'd.h5'} is a dangling symlink (to {tmp_path / 'gone.h5'}); fix the link")


def test_a_symlink_loop_given_where_click_checks_existence_is_named(tmp_path):
    """An argument click checks for existence (the dataset folder, --ckpt): a symlink loop or
    a dangling link is named as such, not "does not exist" (exit 2, one line)."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    (tmp_path / "d.pt").symlink_to(tmp_path / "gone.pt")
    (tmp_path / "data").mkdir()
    out = tmp_path / "f.h5"
    res = runner.invoke(app, ["features", "--ckpt", str(tmp_path / "a"), str(tmp_path / "data"), "-o", str(out)])
    assert res.exit_code == 2 and res.stderr.strip().splitlines() == [
        f"reid features: error: Invalid value for '--ckpt': {tmp_path / 'a'} is a symlink loop; fix the link "
        "(see 'reid features --help')"]
    res = runner.invoke(app, ["features", "--ckpt", str(tmp_path / "d.pt"), str(tmp_path / "a"), "-o", str(out)])
    assert res.exit_code == 2 and res.stderr.strip().splitlines() == [
        f"reid features: error: Invalid value for '--ckpt': {tmp_path / 'd.pt'} is a dangling symlink "
        f"(to {tmp_path / 'gone.pt'}); fix the link (see 'reid features --help')"]
    res = runner.invoke(app, ["pretrain", str(tmp_path / "b"), "-o", str(tmp_path / "m.pt")])
    assert res.exit_code == 2 and res.stderr.strip().splitlines() == [
        f"reid pretrain: error: Invalid value for 'data': {tmp_path / 'b'} is a symlink loop; fix the link "
        "(see 'reid pretrain --help')"]
    res = runner.invoke(app, ["features", "--ckpt", str(tmp_path / "nope.pt"), str(tmp_path / "data"), "-o", str(out)])
    assert "file '" + str(tmp_path / "nope.pt") + "' does not exist." in res.stderr  # a plain missing file
    assert not out.exists()


def test_unreadable_subfolder_is_an_error_not_silently_skipped(tmp_path, monkeypatch):
    from conftest import write_jpeg

    data = tmp_path / "imgs"
    write_jpeg(data / "ok" / "a.jpg")
    locked = data / "locked"
    write_jpeg(locked / "b.jpg")
    os.chmod(locked, 0)
    try:
        if os.access(locked, os.R_OK):  # root reads anyway: let the listing be refused as it would be
            real = os.scandir

            def scandir(path="."):
                if Path(path) == locked:
                    raise PermissionError(13, "Permission denied", str(path))
                return real(path)

            monkeypatch.setattr(os, "scandir", scandir)
        res = runner.invoke(app, ["-q", "info", str(data), "--format", "unlabelled"])
        line = one_line(res, "info")
        assert line.endswith(f"{locked}: cannot be read (Permission denied); fix its permissions, or move it "
                             "out of the dataset folder")
    finally:
        os.chmod(locked, 0o755)


def test_an_os_error_naming_a_file_is_one_line(tmp_path, monkeypatch):
    import sys

    run = sys.modules["reidcli.cluster.run"]
    f = _features(tmp_path / "f.h5")

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied", str(f))

    monkeypatch.setattr(run, "cluster_features", refuse)
    line = one_line(runner.invoke(app, ["cluster", str(f), "-o", str(tmp_path / "l.h5")]), "cluster")
    assert line == f"reid cluster: error: {f}: Permission denied; check the path and its permissions"


def test_empty_inputs(tmp_path):
    (tmp_path / "e.h5").write_bytes(b"")
    (tmp_path / "e.pt").write_bytes(b"")
    line = one_line(runner.invoke(app, ["cluster", str(tmp_path / "e.h5"), "-o", str(tmp_path / "l.h5")]), "cluster")
    assert "e.h5 is not an HDF5 file" in line
    from conftest import write_jpeg

    write_jpeg(tmp_path / "d" / "a.jpg")
    line = one_line(runner.invoke(app, ["-q", "features", "--format", "unlabelled", "--ckpt", str(tmp_path / "e.pt"), str(tmp_path / "d"),
                                        "-o", str(tmp_path / "f.h5")]), "features")
    assert "e.pt is an empty file, not a reidcli checkpoint" in line


def test_nan_learning_rate(tmp_path):
    (tmp_path / "d").mkdir()
    line = one_line(runner.invoke(app, ["pretrain", str(tmp_path / "d"), "-o", str(tmp_path / "m.pt"),
                                        "--lr", "nan"]), "pretrain")
    assert line.endswith("--lr must be a float > 0; got nan")
    line = one_line(runner.invoke(app, ["pretrain", str(tmp_path / "d"), "-o", str(tmp_path / "m.pt"),
                                        "--lr", "inf"]), "pretrain")
    assert line.endswith("--lr must be a float > 0; got inf")
    assert not (tmp_path / "m.pt").exists()


# --------------------------------------------------------------------------- 8. validators
def _q(n=6, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return {"features": rng.normal(size=(n, d)).astype(np.float32), "pids": np.arange(n) % 3,
            "camids": np.zeros(n, np.int64)}


@pytest.mark.parametrize("change,words", [
    ({"pids": (np.arange(6) % 3)[:, None]}, "query pids must be 1-D [N]; found shape (6, 1)"),
    ({"pids": np.arange(6) % 3 + 0.5}, "query pids must be whole numbers; found 0.5 at row 0"),
    ({"camids": -np.ones(6, np.int64)}, "query camids must be >= 0; found -1 at row 0"),
    ({"pids": np.arange(5)}, "query pids has 5 rows but query features has 6"),
    ({"features": np.zeros((6, 0), np.float32)}, "0 dimensions"),
    ({"features": np.zeros((6, 5), np.float32)}, "query features are 5-d but gallery features are 4-d"),
])
def test_evaluate_refuses_bad_arrays(change, words):
    from reidcli.eval import evaluate
    from reidcli.utils.errors import InputError

    g = {**_q(9, seed=1), "camids": np.ones(9, np.int64)}
    if change.get("features") is not None and change["features"].shape[1] == 0:
        g["features"] = np.zeros((9, 0), np.float32)
    with pytest.raises(InputError) as err:
        evaluate({**_q(), **change}, g)
    assert words in str(err.value)


def test_integral_float_ids_are_accepted_as_ints():
    from reidcli.eval import evaluate

    q, g = _q(), {**_q(9, seed=1), "camids": np.ones(9, np.int64)}
    ref = evaluate(q, g).mean["mAP"]
    assert evaluate({**q, "pids": q["pids"].astype(float)}, g).mean["mAP"] == ref


def _split(n=4, d=3, **kw):
    base = dict(features=np.ones((n, d), np.float32), paths=[f"{i}.jpg" for i in range(n)],
                pids=np.arange(n), camids=np.zeros(n, np.int64))
    return h5.SplitFeatures(**{**base, **kw})


@pytest.mark.parametrize("split,words", [
    (_split(pids=np.arange(4)[:, None]), "/train/pids must be 1-D [N]; found shape (4, 1)"),
    (_split(pids=np.array([0.0, 1.5, 2.0, 3.0])), "/train/pids must be whole numbers; found 1.5 at row 1"),
    (_split(camids=np.array([0, -1, 0, 0])), "/train/camids must be >= 0; found -1 at row 1"),
    (_split(features=np.ones((4, 0), np.float32)), "/train/features has 4 rows of 0 dimensions"),
])
def test_features_writer_and_reader_refuse_bad_ids(tmp_path, split, words):
    from reidcli.utils.errors import FormatError

    with pytest.raises(FormatError, match=words.replace("[", "\\[").replace("(", "\\(").replace(")", "\\)")):
        h5.write_features(tmp_path / "f.h5", h5.FeaturesFile({"train": split}))
    # a file written by another tool holding the same values: the reader says the same
    good = h5.write_features(tmp_path / "g.h5", h5.FeaturesFile({"train": _split()}))
    with h5py.File(good, "r+") as f:
        for key in ("pids", "camids", "features"):
            del f[f"train/{key}"]
            f[f"train/{key}"] = np.asarray(getattr(split, key))
    with pytest.raises(FormatError) as err:
        h5.read_features(good)
    assert words in str(err.value) and str(good) in str(err.value)


def test_float_labels_are_not_truncated(tmp_path):
    from reidcli.utils.errors import FormatError

    lf = h5.write_labels(tmp_path / "l.h5", h5.LabelsFile(np.arange(4) % 2, [f"{i}.jpg" for i in range(4)]))
    with h5py.File(lf, "r+") as f:
        del f["labels"]
        f["labels"] = np.array([0.0, 1.7, 0.0, 1.0])
    with pytest.raises(FormatError, match="/labels must be whole numbers; found 1.7 at row 1"):
        h5.read_labels(lf)


def test_splits_of_different_sizes_in_one_file(tmp_path):
    from reidcli.utils.errors import FormatError

    with pytest.raises(FormatError, match="different feature sizes \\(query 3-d, gallery 5-d\\)"):
        h5.write_features(tmp_path / "f.h5", h5.FeaturesFile({"query": _split(), "gallery": _split(d=5)}))


@pytest.mark.parametrize("argv,words", [
    (["cluster", "F", "-o", "OUT", "--device", "bogus"], "--device must be auto | cpu | cuda | cuda:N; got 'bogus'"),
    (["evaluate", "F", "--shot", "bogus"], "--shot must be one of single, multi; got 'bogus'"),
])
def test_bogus_choices(tmp_path, argv, words):
    f = _features(tmp_path / "f.h5")
    args = [str({"F": f, "OUT": tmp_path / "l.h5"}.get(a, a)) for a in argv]
    assert one_line(runner.invoke(app, args), argv[0]).endswith(words)
    assert not (tmp_path / "l.h5").exists()


def test_skip_bad_with_every_image_bad_fails(tmp_path):
    data = tmp_path / "bad"
    data.mkdir()
    for i in range(3):
        (data / f"{i}.jpg").write_bytes(b"not an image")
    from reidcli.io.ckpt import make_checkpoint, save_checkpoint
    from reidcli.models import ModelConfig, build_model

    cfg = ModelConfig(arch="resnet18_quarter", num_classes=2)
    net = build_model(cfg)
    save_checkpoint(tmp_path / "m.pt", make_checkpoint(model_config=cfg.to_dict(), model_state=net.state_dict(),
                                                       input_size=(32, 16), method="supervised", epoch=1,
                                                       feat_dim=net.feat_dim))
    out = tmp_path / "f.h5"
    res = runner.invoke(app, ["-q", "features", "--ckpt", str(tmp_path / "m.pt"), str(data), "--format", "unlabelled",
                              "--skip-bad", "-o", str(out), "-j", "0", "--device", "cpu"])
    assert res.exit_code == 1, res.output
    assert "every image of split 'train' (3)" in res.stderr.strip().splitlines()[-1]
    assert not out.exists()


def test_sparse_huge_label_ids_are_compacted_without_a_huge_array():
    import tracemalloc

    from reidcli.train.finetune import _compact

    labels = np.array([5 * 10**12, -1, 7, 5 * 10**12, 10**15, 7])
    tracemalloc.start()
    out, _ = _compact(labels, None)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.tolist() == [1, -1, 0, 1, 2, 0]
    assert peak < 1 << 20  # a remap table as long as the largest id would be petabytes


# --------------------------------------------------------------------------- 10. click's errors
@pytest.mark.parametrize("argv,line", [
    (["cluster", "F", "-o", "OUT", "--eps", "abc"],
     "reid cluster: error: Invalid value for '--eps': must be a float or 'auto'; got 'abc' "
     "(see 'reid cluster --help')"),
    (["cluster"], "reid cluster: error: Missing argument 'features'. (see 'reid cluster --help')"),
    (["cluster", "F", "-o", "OUT", "--nope"], "reid cluster: error: No such option: --nope (see 'reid cluster --help')"),
    (["clustr"], "reid: error: No such command 'clustr'. Did you mean 'cluster'? (see 'reid --help')"),
    (["finetune", "D", "--ckpt", "F", "-o", "OUT", "--method", "supervised"],
     "reid finetune: error: --method must be an adaptation method (camstyle, joint, kd, mar, mmt, pseudo); got "
     "'supervised', which runs in 'reid pretrain' (it trains on labelled images)"),
])
def test_usage_errors_are_one_line_exit_2(tmp_path, argv, line):
    f = _features(tmp_path / "f.h5")
    (tmp_path / "d").mkdir()
    args = [str({"F": f, "OUT": tmp_path / "l.h5", "D": tmp_path / "d"}.get(a, a)) for a in argv]
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == [line]
    assert not (tmp_path / "l.h5").exists()


def test_standalone_entry_point_usage_error_is_one_line():
    import subprocess
    import sys

    code = "import sys; sys.argv = ['reid-cluster', 'x.h5', '--eps', 'abc']; from reidcli.cli.app import cluster_main; cluster_main()"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "reid cluster: error: Invalid value for '--eps': must be a float or 'auto'; got 'abc' (see 'reid cluster --help')"]


# --------------------------------------------------------------------------- 11. hostile inputs (issue 22)
def _ckpt(tmp_path: Path, name: str = "m.pt", **changes) -> Path:
    """The golden checkpoint with fields replaced (``model=fn`` edits the state dict)."""
    import torch

    ck = torch.load(GOLDEN / "checkpoint.pt", map_location="cpu", weights_only=True)
    edit = changes.pop("model", None)
    if edit is not None:
        edit(ck["model"])
    ck.update(changes)
    torch.save(ck, tmp_path / name)
    return tmp_path / name


def _nan_weights(state: dict) -> None:
    for t in state.values():
        if t.is_floating_point():
            t.fill_(float("nan"))


HUGE = "99999999999999999999"


@pytest.mark.parametrize("argv,code,words", [
    (["evaluate", "F", "--seed", HUGE], 2, "Invalid value for '--seed'"),
    (["plot", "F", "--tsne", "--seed", "-1", "-o", "T/p.png"], 2, "Invalid value for '--seed'"),
    (["cluster", "F", "-o", "T/l.h5", "--seed", "-1"], 2, "Invalid value for '--seed'"),
    (["pretrain", "D", "-o", "T/m.pt", "--seed", HUGE], 1, f"--seed must be an int in [0, 4294967295]; got {HUGE}"),
    (["pretrain", "D", "-o", "T/m.pt", "--config", "T/seed.toml"], 1, "--seed must be an int in [0, 4294967295]"),
    (["pretrain", "D", "-o", "T/m.pt", "--config", "T/flip.toml"], 1, "--flip must be a float in [0, 1]; got 'yes'"),
    (["pretrain", "D", "-o", "T/m.pt", "--height", "100000"], 1, "--height must be an int in [8, 4096]"),
    (["features", "--ckpt", "C", "D", "-o", "T/f.h5", "--shard", f"{HUGE}/{HUGE}"], 1,
     "--shard i/n allows at most 1000000 shards"),
    (["features", "--ckpt", "C", "D", "-o", "T/f.h5", "--soft-labels", "--soft-label-scale", "inf"], 1,
     "--soft-label-scale must be a float > 0; got inf"),
    (["features", "--ckpt", "C", "D", "-o", "T/f.h5", "--soft-labels", "--soft-label-scale", "nan"], 2,
     "Invalid value for '--soft-label-scale'"),
    (["stylize", "fit", "D", "-o", "T/s.pt", "--method", "stargan", "--image-size", "100000x100000"], 1,
     "--image-size must be (height, width), each an int in [1, 4096]; got (100000, 100000)"),
])
def test_hostile_numbers_are_one_line(tmp_path, argv, code, words):
    f = _features(tmp_path / "f.h5")
    (tmp_path / "d").mkdir()
    (tmp_path / "seed.toml").write_text(f"seed = {HUGE}\n")
    (tmp_path / "flip.toml").write_text('flip = "yes"\n')
    subst = {"F": f, "D": tmp_path / "d", "C": GOLDEN / "checkpoint.pt"}
    args = [str(subst.get(a, a)).replace("T/", f"{tmp_path}/") for a in argv]
    res = runner.invoke(app, args)
    if code == 2:
        assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1, res.output
        assert words in res.stderr
    else:
        assert words in one_line(res, " ".join(argv[:2]) if argv[0] == "stylize" else argv[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f.h5", "flip.toml", "seed.toml"]


def test_library_seed_and_sizes_name_the_parameter(tmp_path):
    from reidcli.features import parse_shard
    from reidcli.plot.figures import plot
    from reidcli.utils.params import ParamError

    f = _features(tmp_path / "f.h5")
    with pytest.raises(ParamError, match=r"^seed must be an int in \[0, 4294967295\]; got -1$"):
        plot(f, tmp_path / "p.png", tsne=True, seed=-1)
    with pytest.raises(ParamError, match="^shard "):
        parse_shard(f"1/{HUGE}")
    from reidcli.features import extract

    for scale in (float("inf"), float("-inf"), float("nan"), 0.0, -1.0):  # refused before any file is read
        with pytest.raises(ParamError, match=r"^soft_label_scale must be a float > 0; got "):
            extract(tmp_path / "missing.pt", tmp_path, tmp_path / "f2.h5", soft_labels=True, soft_label_scale=scale)


@pytest.mark.parametrize("change,words", [
    ({"pixel_std": [0.0, 0.0, 0.0]}, "the checkpoint's 'pixel_std' is not 3 finite numbers > 0"),
    ({"input_size": [100000, 100000]}, "the checkpoint's 'input_size' is not [height, width] (2 ints in [1, 4096])"),
    ({"model": _nan_weights}, "the checkpoint's weights hold NaN/Inf (first in '"),
])
def test_crafted_checkpoints_are_refused_by_every_reader(synth_market, tmp_path, change, words):
    ck = _ckpt(tmp_path, **change)
    (tmp_path / "d").mkdir()
    labels = GOLDEN / "labels.h5"
    for argv in (["info", ck], ["export", "--ckpt", ck, "-o", tmp_path / "m.onnx"],
                 ["features", "--ckpt", ck, synth_market, "-o", tmp_path / "f.h5"],
                 ["finetune", "--ckpt", ck, "--labels", labels, synth_market, "-o", tmp_path / "n.pt"]):
        line = one_line(runner.invoke(app, ["-q", *map(str, argv)]), argv[0])
        assert f"{ck}: {words}" in line, line
        assert "--lr" not in line and "features file" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "m.pt"]


@pytest.mark.parametrize("method,where", [("pseudo", "'reid finetune'"), ("mmt", "'reid finetune'"),
                                          ("stargan", "'reid stylize fit --method stargan'")])
def test_pretrain_refuses_methods_of_other_stages(tmp_path, method, where):
    (tmp_path / "d").mkdir()
    line = one_line(runner.invoke(app, ["pretrain", str(tmp_path / "d"), "-o", str(tmp_path / "m.pt"),
                                        "--method", method]), "pretrain", code=2)
    assert line == (f"reid pretrain: error: --method must be a pretraining method (agents, mrda, supervised); "
                    f"got '{method}', which runs in {where}" + (" (it adapts a checkpoint to unlabelled target "
                                                               "images)" if "finetune" in where else
                                                               " (it learns camera styles)"))
    assert not (tmp_path / "m.pt").exists()


def test_pretrain_resume_of_a_finetune_checkpoint(tmp_path):
    ck = _ckpt(tmp_path, "r.pt", method="mmt", train_state={"config": {}})
    before = ck.read_bytes()
    (tmp_path / "d").mkdir()
    line = one_line(runner.invoke(app, ["pretrain", str(tmp_path / "d"), "-o", str(ck), "--resume"]), "pretrain")
    assert f"--resume: {ck} was written by --method mmt ('reid finetune'), not by 'reid pretrain'" in line
    assert ck.read_bytes() == before


def _run_reid(args: list, **kw):
    import subprocess
    import sys

    code = "import sys; from reidcli.cli.app import main; sys.argv = ['reid', *sys.argv[1:]]; main()"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env, timeout=120, **kw)


@pytest.mark.parametrize("argv", [["info", "F"], ["evaluate", "F"],
                                  ["cluster", "F", "-o", "L", "--json", "--method", "kmeans", "--k", "2"]])
def test_stdout_to_a_full_disk_is_one_line(tmp_path, argv):
    args = [{"F": GOLDEN / "features.h5", "L": tmp_path / "l.h5"}.get(a, a) for a in argv]
    with open("/dev/full", "w") as full:
        res = _run_reid(args, stdout=full, stderr=-1, text=True)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1] == (f"reid {argv[0]}: error: cannot write the results to standard "
                                                   "output: No space left on device (a full disk? redirect stdout "
                                                   "elsewhere)")
    assert "Exception ignored" not in res.stderr and "Traceback" not in res.stderr


def test_a_closed_pipe_on_stdout_ends_quietly():
    r, w = os.pipe()
    os.close(r)  # '| head -c 1' that has already exited
    try:
        res = _run_reid(["evaluate", GOLDEN / "features.h5", "--json"], stdout=w, stderr=-1, text=True)
    finally:
        os.close(w)
    assert res.returncode == 141 and res.stderr == ""


def _style_model(root: Path, tmp_path: Path) -> Path:
    res = runner.invoke(app, ["-q", "stylize", "fit", str(root), "-o", str(tmp_path / "style.pt"), "--method", "color"])
    assert res.exit_code == 0, res.output
    return tmp_path / "style.pt"


@pytest.mark.parametrize("err", ["ENOSPC", "EFBIG"])
def test_stylize_apply_on_a_full_disk_is_one_line_and_leaves_nothing(synth_market, tmp_path, monkeypatch, err):
    import errno

    from reidcli.stylize import apply

    style = _style_model(synth_market, tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("kept")

    def full(path, rgb):
        raise OSError(getattr(errno, err), os.strerror(getattr(errno, err)))

    monkeypatch.setattr(apply, "write_image", full)
    out = tmp_path / "out"
    line = one_line(runner.invoke(app, ["-q", "stylize", "apply", str(synth_market), "--model", str(style), "-o",
                                        str(out), "--force"]), "stylize apply")
    assert line == (f"reid stylize apply: error: cannot write {out}: {os.strerror(getattr(errno, err))}; the previous "
                    "folder is kept (free space, check 'ulimit -f', or give another -o)")
    assert (out / "old").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "style.pt"]


def test_synth_past_the_file_size_limit_is_one_line(tmp_path):
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    res = _run_reid(["-q", "synth", tmp_path / "s", "--ids", "2", "--test-ids", "2", "--images-per-id", "2",
                     "--height", "128", "--width", "64"], capture_output=True, text=True, preexec_fn=limit)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "reid synth: error: cannot write the outputs: File too large (free space, check 'ulimit -f', or give another "
        "output path)"]


# --------------------------------------------------------------------------- 12. true messages (issue 22)
@pytest.mark.parametrize("argv,has_batch", [(["info", "F"], False), (["evaluate", "F"], False),
                                            (["cluster", "F", "-o", "L"], False)])
def test_out_of_memory_advises_only_flags_the_command_has(tmp_path, monkeypatch, argv, has_batch):
    import reidcli.data.describe
    import reidcli.eval.api

    def bomb(*a, **k):
        raise MemoryError()

    monkeypatch.setattr(reidcli.data.describe, "describe", bomb)
    monkeypatch.setattr(reidcli.eval.api, "evaluate_file", bomb)
    monkeypatch.setattr(sys_modules("reidcli.cluster.run"), "cluster_features", bomb)
    args = [str({"F": _features(tmp_path / "f.h5"), "L": tmp_path / "l.h5"}.get(a, a)) for a in argv]
    line = one_line(runner.invoke(app, args), argv[0])
    assert "--batch-size" not in line and line.endswith("(a damaged or crafted file?); check the inputs")


def sys_modules(name: str):
    import importlib

    return importlib.import_module(name)


def test_stylize_apply_model_of_another_kind_names_stylize_fit(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "x.txt").write_text("hello")
    for model in (tmp_path / "x.txt", _features(tmp_path / "f.h5")):
        line = one_line(runner.invoke(app, ["stylize", "apply", str(tmp_path / "d"), "--model", str(model), "-o",
                                            str(tmp_path / "o")]), "stylize apply")
        assert "not a camera-style model; give a .pt file written by 'reid stylize fit'" in line
        assert "pretrain" not in line


def test_a_device_as_dataset_is_named_so(tmp_path):
    line = one_line(runner.invoke(app, ["features", "--ckpt", str(GOLDEN / "checkpoint.pt"), "/dev/null", "-o",
                                        str(tmp_path / "f.h5")]), "features")
    assert line == ("reid features: error: /dev/null is a device, FIFO or socket, not a dataset: give a dataset "
                    "folder or a .csv list")


@pytest.mark.parametrize("extra", [[], ["--tsne"]])
def test_plot_of_a_checkpoint_does_not_call_it_a_training_log(tmp_path, extra):
    line = one_line(runner.invoke(app, ["plot", str(GOLDEN / "checkpoint.pt"), "-o", str(tmp_path / "p.png"),
                                        *extra]), "plot")
    assert "checkpoint.pt is a checkpoint, not a training log" in line
    line = one_line(runner.invoke(app, ["plot", str(GOLDEN / "features.h5"), "-o", str(tmp_path / "p.png")]), "plot")
    assert "is a features file: draw it with --tsne" in line


def test_unknown_option_never_suggests_a_hidden_one(tmp_path):
    res = runner.invoke(app, ["cluster", "--bogus", str(_features(tmp_path / "f.h5"))])
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == ["reid cluster: error: No such option: --bogus (see 'reid cluster --help')"]


def test_stylize_apply_to_a_fifo_does_not_advise_force(tmp_path):
    (tmp_path / "d").mkdir()
    os.mkfifo(tmp_path / "ff")
    for force in ([], ["--force"]):
        line = one_line(runner.invoke(app, ["stylize", "apply", str(tmp_path / "d"), "--model", str(GOLDEN / "checkpoint.pt"),
                                            "-o", str(tmp_path / "ff"), *force]), "stylize apply")
        assert "never replaced (not even with --force)" in line and "pass --force" not in line
    assert (tmp_path / "ff").is_fifo()


# --------------------------------------------------------------------------- 13. bad data is never valid (issue 22)
def _net_ckpt(tmp_path: Path, edit=None, **changes) -> Path:
    import torch

    from reidcli.io.ckpt import make_checkpoint
    from reidcli.models import ModelConfig, build_model

    cfg = ModelConfig(arch="resnet18_quarter", num_classes=2)
    net = build_model(cfg)
    ck = make_checkpoint(model_config=cfg.to_dict(), model_state=net.state_dict(), input_size=(32, 16),
                         method="supervised", epoch=1, feat_dim=net.feat_dim)
    if edit is not None:
        edit(ck)
    ck.update(changes)
    torch.save(ck, tmp_path / "c.pt")
    return tmp_path / "c.pt"


def _drop_first(ck):
    del ck["model"][next(iter(ck["model"]))]


def _reshape_classifier(ck):
    import torch

    key = next(k for k in ck["model"] if k.startswith("classifier"))
    ck["model"][key] = torch.zeros(7, *ck["model"][key].shape[1:])


@pytest.mark.parametrize("edit,changes,words", [
    (_drop_first, {}, "weights do not fit the network its config describes (Error(s) in loading state_dict"),
    (_reshape_classifier, {}, "weights do not fit the network its config describes"),
    (None, {"feat_dim": 999}, "feat_dim is 999 but its weights embed"),
    (lambda ck: ck["model_config"].update(arch="resnet50"), {}, "weights do not fit the network"),
])
def test_info_refuses_checkpoints_whose_weights_do_not_fit(tmp_path, edit, changes, words):
    ck = _net_ckpt(tmp_path, edit, **changes)
    line = one_line(runner.invoke(app, ["info", str(ck)]), "info")
    assert f"{ck}: " in line and words in line, line


def test_info_of_a_sound_checkpoint_is_valid(tmp_path):
    res = runner.invoke(app, ["info", str(_net_ckpt(tmp_path))])
    assert res.exit_code == 0 and "valid" in res.stdout, res.output


def test_info_refuses_a_features_file_with_a_wrong_feature_dim(tmp_path):
    bad = _edit(_features(tmp_path / "f.h5"), tmp_path / "bad.h5", lambda f: f["train"].attrs.__setitem__("feature_dim", -5))
    line = one_line(runner.invoke(app, ["info", str(bad)]), "info")
    assert line.endswith(f"{bad}:/train attribute feature_dim is -5 but the features are 8-d; the file is invalid, "
                         "regenerate it")
