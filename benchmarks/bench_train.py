"""Training throughput: `reid pretrain` at its default flags against a bare PyTorch loop of the
same network, losses and optimiser on resident tensors (issue 26).

    python benchmarks/bench_train.py                                  # resnet18 128x64, resnet50 256x128
    python benchmarks/bench_train.py --configs mobilenet_v2:64x32 --threads 1

The engine runs as `reid pretrain DATA -o m.pt --arch A --height H --width W --pretrained none`
does (its library entry, `pretrain_from_settings`, with one log line per step) on a synthetic
dataset (JPEG decoding, augmentation and the loader workers included), one epoch of --steps
steps; its speed is the images of every step after the first --skip over their wall time,
read from the JSONL log. The bare loop is
../shared/bench/bare_train.py's loop on reidcli's own network of the same flags (BNNeck,
last stride 1): label-smoothed CE + batch-hard triplet, Adam, P x K = 16 x 4, the same input
tensor every step. Both use the same intra-op threads (--threads; 0 = the engine's default,
the cores it may use). The goal is ratio >= 0.9. The 1-minute load average is printed beside
each row: other work on the machine distorts both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bare_loop(arch: str, h: int, w: int, steps: int, skip: int, threads: int) -> float:
    """img/s of forward + CE(label smoothing 0.1) + batch-hard triplet + backward + Adam."""
    import torch
    import torch.nn.functional as F

    from reidcli.models import ModelConfig, build_model

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = build_model(ModelConfig(arch=arch, num_classes=16, pretrained="none")).train()
    opt = torch.optim.Adam(net.parameters(), lr=3.5e-4)
    x = torch.randn(64, 3, h, w)
    y = torch.arange(16).repeat_interleave(4)

    def triplet(f, y, margin=0.3):
        d = torch.cdist(f, f)
        same = y[:, None] == y[None]
        return F.relu((d * same).max(1).values - (d + same * 1e6).min(1).values + margin).mean()

    t0 = 0.0
    for i in range(steps):
        if i == skip:
            t0 = time.perf_counter()
        out = net(x)
        loss = F.cross_entropy(out["logits"], y, label_smoothing=0.1) + triplet(out["feat"], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (steps - skip) * 64 / (time.perf_counter() - t0)


def engine(arch: str, h: int, w: int, steps: int, skip: int, threads: int, tmp: Path) -> dict:
    """img/s of `reid pretrain` (from its log: every step after the first ``skip``)."""
    data = tmp / f"data-{h}x{w}"
    if not data.exists():
        subprocess.run([sys.executable, str(ROOT / "bin" / "reid"), "synth", str(data), "--ids", "32",
                        "--images-per-id", "8", "--height", str(h), "--width", str(w), "-q"], check=True)
    out = tmp / f"{arch}-{h}x{w}.pt"
    out.unlink(missing_ok=True)
    settings = dict(arch=arch, height=h, width=w, pretrained="none", epochs=1, iters_per_epoch=steps,
                    warmup_epochs=0, log_every=1, **({"threads": threads} if threads else {}))
    # `reid pretrain`'s library entry with the command's defaults, in a process of its own
    code = ("import sys, json; from reidcli.utils.progress import set_quiet; set_quiet(True); "
            "from reidcli.train.pretrain import pretrain_from_settings as p; "
            "p(sys.argv[1], sys.argv[2], **json.loads(sys.argv[3]))")
    subprocess.run([sys.executable, "-c", code, str(data), str(out), json.dumps(settings)], check=True,
                   cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    rows = [json.loads(line) for line in out.with_name(out.stem + ".log.jsonl").read_text().splitlines()]
    res = next(r for r in rows if r["type"] == "resources")
    stepped = [r for r in rows if r["type"] == "step"]
    timed = stepped[skip:] if len(stepped) > skip else stepped[-1:]
    images = sum(r["steps"] * 64 for r in timed)
    wall = sum(r["steps"] * 64 / r["img_s"] for r in timed)
    return {"engine_img_s": images / wall, "workers": res.get("workers"), "threads": res.get("threads"),
            "data_s": sum(r["data_s"] for r in timed) / len(timed)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="resnet18:128x64,resnet50:256x128", help="arch:HxW,...")
    ap.add_argument("--steps", type=int, default=12, help="training steps per measurement")
    ap.add_argument("--skip", type=int, default=2, help="first steps left out (warm-up)")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads of both (0 = the engine's default)")
    args = ap.parse_args()
    print(f"{'config':<22} {'engine img/s':>12} {'bare img/s':>10} {'ratio':>6} {'workers':>7} {'threads':>7} "
          f"{'data_s':>7} {'load':>5}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.configs.split(","):
            arch, size = spec.split(":")
            h, w = (int(v) for v in size.split("x"))
            e = engine(arch, h, w, args.steps, args.skip, args.threads, Path(tmp))
            threads = args.threads or int(e["threads"] or 0)
            b = bare_loop(arch, h, w, args.steps, args.skip, threads)
            print(f"{arch + ' ' + size:<22} {e['engine_img_s']:>12.1f} {b:>10.1f} {e['engine_img_s'] / b:>6.2f} "
                  f"{e['workers']!s:>7} {threads:>7} {e['data_s']:>7.3f} {os.getloadavg()[0]:>5.1f}", flush=True)


if __name__ == "__main__":
    main()
