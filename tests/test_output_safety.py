"""Hostile output paths of issue 22 (data loss, leftovers, untrue messages): an output inside
an input dataset, an output folder that is or holds an input, a device or FIFO given to
``stylize apply --force``, an interrupted swap of a styled tree, a stale temporary that is a
symlink or belongs to a killed process, SIGHUP, and the message of a command interrupted
just after it replaced its output."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.io import h5
from reidcli.io.atomic import atomic_write_bytes, remove_stale_temporaries
from tests.conftest import write_jpeg

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "format" / "v1"
runner = CliRunner()
NAMES = {"bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg",
                                "0007_c1s1_000551_01.jpg", "0007_c2s3_071052_01.jpg"],
         "query": ["0002_c1s1_001051_00.jpg", "0007_c2s1_000651_00.jpg"],
         "bounding_box_test": ["0002_c2s1_001251_02.jpg", "0007_c1s2_001351_01.jpg"]}


def _market(root: Path) -> Path:
    i = 0
    for folder, names in NAMES.items():
        for name in names:
            write_jpeg(root / folder / name, h=32, w=16, seed=i)
            i += 1
    return root


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error(res, command: str, *words: str) -> str:
    assert res.exit_code == 1, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"reid {command}: error: "), res.stderr
    assert all(w in lines[0] for w in words), lines[0]
    return lines[0]


def _errors(res) -> list[str]:
    """The error lines of an in-process run (INFO lines of the run may precede them)."""
    assert "Traceback" not in res.output
    return [ln for ln in res.stderr.strip().splitlines() if " error: " in ln]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def d(tmp_path) -> Path:
    return _market(tmp_path / "nest" / "d")


@pytest.fixture
def style(d, tmp_path) -> Path:
    from reidcli.stylize import fit_style

    return fit_style(d, tmp_path / "nest" / "style.pt", method="color")


# --------------------------------------------------------------------------- data loss: -o inside a dataset
def _features_of(d: Path, path: Path) -> Path:
    """A features file whose recorded root is dataset ``d`` (as 'reid features d' writes)."""
    rng = np.random.default_rng(0)
    q = h5.SplitFeatures(features=rng.normal(size=(2, 8)).astype(np.float32),
                         paths=[f"query/{n}" for n in NAMES["query"]], pids=np.array([2, 7]), camids=np.array([0, 1]))
    g = h5.SplitFeatures(features=rng.normal(size=(2, 8)).astype(np.float32),
                         paths=[f"bounding_box_test/{n}" for n in NAMES["bounding_box_test"]], pids=np.array([2, 7]),
                         camids=np.array([1, 0]))
    return h5.write_features(path, h5.FeaturesFile(splits={"query": q, "gallery": g}, root=str(d.resolve())))


@pytest.mark.parametrize("case", ["features", "pretrain", "pretrain-log", "finetune", "stylize-fit",
                                  "ranks-png", "cmc-png", "cmc-png-several", "merge"])
def test_output_inside_an_input_folder_is_refused(case, d, tmp_path):
    img = d / "query" / NAMES["query"][0]
    train_img = d / "bounding_box_train" / NAMES["bounding_box_train"][0]
    ck, f = tmp_path / "m.pt", _features_of(d, tmp_path / "f.h5")
    shutil.copy(GOLDEN / "checkpoint.pt", ck)
    labels = h5.write_labels(tmp_path / "l.h5", h5.LabelsFile(labels=np.zeros(4, np.int64),
                                                              paths=[f"bounding_box_train/{n}" for n in
                                                                     NAMES["bounding_box_train"]]))
    sh1, sh2 = tmp_path / "sh1", tmp_path / "sh2"
    sh1.mkdir(), sh2.mkdir()
    argv, command, words = {
        "features": (["features", "--ckpt", ck, d, "-o", img], "features", ["--output", "inside the input DATA"]),
        "pretrain": (["pretrain", d, "-o", d / "query" / "m.pt"], "pretrain", ["inside the input DATA"]),
        "pretrain-log": (["pretrain", sh2, "--target", d, "-o", d / "m.pt"], "pretrain",
                         ["inside the input --target"]),
        "finetune": (["finetune", d, "--ckpt", ck, "--labels", labels, "-o", train_img], "finetune",
                     ["inside the input TARGET"]),
        "stylize-fit": (["stylize", "fit", d, "-o", img], "stylize fit", ["inside the input DATA"]),
        "ranks-png": (["evaluate", f, "--ranks-png", img], "evaluate", ["--ranks-png", f"inside the input dataset of {f}"]),
        "cmc-png": (["evaluate", f, "--cmc-png", img], "evaluate", ["--cmc-png", "inside the input dataset"]),
        "cmc-png-several": (["evaluate", f, f, "--cmc-png", img], "evaluate", ["--cmc-png", "inside the input dataset"]),
        "merge": (["merge", sh1, sh2, "-o", sh1 / "sub"], "merge", ["inside the input SHARDS"]),
    }[case]
    before = _tree(tmp_path)
    res = runner.invoke(app, [str(a) for a in argv])
    _one_error(res, command, *words)
    assert _tree(tmp_path) == before and not (sh1 / "sub").exists()


def test_output_inside_a_dataset_through_a_link_or_dotdot_is_refused(d, tmp_path):
    ck = shutil.copy(GOLDEN / "checkpoint.pt", tmp_path / "m.pt")
    (tmp_path / "q").symlink_to(d / "query")
    img = NAMES["query"][1]
    before = _tree(d)
    for out in (tmp_path / "q" / img, d / "query" / ".." / "query" / img, tmp_path / "nest" / "d" / "x.h5"):
        _one_error(runner.invoke(app, ["features", "--ckpt", str(ck), str(d), "-o", str(out)]), "features",
                   "inside the input DATA")
    assert _tree(d) == before


def test_pretrain_never_rewrites_its_input_config(tmp_path, d):
    cfg = tmp_path / "x.config.toml"
    cfg.write_text("# my comments\nepochs = 1\n")
    res = runner.invoke(app, ["pretrain", str(d), "-o", str(tmp_path / "x.pt"), "--config", str(cfg)])
    _one_error(res, "pretrain", f"writes {cfg} beside it", f"is the input --config {cfg}")
    assert cfg.read_text() == "# my comments\nepochs = 1\n" and not (tmp_path / "x.pt").exists()


# --------------------------------------------------------------------------- data loss: stylize apply -o
@pytest.mark.parametrize("case", ["holds-data", "holds-model", "is-model", "fifo", "device", "in-data"])
def test_stylize_apply_never_replaces_an_input_or_a_special_file(case, d, style, tmp_path):
    nest = tmp_path / "nest"
    out, words = {"holds-data": (nest, "contains the input DATA"),
                  "holds-model": (tmp_path / "m", "contains the input --model"),
                  "is-model": (style, "is the input --model"),
                  "fifo": (tmp_path / "fifo", "device node, FIFO or socket"),
                  "device": (Path("/dev/null"), "device node, FIFO or socket"),
                  "in-data": (d / "styled", "is inside the input DATA")}[case]
    model, data = style, d
    if case == "holds-model":  # the model inside -o, DATA elsewhere
        (tmp_path / "m").mkdir()
        model = shutil.copy(style, tmp_path / "m" / "style.pt")
    if case == "holds-data":
        model = shutil.copy(style, tmp_path / "style.pt")
    if case == "fifo":
        os.mkfifo(out)
    before = _tree(tmp_path)
    res = runner.invoke(app, ["stylize", "apply", "--model", str(model), str(data), "-o", str(out), "--force"])
    _one_error(res, "stylize apply", words)
    assert _tree(tmp_path) == before and style.is_file() and (d / "query").is_dir()
    assert out.is_fifo() if case == "fifo" else True


def test_interrupted_stylize_apply_force_leaves_the_old_tree_complete(d, style, tmp_path, monkeypatch):
    import reidcli.stylize.apply as apply_mod

    out = tmp_path / "styled"
    args = ["stylize", "apply", "--model", str(style), str(d), "-o", str(out), "--force"]
    assert runner.invoke(app, args).exit_code == 0
    old = _tree(out)
    real, n = apply_mod.write_image, [0]

    def interrupted(path, rgb):  # Ctrl-C after two images of the new tree
        n[0] += 1
        if n[0] == 3:
            raise KeyboardInterrupt
        real(path, rgb)

    monkeypatch.setattr(apply_mod, "write_image", interrupted)
    res = runner.invoke(app, args)
    assert res.exit_code == 130
    assert _errors(res) == ["reid stylize apply: error: interrupted; outputs were not written (rerun to resume)"]
    assert _tree(out) == old and sorted(p.name for p in tmp_path.iterdir() if ".tmp-" in p.name) == []


def test_stylize_apply_swap_interrupted_after_the_rename_says_it_wrote(d, style, tmp_path, monkeypatch):
    """SIGTERM once the new tree is in place (while the old one is removed): the new tree is
    complete, the message says so, and the old tree's remains go with the next run."""
    import reidcli.io.atomic as atomic
    from reidcli.utils.errors import Terminated

    out = tmp_path / "styled"
    args = ["stylize", "apply", "--model", str(style), str(d), "-o", str(out), "--force"]
    assert runner.invoke(app, args).exit_code == 0
    real, calls = atomic._clear, []

    def clear(p):  # replace_folder clears the old tree's name before the swap, removes it after
        real(p)
        calls.append(p.name)
        if p.name.endswith(".old") and calls.count(p.name) == 2:
            raise Terminated(signal.SIGTERM)

    monkeypatch.setattr(atomic, "_clear", clear)
    res = runner.invoke(app, args)
    assert res.exit_code == 143
    assert _errors(res) == [
        f"reid stylize apply: error: terminated (SIGTERM); already written (complete): {out}; nothing else "
        "was written (rerun to resume)"]
    assert (out / "manifest.csv").is_file()


def test_stale_styled_trees_of_killed_runs_are_removed(d, style, tmp_path):
    out = tmp_path / "styled"
    pid = _dead_pid()
    for name in (f".styled.tmp-{pid}", f".styled.tmp-{pid}.old"):
        (tmp_path / name / "query").mkdir(parents=True)
    live = tmp_path / f".styled.tmp-{os.getppid()}"
    live.mkdir()
    res = runner.invoke(app, ["stylize", "apply", "--model", str(style), str(d), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp-" in p.name) == [live.name]


# --------------------------------------------------------------------------- leftovers: stale temporaries
def test_stale_temporaries_of_dead_processes_are_removed_never_followed(tmp_path):
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"keep me")
    dead, live = _dead_pid(), os.getppid()
    (tmp_path / f".x.bin.tmp-{dead}").write_bytes(b"half")
    (tmp_path / f".x.bin.tmp-{dead}.old").symlink_to(victim)
    (tmp_path / f".x.bin.tmp-{live}").write_bytes(b"a concurrent run")
    (tmp_path / f".other.bin.tmp-{dead}").write_bytes(b"another output's")
    (tmp_path / f".x.bin.tmp-{os.getpid()}").symlink_to(victim)  # planted at our own temporary's name
    atomic_write_bytes(tmp_path / "x.bin", b"new")
    assert (tmp_path / "x.bin").read_bytes() == b"new" and victim.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp-" in p.name) == [
        f".other.bin.tmp-{dead}", f".x.bin.tmp-{live}"]
    remove_stale_temporaries(tmp_path / "other.bin")
    assert not (tmp_path / f".other.bin.tmp-{dead}").exists()


def test_finetune_never_writes_through_a_stale_partial_link_and_removes_killed_logs(tmp_path):
    from fixtures_finetune import _base, _labels, _run, _source_ckpt, _write_csv_dataset

    tgt = _write_csv_dataset(tmp_path / "target")
    u = {"target": tgt, "ckpt": _source_ckpt(tmp_path / "m.pt"),
         "labels": _labels(tmp_path / "labels.h5", tgt, [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 0, 3, 3, 3, 3, -1])}
    out, victim = tmp_path / "old.pt", tmp_path / "victim.pt"
    out.write_bytes(b"previous round")
    victim.write_bytes(b"someone else's file")
    (tmp_path / ".old.pt.partial").symlink_to(victim)
    dead = _dead_pid()
    killed_log = tmp_path / f"..old.pt.log.jsonl.tmp-{dead}"  # a SIGKILLed round's log
    killed_log.write_text('{"type": "resources"}\n')
    res = _run(_base(u, out) + ["--method", "pseudo"])
    assert res.exit_code == 0, res.output
    assert victim.read_bytes() == b"someone else's file" and out.read_bytes() != b"previous round"
    assert not os.path.lexists(tmp_path / ".old.pt.partial") and not killed_log.exists()
    assert (tmp_path / "old.log.jsonl").is_file()
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or p.name.endswith(".partial")] == []


# --------------------------------------------------------------------------- leftovers and messages: signals
def _features(path: Path) -> Path:
    rng = np.random.default_rng(0)
    s = h5.SplitFeatures(features=rng.normal(size=(60, 16)).astype(np.float32),
                         paths=[f"img/{i:03d}.jpg" for i in range(60)], pids=np.arange(60) % 6,
                         camids=np.arange(60) % 2)
    return h5.write_features(path, h5.FeaturesFile(splits={"train": s}))


def _cli(*args, pre: str = "") -> subprocess.CompletedProcess:
    code = f"{pre}\nfrom reidcli.cli.app import main\nmain()"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REIDCLI_QUIET": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.parametrize("sig,code", [(signal.SIGHUP, 129), (signal.SIGTERM, 143)])
def test_sighup_like_sigterm_leaves_no_temporary(tmp_path, sig, code):
    f = _features(tmp_path / "f.h5")
    prev = tmp_path / "prev.h5"
    prev.write_bytes(b"previous result")
    pre = ("import os, signal\nfrom reidcli.io import h5\n_h = h5._write_header\n"
           f"def _w(*a, **k):\n    os.kill(os.getpid(), {int(sig)})\n    return _h(*a, **k)\n"
           "h5._write_header = _w")
    res = _cli("cluster", f, "-o", prev, "--k1", "5", "--k2", "2", pre=pre)
    assert res.returncode == code, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"reid cluster: error: terminated ({sig.name}); outputs were not written (rerun to resume)"]
    assert prev.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_rename_is_reported_after_it(tmp_path, sig):
    """The signal arrives while the temporary is renamed onto -o: it waits for the rename, and
    the message then says -o was written (it was), not "outputs were not written"."""
    f = _features(tmp_path / "f.h5")
    out = tmp_path / "l.h5"
    pre = ("import os, signal\n_r = os.replace\n"
           f"def _rep(a, b):\n    os.kill(os.getpid(), {int(sig)})\n    return _r(a, b)\n"
           "os.replace = _rep")
    res = _cli("cluster", f, "-o", out, "--k1", "5", "--k2", "2", pre=pre)
    word = "interrupted" if sig == signal.SIGINT else f"terminated ({sig.name})"
    assert res.returncode == (130 if sig == signal.SIGINT else 143), res.stderr
    assert res.stderr.strip().splitlines() == [
        f"reid cluster: error: {word}; already written (complete): {out}; nothing else was written (rerun to resume)"]
    assert h5.read_labels(out).labels.shape == (60,)


def test_stylize_fit_interrupted_after_writing_says_so(d, tmp_path, monkeypatch):
    import reidcli.stylize.fit as fit_mod

    real = fit_mod.save_style_model

    def save_then_ctrl_c(path, model):
        real(path, model)
        raise KeyboardInterrupt

    monkeypatch.setattr(fit_mod, "save_style_model", save_then_ctrl_c)
    out = tmp_path / "style.pt"
    res = runner.invoke(app, ["stylize", "fit", str(d), "-o", str(out)])
    assert res.exit_code == 130 and out.is_file()
    assert _errors(res) == [
        f"reid stylize fit: error: interrupted; already written (complete): {out}; nothing else was written "
        "(rerun to resume)"]


def test_styled_merge_interrupted_after_the_swap_says_so(d, style, tmp_path, monkeypatch):
    import reidcli.stylize.merge as merge_mod
    from reidcli.utils.errors import Terminated

    parts = []
    for i in (1, 2):
        parts.append(tmp_path / f"p{i}")
        assert runner.invoke(app, ["stylize", "apply", "--model", str(style), str(d), "-o", str(parts[-1]),
                                   "--shard", f"{i}/2"]).exit_code == 0
    real = merge_mod.replace_folder

    def swap_then_sigterm(*a, **k):
        real(*a, **k)
        raise Terminated(signal.SIGTERM)

    monkeypatch.setattr(merge_mod, "replace_folder", swap_then_sigterm)
    out = tmp_path / "merged"
    res = runner.invoke(app, ["merge", *map(str, parts), "-o", str(out)])
    assert res.exit_code == 143 and (out / "manifest.csv").is_file()
    assert _errors(res) == [
        f"reid merge: error: terminated (SIGTERM); already written (complete): {out}; nothing else was "
        "written (rerun to resume)"]
    monkeypatch.undo()
    res = runner.invoke(app, ["merge", *map(str, parts), "-o", str(parts[0] / "sub")])
    _one_error(res, "merge", "inside the input SHARDS")
