"""Benchmark `reid extract-pose`: images/s and PCK@0.2 per backend on a `reid synth` dataset.

Backends timed (all on CPU, end to end: decode, preprocess, model, decode, map back):
- ``gt``: the ground-truth pose file (I/O floor of the pipeline);
- ``mediapipe``: BlazePose-full from the mediapipe wheel, in-process and with worker
  processes;
- ``onnx``: a SimpleBaseline-ResNet50 heat-map model (Xiao et al. 2018; 256x192 input,
  64x48 maps, about the cost of HRNet-w32) exported here with random weights, so its PCK
  is meaningless and only its speed counts; pass ``--onnx FILE`` to time a real export
  (e.g. mmpose HRNet-w32) and get its PCK too.

Usage: python benchmarks/bench_pose.py [--ids 24] [--images-per-id 6] [--workers 2]
       [--backends gt,mediapipe,onnx] [--onnx FILE] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def make_dataset(root: Path, ids: int, per_id: int) -> None:
    from typer.testing import CliRunner

    from reidcli.cli.app import app

    r = CliRunner().invoke(app, ["-q", "synth", str(root), "--ids", str(ids), "--test-ids",
                                 str(max(2, ids // 2)), "--images-per-id", str(per_id)])
    if r.exit_code != 0:
        sys.exit(f"reid synth failed: {r.output}")


def export_simple_baseline(path: Path) -> Path:
    """SimpleBaseline-ResNet50 with random weights -> ONNX (dynamic batch)."""
    import torch
    import torchvision

    body = torch.nn.Sequential(*list(torchvision.models.resnet50(weights=None).children())[:-2])
    layers, c = [], 2048
    for _ in range(3):
        layers += [torch.nn.ConvTranspose2d(c, 256, 4, 2, 1, bias=False), torch.nn.BatchNorm2d(256),
                   torch.nn.ReLU()]
        c = 256
    net = torch.nn.Sequential(body, *layers, torch.nn.Conv2d(256, 17, 1)).eval()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 3, 256, 192), str(path), input_names=["input"],
                          output_names=["heatmaps"], dynamo=False,
                          dynamic_axes={"input": {0: "N"}, "heatmaps": {0: "N"}})
    return path


def run(root: Path, backend: str, workers: int, batch: int, **options) -> dict:
    from reidcli.pose.extract import extract_pose
    from reidcli.pose.pck import pck_files

    out = root.parent / f"pose_{backend}_{workers}.h5"
    t0 = time.perf_counter()
    res = extract_pose(root, out, backend=backend, workers=workers, batch_size=batch, **options)
    wall = time.perf_counter() - t0
    score = pck_files(out, root / "pose.h5")
    return {"backend": backend, "workers": workers, "images": res.n_images,
            "images_per_s": res.n_images / wall, "no_person": res.n_missing, "pck": score.value}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", type=int, default=24)
    ap.add_argument("--images-per-id", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--backends", default="gt,mediapipe,onnx")
    ap.add_argument("--onnx", type=Path, help="a real top-down export to time instead")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime/torch threads per process")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ["REIDCLI_QUIET"] = "1"

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synth"
        make_dataset(root, args.ids, args.images_per_id)
        rows = []
        for name in args.backends.split(","):
            opts = {}
            if name == "onnx":
                opts["model"] = args.onnx or export_simple_baseline(Path(tmp) / "sb_r50.onnx")
            for w in sorted({0, args.workers}) if name != "gt" else [0]:
                rows.append(run(root, name, w, args.batch_size, **opts))
                print(_fmt(rows[-1], name == "onnx" and args.onnx is None), flush=True)


def _fmt(r: dict, random_weights: bool) -> str:
    pck = "n/a (random weights)" if random_weights else f"{100 * r['pck']:.1f}%"
    return (f"{r['backend']:<10} workers={r['workers']}  {r['images']} images  "
            f"{r['images_per_s']:7.1f} images/s  no person: {r['no_person']:3d}  PCK@0.2: {pck}")


if __name__ == "__main__":
    main()
