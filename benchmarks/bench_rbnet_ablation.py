"""Ablation: ResNet baseline vs RBNet (Yu & Piao 2024) on synthetic Market -> Duke-like domains.

Method notes: docs/papers.md section 1.

Same data, seed, backbone, input size and step budget for both arms; only the arch differs:

1. ``reid synth`` a Market-like source and a Duke-like target (ground-truth keypoints in
   each ``pose.h5``; the target's are never used);
2. ``reid pretrain`` on the source (baseline: ``--arch BACKBONE``; RBNet: ``--arch rbnet
   --rb-backbone BACKBONE --pose source/pose.h5``);
3. supervised accuracy on the source's query/gallery and direct transfer to the target;
4. one MMT round on the target (``reid features`` -> ``reid cluster`` -> ``reid finetune
   --method mmt``) and its accuracy (mAP, Rank-1).

Usage:
    python benchmarks/bench_rbnet_ablation.py WORKDIR [--ids 48 --epochs 12 --mmt-iters 60]

Prints one table (and ``--json``). Every step runs the real CLI, as a Makefile would.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# this checkout's `reid`, whatever is on the PATH (as make's bin/reid)
REID = [sys.executable, str(Path(__file__).resolve().parents[1] / "bin" / "reid")]


def sh(*args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    res = subprocess.run([*REID, *args], capture_output=True, text=True, env=env)
    if res.returncode:
        sys.exit(f"reid {' '.join(args)} failed:\n{res.stderr[-2000:]}")
    return res.stdout


def evaluate(ckpt: Path, data: Path, out: Path) -> dict:
    sh("features", "--ckpt", str(ckpt), str(data), "-o", str(out), "--split", "query",
       "--split", "gallery", "--workers", "0", "--device", "cpu")
    r = json.loads(sh("evaluate", str(out), "--json"))
    return {"mAP": 100 * r["mAP"], "rank1": 100 * r["rank1"]}


def arm(name: str, arch_args: list[str], a, work: Path) -> dict:
    src, tgt = work / "market", work / "duke"
    d = work / name
    d.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    sh("pretrain", str(src), "-o", str(d / "src.pt"), *arch_args, "--pretrained", "none",
       "--height", str(a.height), "--width", str(a.width), "--epochs", str(a.epochs),
       "--milestones", str(max(1, a.epochs * 3 // 4)), "--warmup-epochs", "1", "-P", str(a.p),
       "-K", "4", "--seed", str(a.seed), "--workers", "0", "--device", "cpu")
    t_pre = time.perf_counter() - t0
    res = {"supervised": evaluate(d / "src.pt", src, d / "src_q.h5"),
           "direct": evaluate(d / "src.pt", tgt, d / "dt_q.h5")}
    sh("features", "--ckpt", str(d / "src.pt"), str(tgt), "-o", str(d / "tgt_train.h5"),
       "--split", "train", "--workers", "0", "--device", "cpu")
    sh("cluster", str(d / "tgt_train.h5"), "-o", str(d / "labels.h5"), "--eps", str(a.eps),
       "--k1", str(a.k1), "--k2", "6", "--min-samples", "4")
    t0 = time.perf_counter()
    sh("finetune", "--ckpt", str(d / "src.pt"), "--labels", str(d / "labels.h5"), str(tgt),
       "-o", str(d / "mmt.pt"), "--method", "mmt", "--iters", str(a.mmt_iters), "-P", str(a.p),
       "-K", "4", "--seed", str(a.seed), "--workers", "0", "--device", "cpu")
    res["mmt"] = evaluate(d / "mmt.pt", tgt, d / "mmt_q.h5")
    res["seconds"] = {"pretrain": round(t_pre, 1), "mmt": round(time.perf_counter() - t0, 1)}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path, nargs="?", help="work folder (default: a new temporary one, kept)")
    ap.add_argument("--backbone", default="tiny")
    ap.add_argument("--ids", type=int, default=48)
    ap.add_argument("--images-per-id", type=int, default=8)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--p", type=int, default=8)
    ap.add_argument("--mmt-iters", type=int, default=60)
    ap.add_argument("--eps", type=float, default=0.6)
    ap.add_argument("--k1", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arms", default="resnet,rbnet", help="comma-separated: resnet, rbnet, rbnet_simple, "
                                                          "rbnet_no_stem_relu")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.work is None:
        import tempfile

        a.work = Path(tempfile.mkdtemp(prefix="reidcli-bench-"))
        print(f"work folder: {a.work}", file=sys.stderr)
    a.work.mkdir(parents=True, exist_ok=True)
    for dom in ("market", "duke"):
        if not (a.work / dom).exists():
            sh("synth", str(a.work / dom), "--domain", dom, "--ids", str(a.ids), "--images-per-id",
               str(a.images_per_id), "--height", str(a.height), "--width", str(a.width),
               "--seed", str(a.seed if dom == "market" else a.seed + 1))
    arms = {"resnet": ["--arch", a.backbone],
            "rbnet": ["--arch", "rbnet", "--rb-backbone", a.backbone, "--pose", str(a.work / "market" / "pose.h5")]}
    arms["rbnet_simple"] = [*arms["rbnet"], "--rb-mask-path", "simple"]  # the first, simplified mask path
    arms["rbnet"] += ["--rb-mask-path", "paper"]
    arms["rbnet_no_stem_relu"] = [*arms["rbnet"], "--no-stem-relu"]  # the MMT code's ResNet stem (issue 23)
    results = {name: arm(name, arms[name], a, a.work) for name in a.arms.split(",")}
    if a.json:
        print(json.dumps(results, indent=1))
        return
    print(f"{'arm':8} {'source mAP/R1':>16} {'direct M->D':>16} {'MMT M->D':>16}  seconds")
    for name, r in results.items():
        cells = [f"{r[k]['mAP']:6.1f} / {r[k]['rank1']:5.1f}" for k in ("supervised", "direct", "mmt")]
        print(f"{name:8} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16}  {r['seconds']}")


if __name__ == "__main__":
    main()
