"""Top-down pose models exported to ONNX (mmpose HRNet-w32/w48, SimpleBaseline, RTMPose).

The whole re-ID crop is the person box: it is widened to the model's aspect ratio, padded
by ``box_padding`` (mmpose's 1.25 for detector boxes), warped to the input size, normalised
with ``mean``/``std`` (RGB, 0-255 scale), and the outputs are decoded:
- heat-maps [N, 17, h, w] (Sun et al. 2019, "Deep High-Resolution Representation Learning
  for Human Pose Estimation"): argmax plus DARK or quarter-offset refinement
  (`reidcli.pose.heatmaps`);
- SimCC [N, 17, W*k] and [N, 17, H*k] (Li et al. 2022, "SimCC: a Simple Coordinate
  Classification Perspective for Human Pose Estimation"; RTMPose): 1-D argmax divided by
  the split ratio k, score = the smaller of the two maxima.
Everything is mapped back to the crop's own pixels.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from reidcli.pose.backends.base import BACKENDS, Placement, PoseBackend
from reidcli.pose.heatmaps import REFINES, decode_heatmaps, scale_coords
from reidcli.pose.options import PoseOptions
from reidcli.utils.errors import ConfigError, FormatError, InputError
from reidcli.utils.params import Interval, Options, Satisfies, check_params

IMAGENET_MEAN = PoseOptions.mean
IMAGENET_STD = PoseOptions.std
DEFAULT_INPUT = (256, 192)
CONSTRAINTS = {
    "refine": [Options(REFINES)],
    "mean": [Satisfies(lambda v: len(v) == 3 and all(math.isfinite(float(x)) for x in v),
                       "three numbers (R, G, B)")],
    "std": [Satisfies(lambda v: len(v) == 3 and min(float(x) for x in v) > 0,
                      "three positive numbers (R, G, B)")],
    "box_padding": [Interval(float, 1, None)],
}
EXPECTED = ("17 COCO heat-maps [N, 17, H, W] (an mmpose top-down export) "
            "or SimCC [N, 17, W*k] + [N, 17, H*k] (RTMPose)")


def _dim(d) -> Optional[int]:
    return d if isinstance(d, int) and d > 0 else None


CUDA_PROVIDER = "CUDAExecutionProvider"


def providers_for(device: str, available: Sequence[str]) -> list:
    """onnxruntime execution providers for ``--device``: ``cpu`` the CPU's alone, ``auto``
    every one installed (onnxruntime's order: a GPU first when there is one), ``cuda`` /
    ``cuda:N`` the CUDA provider on GPU N (then the CPU for the operators CUDA lacks); a
    `ConfigError` when this onnxruntime has no CUDA provider (the CPU-only wheel)."""
    from reidcli.utils.device import check_device, cuda_index

    if check_device(device) == "cpu":
        return ["CPUExecutionProvider"]
    if device == "auto":
        return list(available)
    if CUDA_PROVIDER not in available:
        raise ConfigError(f"--device {device}: the installed onnxruntime has no CUDA provider (it has "
                          f"{', '.join(available) or 'none'}); pip install onnxruntime-gpu, or use --device cpu")
    return [(CUDA_PROVIDER, {"device_id": cuda_index(device)}), "CPUExecutionProvider"]


def _session(model: Path, device: str = "auto"):
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ConfigError(f"the onnx backend needs onnxruntime ({exc}); pip install onnxruntime")
    providers = providers_for(device, ort.get_available_providers())
    if not model.is_file():
        raise InputError(f"{model}: no such model file; give --model FILE.onnx")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(model), sess_options=opts, providers=providers)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FormatError(f"{model} is not a loadable ONNX model ({first}); export it with "
                          "mmpose's tools/deployment or torch.onnx.export")
    if device.startswith("cuda") and CUDA_PROVIDER not in sess.get_providers():  # it fell back to the CPU
        raise ConfigError(f"--device {device}: onnxruntime could not start its CUDA provider (the CUDA / cuDNN "
                          "libraries it needs did not load, or there is no such GPU); fix the CUDA install "
                          "or use --device cpu")
    return sess


class OnnxBackend(PoseBackend):
    name = "onnx"

    def __init__(self, model=None, input_size: Optional[Sequence[int]] = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 box_padding: float = PoseOptions.box_padding, refine: str = PoseOptions.refine, blur_sigma: float = 2.0,
                 device: str = "auto", **_ignored):
        """``mean``/``std``: RGB on the 0-255 scale; None is ImageNet's. ``device``: see
        `providers_for`."""
        if model is None:
            raise ConfigError("the onnx backend needs --model FILE.onnx (a top-down pose model, "
                              "e.g. HRNet-w32 exported from mmpose)")
        mean = IMAGENET_MEAN if mean is None else mean
        std = IMAGENET_STD if std is None else std
        check_params({"refine": refine, "mean": mean, "std": std, "box_padding": box_padding}, CONSTRAINTS)
        self.path = Path(model)
        self.model = self.path.name
        self.sess = _session(self.path, device)
        self.mean = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
        self.box_padding, self.refine, self.blur_sigma = float(box_padding), refine, float(blur_sigma)
        self._setup_input(input_size)
        self.kind, self.out_shapes = self._probe()

    def _setup_input(self, input_size) -> None:
        inputs = self.sess.get_inputs()
        shape = list(inputs[0].shape) if len(inputs) == 1 else []
        if len(shape) != 4 or (_dim(shape[1]) not in (None, 3)):
            raise FormatError(f"{self.path} takes inputs {[list(i.shape) for i in inputs]}; "
                              "expected one image tensor [N, 3, H, W]")
        self.input_name = inputs[0].name
        fixed = (_dim(shape[2]), _dim(shape[3]))
        if input_size is not None:
            want = (int(input_size[0]), int(input_size[1]))
            if all(fixed) and fixed != want:
                raise ConfigError(f"{self.path} has a fixed input of {fixed[0]}x{fixed[1]} (HxW) but "
                                  f"--input-size is {want[0]}x{want[1]}; drop the flag or match it")
            self.input_size = want
        else:
            self.input_size = fixed if all(fixed) else DEFAULT_INPUT
        self.batch_fixed = _dim(shape[0])

    def _probe(self) -> tuple[str, list[tuple[int, ...]]]:
        """Run one blank image to learn the real output shapes; refuse what we cannot decode."""
        H, W = self.input_size
        try:
            outs = self.sess.run(None, {self.input_name: np.zeros((self.batch_fixed or 1, 3, H, W), np.float32)})
        except Exception as exc:
            first = str(exc).strip().splitlines()[0]
            raise FormatError(f"{self.path} fails on a {H}x{W} input ({first}); set --input-size to "
                              "the size it was exported with")
        shapes = [tuple(o.shape) for o in outs]
        if len(outs) >= 1 and len(shapes[0]) == 4 and shapes[0][1] == 17:
            return "heatmap", shapes
        if len(outs) == 2 and all(len(s) == 3 and s[1] == 17 for s in shapes):
            return "simcc", shapes
        raise FormatError(f"{self.path} outputs {', '.join(str(list(s)) for s in shapes)}; expected {EXPECTED}")

    def attrs(self) -> dict:
        return {**super().attrs(), "output": self.kind, "input_size": list(self.input_size),
                "mean": self.mean.ravel().tolist(), "std": self.std.ravel().tolist(),
                "box_padding": self.box_padding, "refine": self.refine}

    def _placement(self, h: int, w: int) -> Placement:
        H, W = self.input_size
        bw, bh = float(w), float(h)
        if bw / bh > W / H:  # widen the shorter side to the model's aspect ratio (mmpose)
            bh = bw * H / W
        else:
            bw = bh * W / H
        s = W / (bw * self.box_padding)
        return Placement(scale=s, ox=W / 2 - s * w / 2, oy=H / 2 - s * h / 2)

    def _prepare(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Placement]]:
        import cv2

        H, W = self.input_size
        batch, places = np.empty((len(images), 3, H, W), np.float32), []
        for i, img in enumerate(images):
            p = self._placement(*img.shape[:2])
            M = np.array([[p.scale, 0, p.ox], [0, p.scale, p.oy]], np.float32)
            batch[i] = cv2.warpAffine(img, M, (W, H), flags=cv2.INTER_LINEAR).transpose(2, 0, 1)
            places.append(p)
        return (batch - self.mean) / self.std, places

    def _decode(self, outs: list[np.ndarray]) -> np.ndarray:
        """Model outputs -> [B, 17, 3] in input pixels."""
        if self.kind == "heatmap":
            hm = outs[0]
            coords, scores = decode_heatmaps(hm, refine=self.refine, blur_sigma=self.blur_sigma)
            coords = scale_coords(coords, hm.shape[-2:], self.input_size)
        else:
            sx, sy = outs
            kx, ky = sx.shape[-1] / self.input_size[1], sy.shape[-1] / self.input_size[0]
            coords = np.stack([sx.argmax(-1) / kx, sy.argmax(-1) / ky], axis=-1).astype(np.float32)
            scores = np.minimum(sx.max(-1), sy.max(-1))
        return np.concatenate([coords, np.clip(scores, 0, 1)[..., None]], axis=-1).astype(np.float32)

    def predict(self, images: Sequence[np.ndarray], paths: Sequence[str]) -> np.ndarray:
        if not len(images):
            return np.zeros((0, 17, 3), np.float32)
        x, places = self._prepare(images)
        step = self.batch_fixed or len(images)
        if len(x) % step:  # a fixed batch dimension: pad the last batch with blank images
            x = np.concatenate([x, np.zeros((step - len(x) % step, *x.shape[1:]), np.float32)])
        parts = []
        for i in range(0, len(x), step):
            outs = self.sess.run(None, {self.input_name: x[i:i + step]})
            parts.append(self._decode(outs[:1] if self.kind == "heatmap" else outs))
        kp = np.concatenate(parts)[:len(images)]
        for i, p in enumerate(places):
            kp[i, :, :2] = p.to_image(kp[i, :, :2])
        return kp


@BACKENDS.register("onnx")
def build(**options) -> OnnxBackend:
    return OnnxBackend(**options)
