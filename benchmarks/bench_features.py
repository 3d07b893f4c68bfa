"""Throughput of `reid features` end to end against the bare forward pass, and of
`reid pretrain` training against a bare forward + backward + optimizer loop.

    python benchmarks/bench_features.py                      # resnet50 @256x128 and tiny @64x32
    python benchmarks/bench_features.py --configs tiny:64x32 --n 512 --device cuda

End to end = decode (OpenCV, DataLoader workers) + resize + transfer + normalise + forward
+ writing the HDF5 file, i.e. `reidcli.features.extract`. Bare = the same model on the same
number of already-normalised tensors resident on the device. The ratio is the goal metric
(>= 0.9). Training compares the engine's img/s (its JSONL log) with a loop of
forward + ID/triplet-free CE loss + backward + Adam on resident tensors.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


def bare_forward(model, n: int, bs: int, h: int, w: int, dev) -> float:
    import torch

    x = torch.randn(bs, 3, h, w, device=dev)
    with torch.inference_mode():
        model(x)  # warm-up
        _sync(dev)
        t0, done = time.perf_counter(), 0
        while done < n:
            model(x[: min(bs, n - done)])
            done += min(bs, n - done)
        _sync(dev)
    return n / (time.perf_counter() - t0)


def bare_train(model, steps: int, bs: int, h: int, w: int, dev) -> float:
    import torch
    import torch.nn.functional as F

    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(bs, 3, h, w, device=dev)
    y = torch.arange(bs, device=dev) % model.cfg.num_classes
    t0 = 0.0
    for i in range(steps + 1):
        if i == 1:
            _sync(dev)
            t0 = time.perf_counter()
        with torch.autocast(dev.type, enabled=dev.type == "cuda"):
            loss = F.cross_entropy(model(x)["logits"].float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(dev)
    return steps * bs / (time.perf_counter() - t0)


def run_config(arch: str, h: int, w: int, args, tmp: Path) -> dict:

    from reidcli.data.synth import synthesize
    from reidcli.features import extract
    from reidcli.io.ckpt import make_checkpoint, save_checkpoint
    from reidcli.models import ModelConfig, build_model
    from reidcli.utils.device import resolve_device

    dev = resolve_device(args.device)
    ids = max(2, args.n // 8)
    data = tmp / f"data_{arch}_{h}x{w}"
    synthesize(data, domain="market", ids=ids, test_ids=2, images_per_id=8, height=h, width=w,
               seed=0, distractors=0, junk=0, workers=args.workers or 1)
    cfg = ModelConfig(arch=arch, num_classes=ids)
    model = build_model(cfg).to(dev).eval()
    ckpt = save_checkpoint(tmp / f"{arch}.pt", make_checkpoint(
        model_config=cfg.to_dict(), model_state=model.state_dict(), input_size=(h, w), method="bench",
        epoch=0, feat_dim=model.feat_dim))
    n_train = ids * 8
    bare = bare_forward(model, n_train, args.batch_size, h, w, dev)
    extract(ckpt, data, tmp / "warm.h5", splits=["train"], batch_size=args.batch_size,
            workers=args.workers, device=str(dev))  # warm caches and workers once
    t0 = time.perf_counter()
    extract(ckpt, data, tmp / "f.h5", splits=["train"], batch_size=args.batch_size,
            workers=args.workers, device=str(dev))
    e2e = n_train / (time.perf_counter() - t0)
    row = {"arch": arch, "input": f"{h}x{w}", "images": n_train, "device": str(dev),
           "bare_forward_img_s": round(bare, 1), "features_e2e_img_s": round(e2e, 1),
           "ratio": round(e2e / bare, 3)}
    if args.train_steps:
        row.update(train_bench(arch, h, w, data, ids, args, tmp, dev))
    return row


def train_bench(arch, h, w, data, ids, args, tmp, dev) -> dict:
    from reidcli.data.transforms import AugmentConfig
    from reidcli.models import ModelConfig, build_model
    from reidcli.train.config import TrainConfig
    from reidcli.train.pretrain import pretrain

    p, k = max(2, args.train_batch // 4), 4
    out = tmp / f"train_{arch}.pt"
    pretrain(data, out, model=ModelConfig(arch=arch),
             train=TrainConfig(epochs=1, iters_per_epoch=args.train_steps + 1, p=p, k=k, workers=args.workers,
                               warmup_epochs=0, log_every=1, images_per_bn=0),
             augment=AugmentConfig(height=h, width=w), device=str(dev))
    rows = [json.loads(x) for x in out.with_name(out.stem + ".log.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r["type"] == "step"]
    engine = steps[-1]["img_s"]
    bare = bare_train(build_model(ModelConfig(arch=arch, num_classes=ids)).to(dev), args.train_steps,
                      p * k, h, w, dev)
    return {"train_engine_img_s": round(engine, 1), "train_bare_img_s": round(bare, 1),
            "train_ratio": round(engine / bare, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="resnet50:256x128,tiny:64x32", help="arch:HxW,...")
    ap.add_argument("--n", type=int, default=128, help="images per configuration (rounded to 8 per id)")
    ap.add_argument("--batch-size", type=int, default=128, help="default: reid features' default")
    ap.add_argument("--workers", type=int, default=None, help="default: the commands' automatic choice")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = default)")
    ap.add_argument("--train-steps", type=int, default=4, help="0 skips the training comparison")
    ap.add_argument("--train-batch", type=int, default=32)
    args = ap.parse_args()
    import torch

    from reidcli.utils.progress import set_quiet

    set_quiet(True)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.configs.split(","):
            arch, size = spec.split(":")
            h, w = (int(v) for v in size.split("x"))
            print(json.dumps(run_config(arch, h, w, args, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
