"""Keypoints from an RBNet checkpoint's own heat-maps (``--backend rbnet --ckpt m.pt``).

RBNet (Yu & Piao 2024) learns 17 COCO heat-maps at half its input size; after
training it needs no pose model. Each image is resized to the checkpoint's input size (as
``reid features`` does), the maps are predicted in eval mode and decoded with
`reidcli.pose.heatmaps.heatmaps_to_keypoints` (argmax + DARK sub-pixel refinement) straight
into the original image's pixels. Scores are the maps' maxima (the targets peak at 1).

`heatmaps_for_records` is the batched loop ``reid features --save-heatmaps`` uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from reidcli.pose.backends.base import BACKENDS, PoseBackend
from reidcli.pose.heatmaps import REFINES
from reidcli.pose.options import PoseOptions
from reidcli.utils.errors import ConfigError, InputError
from reidcli.utils.params import Options, check_params

CONSTRAINTS = {"refine": [Options(REFINES)]}


def require_rbnet(model, ckpt) -> None:
    """`ConfigError` unless ``model`` is an RBNet (it alone predicts heat-maps)."""
    from reidcli.models.rbnet import is_rbnet

    if not is_rbnet(model):
        arch = getattr(getattr(model, "cfg", None), "arch", "?")
        raise ConfigError(f"{ckpt} holds a '{arch}' network, which predicts no heat-maps; give a "
                          "checkpoint trained with 'reid pretrain --arch rbnet'")


def heatmaps_for_records(model, root, records, *, size: Sequence[int], mean, std,
                         batch_size: int = 64, workers: int = 0, device="cpu",
                         half: bool = True) -> np.ndarray:
    """[N, 17, H/2, W/2] heat-maps (float16 with ``half``) of ``records`` under ``root``."""
    import torch

    from reidcli.data.loader import ImageDataset, make_loader
    from reidcli.data.transforms import Normalizer, ResizeUint8
    from reidcli.utils.progress import progress_bar

    device = torch.device(device)
    loader = make_loader(ImageDataset(root, records, ResizeUint8(*size), size=tuple(size)),
                         batch_size=batch_size, workers=workers, device=device)
    norm = Normalizer(mean, std, device)
    parts = []
    with progress_bar("heat-maps", total=len(records)) as bar:
        for batch in loader:
            hm = model.predict_heatmaps(norm(batch["img"])).float().cpu().numpy()
            parts.append(hm.astype(np.float16 if half else np.float32))
            bar.advance(len(hm))
    if not parts:
        h, w = (int(size[0]) + 1) // 2, (int(size[1]) + 1) // 2
        return np.zeros((0, 17, h, w), np.float16 if half else np.float32)
    return np.concatenate(parts)


class RBNetBackend(PoseBackend):
    """COCO-17 keypoints decoded from an RBNet checkpoint's predicted heat-maps."""

    name = "rbnet"

    def __init__(self, ckpt=None, device: str = "auto", refine: str = PoseOptions.refine,
                 blur_sigma: Optional[float] = None, **_ignored):
        import torch

        from reidcli.models import load_network
        from reidcli.utils.device import resolve_device

        if ckpt is None:
            raise InputError("the rbnet backend needs --ckpt M.pt (a checkpoint of 'reid pretrain --arch rbnet')")
        check_params({"refine": refine}, CONSTRAINTS)
        self.path = Path(ckpt)
        self.device = torch.device(resolve_device(device))
        self.net, ck = load_network(self.path, self.device)
        require_rbnet(self.net, self.path)
        self.size = tuple(int(v) for v in ck["input_size"])
        self.mean, self.std = ck["pixel_mean"], ck["pixel_std"]
        self.refine = refine
        # DARK's modulation blur should match the targets' sigma (the default 2 heat-map px)
        self.blur_sigma = 2.0 if blur_sigma is None else float(blur_sigma)
        self.model = self.path.name

    def predict(self, images: Sequence[np.ndarray], paths: Sequence[str]) -> np.ndarray:
        import torch

        from reidcli.data.transforms import Normalizer, resize_array
        from reidcli.pose.heatmaps import heatmaps_to_keypoints

        if not len(images):
            return np.zeros((0, 17, 3), np.float32)
        h, w = self.size
        batch = np.stack([resize_array(im, h, w) for im in images])
        x = Normalizer(self.mean, self.std, self.device)(torch.from_numpy(batch).permute(0, 3, 1, 2))
        heat = self.net.predict_heatmaps(x).float().cpu().numpy()
        sizes = np.array([im.shape[:2] for im in images], dtype=np.float32)
        return heatmaps_to_keypoints(heat, sizes, refine=self.refine,
                                     blur_sigma=self.blur_sigma).astype(np.float32)

    def attrs(self) -> dict:
        return {"backend": self.name, "model": self.model, "input_size": list(self.size),
                "refine": self.refine}


@BACKENDS.register("rbnet")
def build(**options) -> RBNetBackend:
    return RBNetBackend(**options)
