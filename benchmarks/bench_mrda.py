"""Ablation of MRDA (Zhang et al. 2023, its Table 2) on synthetic SYSU-MM01-like data.

Method notes: docs/papers.md section 3.

Same data, seed, backbone, input size, optimizer and step budget for every arm; each batch
samples the same number of images (P x 2K = 36 by default, the paper's 3 x (6 + 6)):

* ``baseline``: one-stream ResNet, ``--method supervised`` (ID + triplet; P x 2K images of
  any modality per batch): what the modality gap does to a plain re-ID model;
* ``mrda``: the full method (``--method mrda --arch mrda``: mask reconstruction, two-stream
  stages 0-1, dynamic attention, eq. 23 with every term);
* ``no_mask`` / ``one_stream`` / ``no_attention``: MRDA with one component switched off
  (``--no-mask`` also drops the region centre term, which compares x and x_M+);
* ``two_stream_only``: the paper's Table 2 baseline (its feature extraction module: the
  two-stream network with the MRDA losses, without mask reconstruction or dynamic
  attention). Table 2's rows are then ``two_stream_only`` (Baseline), ``no_attention``
  (+MRM), ``no_mask`` (+DAM) and ``mrda`` (+MRM +DAM);
* ``no_id`` / ``no_hc`` / ``no_mc`` / ``no_ac``: MRDA with one loss weight set to 0.

Each arm: ``reid pretrain`` -> ``reid features`` (query + gallery) -> ``reid evaluate
--protocol sysu-all`` and ``--protocol sysu-indoor`` (single-shot, 10 gallery draws). The
table gives mAP / Rank-1 of both, the Rank-1 of visible queries (SYSU cams 1, 2) against
visible images of cams 4, 5 of the same features (the same model without the modality gap),
and the training throughput (steps/s from the log's images/s, relative to the baseline).

Usage:
    python benchmarks/bench_mrda.py WORKDIR [--ids 24 --steps 100 --arms baseline,mrda]

Every step runs the real CLI, as a Makefile would.
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

ARMS: dict[str, list[str]] = {
    "baseline": [],  # built in `arm`: a one-stream network under --method supervised
    "mrda": [],
    "no_mask": ["--no-mask"],
    "one_stream": ["--one-stream"],
    "no_attention": ["--no-dyn-attention"],
    "two_stream_only": ["--no-mask", "--no-dyn-attention"],
    "no_id": ["--id-weight", "0"],
    "no_hc": ["--hc-weight", "0"],
    "no_mc": ["--mc-weight", "0"],
    "no_ac": ["--ac-weight", "0"],
}


def sh(*args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    res = subprocess.run([*REID, "-q", *args], capture_output=True, text=True, env=env)
    if res.returncode:
        sys.exit(f"reid {' '.join(args)} failed:\n{res.stderr[-2000:]}")
    return res.stdout


def min_per_modality(data: Path) -> int:
    """The fewest images of one modality any training identity with both has (caps -K)."""
    from collections import Counter

    from reidcli.data.layouts import load_dataset

    recs = load_dataset(data).split("train")
    n = Counter((r.pid, r.modality) for r in recs)
    both = {p for p, m in n if m == 0 and (p, 1) in n}
    return min(min(n[(p, 0)], n[(p, 1)]) for p in both)


def visible_rank1(features: Path) -> float:
    """Rank-1 (%) of visible cams 1, 2 against visible cams 4, 5 (the gallery split's images)."""
    import numpy as np

    from reidcli.eval.api import Options, evaluate, split_dict
    from reidcli.io.h5 import read_features

    g = split_dict(read_features(features).split("gallery"))
    rows = {k: np.flatnonzero(np.isin(g["camids"], cams)) for k, cams in (("q", (0, 1)), ("g", (3, 4)))}
    part = {k: {f: (np.asarray(v)[r] if f != "paths" else None) for f, v in g.items() if v is not None}
            for k, r in rows.items()}
    return 100 * evaluate(part["q"], part["g"], Options(protocol="market")).mean["rank1"]


def arm(name: str, a, data: Path, work: Path) -> dict:
    d = work / name
    d.mkdir(exist_ok=True)
    if a.reuse and (d / "m.pt").exists() and (d / "f.h5").exists():
        return evaluate_arm(a, d, None)
    if name == "baseline":
        model = ["--method", "supervised", "--arch", a.backbone, "-P", str(a.p), "-K", str(2 * a.k)]
    else:
        model = ["--method", "mrda", "--arch", "mrda", "--mrda-backbone", a.backbone, "-P", str(a.p),
                 "-K", str(a.k), *ARMS[name]]
    t0 = time.perf_counter()
    sh("pretrain", str(data), "-o", str(d / "m.pt"), *model, "--pretrained", "none",
       "--height", str(a.height), "--width", str(a.width), "--epochs", str(a.epochs),
       "--iters-per-epoch", str(a.steps // a.epochs), "--optimizer", "adam", "--lr", str(a.lr),
       "--milestones", str(max(1, a.epochs * 3 // 4)), "--warmup-epochs", "1",
       "--seed", str(a.seed), "--workers", "0", "--device", "cpu")
    seconds = time.perf_counter() - t0
    sh("features", "--ckpt", str(d / "m.pt"), str(data), "-o", str(d / "f.h5"), "--split", "query",
       "--split", "gallery", "--workers", "0", "--device", "cpu")
    return evaluate_arm(a, d, seconds)


def evaluate_arm(a, d: Path, seconds: float | None) -> dict:
    steps = [json.loads(ln) for ln in (d / "m.log.jsonl").read_text().splitlines()]
    img_s = [r["img_s"] for r in steps if r.get("type") == "step" and "img_s" in r]  # every 20th step
    steps_s = sum(img_s) / len(img_s) / (2 * a.p * a.k) if img_s else a.steps / seconds  # short runs: wall time
    res = {"pretrain_s": None if seconds is None else round(seconds, 1), "steps_s": steps_s,
           "visible_rank1": visible_rank1(d / "f.h5")}
    for proto in ("sysu-all", "sysu-indoor"):
        r = json.loads(sh("evaluate", str(d / "f.h5"), "--protocol", proto, "--json", "--seed", str(a.seed)))
        res[proto] = {"mAP": 100 * r["mAP"], "rank1": 100 * r["rank1"],
                      "mAP_std": 100 * r["std"]["mAP"], "rank1_std": 100 * r["std"]["rank1"]}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path, nargs="?", help="work folder (default: a new temporary one, kept)")
    ap.add_argument("--backbone", default="resnet18_half", help="any ResNet of the registry")
    ap.add_argument("--ids", type=int, default=24, help="training identities (as many test ones)")
    ap.add_argument("--images-per-id", type=int, default=24)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--steps", type=int, default=100, help="optimizer steps per arm")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--p", type=int, default=3, help="identities per batch")
    ap.add_argument("--k", type=int, default=6, help="images per identity and modality (capped by the data)")
    ap.add_argument("--lr", type=float, default=3.5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arms", default=",".join(ARMS), help="comma-separated: " + ", ".join(ARMS))
    ap.add_argument("--reuse", action="store_true", help="re-evaluate arms already trained in WORKDIR")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    unknown = [n for n in a.arms.split(",") if n not in ARMS]
    if unknown:
        sys.exit(f"unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")
    if a.work is None:
        import tempfile

        a.work = Path(tempfile.mkdtemp(prefix="reidcli-bench-"))
        print(f"work folder: {a.work}", file=sys.stderr)
    a.work.mkdir(parents=True, exist_ok=True)
    data = a.work / "sysu"
    if not data.exists():
        sh("synth", str(data), "--domain", "sysu", "--ids", str(a.ids), "--images-per-id", str(a.images_per_id),
           "--height", str(a.height), "--width", str(a.width), "--seed", str(a.seed))
    fit = min_per_modality(data)
    if a.k > fit:
        a.p, a.k = max(2, (a.p * a.k) // fit), fit  # keep P x 2K images per batch about the same
        print(f"-K capped at {a.k} (the fewest images of one modality of an identity); -P {a.p}", file=sys.stderr)
    results = {}
    for name in a.arms.split(","):
        results[name] = arm(name, a, data, a.work)
        print(f"{name}: {results[name]}", file=sys.stderr)
    if a.json:
        print(json.dumps(results, indent=1))
        return
    base = results.get("baseline", {}).get("steps_s")
    print(f"{a.steps} steps of {2 * a.p * a.k} sampled images, {a.backbone} at {a.height}x{a.width}, "
          f"{a.ids} train / {a.ids} test identities")
    print(f"{'arm':15} {'all mAP':>8} {'all R1':>7} {'indoor mAP':>11} {'indoor R1':>10} {'vis-vis R1':>11} "
          f"{'steps/s':>8} {'vs base':>8}")
    for name, r in results.items():
        rel = f"{r['steps_s'] / base:7.2f}x" if base else "       -"
        print(f"{name:15} {r['sysu-all']['mAP']:8.1f} {r['sysu-all']['rank1']:7.1f} {r['sysu-indoor']['mAP']:11.1f} "
              f"{r['sysu-indoor']['rank1']:10.1f} {r['visible_rank1']:11.1f} {r['steps_s']:8.2f} {rel}")


if __name__ == "__main__":
    main()
