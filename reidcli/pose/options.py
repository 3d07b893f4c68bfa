"""The defaults of the pose backends' options, in one place: the backends' signatures and
`reid extract-pose`'s help read them from `PoseOptions`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PoseOptions:
    """Attributes:
        mean, std: onnx: the model's RGB normalisation on the 0-255 scale (ImageNet's, as
            mmpose's top-down models).
        box_padding: onnx: the person box enlarged by this factor around the crop (mmpose's
            1.25).
        refine: onnx and rbnet heat-maps: sub-pixel refinement of the peak, dark (Zhang et
            al. 2020, DARK) | quarter (a quarter pixel toward the higher neighbour) | none.
        min_confidence: mediapipe: the person detection threshold.
    """

    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    box_padding: float = 1.25
    refine: str = "dark"
    min_confidence: float = 0.5
