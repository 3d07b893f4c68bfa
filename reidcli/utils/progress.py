"""Progress bars and the stderr console: the one place that decides whether to draw.

Bars are drawn on stderr only when it is a TTY and quiet mode is off, so pipelines,
Makefiles and captured test output stay clean; likewise log records are laid out by rich
only on a TTY, and written one per line, unwrapped, to a file or a pipe.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Optional, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

# A library's progress callback: ``progress(stage, done, total)``, called once per block of
# work (never per row), e.g. ``progress("neighbours", 4096, 12936)``. None: nobody listens.
StageProgress = Callable[[str, int, int], None]

_state = {"quiet": os.environ.get("REIDCLI_QUIET", "") not in ("", "0")}


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = bool(quiet)


def is_quiet() -> bool:
    return _state["quiet"]


def stderr_console() -> Console:
    """A rich console on stderr, resolved at each write (so a swapped sys.stderr, as in
    CliRunner or pytest capture, is followed rather than a stale, closed stream)."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


class PlainLogHandler(logging.Handler):
    """One log record per line on the current ``sys.stderr`` (resolved at each record, as
    `stderr_console` is): ``LEVEL    message``, never wrapped or indented, so that ``grep``
    on a log file finds every record whole. A message's own line breaks become spaces."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = f"{record.levelname:<8} {' '.join(record.getMessage().splitlines())}"
            if record.exc_info:
                line += "\n" + self.formatException(record.exc_info)
            print(line, file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)

    def formatException(self, exc_info) -> str:
        return logging.Formatter().formatException(exc_info)


def log_handler() -> logging.Handler:
    """The handler of reidcli's log: rich's (levels aligned, wrapped to the terminal) when
    stderr is a TTY, else `PlainLogHandler` (a file or a pipe: one record per line)."""
    if not sys.stderr.isatty():
        return PlainLogHandler()
    from rich.logging import RichHandler

    return RichHandler(console=stderr_console(), show_time=False, show_path=False, markup=False,
                       rich_tracebacks=False)


def bars_enabled() -> bool:
    return not _state["quiet"] and sys.stderr.isatty()


def say(message: str) -> None:
    """One human-facing line on stderr (never stdout), unless quiet."""
    if not _state["quiet"]:
        print(message, file=sys.stderr, flush=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=stderr_console(),
        transient=False,
    )


@contextmanager
def progress_bar(description: str, total: Optional[int] = None) -> Iterator["Bar"]:
    """Context manager yielding a bar with ``advance(n)`` and ``set(**fields)``."""
    if not bars_enabled():
        yield Bar(None, None)
        return
    prog = _progress()
    with prog:
        task = prog.add_task(description, total=total, info="")
        yield Bar(prog, task)


@contextmanager
def stage_bars(prefix: str = "") -> Iterator[Optional[StageProgress]]:
    """A `StageProgress` callback for a library call that reports its stages: one bar per
    stage (``prefix`` + the stage name), drawn as `progress_bar` draws. Yields None when bars
    are off (quiet, or stderr not a TTY), so the library skips even the call."""
    if not bars_enabled():
        yield None
        return
    prog, tasks = _progress(), {}

    def update(stage: str, done: int, total: int) -> None:
        task = tasks.get(stage)
        if task is None:
            task = tasks[stage] = prog.add_task(prefix + stage, total=total, info="")
        prog.update(task, completed=done, total=total)

    with prog:
        yield update


class Bar:
    def __init__(self, prog: Optional[Progress], task):
        self._prog, self._task = prog, task

    def advance(self, n: int = 1) -> None:
        if self._prog is not None:
            self._prog.advance(self._task, n)

    def set(self, **fields) -> None:
        if self._prog is not None:
            info = "  ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()
            )
            self._prog.update(self._task, info=info)


def track(it: Iterable[T], description: str, total: Optional[int] = None) -> Iterator[T]:
    """Iterate with a progress bar (silent when quiet or not a TTY)."""
    if total is None and hasattr(it, "__len__"):
        total = len(it)  # type: ignore[arg-type]
    with progress_bar(description, total) as bar:
        for item in it:
            yield item
            bar.advance(1)
