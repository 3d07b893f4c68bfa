"""Self-describing checkpoints (``.pt``): the only code that reads or writes them.

A reidcli checkpoint is a plain dict saved with `torch.save` and loadable with
``torch.load(..., weights_only=True)`` (tensors, numbers, strings, lists and dicts only)::

    format          "reidcli-checkpoint"
    version         CKPT_VERSION (int); readers refuse newer versions and upgrade older
                    ones on load (v1 -> v2: RBNet's ``mask_path``, 'simple' before it existed;
                    v2 -> v3: ``multilevel`` with ``embed_dim`` 0 keeps the fused dimension
                    since v3, while older ones had an FC to layer4's size: its ``embed_dim``
                    is read from the saved FC, ``reduce.weight``)
    created_by      "reidcli <version>"
    model_config    dataclasses.asdict(ModelConfig) - enough to rebuild the network
    input_size      [height, width]
    pixel_mean/std  3 floats each (RGB, 0..1 scale)
    feat_dim        size of the inference embedding
    method          the training method ("supervised", "mmt", ...)
    epoch           epochs completed; ``iteration`` optimizer steps done
    bn              {"domains": [...], "deploy": "target"} when domain-specific BN is used
    model           the network's state dict
    nets            optional extra networks (EMA "mean nets", ...) as state dicts
    provenance      list of records chained from the inputs, as in the HDF5 files
    train_state     optional: optimizer, scheduler, scaler, sampler, RNG and method state
                    plus the training config, for ``--resume``
    kind            optional: "reid" (the default, a re-ID network) or "stylize" (a camera-
                    style model of ``reid stylize fit``); readers ask for the kind they use

`reid features --ckpt m.pt` needs nothing else. Writes are atomic (tmp + rename). This
module reads and writes the dicts only; `reidcli.models.network_from_checkpoint` rebuilds
the network one describes.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Optional

from reidcli import __version__
from reidcli.io.atomic import atomic_write_bytes, file_digest, missing_message
from reidcli.utils.errors import FormatError, InputError
from reidcli.utils.params import MAX_IMAGE_SIDE

CKPT_FORMAT = "reidcli-checkpoint"
CKPT_VERSION = 3
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_REQUIRED = ("model_config", "input_size", "pixel_mean", "pixel_std", "model")


def make_checkpoint(*, model_config: dict, model_state: dict, input_size: tuple[int, int],
                    method: str, epoch: int, iteration: int = 0, feat_dim: int = 0,
                    pixel_mean=IMAGENET_MEAN, pixel_std=IMAGENET_STD,
                    provenance: Optional[list] = None, nets: Optional[dict] = None,
                    bn: Optional[dict] = None, train_state: Optional[dict] = None,
                    extra: Optional[dict] = None) -> dict[str, Any]:
    """Assemble the checkpoint dict (see the module docstring for the fields)."""
    ck: dict[str, Any] = {
        "format": CKPT_FORMAT, "version": CKPT_VERSION, "created_by": f"reidcli {__version__}",
        "model_config": dict(model_config), "input_size": [int(input_size[0]), int(input_size[1])],
        "pixel_mean": [float(v) for v in pixel_mean], "pixel_std": [float(v) for v in pixel_std],
        "feat_dim": int(feat_dim), "method": method, "epoch": int(epoch), "iteration": int(iteration),
        "bn": dict(bn or {}), "model": model_state, "nets": dict(nets or {}),
        "provenance": list(provenance or []),
    }
    if train_state is not None:
        ck["train_state"] = train_state
    if extra:
        ck.update(extra)
    return ck


def checkpoint_bytes(ckpt: dict[str, Any], path: str | os.PathLike = "checkpoint") -> bytes:
    """Validate the header and serialize ``ckpt`` (the bytes `save_checkpoint` writes)."""
    import torch

    _check_header(ckpt, Path(path))
    buf = io.BytesIO()  # built in memory: a failed write is one OSError (reidcli.io.atomic)
    torch.save(ckpt, buf)
    return buf.getvalue()


def save_checkpoint(path: str | os.PathLike, ckpt: dict[str, Any]) -> Path:
    """Validate the header and write ``ckpt`` atomically to ``path``."""
    return atomic_write_bytes(path, checkpoint_bytes(ckpt, path))


KIND_MAKERS = {"reid": "'reid pretrain' or 'reid finetune'", "stylize": "'reid stylize fit'"}
KIND_NAMES = {"reid": "re-ID model", "stylize": "camera-style model"}


def checkpoint_kind(ck: dict) -> str:
    """``"reid"`` (a re-ID network) or another kind such as ``"stylize"``."""
    return str(ck.get("kind", "reid"))


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu",
                    kind: Optional[str] = "reid") -> dict[str, Any]:
    """Load and validate a reidcli checkpoint (``weights_only=True``) of ``kind`` (None: any).

    Raises:
        InputError: the file is missing or a folder.
        FormatError: not a PyTorch file, a foreign checkpoint (e.g. a bare state dict),
            unsafe pickled objects, a newer checkpoint version, or another kind.
    """
    import torch

    p = Path(path)
    if not p.exists():
        raise InputError(missing_message(p, "check the --ckpt path"))
    if p.is_dir():
        raise InputError(f"{p} is a folder, not a checkpoint file")
    _check_magic(p, kind)
    try:
        ck = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise FormatError(f"{p} holds Python objects that cannot be loaded safely (weights_only); "
                          f"it is not a reidcli checkpoint: {str(exc).splitlines()[0][:120]}") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise FormatError(f"{p} is not a PyTorch checkpoint ({type(exc).__name__}); "
                          f"give a .pt file written by {KIND_MAKERS.get(kind or 'reid', 'reidcli')}") from exc
    _check_header(ck, p, kind)
    have = checkpoint_kind(ck)
    if kind is not None and have != kind:
        raise FormatError(f"{p} is a {KIND_NAMES.get(have, have)} (written by {KIND_MAKERS.get(have, 'reidcli')}), "
                          f"not a {KIND_NAMES.get(kind, kind)}; give a .pt file written by {KIND_MAKERS.get(kind, 'reidcli')}")
    if have == "reid":
        _check_finite(ck["model"], p)
    if have == "reid" and ck["version"] < 2:
        ck["model_config"] = _upgrade_v1_model_config(ck["model_config"])
    if have == "reid" and ck["version"] < 3:
        ck["model_config"] = _upgrade_v2_model_config(ck["model_config"], ck["model"])
    return ck


def _upgrade_v1_model_config(model_config: dict) -> dict:
    """A version-1 model config in version-2 terms: RBNets written before the ``mask_path``
    option existed were built on its 'simple' path (`reidcli.models.rbnet`)."""
    rb = model_config.get("rbnet") or {}
    if model_config.get("arch") != "rbnet" or "mask_path" in rb:
        return model_config
    return {**model_config, "rbnet": {**rb, "mask_path": "simple"}}


def _upgrade_v2_model_config(model_config: dict, state: dict) -> dict:
    """A version-2 model config in version-3 terms. Up to version 2, ``multilevel`` with
    ``embed_dim`` 0 put an FC from the fused layer1+3+4 feature to layer4's size; since
    version 3, ``embed_dim`` 0 keeps the fused size. The old FC is in the weights
    (``reduce.weight``, [out, in]), so its size becomes the explicit ``embed_dim``."""
    fc = state.get("reduce.weight")
    if not model_config.get("multilevel") or model_config.get("embed_dim") or fc is None:
        return model_config
    return {**model_config, "embed_dim": int(fc.shape[0])}


def _not_wanted(p: Path, what: str, kind: Optional[str]) -> str:
    """``p is <what>, not a <kind>; give a .pt file written by <its maker>``."""
    kind = kind or "reid"
    noun = "reidcli checkpoint" if kind == "reid" else KIND_NAMES.get(kind, kind)
    return f"{p} is {what}, not a {noun}; give a .pt file written by {KIND_MAKERS.get(kind, 'reidcli')}"


def _check_magic(p: Path, wanted: Optional[str] = "reid") -> None:
    with open(p, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch zip / legacy pickle
        return
    what = "an HDF5 file (features, labels or pose?)" if head.startswith(b"\x89HDF") else (
        "an empty file" if not head else "not a PyTorch file")
    raise FormatError(_not_wanted(p, what, wanted))


def _check_header(ck: Any, p: Path, wanted: Optional[str] = "reid") -> None:
    if not isinstance(ck, dict) or ck.get("format") != CKPT_FORMAT:
        kind = _guess_foreign(ck)
        if wanted not in (None, "reid"):
            raise FormatError(_not_wanted(p, kind, wanted))
        raise FormatError(f"{p} is {kind}, not a reidcli checkpoint; make one with 'reid pretrain', "
                          "or pass a bare backbone state dict to --pretrained PATH")
    ver = ck.get("version")
    if not isinstance(ver, int) or ver > CKPT_VERSION:
        raise FormatError(f"{p} is reidcli checkpoint version {ver} but this reidcli {__version__} "
                          f"reads version <= {CKPT_VERSION}; upgrade reidcli")
    missing = [k for k in _REQUIRED if k not in ck]
    if missing:
        raise FormatError(f"{p} is a reidcli checkpoint without '{missing[0]}'; the file is "
                          "invalid, re-create it")
    for key, (ok, what) in _FIELDS.items():
        if key in ck and not (ck[key] is None and key in _MAY_BE_NONE) and not ok(ck[key]):
            raise FormatError(f"{p}: the checkpoint's '{key}' is not {what}; the file is invalid, re-create it")


def _check_finite(state: dict, p: Path) -> None:
    """The deployed network's floating-point weights hold no NaN/Inf (a diverged or damaged run
    would otherwise surface later as NaN features or a NaN loss, blamed on other files)."""
    import torch

    for name, t in state.items():
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            raise FormatError(f"{p}: the checkpoint's weights hold NaN/Inf (first in '{name}'); the run that wrote "
                              "it diverged or the file is damaged: retrain it or use an earlier checkpoint")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _numbers(n: int, positive: bool = False):
    """``n`` finite numbers (each > 0 with ``positive``: a pixel std divides)."""
    return lambda v: isinstance(v, (list, tuple)) and len(v) == n and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and (x > 0 or not positive)
        for x in v)


def _tensors(v: Any) -> bool:
    import torch

    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items())


# field -> (check, what it must be): the types the readers and `describe_checkpoint` rely on
_FIELDS = {
    "model_config": (lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v), "a dict of settings"),
    "input_size": (lambda v: isinstance(v, (list, tuple)) and len(v) == 2
                   and all(_is_int(x) and 0 < x <= MAX_IMAGE_SIDE for x in v),
                   f"[height, width] (2 ints in [1, {MAX_IMAGE_SIDE}])"),
    "pixel_mean": (_numbers(3), "3 finite numbers"),
    "pixel_std": (_numbers(3, positive=True), "3 finite numbers > 0"),
    "model": (_tensors, "a state dict (names -> tensors)"),
    "nets": (lambda v: isinstance(v, dict) and all(_tensors(x) for x in v.values()), "a dict of state dicts"),
    "feat_dim": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
    "epoch": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
    "iteration": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
    "method": (lambda v: isinstance(v, str), "a name"),
    "kind": (lambda v: isinstance(v, str), "a name"),
    "bn": (lambda v: isinstance(v, dict) and isinstance(v.get("domains", []), list), "a dict"),
    "provenance": (lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v), "a list of records"),
    "train_state": (lambda v: isinstance(v, dict), "a dict"),
}
_MAY_BE_NONE = ("train_state",)


def _guess_foreign(obj: Any) -> str:
    if isinstance(obj, dict):
        if obj and all(hasattr(v, "shape") for v in obj.values()):
            return "a bare state dict"
        for key in ("state_dict", "model", "net"):
            if key in obj:
                return f"a checkpoint of another tool (top-level key '{key}')"
        return "a PyTorch file of another format"
    return f"a PyTorch file holding a {type(obj).__name__}"


def read_ckpt_provenance(path: str | os.PathLike) -> list[dict]:
    """The provenance records stored in a checkpoint (used by `reidcli.io.h5`)."""
    return list(load_checkpoint(path, kind=None).get("provenance", []))


# names under which a method's deployed ``model`` is also known (``--net``)
NET_ALIASES = {"mmt": {"mean1": "model"}}


def pick_net_state(ck: dict, net: Optional[str], path: Any) -> dict:
    """The state dict of network ``net``: ``model`` (the deployed one, the default) or one
    of the checkpoint's extra ``nets`` (MMT: mean2, net1, net2; KD: intermediate)."""
    if net is None or net == "model":
        return ck["model"]
    name = NET_ALIASES.get(ck.get("method"), {}).get(net, net)
    if name == "model":
        return ck["model"]
    nets = ck.get("nets") or {}
    if name not in nets:
        have = ["model", *NET_ALIASES.get(ck.get("method"), {}), *sorted(nets)]
        raise InputError(f"{path} has no network '{net}' (it has: {', '.join(have)}); pick one with --net")
    return nets[name]


def describe_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON-able summary for ``reid info m.pt`` (format "checkpoint")."""
    p = Path(path)
    ck = load_checkpoint(p, kind=None)
    if checkpoint_kind(ck) != "reid":
        return {"file": str(p), "valid": True, "format": "checkpoint", "kind": checkpoint_kind(ck),
                "version": ck["version"], "size_bytes": p.stat().st_size, "digest": file_digest(p),
                "created_by": ck.get("created_by"), "method": ck.get("method"), "epoch": ck.get("epoch"),
                "iteration": ck.get("iteration"), "input_size": ck["input_size"],
                "model_config": ck["model_config"], "nets": sorted(ck.get("nets", {})),
                "resumable": bool(ck.get("train_state")), "provenance": ck.get("provenance", [])}
    n_params = sum(int(v.numel()) for v in ck["model"].values() if hasattr(v, "numel"))
    ts = ck.get("train_state") or {}
    cfg = ck["model_config"]
    return {
        "file": str(p), "valid": True, "format": "checkpoint", "version": ck["version"],
        "size_bytes": p.stat().st_size, "digest": file_digest(p), "created_by": ck.get("created_by"),
        "arch": cfg.get("arch"), "method": ck.get("method"), "epoch": ck.get("epoch"),
        "iteration": ck.get("iteration"), "input_size": ck["input_size"], "feat_dim": ck.get("feat_dim"),
        "num_classes": cfg.get("num_classes"), "parameters": n_params,
        "pixel_mean": ck["pixel_mean"], "pixel_std": ck["pixel_std"],
        "nets": sorted(ck.get("nets", {})), "bn_domains": (ck.get("bn") or {}).get("domains", []),
        "resumable": bool(ts), "model_config": cfg, "provenance": ck.get("provenance", []),
    }
