"""Outputs that cannot hurt the user (issue 16): links followed, devices and FIFOs written
directly, failed writes (ulimit -f, SIGTERM) leave the previous file and no temporary,
outputs checked before any work and never one of the command's inputs."""

from __future__ import annotations

import os
import resource
import signal
import stat
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fixtures_contracts import fifo_drained_into

from reidcli.cli.app import app
from reidcli.io import h5
from reidcli.io.atomic import atomic_write_bytes, check_outputs
from reidcli.utils.errors import InputError, OutputError

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _labels(n: int = 6) -> h5.LabelsFile:
    return h5.LabelsFile(labels=np.arange(n) % 3, paths=[f"img/{i}.jpg" for i in range(n)])


def _features(path: Path, n: int = 60, d: int = 16) -> Path:
    rng = np.random.default_rng(0)
    s = h5.SplitFeatures(features=rng.normal(size=(n, d)).astype(np.float32),
                         paths=[f"img/{i:03d}.jpg" for i in range(n)], pids=np.arange(n) % 6,
                         camids=np.arange(n) % 2)
    return h5.write_features(path, h5.FeaturesFile(splits={"train": s, "query": s, "gallery": s}))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def _cli(*args, limit_bytes: int | None = None, cwd: Path | None = None, pre: str = ""):
    """Run ``reid ARGS`` in a subprocess (optionally under ``ulimit -f``), after ``pre``."""
    def limit():
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    code = f"{pre}\nfrom reidcli.cli.app import main\nmain()"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REIDCLI_QUIET": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=env, preexec_fn=limit, cwd=cwd, timeout=120)


# --------------------------------------------------------------------------- 1. what is at -o
def test_symlink_is_followed_and_kept(tmp_path):
    target = tmp_path / "real" / "l.h5"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "l.h5"
    link.symlink_to(target)
    h5.write_labels(link, _labels())
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert h5.read_labels(target).labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert _leftovers(tmp_path) == [] and _leftovers(target.parent) == []


def test_dangling_symlink_writes_the_file_it_names(tmp_path):
    link = tmp_path / "l.h5"
    link.symlink_to(tmp_path / "made.h5")
    h5.write_labels(link, _labels())
    assert link.is_symlink() and h5.read_labels(tmp_path / "made.h5").paths[0] == "img/0.jpg"


def test_symlink_loop_is_one_clear_error(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    f = _features(tmp_path / "f.h5")
    res = runner.invoke(app, ["cluster", str(f), "-o", str(tmp_path / "a"), "--k1", "5", "--k2", "2"])
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [
        f"reid cluster: error: --output {tmp_path / 'a'} is a symlink loop (Too many levels of symbolic links); "
        "fix the link or give another output"]


def test_fifo_is_written_directly(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with fifo_drained_into(fifo, tmp_path / "copy.h5", timeout=10):
        h5.write_labels(fifo, _labels())
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a FIFO, not replaced by a file
    assert h5.read_labels(tmp_path / "copy.h5").labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert _leftovers(tmp_path) == []


def test_device_node_is_written_directly(tmp_path):
    dev = tmp_path / "null"
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a private /dev/null
    except (PermissionError, OSError):
        pytest.skip("cannot create a device node here")
    f = _features(tmp_path / "f.h5")
    res = runner.invoke(app, ["cluster", str(f), "-o", str(dev), "--k1", "5", "--k2", "2", "--json"])
    assert res.exit_code == 0, res.output
    assert stat.S_ISCHR(os.stat(dev).st_mode) and _leftovers(tmp_path) == []


def _special_output(kind: str, folder: Path) -> Path:
    """A private device node (a /dev/null twin) or a FIFO in ``folder``."""
    path = folder / ("null" if kind == "device" else "pipe.pt")
    if kind == "device":
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        except (PermissionError, OSError):
            pytest.skip("cannot create a device node here")
    else:
        os.mkfifo(path)
    return path


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_training_to_a_device_or_fifo_writes_no_side_files(kind, synth_market, tmp_path):
    """``pretrain -o /dev/null``: no ``null.log.jsonl`` / ``null.config.toml`` in /dev. The
    output is written once, after the last epoch (a FIFO's reader gets one checkpoint, where
    a write per epoch would block on the closed pipe)."""
    from fixtures_contracts import ARCH, CPU

    from reidcli.io.ckpt import describe_checkpoint

    folder = tmp_path / "dev"
    folder.mkdir()
    out = _special_output(kind, folder)
    with fifo_drained_into(out, tmp_path / "copy.pt") if kind == "fifo" else nullcontext():
        res = runner.invoke(app, ["pretrain", str(synth_market), "-o", str(out), *ARCH, *CPU, "-P", "4", "-K", "2",
                                  "--epochs", "2", "--iters-per-epoch", "1", "--warmup-epochs", "0"])
        assert res.exit_code == 0, res.output
        assert sorted(p.name for p in folder.iterdir()) == [out.name]  # the output alone, still special
        assert not stat.S_ISREG(os.stat(out).st_mode)
    if kind == "fifo":
        assert describe_checkpoint(tmp_path / "copy.pt")["epoch"] == 2


def test_side_files_only_beside_a_regular_output(tmp_path):
    from reidcli.io.atomic import side_file
    from reidcli.train.hooks import log_path_for
    from reidcli.train.settings import config_path_for

    assert log_path_for(tmp_path / "m.pt") == tmp_path / "m.log.jsonl"
    assert config_path_for(tmp_path / "m.pt") == tmp_path / "m.config.toml"
    fifo = _special_output("fifo", tmp_path)
    link = tmp_path / "to_pipe.pt"
    link.symlink_to(fifo)
    assert side_file(fifo, ".log.jsonl") is None and side_file(link, ".samples") is None
    assert log_path_for(Path("/dev/null")) is None and config_path_for(Path("/dev/null")) is None


# --------------------------------------------------------------------------- 3. failed writes
def test_disk_full_is_one_line_previous_file_kept_no_temporary(tmp_path):
    f = _features(tmp_path / "f.h5")
    prev = tmp_path / "prev.h5"
    prev.write_bytes(b"previous result")
    # a features file far larger than the limit: `reid merge` is not usable without shards,
    # so write it with the cluster command's --centers output under a 4 KiB file size limit
    res = _cli("cluster", f, "-o", prev, "--k1", "5", "--k2", "2", "--centers", limit_bytes=4096)
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"reid cluster: error: cannot write {prev}: File too large; "
                                                   "the previous file is kept"), res.stderr
    assert prev.read_bytes() == b"previous result"
    assert _leftovers(tmp_path) == []


def test_failed_write_of_bytes_is_an_output_error(tmp_path, monkeypatch):
    prev = tmp_path / "x.png"
    prev.write_bytes(b"old")
    real_replace = os.replace

    def full(src, dst):  # the rename step fails as on a full or broken disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OutputError, match="No space left on device; the previous file is kept"):
        atomic_write_bytes(prev, b"new")
    monkeypatch.setattr(os, "replace", real_replace)
    assert prev.read_bytes() == b"old" and _leftovers(tmp_path) == []


def test_sigterm_during_hdf5_write_leaves_previous_file(tmp_path):
    f = _features(tmp_path / "f.h5")
    prev = tmp_path / "prev.h5"
    prev.write_bytes(b"previous result")
    # SIGTERM arrives while the labels file is being written (inside the HDF5 writer)
    pre = ("import os, signal\nfrom reidcli.io import h5\n_h = h5._write_header\n"
           "def _w(*a, **k):\n    os.kill(os.getpid(), signal.SIGTERM)\n    return _h(*a, **k)\n"
           "h5._write_header = _w")
    res = _cli("cluster", f, "-o", prev, "--k1", "5", "--k2", "2", pre=pre)
    assert res.returncode == 143, res.stderr
    assert res.stderr.strip().splitlines() == [
        "reid cluster: error: terminated (SIGTERM); outputs were not written (rerun to resume)"]
    assert prev.read_bytes() == b"previous result" and _leftovers(tmp_path) == []


def test_sigterm_while_bytes_reach_the_disk(tmp_path):
    prev = tmp_path / "prev.bin"
    prev.write_bytes(b"previous")
    pre = ("import os, signal, builtins\nfrom reidcli.io import atomic\n_open = builtins.open\n"
           "class F:\n    def __init__(s, fh): s.fh = fh\n    def __enter__(s): return s\n"
           "    def __exit__(s, *a): s.fh.close()\n"
           "    def write(s, b):\n        s.fh.write(bytes(b)[:10]); os.kill(os.getpid(), signal.SIGTERM)\n"
           "atomic.open = lambda p, m: F(_open(p, m))\n"
           f"atomic.atomic_write_bytes({str(prev)!r}, b'x' * 100)\n")
    res = subprocess.run([sys.executable, "-c", pre], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode != 0 and "Terminated" in res.stderr
    assert prev.read_bytes() == b"previous" and _leftovers(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # this process was never touched


def test_atomic_write_restores_default_sigterm(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL




# --------------------------------------------------------------------------- 2. output = input
GOLDEN = ROOT / "tests" / "data" / "format" / "v1"


@pytest.fixture
def files(tmp_path):
    import shutil

    f = _features(tmp_path / "f.h5")
    ck = tmp_path / "m.pt"
    shutil.copy(GOLDEN / "checkpoint.pt", ck)
    labels = h5.write_labels(tmp_path / "l.h5", _labels())
    pose = tmp_path / "g.h5"
    shutil.copy(GOLDEN / "pose.h5", pose)
    data = tmp_path / "data"
    data.mkdir()
    return {"F": f, "CK": ck, "L": labels, "G": pose, "D": data, "S2": tmp_path / "s2.h5"}


@pytest.mark.parametrize("argv,victim,flags", [
    (["features", "--ckpt", "CK", "D", "-o", "CK"], "CK", "--output {} is the input --ckpt {}"),
    (["evaluate", "F", "--cmc-png", "F"], "F", "--cmc-png {} is the input FEATURES {}"),
    (["evaluate", "F", "--ranks-png", "F"], "F", "--ranks-png {} is the input FEATURES {}"),
    (["evaluate", "--query", "F", "--gallery", "F", "--per-query", "F"], "F", "--per-query {} is the input --query {}"),
    (["finetune", "D", "--ckpt", "CK", "--labels", "L", "-o", "L"], "L", "--output {} is the input --labels {}"),
    (["merge", "F", "S2", "-o", "F"], "F", "--output {} is the input SHARDS {}"),
    (["cluster", "F", "-o", "F"], "F", "--output {} is the input FEATURES {}"),
    (["extract-pose", "D", "-o", "G", "--backend", "gt", "--gt", "G"], "G", "--output {} is the input --gt {}"),
    (["pretrain", "D", "-o", "CK", "--pretrained", "CK"], "CK", "--output {} is the input --pretrained {}"),
])
def test_output_that_is_an_input_is_refused_before_any_work(files, argv, victim, flags):
    if "S2" in argv:
        files["S2"].write_bytes(files["F"].read_bytes())
    before = files[victim].read_bytes()
    res = runner.invoke(app, [str(files.get(a, a)) for a in argv])
    assert res.exit_code == 1, res.output
    lines = res.stderr.strip().splitlines()
    want = flags.format(files[victim], files[victim])
    assert len(lines) == 1 and lines[0].startswith(f"reid {argv[0]}: error: {want}"), res.stderr
    assert files[victim].read_bytes() == before


def test_hard_link_to_the_input_is_the_input(files, tmp_path):
    link = tmp_path / "other-name.h5"
    os.link(files["F"], link)
    res = runner.invoke(app, ["cluster", str(files["F"]), "-o", str(link)])
    assert res.exit_code == 1 and f"--output {link} is the input FEATURES {files['F']}" in res.stderr


def test_two_outputs_on_one_file_are_refused(files, tmp_path):
    out = tmp_path / "x.png"
    res = runner.invoke(app, ["evaluate", str(files["F"]), "--cmc-png", str(out), "--ranks-png", str(out)])
    assert res.exit_code == 1 and "are the same file" in res.stderr and not out.exists()


def test_library_refuses_the_implicit_ground_truth(market_tree):
    """extract-pose's default --gt is DATA/pose.h5: writing -o there would destroy it."""
    from reidcli.pose.extract import extract_pose
    from test_pose_extract import write_gt

    gt = write_gt(market_tree)
    before = gt.read_bytes()
    with pytest.raises(InputError, match=f"-o {gt} is the input --gt {gt}"):
        extract_pose(market_tree, gt, backend="mediapipe", gt="auto")
    with pytest.raises(InputError, match="is the input --model"):
        extract_pose(market_tree, gt, backend="gt")  # the gt backend reads DATA/pose.h5
    assert gt.read_bytes() == before


# --------------------------------------------------------------------------- 4. write last
def test_extract_pose_with_a_wrong_ground_truth_writes_nothing(market_tree, tmp_path):
    from test_pose_extract import write_gt

    write_gt(market_tree)
    wrong = h5.write_labels(tmp_path / "wrong.h5", _labels())
    out, png = tmp_path / "p.h5", tmp_path / "p.png"
    res = runner.invoke(app, ["extract-pose", str(market_tree), "-o", str(out), "--backend", "gt",
                              "--gt", str(wrong), "--preview", str(png)])
    assert res.exit_code == 1 and "labels" in res.stderr, res.output
    assert not out.exists() and not png.exists()


def test_cluster_failing_in_its_quality_report_writes_nothing(files, tmp_path, monkeypatch):
    import reidcli.cluster.quality as quality

    def broken(*a, **k):
        raise InputError("quality failed")

    monkeypatch.setattr(quality, "cluster_quality", broken)
    out = tmp_path / "new.h5"
    res = runner.invoke(app, ["cluster", str(files["F"]), "-o", str(out), "--k1", "5", "--k2", "2"])
    assert res.exit_code == 1 and "quality failed" in res.stderr
    assert not out.exists()


# --------------------------------------------------------------------------- 5. outputs checked first
@pytest.mark.parametrize("case", ["folder", "under-file", "read-only"])
def test_bad_output_paths_fail_before_the_work(files, tmp_path, monkeypatch, case):
    import reidcli.io.atomic as atomic

    out = {"folder": tmp_path, "under-file": files["F"] / "x.h5", "read-only": tmp_path / "ro" / "x.h5"}[case]
    if case == "read-only":
        (tmp_path / "ro").mkdir()
        os.chmod(tmp_path / "ro", 0o555)
        if os.access(tmp_path / "ro", os.W_OK):  # root writes anywhere: let the check see a read-only folder
            real = os.access
            monkeypatch.setattr(atomic.os, "access", lambda p, m: False if Path(p) == tmp_path / "ro" else real(p, m))
    # a checkpoint that cannot even be loaded: the output must be refused before it is read
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    res = runner.invoke(app, ["features", "--ckpt", str(tmp_path / "bad.pt"), str(files["D"]), "-o", str(out)])
    assert res.exit_code == 1
    want = {"folder": "is a folder", "under-file": f"is under {files['F']}, which is a file",
            "read-only": f"the folder {tmp_path / 'ro'} is read-only"}[case]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and want in lines[0], res.stderr


def test_read_only_folder_fails_at_write_as_one_line(tmp_path, monkeypatch):
    """Where the pre-check cannot see it (root, a folder made read-only meanwhile): one line."""
    import reidcli.io.atomic as atomic

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic, "open", denied, raising=False)
    with pytest.raises(OutputError, match="cannot write .*x.h5: Permission denied"):
        h5.write_labels(tmp_path / "x.h5", _labels())
    assert list(tmp_path.iterdir()) == []


def test_unencodable_image_name_fails_before_the_network_is_loaded(tmp_path):
    data = tmp_path / "imgs"
    data.mkdir()
    from conftest import write_jpeg

    write_jpeg(data / "a.jpg")
    os.rename(write_jpeg(data / "b.jpg"), os.fsencode(data) + b"/caf\xe9.jpg")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    res = runner.invoke(app, ["-q", "features", "--ckpt", str(tmp_path / "bad.pt"), str(data), "--format", "unlabelled",
                              "-o", str(tmp_path / "f.h5")])
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [
        f"reid features: error: {data} (train): the name 'caf\\xe9.jpg' is not valid UTF-8 and cannot be "
        "stored in a reidcli file; rename it to UTF-8 (e.g. convmv -f latin1 -t utf8)"]


def test_unencodable_output_name_is_refused():
    with pytest.raises(InputError, match="cannot be encoded as a file name"):
        check_outputs({"-o": Path("x\ud800.h5")})


def test_non_utf8_command_line_is_stored_escaped(tmp_path):
    from reidcli.io.h5 import set_invocation

    set_invocation("reid cluster", ["reid", "cluster", "caf\udce9.h5"])
    try:
        h5.write_labels(tmp_path / "l.h5", _labels())
    finally:
        set_invocation("reid cluster", ["reid"])
    assert "caf\\xe9.h5" in h5.read_labels(tmp_path / "l.h5").attrs["command"]


# --------------------------------------------------------------------------- 6. pretrain --resume
def _resumable(path: Path) -> Path:
    """A checkpoint with training state, as 'reid pretrain --arch resnet18_half --height 32
    --width 16' writes it (no weights needed: the settings are refused before any loading)."""
    import dataclasses

    from reidcli.data.transforms import AugmentConfig
    from reidcli.io.ckpt import make_checkpoint, save_checkpoint
    from reidcli.models import ModelConfig
    from reidcli.train.config import TrainConfig

    mc = dataclasses.asdict(ModelConfig(arch="resnet18_half", pretrained="none", num_classes=4))
    aug = dataclasses.asdict(AugmentConfig(height=32, width=16))
    ck = make_checkpoint(model_config=mc, model_state={}, input_size=(32, 16), method="supervised", epoch=1,
                         train_state={"config": TrainConfig(epochs=2).to_dict()}, extra={"augment": aug})
    return save_checkpoint(path, ck)


def test_resume_with_changed_model_or_data_settings_is_refused(tmp_path):
    ck = _resumable(tmp_path / "m.pt")
    before = ck.read_bytes()
    (tmp_path / "data").mkdir()
    res = runner.invoke(app, ["pretrain", str(tmp_path / "data"), "-o", str(ck), "--resume", "--arch", "resnet50",
                              "--height", "64", "--last-stride", "2", "--device", "cpu"])
    assert res.exit_code == 1, res.output
    assert res.stderr.strip().splitlines() == [
        f"reid pretrain: error: --resume: {ck} was trained with other model or data settings: arch 'resnet50' "
        "(was 'resnet18_half'), --last-stride 2 (was 1), height 64 (was 32); give the checkpoint's settings, "
        "or a new -o (or no --resume) to start over"]
    assert ck.read_bytes() == before


def test_resume_without_flags_takes_the_checkpoint_settings(tmp_path):
    from reidcli.train.pretrain import _resumed_settings, pretrain_arguments

    ck = _resumable(tmp_path / "m.pt")
    args = pretrain_arguments(_resumed_settings(ck, {"resume": True, "epochs": 3}))
    assert args["model"].arch == "resnet18_half" and (args["augment"].height, args["augment"].width) == (32, 16)
    assert args["train"].epochs == 3 and args["method"] == "supervised"
    # a flag given equal to the checkpoint's passes, one given differently is kept (and refused later)
    assert pretrain_arguments(_resumed_settings(ck, {"resume": True, "width": 32}))["augment"].width == 32


def test_library_resume_refuses_another_arch(tmp_path):
    from reidcli.data.transforms import AugmentConfig
    from reidcli.models import ModelConfig
    from reidcli.train.config import TrainConfig
    from reidcli.train.pretrain import pretrain
    from reidcli.utils.errors import ConfigError

    ck = _resumable(tmp_path / "m.pt")
    with pytest.raises(ConfigError, match="arch 'tiny' \\(was 'resnet18_half'\\)"):
        pretrain(tmp_path, ck, model=ModelConfig(arch="tiny"), train=TrainConfig(),
                 augment=AugmentConfig(height=32, width=16), resume=True, device="cpu")


def test_pretrain_failing_to_write_its_checkpoint_leaves_no_config_of_it(synth_market, tmp_path, monkeypatch):
    """The resolved ``m.config.toml`` is written only once ``m.pt`` is: a run whose first
    checkpoint write fails (a full disk) leaves the previous run's checkpoint and config as they
    were, not a config describing a checkpoint that was never written."""
    from fixtures_contracts import ARCH, CPU

    from reidcli.io import ckpt

    out, config = tmp_path / "m.pt", tmp_path / "m.config.toml"
    out.write_bytes(b"previous checkpoint")
    config.write_text("# the previous run's settings\n")

    def full(path, ck):
        raise OutputError(f"cannot write {path}: No space left on device; the previous file is kept")

    monkeypatch.setattr(ckpt, "save_checkpoint", full)
    args = ["pretrain", str(synth_market), "-o", str(out), *ARCH, *CPU, "-P", "4", "-K", "2",
            "--epochs", "1", "--iters-per-epoch", "1", "--warmup-epochs", "0"]
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "No space left on device" in res.stderr, res.output
    assert out.read_bytes() == b"previous checkpoint"
    assert config.read_text() == "# the previous run's settings\n"
    monkeypatch.undo()
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "epochs = 1" in config.read_text()


def test_pretrain_failing_before_its_first_checkpoint_leaves_no_log_of_its_own(synth_market, tmp_path):
    """A training image found unreadable in the first epoch: exit 1, one line with its fix
    said once; the previous run's checkpoint and log are as they were (the new log is a
    temporary until the first checkpoint is written), no temporary left. Without a previous
    run nothing at all is written."""
    import shutil

    from fixtures_contracts import ARCH, CPU

    data = tmp_path / "data"
    shutil.copytree(synth_market, data)
    for img in (data / "bounding_box_train").glob("*.jpg"):
        img.write_bytes(b"")
    out, log = tmp_path / "m.pt", tmp_path / "m.log.jsonl"
    out.write_bytes(b"previous checkpoint")
    log.write_text('{"type": "epoch"}\n')
    args = ["pretrain", str(data), "-o", str(out), *ARCH, *CPU, "-P", "4", "-K", "2", "--epochs", "1",
            "--iters-per-epoch", "1", "--warmup-epochs", "0"]
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("reid pretrain: error: ") and line.endswith(
        ": zero-byte image; replace or delete it and rerun (training images must all be readable)"), res.stderr
    assert out.read_bytes() == b"previous checkpoint" and log.read_text() == '{"type": "epoch"}\n'
    assert _leftovers(tmp_path) == [] and not (tmp_path / "m.config.toml").exists()
    out.unlink()
    log.unlink()
    assert runner.invoke(app, args).exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
