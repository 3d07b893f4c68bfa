"""Training methods: plug-ins to the one loop in `reidcli.train.engine`.

The engine owns everything that is the same for every method: epochs and iteration
budgets, data streams and their resumable samplers, the optimizer and lr schedule, AMP,
gradient clipping, DDP (process group, wrapping, SyncBN, rank-0 writes), BN grouping and
domain-specific BN, checkpoints every epoch, ``--resume``, the JSONL log, the progress bar
and the evaluation hook. A method says only *what one step computes*.

Plug-in interface: subclass `Method` (`reidcli.train.methods.base`), give it an options
dataclass (``Options = MyOptions``, in `reidcli.train.methods.options`: fields with their
defaults and a ``CONSTRAINTS`` table), register it with ``@TRAINING_METHODS.register("name")``
and declare its module and stage below (``stage="pretrain"`` or ``"finetune"``: the command
that runs it, checked up front by `resolve_method`) so it is found, listed in ``--method``'s
help and checked without importing every method (a plug-in outside reidcli passes the stage
to ``register`` instead). Then:

``build(ctx)``
    Create the networks into ``self.nets`` (name -> nn.Module). ``self.nets["model"]`` is
    the network a checkpoint deploys; extra nets (MMT's second net and the two EMA "mean
    nets", a KD teacher, ...) are saved under ``nets`` in the checkpoint. List the nets that
    receive gradients in ``self.trained`` (default: ``["model"]``); the engine moves all
    nets to the device, converts their BN layers and wraps the trained ones in DDP. ``ctx``
    is an `EngineContext` (config, device, number of classes, dataset info, distributed
    position).
``streams(ctx) -> dict[str, Stream]``
    The data the method consumes, e.g. ``{"source": pk_stream}`` or
    ``{"target": pk_stream_on_pseudo_labels, "source": ...}``. The first stream is the
    *main* one: one pass of its sampler is one epoch unless ``--iters-per-epoch`` says
    otherwise; the others cycle. Build streams with `reidcli.train.engine.make_stream`.
``param_groups() -> list[dict]``
    Optimizer parameter groups (``params``, optional ``lr_mult`` and ``weight_decay``).
``extra_optimizers() -> dict[str, Optimizer]``
    Optional optimizers stepped beside the main one (e.g. centre-loss centres with their
    own SGD, Wen et al. 2016); they are saved and restored too.
``step(batch, it) -> dict[str, Tensor]``
    One forward pass on ``batch`` (stream name -> dict with ``img`` on the device,
    ``label``, ``camid``, ``index``), run under autocast. Return ``"loss"`` (the total,
    back-propagated by the engine) and any scalar metrics to log (``"acc"``, ``"ce"``,
    ...). Call trained nets through ``self.net(name)`` so DDP wrappers are used.
``optimizers_to_step(it) -> set[str] | None``
    Optional: the optimizers step ``it`` zeroes and steps (``"main"`` and names of
    ``extra_optimizers``; None = all), for alternating schemes such as a GAN's critic and
    generator steps (``stargan``, `reidcli.stylize.trainer`).
``before_optimizer_step()``
    Optional gradient surgery after unscaling (e.g. centre-loss gradient rescale).
``after_step(it)``
    Optional update after the optimizer step (EMA mean nets: ``E[θ]_T = α E[θ]_{T-1} +
    (1-α) θ``; KD weight blending every N epochs, ...).
``on_epoch_start(epoch)`` / ``on_epoch_end(epoch)``
    Optional hooks.
``after_setup(opt)``
    Optional, once the engine has built the optimizer (the finetune methods continue the
    previous round's Adam moments here).
``extra_state()`` / ``load_extra_state(state)``
    Method state that is neither a network nor an optimizer (counters, memory banks).

Finetune methods (pseudo-label, MMT, KD, joint source+target) differ from `supervised`
only in these methods and in the streams they ask for, so they reuse the loop unchanged.
Anything a method does *around* the loop rather than inside a step (extra logging, a
schedule) is an engine hook instead (`reidcli.train.hooks`).

``self.options`` is the method's validated options object; `get_method` builds it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from reidcli.train.methods.options import MethodOptions
from reidcli.utils.errors import ConfigError
from reidcli.utils.params import UsageError, reject_unknown
from reidcli.utils.registry import Registry

TRAINING_METHODS: Registry = Registry("training method")
_M = "reidcli.train.methods."
TRAINING_METHODS.declare("supervised", _M + "supervised", "ID + triplet loss on ground-truth labels", stage="pretrain")
TRAINING_METHODS.declare("pseudo", _M + "pseudo", "ID + triplet loss on the pseudo-labels", stage="finetune")
TRAINING_METHODS.declare("mmt", _M + "mmt", "Mutual Mean-Teaching", stage="finetune")
TRAINING_METHODS.declare("kd", _M + "kd", "an intermediate copy blended into the weights", stage="finetune")
TRAINING_METHODS.declare("joint", _M + "joint", "labelled source and pseudo-labelled target", stage="finetune")
TRAINING_METHODS.declare("camstyle", _M + "camstyle",
                         "LSTM-UDA 2021: source CE + source-vs-(styled) target triplet, no clustering", stage="finetune")
TRAINING_METHODS.declare("agents", _M + "mar", "MAR reference pretraining: agent learning (AL) only", stage="pretrain")
TRAINING_METHODS.declare("mar", _M + "mar", "MAR soft multilabels over reference agents, no clustering", stage="finetune")
TRAINING_METHODS.declare("mrda", _M + "mrda", "cross-modality MRDA (two-stream --arch mrda)", stage="pretrain")
# trained through the engine but a camera-style GAN, not a re-ID method: it lives with reid stylize
TRAINING_METHODS.declare("stargan", "reidcli.stylize.trainer", "StarGAN camera-style transfer (reid stylize fit)",
                         stage="stylize")


def method_options(name: str, options: MethodOptions | Mapping[str, Any] | None = None, *,
                   method_class: type | None = None) -> MethodOptions:
    """The validated options object of method ``name`` from ``options``: None (the
    defaults), a dict of field values, or the method's own options dataclass.
    ``method_class``: the method's class when already resolved (`resolve_method`).

    Raises:
        ParamError: a name that is not an option of this method, or a bad value.
        ConfigError: the options object of another method.
    """
    kind = (method_class or TRAINING_METHODS.get(name)).Options
    if options is None:
        opts = kind()
    elif isinstance(options, Mapping):
        reject_unknown(options, kind.field_names(), what=f"--method {name}")
        opts = kind(**options)
    elif type(options) is kind:
        opts = dataclasses.replace(options)
    else:
        raise ConfigError(f"--method {name} takes {kind.__name__}, not {type(options).__name__}; "
                          f"pass a {kind.__name__} or a dict of its fields")
    return opts.validate()


def get_method(name: str, options: MethodOptions | Mapping[str, Any] | None = None):
    """Instantiate a registered method by name (did-you-mean on a typo) with its validated
    options (see `method_options`)."""
    return TRAINING_METHODS.get(name)(method_options(name, options))


# The stages a method can run in (its class's ``stage``), the command that runs each, what
# such a method does, and the method a stage runs when none is named.
STAGES = {
    "pretrain": ("'reid pretrain'", "a pretraining method", "it trains on labelled images"),
    "finetune": ("'reid finetune'", "an adaptation method", "it adapts a checkpoint to unlabelled target images"),
    "stylize": ("'reid stylize fit --method stargan'", "a style method", "it learns camera styles"),
}
DEFAULT_METHODS = {"pretrain": "supervised", "finetune": "mmt"}


def method_names(stage: str) -> list[str]:
    """The registered methods that run in ``stage`` (from their declarations: no import)."""
    return [n for n in TRAINING_METHODS.names() if method_stage(n) == stage]


def method_stage(name: str) -> str:
    """The stage method ``name`` runs in (declared with it: no import needed)."""
    return TRAINING_METHODS.meta(name)["stage"]


def methods_help(stage: str) -> str:
    """``--method`` help of a stage's command: each method and its registry description."""
    return " | ".join(f"{n} ({TRAINING_METHODS.describe(n)})" for n in method_names(stage)) + "."


def resolve_method(name: str | None, stage: str):
    """The registered class of method ``name`` (None: the stage's `DEFAULT_METHODS` entry),
    checked once, up front, to run in ``stage`` (``pretrain`` | ``finetune``): a typo gets the
    registry's did-you-mean, a method of another stage a one-line `UsageError` naming the
    methods this stage runs and the command that runs ``name``."""
    name = name or DEFAULT_METHODS[stage]
    runs_in = method_stage(name)
    if runs_in != stage:
        command, _, does = STAGES[runs_in]
        raise UsageError("method", f"must be {STAGES[stage][1]} ({', '.join(method_names(stage))}); got {name!r}, "
                                   f"which runs in {command} ({does})")
    return TRAINING_METHODS.get(name)




__all__ = ["DEFAULT_METHODS", "STAGES", "TRAINING_METHODS", "MethodOptions", "get_method", "method_names",
           "method_options", "methods_help", "resolve_method"]
