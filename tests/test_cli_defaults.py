"""One home per default: a CLI flag that has a library counterpart defaults to None (only
the flags a user gives reach the library) and shows the library dataclass's default in its
help through the one helper, `reidcli.cli.defaults.opt(..., of=Dataclass)`.

Checked over every command's signature (typer's own registry, so a new command is covered):
- an option declared with ``opt(of=...)`` defaults to None, its field exists in the
  dataclass(es), and its help ends with that dataclass default;
- no other option writes ``[default: ...]`` into its help by hand (a second copy of a
  default that can drift);
- an option with a literal CLI default is not a field of a library options dataclass
  (the library would re-default it), unless listed in `LITERAL_OK` with the reason.
"""

from __future__ import annotations

import dataclasses
import re
import inspect
import typing

import pytest
import typer

from reidcli.cli.app import app
from reidcli.cli.defaults import per_method
from reidcli.train.settings import help_default


def _callbacks(typer_app: typer.Typer, prefix: str = "") -> dict[str, object]:
    out = {}
    for info in typer_app.registered_commands:
        name = info.name or info.callback.__name__.replace("_", "-")
        out[f"{prefix}{name}"] = info.callback
    for group in typer_app.registered_groups:
        out.update(_callbacks(group.typer_instance, f"{prefix}{group.name} "))
    return out


def _options(fn) -> list[tuple[str, object, object]]:
    """(parameter name, typer OptionInfo, default) of every option of command ``fn``."""
    hints = typing.get_type_hints(fn, include_extras=True)
    out = []
    for name, param in inspect.signature(fn).parameters.items():
        meta = getattr(hints.get(name), "__metadata__", ())
        info = next((m for m in meta if isinstance(m, typer.models.OptionInfo)), None)
        if info is not None:
            out.append((name, info, param.default))
    return out


COMMANDS = _callbacks(app)
# "[default: 20]", "(default 20)", "; default 0.5 Jaccard", a trailing "[0.0001]."
HAND_WRITTEN = re.compile(r"\[default:|[(;,] ?default [^:]| \[[^\],]+\]\.?$")


def _library_fields() -> set[str]:
    """Field names of the library's options dataclasses (what the library defaults)."""
    from reidcli.cluster.methods import CLUSTERERS
    from reidcli.data.transforms import AugmentConfig
    from reidcli.models import ModelConfig
    from reidcli.stylize.options import StarGANOptions
    from reidcli.train.config import FinetuneConfig, TrainConfig
    from reidcli.train.methods import TRAINING_METHODS

    from reidcli.eval.api import GalleryDraws, Options
    from reidcli.eval.report import RanksPicture
    from reidcli.eval.rerank import RerankOptions
    from reidcli.plot.figures import TsneOptions
    from reidcli.pose.options import PoseOptions
    from reidcli.stylize.options import ColorFit, StarGANTrainConfig

    kinds = [AugmentConfig, ModelConfig, StarGANOptions, FinetuneConfig, TrainConfig, Options, GalleryDraws,
             RanksPicture, RerankOptions, TsneOptions, PoseOptions, ColorFit, StarGANTrainConfig]
    kinds += [TRAINING_METHODS.get(n).Options for n in TRAINING_METHODS.names()]
    kinds += [CLUSTERERS.get(n).Options for n in CLUSTERERS.names() if hasattr(CLUSTERERS.get(n), "Options")]
    return {f.name for k in kinds for f in dataclasses.fields(k)}


# Literal CLI defaults that share a name with a library field, and why that is one home.
LITERAL_OK = {
    ("cluster", "split"): "the split of the features file to read; no clusterer option",
    ("features", "split"): "which splits to extract; no training option",
    ("stylize fit", "split"): "the split whose cameras are learnt; no t-SNE option (TsneOptions.split)",
    ("*", "device"): "the one --device option of reidcli/cli/common.py (Device, DeviceCPU), shared by every command",
    ("synth", "height"): "the synthetic images' size, not the training input (AugmentConfig.height)",
    ("synth", "width"): "the synthetic images' size, not the training input (AugmentConfig.width)",
    ("pretrain", "pretrained"): "the CLI starts from ImageNet as the toolboxes do; ModelConfig keeps none so "
                                "that library calls never download (README: Python API)",
}


def test_the_commands_are_found():
    assert {"pretrain", "finetune", "cluster", "evaluate", "features", "stylize fit", "stylize apply"} <= set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_cli_default_is_its_dataclass_default(command):
    fn = COMMANDS[command]
    fields = _library_fields()
    problems = []
    for name, info, default in _options(fn):
        flag = info.param_decls[0] if info.param_decls else name
        help = info.help or ""
        default_of = getattr(info, "default_of", None)
        if default_of is not None:
            of, field = default_of
            kinds = of.values() if isinstance(of, dict) else [of] if of is not None else []
            if default is not None:
                problems.append(f"{flag}: defaults to {default!r} in the CLI and to the library's in the help")
            for kind in kinds:
                if field not in {f.name for f in dataclasses.fields(kind)}:
                    problems.append(f"{flag}: {kind.__name__} has no field {field!r}")
            shown = (per_method(field, **of) if isinstance(of, dict) else help_default(of, field) if of is not None
                     else f"\\[default: {field}]")
            if not help.endswith(shown):
                problems.append(f"{flag}: help does not end with {shown!r}")
        elif HAND_WRITTEN.search(help.replace("\\", "")):
            problems.append(f"{flag}: writes its default into the help by hand; use opt(of=Dataclass)")
        elif default not in (None, False, ...) and name in fields and (command, name) not in LITERAL_OK \
                and ("*", name) not in LITERAL_OK:
            problems.append(f"{flag}: literal CLI default {default!r}, and {name!r} is a library field")
    assert not problems, f"reid {command}:\n" + "\n".join(problems)


def test_pretrain_and_finetune_declare_their_shared_flags_once():
    """The training flags both commands take come from one table (reidcli/cli/training.py):
    same names, same help; only the dataclass the default comes from differs."""
    from reidcli.cli.training import shared_flag_names

    seen = {}
    for command in ("pretrain", "finetune"):
        options = {name: info for name, info, _ in _options(COMMANDS[command])}
        for name in shared_flag_names():
            assert name in options, f"reid {command} lacks the shared flag {name}"
            info = options[name]
            seen.setdefault(name, []).append((tuple(info.param_decls), info.help.split(" \\[default")[0]))
    for name, (a, b) in seen.items():
        assert a == b, f"{name}: pretrain {a} vs finetune {b}"
