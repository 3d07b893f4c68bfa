"""What every command shares: error mapping, invocation recording, shared options.

A command module defines ``command(...)`` (its docstring is the help text) and decorates it
with ``@reid_command("name")``: a `ReidError` becomes ``reid name: error: ...`` on stderr
and exit 1; anything unexpected becomes one line too, unless ``--debug``/``REIDCLI_DEBUG=1``.
A command with a ``threads`` parameter (the shared ``--threads``) and no ``workers`` one
gets its intra-op threads set here (`reidcli.utils.resources.configure`); a command that
loads images passes both to its library, which picks them with the device in mind.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from reidcli.utils.errors import ReidError, Terminated

_debug = {"on": os.environ.get("REIDCLI_DEBUG", "") not in ("", "0")}


def set_debug(on: bool) -> None:
    _debug["on"] = on


def error_line(name: str, message: str) -> None:
    print(f"reid {name}: error: {message}", file=sys.stderr, flush=True)


def prose(doc: str | None) -> str | None:
    """A command's docstring as ``--help`` should show it: the lines of each paragraph joined,
    so the terminal wraps sentences instead of breaking them where the source did. Paragraphs
    with indented or bulleted lines (lists, examples) keep their lines."""
    if not doc:
        return doc
    import inspect

    paragraphs = inspect.cleandoc(doc).split("\n\n")
    keep = lambda lines: any(ln.startswith((" ", "- ", "* ")) for ln in lines)  # noqa: E731
    return "\n\n".join(p if keep(p.splitlines()) else " ".join(ln.strip() for ln in p.splitlines())
                       for p in paragraphs)


def reid_command(name: str, outputs: tuple[str, ...] = ("output",), may_replace: tuple[str, ...] = (),
                 path_inputs: tuple[str, ...] = (), side_files: tuple[str, ...] = ()):
    """Wrap a Typer command: record argv, check its outputs, map errors to one line + exit code.

    Before the command runs, `reidcli.io.atomic.check_outputs` checks the parameters named in
    ``outputs`` (output files; absent ones are skipped) against every other `Path` parameter
    (its inputs: none may be an output, no output may lie inside an input folder) and against
    the parameters named in ``path_inputs`` (paths given as text, e.g. ``--pretrained PATH``);
    ``may_replace`` names inputs an output may equal (finetune's ``--ckpt``: it is read first
    and replaced only when the round has finished); ``side_files`` the suffixes of the files
    the first output writes beside itself (``.log.jsonl``, ``.config.toml``), checked too.
    An interruption (Ctrl-C, SIGTERM, SIGHUP) says which outputs were already complete.
    """

    def deco(fn):
        fn.__doc__ = prose(fn.__doc__)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            from reidcli.io.h5 import set_invocation

            set_invocation(f"reid {name}", ["reid", *sys.argv[1:]] if Path(sys.argv[0]).name == "reid"
                           else [Path(sys.argv[0]).name, *sys.argv[1:]])
            from reidcli.io.atomic import sigterm_raises, written_outputs

            written_outputs(reset=True)
            try:
                with sigterm_raises(), _guarded_stdout():
                    _check_paths(fn, kwargs, outputs, may_replace, path_inputs, side_files)
                    _configure_threads(fn, kwargs)
                    result = fn(*args, **kwargs)
                    sys.stdout.flush()  # a full disk or a closed pipe on stdout fails here, not at exit
                    return result
            except typer.Exit:
                raise
            except ReidError as exc:
                if _debug["on"]:
                    raise
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                error_line(name, flag_message(exc, message))
                raise typer.Exit(exc.exit_code)
            except KeyboardInterrupt:
                error_line(name, f"interrupted; {_written_note()}")
                raise typer.Exit(130)
            except Terminated as exc:
                error_line(name, f"terminated ({exc.signal_name}); {_written_note()}")
                raise typer.Exit(exc.exit_code)
            except MemoryError:
                error_line(name, "out of memory; " + ("lower --batch-size or use a smaller input"
                                                       if flag_of("batch_size") else
                                                       "an input needs more memory than this machine has (a "
                                                       "damaged or crafted file?); check the inputs"))
                raise typer.Exit(1)
            except Exception as exc:
                if _stdout_failed(exc):
                    if exc.errno == errno.EPIPE:  # '| head': the reader has all it wants; quiet, as cat does
                        raise typer.Exit(128 + signal.SIGPIPE)
                    error_line(name, f"cannot write the results to standard output: {exc.strerror or exc} "
                                     "(a full disk? redirect stdout elsewhere)")
                    raise typer.Exit(1)
                if _debug["on"]:
                    raise
                if isinstance(exc, OSError) and exc.errno in _NO_ROOM:
                    where = f"{exc.filename}: " if exc.filename is not None else ""
                    error_line(name, f"{where}cannot write the outputs: {exc.strerror or exc} (free space, check "
                                     "'ulimit -f', or give another output path)")
                elif isinstance(exc, OSError) and exc.filename is not None:
                    # a file the system refuses (permissions, a symlink loop, an I/O error)
                    error_line(name, f"{exc.filename}: {exc.strerror or exc}; check the path and its permissions")
                else:  # a bug, but still one line for the user
                    error_line(name, f"internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                                     "(rerun with --debug for the traceback and report it)")
                raise typer.Exit(1)

        return wrapper

    return deco


# a full disk, a file-size limit ('ulimit -f'), a disk quota: no room for an output
_NO_ROOM = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


class StdoutError(OSError):
    """Writing the results to stdout failed (a closed pipe, /dev/full), not an output file."""


class _GuardedStdout:
    """``sys.stdout`` while a command runs: a failed write or flush raises `StdoutError`,
    so that the error mapping tells it from a failed output file."""

    def __init__(self, stream):
        self._stream = stream

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def _guard(self, op, *args):
        try:
            return op(*args)
        except StdoutError:
            raise
        except OSError as exc:
            raise StdoutError(exc.errno, exc.strerror) from exc

    def write(self, text):
        return self._guard(self._stream.write, text)

    def writelines(self, lines):
        return self._guard(self._stream.writelines, lines)

    def flush(self):
        return self._guard(self._stream.flush)


@contextlib.contextmanager
def _guarded_stdout():
    real = sys.stdout
    sys.stdout = _GuardedStdout(real) if real is not None and not isinstance(real, _GuardedStdout) else real
    try:
        yield
    finally:
        sys.stdout = real


def _stdout_failed(exc: BaseException) -> bool:
    """Whether ``exc`` came from writing stdout; then stdout is pointed at /dev/null, so that
    the interpreter's last flush (of what could not be written) does not fail again."""
    if not isinstance(exc, StdoutError):
        return False
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):  # no real stdout (a test runner's buffer)
        pass
    return True


def _written_note() -> str:
    """What an interrupted command had written: nothing, or the outputs already complete."""
    from reidcli.io.atomic import written_outputs

    done = written_outputs()
    if not done:
        return "outputs were not written (rerun to resume)"
    shown = ", ".join(done[:3]) + (f" and {len(done) - 3} more" if len(done) > 3 else "")
    return f"already written (complete): {shown}; nothing else was written (rerun to resume)"


def _label(param: str) -> str:
    """How the user wrote ``param``: its ``--flag``, or its METAVAR for an argument."""
    for p in _current_params():
        if p.name == param:
            return param.upper() if getattr(p, "param_type_name", "") == "argument" else (_long_flag(p) or param)
    return param


def _is_paths(value) -> bool:
    return isinstance(value, Path) or (isinstance(value, (list, tuple)) and any(isinstance(v, Path) for v in value))


def _check_paths(fn, kwargs: dict, outputs, may_replace, path_inputs, side_files=()) -> None:
    from reidcli.io.atomic import check_outputs

    outs = {_label(n): kwargs[n] for n in outputs if kwargs.get(n) is not None}
    if not outs:
        return
    ins = {_label(n): v for n, v in kwargs.items() if n not in outputs and _is_paths(v)}
    ins.update({_label(n): Path(kwargs[n]) for n in path_inputs if isinstance(kwargs.get(n), str)})
    sides = {_label(outputs[0]): side_files} if side_files and outputs else {}
    check_outputs(outs, ins, may_replace=[_label(n) for n in may_replace], side_files=sides)


def _configure_threads(fn, kwargs: dict) -> None:
    params = inspect.signature(fn).parameters
    if "threads" in params and "workers" not in params:
        from reidcli.utils.resources import configure

        configure(threads=kwargs.get("threads"))


def _current_params() -> list:
    try:
        from click import get_current_context
    except ImportError:  # typer >= 0.2x vendors click
        from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    return list(ctx.command.params) if ctx is not None else []


def command_settings(flags: dict, skip: tuple[str, ...] = ()) -> dict:
    """Split a command's parameter values for a library ``*_from_settings`` call:
    ``{"settings": given, "defaults": ..., "config_aliases": ...}``. ``given`` holds the
    values set on the command line (or by the environment), ``defaults`` the flag defaults
    that are not None (a ``--config`` file overrides them, the command line overrides it),
    ``config_aliases`` every flag name of the command (``ids-per-batch``, ``P``) -> its
    parameter, so a config file may use the flags' names."""
    try:
        from click import get_current_context
    except ImportError:  # typer >= 0.2x vendors click
        from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    given, defaults = {}, {}
    for name, value in flags.items():
        if name in skip or value is None:
            continue
        source = ctx.get_parameter_source(name) if ctx is not None else None
        by_default = source is not None and source.name in ("DEFAULT", "DEFAULT_MAP")
        (defaults if by_default else given)[name] = value
    aliases = {o.lstrip("-").replace("-", "_"): p.name for p in _current_params()
               if p.name and getattr(p, "param_type_name", "") == "option" for o in p.opts}
    return {"settings": given, "defaults": defaults, "config_aliases": aliases}


Config = Annotated[Optional[Path], typer.Option("--config", dir_okay=False, help=(
    "A TOML file of settings: any flag of this command as a key (epochs = 80, arch = \"resnet50\", "
    "ids-per-batch = 16), at the top level or in a \\[pretrain] / \\[finetune] table. Flags on the command "
    "line win. The resolved settings are written beside the checkpoint as <name>.config.toml."))]


def _long_flag(p) -> str | None:
    longs = [o for o in p.opts if o.startswith("--")]
    return longs[0] if longs else (p.opts[0] if p.opts else None)


def flag_of(param: str) -> str | None:
    """The ``--flag`` of the current command whose Python parameter is ``param``."""
    return next((_long_flag(p) for p in _current_params() if p.name == param), None)


def flag_message(exc: Exception, message: str) -> str:
    """``message`` with library parameter names shown as the command's flags: the
    `ParamError.param` that starts it, and any other snake_case parameter name in it."""
    import re

    param = getattr(exc, "param", None)
    if param and message.startswith(param):
        flag = flag_of(param) or getattr(exc, "flag", None)
        message = (flag + message[len(param):]) if flag else message
    flags = {p.name: _long_flag(p) for p in _current_params() if p.name and _long_flag(p)}
    head, sep, listed = message.partition("(its options: ")
    for name, flag in flags.items():
        if "_" in name:  # a snake_case name cannot be an English word: show the flag
            head = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", flag, head)
    if sep:  # reject_unknown's list of the method's own options
        names, close, rest = listed.partition(")")
        listed = ", ".join(flags.get(n, n) for n in names.split(", ")) + close + rest
    return head + sep + listed


def usage_checked(constraints: dict, name: str):
    """A Typer callback that checks one option against its library's constraint table
    (`reidcli.utils.params.check_value`) at parse time, so a bad value is a usage error: one
    line, exit 2 (``Invalid value for '--flag': must be one of ...; got 'x'``)."""
    from reidcli.utils.params import ParamError, check_value

    def callback(value):
        if value is None:  # not given: the library's default
            return value
        try:
            check_value(name, value, constraints[name])
        except ParamError as exc:
            raise typer.BadParameter(exc.detail) from None
        return value

    return callback


# Shared options: the same flag means the same thing in every command.
Output = Annotated[Path, typer.Option("--output", "-o", help="Output file (written atomically).")]
OptOutput = Annotated[Optional[Path], typer.Option("--output", "-o", help="Output file (written atomically).")]
Ckpt = Annotated[Path, typer.Option("--ckpt", help="A reidcli checkpoint (.pt).", exists=True, dir_okay=False)]
Seed = Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1, help="Random seed.")]  # SEED (utils/params.py)
Device = Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N (auto: CUDA when present).")]
# the same flag where the default is the CPU (commands that stay torch-free unless asked)
DeviceCPU = Annotated[str, typer.Option("--device", help=(
    "auto | cpu | cuda | cuda:N (auto: CUDA when present; the default cpu needs no torch)."))]
BatchSize = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images per batch.")]
Workers = Annotated[int | None, typer.Option("--workers", "-j", min=0, help=(
    "DataLoader worker processes (default: auto, from the cores and the device)."))]
ProcessWorkers = Annotated[int | None, typer.Option("--workers", "-j", min=0, help=(
    "Worker processes (default: auto, from the cores; 0 = in this process)."))]
Threads = Annotated[int | None, typer.Option("--threads", min=1, help=(
    "Intra-op threads (default: auto, the cores this process may use less its workers; "
    "OMP_NUM_THREADS counts as --threads)."))]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or messages.")]
DataFormat = Annotated[Optional[str], typer.Option("--format", help="Dataset layout; auto-detected when omitted (cuhk03-labeled / cuhk03-detected: a CUHK03 variant; regdb-trial1 .. regdb-trial10: a RegDB trial).")]
CamRegex = Annotated[Optional[str], typer.Option("--cam-regex", metavar="REGEX", help=(
    "folder / unlabelled layouts: the camera id is the first group of this regex matched against each "
    "image's path, e.g. 'c(\\d+)'; other layouts read cameras from their file names or lists and ignore it."))]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of a table.")]


def _recipe_help() -> str:
    from reidcli.recipes import recipe_names

    return (f"A paper's hyper-parameters: {' | '.join(recipe_names())} (docs/recipes.md); "
            "flags given explicitly win.")


Recipe = Annotated[Optional[str], typer.Option("--recipe", help=_recipe_help(), rich_help_panel="Recipe")]
