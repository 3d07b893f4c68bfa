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
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

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
        f"reid cluster: error: -o {tmp_path / 'a'} is a symlink loop (Too many levels of symbolic links); "
        "fix the link or give another output"]


def test_fifo_is_written_directly(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = {}

    def reader():
        with open(fifo, "rb") as fh:
            got["bytes"] = fh.read()

    t = threading.Thread(target=reader)
    t.start()
    h5.write_labels(fifo, _labels())
    t.join(10)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a FIFO, not replaced by a file
    (tmp_path / "copy.h5").write_bytes(got["bytes"])
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


def test_check_outputs_refuses_a_folder(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        check_outputs({"-o": tmp_path})
