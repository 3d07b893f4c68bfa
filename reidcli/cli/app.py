"""The `reid` application: one Typer app, one subcommand per stage, and `reid-<cmd>` entry points."""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from reidcli import __version__
from reidcli.cli.common import set_debug
from reidcli.utils.progress import set_quiet

# (command name, module under reidcli.cli, one-line purpose)
COMMANDS = [
    ("synth", "synth", "Write a synthetic re-ID dataset in a real layout (the embedded default)."),
    ("info", "info", "Show what a reidcli file holds and whether it is valid."),
    ("extract-pose", "extract_pose", "Detect 17 COCO body keypoints per image -> pose.h5."),
    ("stylize", "stylize", "Fit / apply camera-style transfer between cameras."),
    ("pretrain", "pretrain", "Supervised training on a labelled source dataset -> m.pt."),
    ("features", "features", "Extract embeddings for every split of a dataset -> f.h5."),
    ("merge", "merge", "Join 'reid features --shard i/n' outputs into one features file."),
    ("cluster", "cluster", "Pseudo-labels from features (Jaccard + DBSCAN, k-means, expansion)."),
    ("finetune", "finetune", "One round of unsupervised domain adaptation on pseudo-labels."),
    ("evaluate", "evaluate", "mAP / CMC / mINP of query vs gallery features; re-ranking; plots."),
    ("export", "export", "The deployed network as ONNX or TorchScript, or a slim checkpoint."),
    ("plot", "plot", "Pictures: training curves of a log, t-SNE of features, cluster sizes."),
]

class OneLineErrors(TyperGroup):
    """The `reid` group: click's own usage errors (a bad value, a missing argument, an unknown
    option or command) print one line, ``reid CMD: error: ... (see 'reid CMD --help')``, with
    exit 2, like every other error of reidcli, instead of a usage block in a box."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        from typer import _click

        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                              standalone_mode=False, **extra)
        except _click.exceptions.ClickException as exc:
            if not standalone_mode:
                raise
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare 'reid': the help, as click shows it
                exc.show()
            else:
                print(usage_line(exc), file=sys.stderr, flush=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            if not standalone_mode:
                raise
            print("reid: aborted", file=sys.stderr, flush=True)
            sys.exit(1)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def usage_line(exc) -> str:
    """One line for a click usage error: what is wrong and where to read more."""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "reid"
    if getattr(exc, "possibilities", None) and ctx is not None:  # never suggest a hidden (deprecated) option
        hidden = {o for p in ctx.command.params if getattr(p, "hidden", False) for o in (*p.opts, *p.secondary_opts)}
        exc.possibilities = [o for o in exc.possibilities if o not in hidden]
    message = _link_problem(" ".join(exc.format_message().split()))  # click's messages may wrap
    return f"{where}: error: {message} (see '{where} --help')"


def _link_problem(message: str) -> str:
    """Click says "path 'X' does not exist." of an input that is a symlink loop or a dangling
    symlink: name the link's problem instead (`reidcli.io.atomic.missing_message`)."""
    import ast
    import os
    import re

    m = re.search(r"(?:file|directory|path) ('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\") does not exist\.", message)
    if m is None:
        return message
    try:
        path = ast.literal_eval(m.group(1))
    except (ValueError, SyntaxError):
        return message
    if not isinstance(path, str) or not os.path.islink(path):
        return message
    from reidcli.io.atomic import missing_message

    return message[:m.start()] + missing_message(path)


app = typer.Typer(
    name="reid",
    cls=OneLineErrors,
    help="reidcli: person re-identification with unsupervised domain adaptation.\n\n"
         "Stages exchange HDF5 files, so they can be mixed, scripted and rerun:\n"
         "reid synth data/ && reid pretrain data/ -o m.pt && reid features --ckpt m.pt data/ -o f.h5",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"reidcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or messages.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug-level log messages.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    set_quiet(quiet)
    set_debug(debug)
    _setup_logging(verbose, quiet)


def _setup_logging(verbose: bool, quiet: bool) -> None:
    """reidcli's log on stderr: rich on a TTY, one record per line otherwise (`log_handler`)."""
    from reidcli.utils.progress import log_handler

    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    root = logging.getLogger("reidcli")
    root.handlers[:] = [log_handler()]
    root.setLevel(level)
    root.propagate = False


for _name, _module, _help in COMMANDS:
    _mod = importlib.import_module(f"reidcli.cli.{_module}")
    if isinstance(getattr(_mod, "app", None), typer.Typer):  # a command group (stylize fit/apply)
        app.add_typer(_mod.app, name=_name, help=_help, short_help=_help)
    else:
        app.command(name=_name, help=(_mod.command.__doc__ or _help), short_help=_help)(_mod.command)


GLOBAL_FLAGS = ("-q", "--quiet", "--debug", "-v", "--verbose")


def hoist_globals(argv: list[str]) -> list[str]:
    """``argv`` with the global flags (``-q``, ``-v``, ``--debug``) moved in front of the
    command, so ``reid pretrain -q ...`` means ``reid -q pretrain ...`` (nothing after a
    ``--`` is moved)."""
    end = argv.index("--") if "--" in argv else len(argv)
    flags = [a for a in argv[:end] if a in GLOBAL_FLAGS]
    return [*flags, *(a for a in argv[:end] if a not in GLOBAL_FLAGS), *argv[end:]]


def main() -> None:
    app(args=hoist_globals(sys.argv[1:]), prog_name="reid")


def _standalone(name: str):
    def run() -> None:
        app(args=[*_leading_globals(), name, *_rest()], prog_name="reid")

    run.__name__ = f"{name.replace('-', '_')}_main"
    return run


def _leading_globals() -> list[str]:
    return [a for a in sys.argv[1:] if a in ("-q", "--quiet", "--debug", "-v", "--verbose")]


def _rest() -> list[str]:
    return [a for a in sys.argv[1:] if a not in ("-q", "--quiet", "--debug", "-v", "--verbose")]


for _name, _module, _help in COMMANDS:
    globals()[f"{_module}_main"] = _standalone(_name)
