"""Exact output of `reid info` and `reid evaluate` on the v1 golden files (sqlite-utils
style): the whole stdout, rendered at a fixed width (COLUMNS=100), is compared with the
text below. Trailing spaces at line ends are ignored (rich pads wrapped lines).

When an output changes on purpose, rerun the failing test and paste the new text shown in
the assertion (it prints the full output); the files themselves never change.
"""

from __future__ import annotations

import pytest
from fixtures_contracts import GOLDEN, reid_ok

INFO_FEATURES = """\
features.h5: reidcli features file, version 1, valid
┏━━━━━━━━━┳━━━━━━━━┳━━━━━┳━━━━━━━━━┳━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━┓
┃ split   ┃ images ┃ dim ┃ dtype   ┃ ids ┃ unlabelled ┃ cameras ┃
┡━━━━━━━━━╇━━━━━━━━╇━━━━━╇━━━━━━━━━╇━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━┩
│ gallery │ 8      │ 16  │ float32 │ 4   │ 1          │ 2       │
│ query   │ 6      │ 16  │ float32 │ 3   │ 0          │ 2       │
│ train   │ 12     │ 16  │ float32 │ 3   │ 0          │ 2       │
└─────────┴────────┴─────┴─────────┴─────┴────────────┴─────────┘
  checkpoint: sha256:8066caa5dfe43bb3acf73e9c04748cb1e11ad122848ec20122d76f5d5936e7bb
  checkpoint_path: checkpoint.pt
  command: reid -q features --ckpt checkpoint.pt data -o features.h5 -j 0 --device cpu
  created_by: reidcli 0.1.0
  dataset_format: market1501
  feature_dim: 16
  flip: False
  half: False
  input_size: [32, 16]
  method: supervised
  model: golden_micro
  normalized: True
  @PG 0: reid -q pretrain data -o checkpoint.pt --arch golden_micro --pretrained none --height 32
--width 16 -P 3 -K 2 --epochs 1 --max-iters 2 --warmup-epochs 0 -j 0 --device cpu  (0.1.0,
2026-11-30T06:36:06+0000)
  @PG 1: reid -q features --ckpt checkpoint.pt data -o features.h5 -j 0 --device cpu  (0.1.0,
2026-11-30T06:36:08+0000)
"""

INFO_LABELS = """\
labels.h5: reidcli labels file, version 1, valid
12 samples, 3 clusters, 1 outliers
┏━━━━━━━━━━━━━━┳━━━━━━━━━━┓
┃ cluster size ┃ clusters ┃
┡━━━━━━━━━━━━━━╇━━━━━━━━━━┩
│ 1            │ 0        │
│ 2            │ 0        │
│ 3            │ 1        │
│ 4-7          │ 2        │
│ 8-15         │ 0        │
│ 16-31        │ 0        │
│ 32+          │ 0        │
└──────────────┴──────────┘
  camera_norm: False
  command: reid -q cluster features.h5 -o labels.h5 --k1 4 --k2 2 --min-samples 2 --centers
  created_by: reidcli 0.1.0
  distance: jaccard
  eps: 0.6
  eps_mode: fixed
  k1: 4
  k2: 2
  knn_index: auto
  method: dbscan-jaccard
  min_samples: 2
  n_clusters: 3
  n_images: 12
  n_outliers: 1
  normalized: True
  seed: 0
  source: features.h5
  source_digest: sha256:ebfb17f7f2b7e46c0620c30860ef6915a73d4a3b70d2c6ac20c7ae9b7aa78c25
  split: train
  @PG 0: reid -q pretrain data -o checkpoint.pt --arch golden_micro --pretrained none --height 32
--width 16 -P 3 -K 2 --epochs 1 --max-iters 2 --warmup-epochs 0 -j 0 --device cpu  (0.1.0,
2026-11-30T06:36:06+0000)
  @PG 1: reid -q features --ckpt checkpoint.pt data -o features.h5 -j 0 --device cpu  (0.1.0,
2026-11-30T06:36:08+0000)
  @PG 2: reid -q cluster features.h5 -o labels.h5 --k1 4 --k2 2 --min-samples 2 --centers  (0.1.0,
2026-11-30T06:36:09+0000)
"""

INFO_POSE = """\
pose.h5: reidcli pose file, version 1, valid
26 images, 1 without a person, mean keypoint score 0.790
  backend: gt
  command: reid -q extract-pose data --backend gt -o pose.h5
  created_by: reidcli 0.1.0
  keypoint_names: ['nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder',
'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_hip', 'right_hip',
'left_knee', 'right_knee', 'left_ankle', 'right_ankle']
  model: pose.h5
  n_no_person: 1
  splits: ['gallery', 'query', 'train']
  @PG 0: reid -q extract-pose data --backend gt -o pose.h5  (0.1.0, 2026-11-30T06:36:13+0000)
"""

INFO_CHECKPOINT = """\
checkpoint.pt: reidcli checkpoint file, version 1, valid
  valid: True
  version: 1
  size_bytes: 249611
  digest: sha256:8066caa5dfe43bb3acf73e9c04748cb1e11ad122848ec20122d76f5d5936e7bb
  created_by: reidcli 0.1.0
  arch: golden_micro
  method: supervised
  epoch: 1
  iteration: 2
  input_size: [32, 16]
  feat_dim: 16
  num_classes: 3
  parameters: 11923
  pixel_mean: [0.485, 0.456, 0.406]
  pixel_std: [0.229, 0.224, 0.225]
  nets: []
  bn_domains: []
  resumable: True
  model_config: {'arch': 'golden_micro', 'pretrained': 'none', 'last_stride': 1, 'pooling': 'avg',
'gem_p': 3.0, 'neck': 'bnneck', 'embed_dim': 0, 'attention': False, 'multilevel': False,
'lstm_branch': False, 'lstm_hidden': 256, 'local_dim': 128, 'dropout': 0.0, 'num_classes': 3,
'feat_norm': False, 'rbnet': {}}
  @PG 0: reid -q pretrain data -o checkpoint.pt --arch golden_micro --pretrained none --height 32
--width 16 -P 3 -K 2 --epochs 1 --max-iters 2 --warmup-epochs 0 -j 0 --device cpu  (0.1.0,
2026-11-30T06:36:06+0000)
"""

EVALUATE = """\
market protocol, euclidean distance
┏━━━━━━━━━┳━━━━━━━━━━━━━┓
┃ metric  ┃   value (%) ┃
┡━━━━━━━━━╇━━━━━━━━━━━━━┩
│ mAP     │       29.17 │
│ Rank-1  │        0.00 │
│ Rank-5  │      100.00 │
│ Rank-10 │      100.00 │
│ Rank-20 │      100.00 │
│ mINP    │       29.17 │
│ queries │ 6 valid / 6 │
└─────────┴─────────────┘
AP: non-interpolated AP = mean_i(i / rank_i) (torchreid / fast-reid); CMC: standard
"""

EVALUATE_DEVKIT_COSINE = """\
market protocol, cosine distance
┏━━━━━━━━━┳━━━━━━━━━━━━━┓
┃ metric  ┃   value (%) ┃
┡━━━━━━━━━╇━━━━━━━━━━━━━┩
│ mAP     │       14.58 │
│ Rank-1  │        0.00 │
│ Rank-3  │       16.67 │
│ mINP    │       29.17 │
│ queries │ 6 valid / 6 │
└─────────┴─────────────┘
AP: trapezoidal AP of the Market-1501 devkit compute_AP.m; CMC: standard
"""

CASES = {
    "info features.h5": INFO_FEATURES,
    "info labels.h5": INFO_LABELS,
    "info pose.h5": INFO_POSE,
    "info checkpoint.pt": INFO_CHECKPOINT,
    "evaluate features.h5": EVALUATE,
    "evaluate features.h5 --metric cosine --ap devkit --ranks 1,3": EVALUATE_DEVKIT_COSINE,
}


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


@pytest.mark.parametrize("command", sorted(CASES))
def test_exact_stdout(command, monkeypatch):
    monkeypatch.chdir(GOLDEN)  # relative names, so the output does not depend on the checkout
    out = reid_ok(*command.split(), env={"FORCE_COLOR": None, "NO_COLOR": "1"}).stdout
    assert _lines(out) == _lines(CASES[command]), f"stdout of 'reid {command}' changed; it is now:\n{out}"
