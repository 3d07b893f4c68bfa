"""Benchmark `reid evaluate`'s core against torchreid's algorithm.

Deterministic synthetic features at Market-1501 scale (3,368 queries x 15,913 gallery,
750 ids, 6 cameras) and MSMT17 scale (11,659 x 82,161, 3,060 ids, 15 cameras), 2048-d:
identity centres plus noise, with distractors (pid 0) in the gallery. For each scale it
times, in a fresh forked process each (so peak memory is per stage):

- ``distance``: our chunked GEMM alone (`distance_chunks`, blocks discarded);
- ``ours``: distance + rank metrics end to end (`distance_chunks` -> `rank_queries` ->
  `summarize`), so ranking cost = ours - distance;
- ``anchor``: torchreid's method in this process: the full Q x G distance matrix
  (``compute_distance_matrix``: addmm on expanded squared norms), then
  ``eval_market1501``'s algorithm (``np.argsort`` of the whole matrix, per-query loop with
  the same-id-same-camera filter), with its AP written with numpy ``cumsum`` instead of
  torchreid's Python list comprehension, i.e. close to its Cython ``evaluate_rank``;
- ``whole process`` (Market scale): the features written to one features file, then
  ``reid evaluate f.h5 --json`` as a user runs it, against a fresh Python process that
  imports torch and h5py, reads the same arrays and runs the anchor's algorithm.

Two feature difficulties (``--separation``, the weight of the identity centre against unit
noise): ``0.25`` gives mAP ~0.13 and mINP ~0.005 (worse than direct transfer: a row's
farthest true match lies a third of the way down the gallery), ``0.35`` mAP ~0.83 and
mINP ~0.26, a trained model's. The ranking cost depends on it; the anchor's does not.

Usage: python benchmarks/bench_evaluate.py [--scale market|msmt|both] [--dim 2048]
       [--separation 0.25,0.35] [--no-anchor] [--anchor-msmt] [--threads N] [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time

import numpy as np

SCALES = {"market": (3368, 15913, 750, 6), "msmt": (11659, 82161, 3060, 15)}


def make_features(scale: str, dim: int, seed: int = 0, separation: float = 0.25):
    n_q, n_g, n_ids, n_cams = SCALES[scale]
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_ids + 1, dim), dtype=np.float32)
    q_pids = np.sort(rng.integers(1, n_ids + 1, n_q))
    n_distract = n_g // 6
    g_pids = np.r_[np.zeros(n_distract, np.int64), rng.integers(1, n_ids + 1, n_g - n_distract)]
    q_cams, g_cams = rng.integers(0, n_cams, n_q), rng.integers(0, n_cams, n_g)

    def feats(pids):
        x = rng.standard_normal((len(pids), dim), dtype=np.float32)
        x += np.float32(separation) * centers[pids]
        return x

    return feats(q_pids), feats(g_pids), q_pids, q_cams, g_pids, g_cams


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def stage_distance(data, args):
    from reidcli.eval.distance import distance_chunks

    for _ in distance_chunks(data[0], data[1], "euclidean", device=args.device):
        pass
    return {}


def stage_ours(data, args):
    from reidcli.eval.distance import distance_chunks
    from reidcli.eval.ranking import rank_queries, summarize

    qf, gf, qp, qc, gp, gc = data
    pq = rank_queries(distance_chunks(qf, gf, "euclidean", device=args.device), qp, qc, gp, gc,
                      device=args.device)
    m = summarize(pq, (1, 5, 10, 20))
    return {"mAP": m.mAP, "cmc": m.curve[:20].tolist(), "mINP": m.mINP}


def torchreid_distance(qf, gf) -> np.ndarray:
    """torchreid.metrics.distance.euclidean_squared_distance, as written there."""
    import torch

    a, b = torch.from_numpy(qf), torch.from_numpy(gf)
    m, n = a.size(0), b.size(0)
    d = torch.pow(a, 2).sum(dim=1, keepdim=True).expand(m, n) + \
        torch.pow(b, 2).sum(dim=1, keepdim=True).expand(n, m).t()
    d.addmm_(a, b.t(), beta=1, alpha=-2)
    return d.numpy()


def torchreid_eval(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """torchreid.metrics.rank.eval_market1501's algorithm (AP cumulated with numpy)."""
    indices = np.argsort(distmat, axis=1)
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_ap = [], []
    for i in range(len(q_pids)):
        order = indices[i]
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        raw = matches[i][keep]
        if not raw.any():
            continue
        cmc = raw.cumsum()
        all_ap.append(((cmc / np.arange(1, len(cmc) + 1)) * raw).sum() / raw.sum())
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
    return np.asarray(all_cmc, np.float32).mean(0), float(np.mean(all_ap))


def stage_anchor(data, args):
    qf, gf, qp, qc, gp, gc = data
    t0 = time.perf_counter()
    d = torchreid_distance(qf, gf)
    t1 = time.perf_counter()
    cmc, m_ap = torchreid_eval(d, qp, gp, qc, gc)
    return {"mAP": m_ap, "cmc": cmc[:20].tolist(), "anchor_distance_s": t1 - t0,
            "anchor_eval_s": time.perf_counter() - t1}


def write_features_file(path, data) -> None:
    from reidcli.io.h5 import FeaturesFile, SplitFeatures, write_features

    qf, gf, qp, qc, gp, gc = data
    split = lambda name, x, p, c: SplitFeatures(x, [f"{name}/{i}.jpg" for i in range(len(x))], p, c)
    write_features(path, FeaturesFile({"query": split("query", qf, qp, qc), "gallery": split("gallery", gf, gp, gc)},
                                      attrs={"dataset_format": "market1501"}))


def anchor_process(path: str) -> None:
    """The anchor as a user's script runs it: import torch, read the arrays, evaluate."""
    import h5py
    import torch  # noqa: F401  (torchreid imports it to compute the distance)

    with h5py.File(path, "r") as f:
        q, g = f["query"], f["gallery"]
        qf, qp, qc = q["features"][()], q["pids"][()], q["camids"][()]
        gf, gp, gc = g["features"][()], g["pids"][()], g["camids"][()]
    cmc, m_ap = torchreid_eval(torchreid_distance(qf, gf), qp, gp, qc, gc)
    print(f"{m_ap:.6f} {cmc[0]:.6f}")


def whole_process(data, args) -> None:
    """Seconds of ``reid evaluate f.h5`` and of the anchor's process on the same file."""
    import subprocess
    import tempfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "f.h5")
        write_features_file(path, data)
        cmds = {"ours": [sys.executable, str(root / "bin" / "reid"), "-q", "evaluate", path, "--json"],
                "anchor": [sys.executable, __file__, "--anchor-process", path]}
        times = {k: [] for k in cmds}
        for _ in range(args.repeats):
            for name, cmd in cmds.items():
                t = time.perf_counter()
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                times[name].append(time.perf_counter() - t)
                if name == "ours":
                    import json

                    m = json.loads(out)
                    got = f"{m['mAP']:.6f} {m['rank1']:.6f}"
                else:
                    want = out.split()
    ours, anchor = (statistics.median(times[k]) for k in ("ours", "anchor"))
    print(f"{'whole process: reid evaluate f.h5':<34}{ours:>9.2f}")
    print(f"{'whole process: anchor script':<34}{anchor:>9.2f}")
    print(f"ratio, whole process: {anchor / ours:.2f}x (mAP, R1 ours {got}, anchor {' '.join(want)})")


def _child(fn, data, args, conn):
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    base = _rss_mb()
    t0 = time.perf_counter()
    out = fn(data, args)
    out["seconds"] = time.perf_counter() - t0
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
    conn.send(out)


def run_stage(fn, data, args) -> dict:
    ctx = mp.get_context("fork")
    runs = []
    for _ in range(args.repeats):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_child, args=(fn, data, args, child))
        p.start()
        out = parent.recv()
        p.join()
        runs.append(out)
    best = dict(runs[0])
    best["seconds"] = statistics.median(r["seconds"] for r in runs)
    best["peak_mb"] = max(r["peak_mb"] for r in runs)
    for k in ("anchor_distance_s", "anchor_eval_s"):
        if k in best:
            best[k] = statistics.median(r[k] for r in runs)
    return best


def bench(scale: str, separation: float, args) -> None:
    t0 = time.perf_counter()
    data = make_features(scale, args.dim, separation=separation)
    n_q, n_g = len(data[0]), len(data[1])
    print(f"\n{scale}: {n_q} x {n_g}, {args.dim}-d, separation {separation} (features made in "
          f"{time.perf_counter() - t0:.1f} s); median of {args.repeats}; load {os.getloadavg()[0]:.2f}", flush=True)
    rows = {"distance": run_stage(stage_distance, data, args), "ours": run_stage(stage_ours, data, args)}
    want_anchor = args.anchor and (scale == "market" or args.anchor_msmt)
    if want_anchor:
        rows["anchor"] = run_stage(stage_anchor, data, args)
    print(f"{'stage':<34}{'seconds':>9}{'peak +MB':>10}")
    d, o = rows["distance"], rows["ours"]
    print(f"{'ours: distance (chunked GEMM)':<34}{d['seconds']:>9.2f}{d['peak_mb']:>10.0f}")
    print(f"{'ours: ranking + metrics':<34}{o['seconds'] - d['seconds']:>9.2f}{'':>10}")
    print(f"{'ours: end to end':<34}{o['seconds']:>9.2f}{o['peak_mb']:>10.0f}")
    if want_anchor:
        a = rows["anchor"]
        print(f"{'anchor: full distance matrix':<34}{a['anchor_distance_s']:>9.2f}")
        print(f"{'anchor: argsort + per-query loop':<34}{a['anchor_eval_s']:>9.2f}")
        print(f"{'anchor: end to end':<34}{a['seconds']:>9.2f}{a['peak_mb']:>10.0f}")
        ranking = max(o["seconds"] - d["seconds"], 1e-9)
        print(f"ratio vs in-process torchreid algorithm: end to end {a['seconds'] / o['seconds']:.2f}x, "
              f"ranking+metrics {a['anchor_eval_s'] / ranking:.2f}x")
        print(f"|mAP diff| = {abs(a['mAP'] - o['mAP']):.2e}, "
              f"max |CMC diff| (ranks 1-20) = {np.abs(np.subtract(a['cmc'], o['cmc'])).max():.2e}")
    print(f"ours: mAP {o['mAP']:.4f}  R1 {o['cmc'][0]:.4f}  mINP {o['mINP']:.4f}")
    if scale == "market" and args.anchor:
        whole_process(data, args)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=["market", "msmt", "both"], default="market")
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--no-anchor", dest="anchor", action="store_false")
    ap.add_argument("--anchor-msmt", action="store_true", help="also the anchor at MSMT17 scale (~16 GB)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--separation", default="0.25,0.35",
                    help="identity-centre weights, comma-separated (0.25: hard, 0.35: trained-like)")
    ap.add_argument("--anchor-process", metavar="F.H5", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.anchor_process:
        return anchor_process(args.anchor_process)
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"device {args.device}", file=sys.stderr)
    for scale in (["market", "msmt"] if args.scale == "both" else [args.scale]):
        for sep in (float(v) for v in args.separation.split(",")):
            bench(scale, sep, args)


if __name__ == "__main__":
    main()
