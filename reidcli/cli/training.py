"""The training flags `reid pretrain` and `reid finetune` share, declared once: names and
help. Each command binds a flag to its own defaults dataclass (`TrainConfig` or
`FinetuneConfig`, `AugmentConfig`), whose default the help shows and whose ``CONSTRAINTS``
check the value (one home for bounds too: ``--lr nan`` is "--lr must be a float > 0; got
nan" from either command):

    lr: Annotated[Float, train_flag("lr", of=TrainConfig, panel="Training")] = None
"""

from __future__ import annotations

import typer

from reidcli.cli.defaults import opt

# name -> (flags, help, dataclass field: "" for the name itself, None for no field)
_FLAGS: dict[str, tuple[tuple[str, ...], str, str | None]] = {
    "epochs": (("--epochs",), "Epochs (pretrain: in total; finetune: in this round).", ""),
    "iters_per_epoch": (("--iters-per-epoch", "--iters"), "Steps per epoch (0 = one pass).", ""),
    "lr": (("--lr",), "Base learning rate.", ""),
    "weight_decay": (("--weight-decay",), "Weight decay.", ""),
    "p": (("--ids-per-batch", "-P"), "Identities per batch (P of P x K).", ""),
    "k": (("--images-per-id", "-K", "--num-instances"), "Images per identity (K of P x K).", ""),
    "batch_size": (("--batch-size",),
                   "Images per batch (torchreid / fast-reid style): sets -P to it divided by -K.", None),
    "images_per_bn": (("--images-per-bn",), "BN statistics over groups of N images (0 = batch).", ""),
    "erasing": (("--erasing",), "Random-erasing probability.", ""),
    "seed": (("--seed",), "Random seed.", ""),
    "cache_images": (("--cache-images",), "Decode each training image once and keep it in memory, resized, for "
                     "small datasets (same results; refused over half the available memory).", ""),
    "amp": (("--amp/--no-amp",), "Mixed precision on CUDA.", ""),
}


def train_flag(name: str, *, of: type | None = None, panel: str | None = None):
    """The option ``name`` of `_FLAGS` with its default from dataclass ``of``."""
    names, help, field = _FLAGS[name]
    extra = {"rich_help_panel": panel} if panel else {}
    if field is None:
        return typer.Option(*names, help=help, **extra)
    return opt(*names, help=help, of=of, field=field or name, **extra)


def shared_flag_names() -> list[str]:
    """The parameter names of the shared flags (tests check both commands take each)."""
    return list(_FLAGS)
