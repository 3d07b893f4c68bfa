"""What ``--cache-images`` saves: images/s of the training data stream alone (decode +
resize + augmentation, what the loader must keep up with) and of a short `reid pretrain`
run, with and without the cache, side by side in one run, with the load average.

    nice -n 19 python benchmarks/bench_loader.py                  # 128x64 JPEGs -> 256x128
    nice -n 19 python benchmarks/bench_loader.py --ids 32 --per-id 8 --train-steps 0

The dataset is `reid synth` (Market layout) at Market's image size (128x64) trained at
256x128, so each image is decoded and resized as with the real data. The stream figure
iterates the engine's P x K data stream (`reidcli.train.engine.make_stream`) without a
network; the training figure is the engine's own img/s (its JSONL epoch record), with the
log's data_s / compute_s / decode_ms / augment_ms. One JSON line per configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def stream_rate(root: Path, cache: bool, workers: int, batches: int, h: int, w: int) -> dict:
    """Images/s of ``batches`` P x K batches of the training stream (after the first)."""
    import torch

    from reidcli.data.cache import cache_datasets
    from reidcli.data.layouts import load_dataset
    from reidcli.data.loader import ImageDataset
    from reidcli.data.records import relabel
    from reidcli.data.sampler import PKBatchSampler
    from reidcli.data.transforms import AugmentConfig, build_train_transform
    from reidcli.train.config import TrainConfig
    from reidcli.train.engine import make_stream

    recs = [r for r in load_dataset(root).split("train") if r.pid >= 0]
    y, _ = relabel([r.pid for r in recs])
    ds = ImageDataset(root, recs, build_train_transform(AugmentConfig(height=h, width=w)), labels=y, size=(h, w))
    cfg = TrainConfig(p=16, k=4, workers=workers, seed=0)
    t0 = time.perf_counter()
    if cache:
        cache_datasets([ds], threads=torch.get_num_threads())
    fill_s = time.perf_counter() - t0
    stream = make_stream(ds, PKBatchSampler(ds.labels, cfg.p, cfg.k, seed=0), cfg, torch.device("cpu"))
    stream.next()  # workers started
    t0, n, dec, aug = time.perf_counter(), 0, 0.0, 0.0
    for _ in range(batches):
        b = stream.next()
        n += int(b["img"].shape[0])
        dec += float(b["decode_s"].sum())
        aug += float(b["augment_s"].sum())
    rate = n / (time.perf_counter() - t0)
    stream.close()
    return {"what": "stream", "cache": cache, "workers": workers, "img_s": round(rate, 1),
            "decode_ms": round(1000 * dec / n, 3), "augment_ms": round(1000 * aug / n, 3),
            "cache_fill_s": round(fill_s, 2), "images": len(ds)}


def train_rate(root: Path, out: Path, cache: bool, steps: int, h: int, w: int, arch: str) -> dict:
    from reidcli.data.transforms import AugmentConfig
    from reidcli.models import ModelConfig
    from reidcli.train.config import TrainConfig
    from reidcli.train.pretrain import pretrain

    t0 = time.perf_counter()
    pretrain(root, out, model=ModelConfig(arch=arch), train=TrainConfig(
        epochs=1, iters_per_epoch=steps, p=8, k=4, warmup_epochs=0, log_every=steps, cache_images=cache),
        augment=AugmentConfig(height=h, width=w), device="cpu")
    wall = time.perf_counter() - t0
    rows = [json.loads(x) for x in out.with_name(out.stem + ".log.jsonl").read_text().splitlines()]
    ep = next(r for r in rows if r["type"] == "epoch")
    res = next(r for r in rows if r["type"] == "resources")
    return {"what": "pretrain", "arch": arch, "cache": cache, "threads": res["threads"], "workers": res["workers"],
            **{k: round(ep[k], 4) for k in ("img_s", "data_s", "compute_s", "decode_ms", "augment_ms")},
            "wall_s": round(wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", type=int, default=64)
    ap.add_argument("--per-id", type=int, default=8)
    ap.add_argument("--batches", type=int, default=20, help="stream batches (64 images) per figure")
    ap.add_argument("--workers", default="0,1", help="stream figures for these worker counts")
    ap.add_argument("--train-steps", type=int, default=6, help="pretrain steps per figure (0 = none)")
    ap.add_argument("--arch", default="resnet18_half")
    args = ap.parse_args()
    from reidcli.data.synth import synthesize

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "market"
        synthesize(root, domain="market", ids=args.ids, test_ids=2, images_per_id=args.per_id,
                   height=128, width=64, seed=0)
        print(json.dumps({"loadavg_before": [round(x, 2) for x in os.getloadavg()],
                          "cores": len(os.sched_getaffinity(0))}), flush=True)
        for workers in (int(x) for x in args.workers.split(",")):
            for cache in (False, True):
                r = stream_rate(root, cache, workers, args.batches, 256, 128)
                print(json.dumps({**r, "loadavg": round(os.getloadavg()[0], 2)}), flush=True)
        for cache in ((False, True) if args.train_steps else ()):
            r = train_rate(root, Path(tmp) / f"m{cache}.pt", cache, args.train_steps, 256, 128, args.arch)
            print(json.dumps({**r, "loadavg": round(os.getloadavg()[0], 2)}), flush=True)


if __name__ == "__main__":
    main()
