"""BlazePose from the mediapipe==0.10.21 wheel (offline: the wheel ships its .tflite models).

Bazarevsky et al. 2020, "BlazePose: On-device Real-time Body Pose tracking": a person
detector, then a 33-landmark regressor; we keep the 17 COCO joints (`coco.BLAZEPOSE_TO_COCO`)
with the landmark visibility as score. Only ``model_complexity=1`` ("full") is in the wheel;
the lite and heavy models would be downloaded at run time, which we never do.

Re-ID crops are small and tight (128x64), while the detector expects context around the
person: each crop is upscaled to at least ``min_side`` pixels and framed with a ``margin``,
and the landmarks are mapped back to the crop's own pixels.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np

from reidcli.pose.backends.base import BACKENDS, PoseBackend, letterbox, zeros
from reidcli.pose.coco import blazepose_to_coco
from reidcli.pose.options import PoseOptions
from reidcli.utils.errors import ConfigError
from reidcli.utils.params import Interval, check_params

log = logging.getLogger(__name__)
WHEEL = "mediapipe==0.10.21"
CONSTRAINTS = {"min_confidence": [Interval(float, 0, 1)],
               "margin": [Interval(float, 0, 0.5, closed="left")]}
FIX = "run 'bin/install-mediapipe .venv/bin/pip' (or 'make install'), or use --backend onnx --model FILE"


@contextmanager
def _native_stderr_to_log() -> Iterator[None]:
    """Route fd 2 to a temp file while mediapipe's C++ code logs (TFLite/absl banners and a
    harmless protobuf-6 'GetPrototype' line), then pass it to the debug log."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):  # captured stderr (tests): nothing to redirect
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace").strip()
            if text:
                log.debug("mediapipe native log:\n%s", text)


def import_pose_solution():
    """``mediapipe.python.solutions.pose``, or a one-line ConfigError saying how to fix it."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        from google.protobuf import __version__ as pb_version
    except ImportError:
        pb_version = "0"
    if int(pb_version.split(".")[0]) >= 7:
        raise ConfigError(f"the mediapipe backend needs protobuf 6.x (mediapipe 0.10.21 uses an API "
                          f"protobuf 7 removed; found protobuf {pb_version}); {FIX}")
    try:
        with _native_stderr_to_log():
            from mediapipe.python.solutions import pose
    except ImportError as exc:
        raise ConfigError(f"the mediapipe backend needs {WHEEL}, which is not importable ({exc}); {FIX}")
    return pose


class MediapipeBackend(PoseBackend):
    name = "mediapipe"
    model = "blazepose-full (mediapipe 0.10.21, pose_landmark_full.tflite)"

    def __init__(self, min_confidence: float = PoseOptions.min_confidence, min_side: int = 256, margin: float = 0.15,
                 **_ignored):
        check_params({"min_confidence": min_confidence, "margin": margin}, CONSTRAINTS)
        pose = import_pose_solution()
        self.min_confidence, self.min_side, self.margin = min_confidence, int(min_side), margin
        try:
            with _native_stderr_to_log(), warnings.catch_warnings():
                # protobuf 6 deprecates FieldDescriptor.label, which mediapipe calls here
                warnings.simplefilter("ignore", DeprecationWarning)
                self._pose = pose.Pose(static_image_mode=True, model_complexity=1,
                                       enable_segmentation=False,
                                       min_detection_confidence=min_confidence)
                # The graph opens its TFLite delegates asynchronously; one blank frame waits
                # for that, so their banners land in the log rather than on the terminal.
                self._pose.process(np.zeros((64, 64, 3), np.uint8))
        except Exception as exc:  # a broken install shows up here, not at import
            raise ConfigError(f"{WHEEL} is installed but its pose graph does not start "
                              f"({type(exc).__name__}: {exc}); {FIX}")

    def attrs(self) -> dict:
        return {**super().attrs(), "min_confidence": self.min_confidence,
                "min_side": self.min_side, "margin": self.margin}

    def _frame(self, img: np.ndarray):
        h, w = img.shape[:2]
        s = max(1.0, self.min_side / max(h, w))
        grow = s / (1 - 2 * self.margin)
        return letterbox(img, (round(h * grow), round(w * grow)), margin=self.margin)

    def predict_one(self, img: np.ndarray) -> np.ndarray:
        canvas, place = self._frame(img)
        result = self._pose.process(np.ascontiguousarray(canvas))
        if result.pose_landmarks is None:
            return zeros(1)[0]
        H, W = canvas.shape[:2]
        lm = np.array([(p.x * W, p.y * H, p.visibility) for p in result.pose_landmarks.landmark],
                      dtype=np.float32)
        kp = blazepose_to_coco(lm)
        kp[:, :2] = place.to_image(kp[:, :2])
        kp[:, 2] = np.clip(kp[:, 2], 0.0, 1.0)
        return kp

    def predict(self, images: Sequence[np.ndarray], paths: Sequence[str]) -> np.ndarray:
        out = zeros(len(images))
        with _native_stderr_to_log():
            for i, img in enumerate(images):
                out[i] = self.predict_one(img)
        return out

    def close(self) -> None:
        pose = getattr(self, "_pose", None)
        if pose is not None:
            pose.close()
            self._pose = None


@BACKENDS.register("mediapipe")
def build(**options) -> MediapipeBackend:
    return MediapipeBackend(**options)


def available() -> tuple[bool, str]:
    """(True, "") when the backend can start, else (False, the reason) - for tests and help."""
    try:
        MediapipeBackend().close()
        return True, ""
    except ConfigError as exc:
        return False, str(exc)
