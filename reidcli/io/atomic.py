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
name), none of them (nor a side file beside it) is one of the command's inputs, and none
lies inside an input folder (a dataset: ``-o data/query/x.jpg`` would replace an image).
`check_output_folder` is the same check for an output that is a whole folder (``reid
stylize apply``, ``reid merge`` of styled shards), which `replace_folder` swaps into place.

Temporaries are named ``.NAME.tmp-PID``; the next write of ``NAME`` removes those of
processes that are gone (a SIGKILL, a power cut: `remove_stale_temporaries`). SIGTERM and
SIGHUP raise `Terminated` while a command runs (`sigterm_raises`), so temporaries are
removed as on Ctrl-C. Each output renamed into place is recorded (`written_outputs`), so
that an interrupted command can say truly what it had already written.
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: another user's process
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> None:
    """Remove the temporaries ``.NAME.tmp-PID[.*]`` of output ``path`` left by processes that
    are gone (killed by SIGKILL, a power cut): files, links (never followed) and folders.
    Those of live processes (a concurrent run) are left alone."""
    p = Path(path)
    prefix = f".{p.name}.tmp-"
    try:
        entries = list(os.scandir(p.parent if str(p.parent) else "."))
    except OSError:
        return
    for e in entries:
        if not e.name.startswith(prefix):
            continue
        pid = e.name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        try:
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path, ignore_errors=True)
            else:
                os.unlink(e.path)
        except OSError:
            pass


def _clear(tmp: Path) -> None:
    """Remove whatever is at temporary ``tmp`` (a planted link is removed, never followed)."""
    if tmp.is_symlink() or (os.path.lexists(tmp) and not tmp.is_dir()):
        tmp.unlink()
    elif tmp.is_dir():
        shutil.rmtree(tmp)


# --------------------------------------------------------------------------- what was written
_written: list[str] = []


def note_written(path: str | os.PathLike) -> None:
    """Record that output ``path`` is complete on disk (renamed into place)."""
    if str(path) not in _written:
        _written.append(str(path))
        del _written[:-1000]  # a long-lived Python caller: keep the latest only


def forget_written(*paths: str | os.PathLike) -> None:
    """Forget ``paths`` (temporaries of a longer write, e.g. finetune's ``.NAME.partial``)."""
    for p in paths:
        while str(p) in _written:
            _written.remove(str(p))


def written_outputs(reset: bool = False) -> list[str]:
    """The outputs written (completely) since the last reset; ``reset`` starts afresh (the
    CLI does at the start of each command)."""
    out = list(_written)
    if reset:
        _written.clear()
    return out


_DEFERRED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Within the block SIGINT, SIGTERM and SIGHUP wait (they are delivered when it ends), so
    a rename and its record, or the two renames of a swap, are never separated by them."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


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


_RAISING = (signal.SIGTERM, signal.SIGHUP)


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block SIGTERM and SIGHUP (a closed terminal) raise `Terminated` in this
    process (so a temporary is removed and the CLI says one line) instead of killing it; a
    process forked meanwhile (a data loader worker) still dies of them. Only for a signal
    that has its default action (``nohup`` keeps SIGHUP ignored) and in the main thread; the
    default is restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = [s for s in _RAISING if signal.getsignal(s) is signal.SIG_DFL]
    if not sigs:
        yield
        return
    pid = os.getpid()

    def handler(signum, frame):
        if os.getpid() != pid:  # a forked child: die as by default
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Terminated(signum)

    for s in sigs:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s in sigs:
            signal.signal(s, signal.SIG_DFL)


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
                remove_stale_temporaries(target)
                _clear(tmp)
            yield tmp
            if special:
                with open(tmp, "rb") as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                note_written(path)
            else:
                with signals_deferred():
                    os.replace(tmp, target)
                    note_written(path)
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


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(path))


def inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """``path`` lies inside ``folder`` (both resolved: symlinks, ``..``), at any depth."""
    try:
        return _real(folder) in _real(path).parents
    except (OSError, RuntimeError):
        return False


def _input_folders(inputs: Mapping[str, object], allowed: set) -> list[tuple[str, object]]:
    return [(label, i) for label, value in inputs.items() if label not in allowed
            for i in _flat(value) if os.path.isdir(i)]


def _refuse_input(label: str, o, shown: str, inputs: Mapping[str, object], allowed: set, folders: list) -> None:
    """Refuse output ``o`` (shown as ``shown``) when it is an input or lies in an input folder."""
    for in_label, value in inputs.items():
        if in_label in allowed:
            continue
        for i in _flat(value):
            if same_file(o, i):
                raise InputError(f"{shown} is the input {in_label} {i}; writing it would destroy "
                                 "the input: give another output name")
    for in_label, folder in folders:
        if inside(o, folder):
            raise InputError(f"{shown} is inside the input {in_label} {folder}; writing there would change "
                             "the input (replace its files): give an output outside that folder")


def check_outputs(outputs: Mapping[str, object], inputs: Mapping[str, object] = {},
                  may_replace: Iterable[str] = (), side_files: Mapping[str, Iterable[str]] = {}) -> None:
    """Before any work: every output (label -> path or None) can be written (`check_writable`),
    none is one of the ``inputs`` (label -> path, list of paths or None; the same resolved
    path or the same inode) nor lies inside an input that is a folder (a dataset), and no two
    outputs are the same file. Inputs labelled in ``may_replace`` may be an output (e.g.
    finetune's ``-o`` equal to its ``--ckpt``: it is read first and replaced only on
    success). ``side_files`` (output label -> suffixes, `side_file`) names the files an output
    writes beside itself (``.log.jsonl``, ``.config.toml``): they must not be inputs either.
    An output that is a device node or a FIFO is written directly and has no side files.

    Raises:
        InputError: the first problem, in one line naming both paths.
    """
    allowed = set(may_replace)
    folders = _input_folders(inputs, allowed)
    seen: list[tuple[str, object]] = []
    for label, out in outputs.items():
        for o in _flat(out):
            target = check_writable(o, label)
            if is_special(target):  # written directly: nothing is replaced, no side files
                _refuse_input(label, o, f"{label} {o}", inputs, allowed, [])
            else:
                _refuse_input(label, o, f"{label} {o}", inputs, allowed, folders)
                for suffix in side_files.get(label, ()):
                    side = side_file(o, suffix)
                    if side is not None:
                        _refuse_input(label, side, f"{label} {o} writes {side} beside it, and {side}",
                                      inputs, allowed, folders)
            for other_label, other in seen:
                if same_file(o, other):
                    raise InputError(f"{label} {o} and {other_label} {other} are the same file; give "
                                     "each output its own name")
            seen.append((label, o))


def check_output_folder(out: str | os.PathLike, inputs: Mapping[str, object] = {}, force: bool = False,
                        label: str = "-o") -> Path:
    """`check_outputs` for an output that is a whole folder (a styled dataset), replaced as a
    whole by `replace_folder`: it must not be, contain or lie inside any of the ``inputs``;
    a device node, FIFO or socket is never replaced; an existing file or non-empty folder is
    replaced only with ``force``. A symlink is followed (its target is replaced, the link kept).
    Returns the folder to write.

    Raises:
        InputError: the first problem, in one line naming the paths and the fix.
    """
    p = Path(out)
    try:
        os.fsencode(str(p))
    except UnicodeError:
        raise InputError(f"{label} {str(p)!r} cannot be encoded as a file name here; give an ASCII/UTF-8 "
                         "output name") from None
    if p.is_symlink():
        try:
            p = Path(os.path.realpath(p, strict=True))
        except FileNotFoundError:  # a dangling link: the folder it names
            p = Path(os.path.realpath(p))
        except OSError as exc:  # ELOOP
            raise InputError(f"{label} {out} is a symlink loop ({exc.strerror}); fix the link or give another "
                             "output") from None
    if is_special(p):
        raise InputError(f"{label} {out} is a device node, FIFO or socket, not a folder; it is never replaced "
                         "(not even with --force): give a folder path for the output")
    if os.path.ismount(p):  # renaming a mount point aside fails (EBUSY) and a new tree cannot replace it
        raise InputError(f"{label} {out} is a mount point, which cannot be replaced (not even with --force); "
                         "give a new folder inside it")
    for in_label, value in inputs.items():
        for i in _flat(value):
            if same_file(p, i):
                raise InputError(f"{label} {out} is the input {in_label} {i}; replacing it would destroy the "
                                 "input: give another output folder")
            if inside(i, p):
                raise InputError(f"{label} {out} contains the input {in_label} {i}; replacing it would delete "
                                 "the input: give another output folder")
            if os.path.isdir(i) and inside(p, i):
                raise InputError(f"{label} {out} is inside the input {in_label} {i}; writing there would change "
                                 "the input: give an output outside that folder")
    if os.path.lexists(p) and not p.is_dir() and not force:
        raise InputError(f"{out} is a file, not a folder; pass --force to replace it or choose another {label}")
    if p.is_dir() and any(p.iterdir()) and not force:
        raise InputError(f"{out} exists and is not empty; pass --force to replace it or choose another {label}")
    folder = _nearest_existing(p.parent if str(p.parent) else Path("."))
    if not folder.is_dir():
        raise InputError(f"{label} {out} is under {folder}, which is a file, not a folder; give another output path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{label} {out} cannot be written: the folder {folder} is read-only "
                         "(permission denied); give an output in a writable folder")
    return p


def folder_temp(out: Path) -> Path:
    """A fresh temporary folder beside output folder ``out`` (``.NAME.tmp-PID``), after removing
    the temporaries of runs that are gone."""
    remove_stale_temporaries(out)
    tmp = temp_sibling(out)
    _clear(tmp)
    tmp.mkdir(parents=True)
    return tmp


def replace_folder(tmp: Path, out: Path, shown: str | os.PathLike | None = None) -> None:
    """Swap the finished tree ``tmp`` into place at ``out``: what was at ``out`` is first
    renamed aside (``.NAME.tmp-PID.old``), then ``tmp`` renamed onto ``out``, the two renames
    with signals deferred, so an interruption leaves either the old output complete or the
    new one; the old one is removed afterwards."""
    old = out.with_name(f"{temp_sibling(out).name}.old")
    _clear(old)
    with signals_deferred():
        moved = os.path.lexists(out)
        if moved:
            os.replace(out, old)
        try:
            os.replace(tmp, out)
        except OSError:
            if moved:
                os.replace(old, out)
            raise
        note_written(shown if shown is not None else out)
    try:
        _clear(old)
    except OSError:  # left for the next run (`remove_stale_temporaries`)
        pass
    except BaseException:  # interrupted while removing the old tree: finish, then stop
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        raise
