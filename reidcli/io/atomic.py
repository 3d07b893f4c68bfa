"""Atomic writes: write to a temporary sibling, then ``os.replace`` onto the target.

A crash, Ctrl-C, SIGTERM, a full disk or an exception midway leaves the previous file (if
any) untouched and no half-written file behind, so ``make`` never mistakes a partial output
for a result. What is at the output path decides how it is written:

* a symbolic link is followed: its target is replaced (atomically), the link is kept;
* a device node or a FIFO (``-o /dev/null``, ``-o >(gzip > f.gz)``) is written directly,
  never replaced by a regular file;
* a regular file or nothing: a temporary ``.NAME.tmp-PID`` beside it, renamed on success.

Side files of an output (a training log ``m.log.jsonl``, the resolved ``m.config.toml``, sample
sheets ``m.samples/``) are written beside a regular output only (`side_file`): an output that
is a device node or a FIFO has none, so ``-o /dev/null`` writes nothing into ``/dev``.

`check_outputs` is the one check every command runs on its output paths before any work:
each can be written (not a folder, not under a file, in a writable folder, an encodable
name) and none of them is one of the command's inputs.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import stat
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional

from reidcli.utils.errors import InputError, OutputError, Terminated


def temp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def side_file(out: str | os.PathLike, suffix: str) -> Optional[Path]:
    """The side file ``<stem><suffix>`` beside output ``out`` (``m.pt``, ``.log.jsonl`` ->
    ``m.log.jsonl``), or None when ``out`` is (or links to) a device node, a FIFO or a socket:
    such an output is written directly and has no side files (they would land in ``/dev`` or
    beside a pipe)."""
    p = Path(out)
    if is_special(p):  # os.stat follows symlinks
        return None
    return p.with_name(p.stem + suffix)


def output_target(path: str | os.PathLike, label: str = "") -> Path:
    """The file a write to ``path`` lands in: ``path`` itself, or the end of its symlinks.

    Raises:
        InputError: a symlink loop, a name the file system cannot encode, or a folder.
    """
    p = Path(path)
    name = f"{label} {path}" if label else str(path)
    try:
        os.fsencode(str(p))
    except UnicodeError:
        raise InputError(f"{label + ' ' if label else ''}{str(p)!r} cannot be encoded as a file name here; give an ASCII/UTF-8 output name") from None
    if p.is_symlink():
        try:
            p = Path(os.path.realpath(p, strict=True))
        except FileNotFoundError:  # a dangling link: write the file it names
            p = Path(os.path.realpath(p))
        except OSError as exc:  # ELOOP
            raise InputError(f"{name} is a symlink loop ({exc.strerror}); fix the link or give another output") from None
    if p.is_dir():
        raise InputError(f"{name} is a folder; give a file name for the output")
    return p


def is_special(path: Path) -> bool:
    """True for an existing device node, FIFO or socket (written directly, never replaced)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block SIGTERM raises `Terminated` in this process (so a temporary is removed
    and the CLI says one line) instead of killing it; a process forked meanwhile (a data
    loader worker) still dies of it. Only where SIGTERM has its default action and in the
    main thread; the default is restored afterwards."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    pid = os.getpid()

    def handler(signum, frame):
        if os.getpid() != pid:  # a forked child: die as by default
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated(signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _write_error(path: str | os.PathLike, exc: OSError, kept: bool) -> OutputError:
    why = exc.strerror or (str(exc).splitlines() or [type(exc).__name__])[0]
    tail = "; the previous file is kept" if kept else ""
    return OutputError(f"cannot write {path}: {why}{tail} (free space, check the folder's "
                       "permissions and 'ulimit -f', or give another -o)")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; it becomes ``path`` only on success.

    An `OSError` while writing (a full disk, ``ulimit -f``, a read-only folder) becomes one
    `OutputError`; a symlink is followed, a device or FIFO is written directly (see the
    module docstring). The temporary is removed on any failure, SIGTERM included.
    """
    target = output_target(path)
    kept = target.exists()
    special = is_special(target)
    if special:
        fd, name = tempfile.mkstemp(prefix=".reidcli-")
        os.close(fd)
        tmp = Path(name)
    else:
        tmp = temp_sibling(target)
    try:
        with sigterm_raises():
            if not special:
                target.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
            if special:
                with open(tmp, "rb") as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            else:
                os.replace(tmp, target)
    except OSError as exc:
        raise _write_error(path, exc, kept and not special) from exc
    finally:
        try:
            tmp.unlink()
        except OSError:
            pass


def atomic_write_bytes(path: str | os.PathLike, data: bytes | bytearray | memoryview) -> Path:
    """Write ``data`` to ``path`` atomically (`atomic_path`); returns ``path``.

    Writers build a file's bytes in memory (HDF5 files, checkpoints, pictures) and write them
    here, so that a failed write is a Python `OSError` (one line) rather than an error inside
    a C library that has half a file open."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return Path(path)


def file_digest(path: str | os.PathLike, algo: str = "sha256") -> str:
    """``sha256:<hex>`` of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return f"{algo}:{h.hexdigest()}"


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """The same file: one resolved path or one inode (hard links, bind mounts)."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.resolve() == pb.resolve():
            return True
    except (OSError, RuntimeError):  # a symlink loop: compare the inodes below
        pass
    try:
        return pb.exists() and pa.exists() and os.path.samefile(pa, pb)
    except OSError:
        return False


def missing_message(path: str | os.PathLike, fix: str = "check the path", noun: str = "file") -> str:
    """The error line for an input ``path`` that does not exist: a symlink loop, a dangling
    symlink, or no such file."""
    p = Path(path)
    if p.is_symlink():
        try:
            os.stat(p)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return f"{p} is a symlink loop; fix the link"
        return f"{p} is a dangling symlink (to {os.readlink(p)}); fix the link"
    return f"{p}: no such {noun}; {fix}"


# --------------------------------------------------------------------------- checks before work
def _nearest_existing(p: Path) -> Path:
    for q in [p, *p.parents]:
        if os.path.lexists(q):
            return q
    return Path(".")


def check_writable(path: str | os.PathLike, label: str = "-o") -> Path:
    """Raise `InputError` unless ``path`` can be written as an output file; returns the file a
    write lands in (`output_target`). Creates nothing."""
    target = output_target(path, label)
    if is_special(target):
        if not os.access(target, os.W_OK):
            raise InputError(f"{label} {path} cannot be written (permission denied); give another output")
        return target
    folder = _nearest_existing(target.parent if str(target.parent) else Path("."))
    if not folder.is_dir():
        raise InputError(f"{label} {path} is under {folder}, which is a file, not a folder; "
                         "give another output path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{label} {path} cannot be written: the folder {folder} is read-only "
                         "(permission denied); give an output in a writable folder")
    return target


def _flat(value) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [v for v in value if v is not None]
    return [value]


def check_outputs(outputs: Mapping[str, object], inputs: Mapping[str, object] = {},
                  may_replace: Iterable[str] = ()) -> None:
    """Before any work: every output (label -> path or None) can be written (`check_writable`),
    none is one of the ``inputs`` (label -> path, list of paths or None; the same resolved
    path or the same inode), and no two outputs are the same file. Inputs labelled in
    ``may_replace`` may be an output (e.g. finetune's ``-o`` equal to its ``--ckpt``: it is
    read first and replaced only on success).

    Raises:
        InputError: the first problem, in one line naming both paths.
    """
    allowed = set(may_replace)
    seen: list[tuple[str, object]] = []
    for label, out in outputs.items():
        for o in _flat(out):
            check_writable(o, label)
            for in_label, value in inputs.items():
                if in_label in allowed:
                    continue
                for i in _flat(value):
                    if same_file(o, i):
                        raise InputError(f"{label} {o} is the input {in_label} {i}; writing it would destroy "
                                         "the input: give another output name")
            for other_label, other in seen:
                if same_file(o, other):
                    raise InputError(f"{label} {o} and {other_label} {other} are the same file; give "
                                     "each output its own name")
            seen.append((label, o))

