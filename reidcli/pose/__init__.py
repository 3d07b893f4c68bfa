"""reidcli.pose: COCO-17 keypoints per image (backends, heat-maps, PCK, previews).

Library entry points: `extract_pose` (a dataset -> pose.h5, with PCK against a ground truth
and a preview grid: everything ``reid extract-pose`` does), `render_heatmaps` /
`decode_heatmaps` / `heatmaps_to_keypoints` (shared with RBNet), `pck`.
"""

import importlib

# Imported on first use (PEP 562), so that `reidcli.pose.options` (the CLI's defaults) does
# not pull in the extraction code and torch.
_HOMES = {"PoseResult": "extract", "extract_pose": "extract", "predict_paths": "extract",
          "decode_heatmaps": "heatmaps", "heatmaps_to_keypoints": "heatmaps", "render_heatmaps": "heatmaps",
          "pck": "pck", "pck_against": "pck", "pck_files": "pck"}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"reidcli.pose.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'reidcli.pose' has no attribute {name!r}")

__all__ = ["extract_pose", "predict_paths", "PoseResult", "render_heatmaps", "decode_heatmaps",
           "heatmaps_to_keypoints", "pck", "pck_files", "pck_against"]
