"""reidcli.pose: COCO-17 keypoints per image (backends, heat-maps, PCK, previews).

Library entry points: `extract_pose` (a dataset -> pose.h5, with PCK against a ground truth
and a preview grid: everything ``reid extract-pose`` does), `render_heatmaps` /
`decode_heatmaps` / `heatmaps_to_keypoints` (shared with RBNet), `pck`.
"""

from reidcli.pose.extract import PoseResult, extract_pose, predict_paths
from reidcli.pose.heatmaps import decode_heatmaps, heatmaps_to_keypoints, render_heatmaps
from reidcli.pose.pck import pck, pck_against, pck_files

__all__ = ["extract_pose", "predict_paths", "PoseResult", "render_heatmaps", "decode_heatmaps",
           "heatmaps_to_keypoints", "pck", "pck_files", "pck_against"]
