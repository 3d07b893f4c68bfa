"""Library entry of ``reid export``: the deployed network of a checkpoint as ONNX or
TorchScript, or a slim checkpoint (weights without the training state).

The exported graph is what ``reid features`` computes after decoding: its input
``images`` is float32 [B, 3, H, W], RGB, 0-255, already resized to the checkpoint's
``input_size`` with `reidcli.data.transforms.resize_uint8` (bilinear with antialiasing,
torchvision's ``resize(antialias=True)``, as PIL's BILINEAR); it subtracts the checkpoint's pixel
mean, divides by its std, runs the network (plus the mirrored image with ``flip``) and
L2-normalises (unless ``normalize`` is False). Its output ``features`` is float32 [B, D].
The settings travel in the file: ONNX metadata properties, and ``reidcli.json`` in a
TorchScript archive's extra files.

>>> export("m.pt", "m.onnx")                                # doctest: +SKIP
>>> export("m.pt", "m-slim.pt", slim=True)                  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from reidcli.utils.errors import ConfigError, InputError, ReidError
from reidcli.utils.params import reject_given

log = logging.getLogger(__name__)

FORMATS = {".onnx": "onnx", ".ts": "torchscript", ".torchscript": "torchscript"}
OPSET = 17
TS_META = "reidcli.json"


@dataclass
class ExportReport:
    """What `export` wrote. ``max_abs_diff``: the largest difference between the exported
    file (run by onnxruntime / TorchScript) and the PyTorch network on a seeded random
    batch; None when not checked (ONNX without onnxruntime installed, or a slim checkpoint)."""

    output: Path
    format: str
    size_bytes: int
    meta: dict = field(default_factory=dict)
    max_abs_diff: Optional[float] = None
    checked_with: Optional[str] = None

    def as_dict(self) -> dict:
        out = asdict(self)
        out["output"] = str(self.output)
        return out

    def summary(self) -> str:
        check = (f"; equals PyTorch within {self.max_abs_diff:.2g} ({self.checked_with})"
                 if self.max_abs_diff is not None else "")
        return f"wrote {self.output} ({self.format}, {self.size_bytes / 1e6:.1f} MB{check})"


def deployed_module(model, mean, std, *, flip: bool = False, normalize: bool = True):
    """``model`` wrapped as the exported graph: 0-255 RGB images in, features out."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Deployed(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
            self.register_buffer("scale", 1.0 / (torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0))

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            x = (images - self.mean) * self.scale
            f = self.model(x)
            if flip:  # as reid features --flip: the sum with the mirrored image's embedding
                f = f + self.model(torch.flip(x, dims=[3]))
            if normalize:
                f = F.normalize(f.float(), dim=1)
            return f.float()

    return Deployed().eval()


def export(ckpt: str | os.PathLike, out: str | os.PathLike, *, slim: bool = False, flip: bool = False,
           normalize: bool = True, net: Optional[str] = None, bn_domain: Optional[str] = None,
           opset: Optional[int] = None, check: bool = True) -> ExportReport:
    """Write the deployed network of ``ckpt`` to ``out``.

    Args:
        ckpt: a reidcli checkpoint.
        out: ``.onnx`` (ONNX, opset ``opset``, dynamic batch) or ``.ts`` (TorchScript); with
            ``slim``, a checkpoint of any name without ``train_state`` (no optimizer,
            scheduler or sampler state: it deploys and starts a fine-tuning round, it cannot
            ``--resume``).
        flip, normalize: as ``reid features --flip`` / ``--no-normalize``.
        net, bn_domain: which network and BN statistics, as ``reid features``.
        opset: the ONNX opset (None: `OPSET`); ONNX only.
        check: run the written file on a seeded random batch and report the largest
            difference from PyTorch (`ExportReport.max_abs_diff`).
    """
    from reidcli.io.ckpt import load_checkpoint

    ckpt, out = Path(ckpt), Path(out)
    fmt = "slim" if slim else FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ConfigError(f"-o {out}: the file name says what to write: .onnx (ONNX) or .ts (TorchScript); "
                          "or pass --slim for a checkpoint without training state")
    if fmt == "slim" and (net is not None or bn_domain is not None or flip or not normalize):
        raise ConfigError("--slim copies the checkpoint's weights as they are; --net, --bn-domain, --flip and "
                          "--no-normalize apply to .onnx / .ts exports only")
    reject_given({"opset": opset}, ["opset"], applies=fmt == "onnx",
                 what=f"to {'--slim' if fmt == 'slim' else 'a TorchScript export (-o NAME.ts)'}; it is the ONNX "
                      "opset (-o NAME.onnx)")
    opset = OPSET if opset is None else opset
    ck = load_checkpoint(ckpt)
    if fmt == "slim":
        return _slim(ck, ckpt, out)
    import torch

    from reidcli.models.checkpoint import network_from_checkpoint
    from reidcli.models.mrda import is_modal

    model = network_from_checkpoint(ck, net=net, bn_domain=bn_domain, source=ckpt).eval()
    if is_modal(model):
        raise InputError(f"{ckpt}: a two-stream cross-modality network (arch {ck['model_config'].get('arch')}) "
                         "routes images by modality; export supports single-stream networks only")
    from reidcli.io.atomic import atomic_write_bytes, file_digest

    h, w = (int(v) for v in ck["input_size"])
    meta = {"format": "reidcli-export", "checkpoint": file_digest(ckpt), "checkpoint_path": str(ckpt),
            "arch": ck["model_config"].get("arch"), "method": ck.get("method"), "input_size": [h, w],
            "input": "images: float32 [B, 3, H, W], RGB, 0-255, resized to input_size "
                     "(bilinear with antialiasing: torchvision resize(antialias=True), PIL BILINEAR)",
            "output": "features: float32 [B, D]", "feat_dim": int(ck.get("feat_dim") or 0),
            "pixel_mean": list(ck["pixel_mean"]), "pixel_std": list(ck["pixel_std"]),
            "flip": bool(flip), "normalized": bool(normalize), "net": net or "model"}
    wrapped = deployed_module(model, ck["pixel_mean"], ck["pixel_std"], flip=flip, normalize=normalize)
    example = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0)) * 255.0
    with torch.inference_mode():
        want = wrapped(example).numpy()
    meta["feat_dim"] = int(want.shape[1])
    writer = _onnx if fmt == "onnx" else _torchscript
    data = writer(wrapped, example, meta, opset)  # in memory: a failure writes nothing
    report = ExportReport(out, fmt, len(data), meta)
    if check:
        got = _run(fmt, data, example.numpy())
        if got is not None:
            report.max_abs_diff, report.checked_with = float(np.abs(got - want).max()), got_with(fmt)
            if not np.isfinite(report.max_abs_diff):  # never "equals PyTorch within nan"
                raise InputError(f"{ckpt}: the network's output on a random batch is not finite (NaN/Inf "
                                 f"through {fmt} or PyTorch); nothing was written; check the checkpoint's weights")
    atomic_write_bytes(out, data)
    return report


def got_with(fmt: str) -> str:
    return "onnxruntime" if fmt == "onnx" else "torch.jit.load"


def _slim(ck: dict, ckpt: Path, out: Path) -> ExportReport:
    from reidcli.io.atomic import atomic_write_bytes
    from reidcli.io.ckpt import checkpoint_bytes
    from reidcli.io.h5 import make_provenance

    slim = {k: v for k, v in ck.items() if k != "train_state"}
    slim["provenance"] = make_provenance([ckpt], params={"slim": True})
    data = checkpoint_bytes(slim, out)
    atomic_write_bytes(out, data)
    meta = {"checkpoint_path": str(ckpt), "dropped": ["train_state"] if "train_state" in ck else []}
    return ExportReport(out, "slim checkpoint", len(data), meta)


def _failed(what: str, meta: dict, exc: BaseException, fix: str) -> ReidError:
    """One line for an exporter's failure (its message's first non-empty line)."""
    line = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    why = f"{type(exc).__name__}: {line}" if line else type(exc).__name__
    return ReidError(f"{what} export of arch {meta['arch']} failed ({why}); nothing was written; {fix}")


def _onnx(wrapped, example, meta: dict, opset: int) -> bytes:
    """The ONNX file's bytes (built in memory, `meta` as metadata properties)."""
    import io

    import torch

    try:
        import onnx
    except ImportError as exc:
        raise ConfigError(f"ONNX export needs the onnx package ({exc}); pip install onnx") from None
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(wrapped, (example,), buf, input_names=["images"], output_names=["features"],
                              dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
                              opset_version=opset, dynamo=False)
            proto = onnx.load_model_from_string(buf.getvalue())
            for key, value in meta.items():
                entry = proto.metadata_props.add()
                entry.key, entry.value = key, json.dumps(value)
            return proto.SerializeToString()
        except ReidError:
            raise
        except Exception as exc:  # e.g. an operator without an ONNX mapping at this opset
            raise _failed("ONNX", meta, exc, f"try another --opset (now {opset}) or -o NAME.ts "
                          "for TorchScript") from exc


def _torchscript(wrapped, example, meta: dict, opset: int) -> bytes:
    """The TorchScript archive's bytes (built in memory, `meta` as ``reidcli.json``)."""
    import io

    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.inference_mode(False), torch.no_grad():
                traced = torch.jit.trace(wrapped, example, check_trace=False)
            torch.jit.save(traced, buf, _extra_files={TS_META: json.dumps(meta)})
        except ReidError:
            raise
        except Exception as exc:
            raise _failed("TorchScript", meta, exc, "try -o NAME.onnx for ONNX") from exc
    return buf.getvalue()


def _run(fmt: str, data: bytes, images: np.ndarray) -> Optional[np.ndarray]:
    """The exported file's output on ``images``, run from its bytes (None: no runtime here)."""
    import io

    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            log.info("onnxruntime is not installed: the ONNX file was not run")
            return None
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        return sess.run(["features"], {"images": images.astype(np.float32)})[0]
    return load_torchscript(io.BytesIO(data))[0](_tensor(images)).detach().numpy()


def _tensor(x: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def load_torchscript(path) -> tuple[Any, dict]:
    """A TorchScript export (a path or a binary file object) and its settings (``reidcli.json``)."""
    import torch

    extra = {TS_META: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
        module = torch.jit.load(path if hasattr(path, "read") else str(path), map_location="cpu",
                                _extra_files=extra)
    return module.eval(), json.loads(extra[TS_META] or "{}")
