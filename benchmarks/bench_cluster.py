"""Benchmark `reid cluster`'s default path (sparse k-reciprocal Jaccard + DBSCAN) against the
published dense algorithm (SpCL / Cluster-Contrast ``compute_jaccard_distance`` + scikit-learn
DBSCAN), on deterministic re-ID-shaped features: identity centres + camera offsets + noise,
L2-normalised, 2048-d, about 17 images per identity, 6 cameras.

Each (size, implementation) runs in its own subprocess; peak memory is the largest RSS seen
by a 5 ms sampling thread minus the RSS once the features exist. ARI compares our labels with
the reference's on the same features.

    python benchmarks/bench_cluster.py --sizes 12936,16522,32621,200000 --ref-max 16522
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests"))  # reference_jaccard


def make_features(n: int, d: int = 2048, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_ids = max(2, n // 17)
    centres = rng.standard_normal((n_ids, d), dtype=np.float32)
    cams = rng.standard_normal((6, d), dtype=np.float32)
    pid = rng.integers(0, n_ids, n)
    x = centres[pid]
    x += 0.8 * cams[rng.integers(0, 6, n)]
    x += 1.6 * rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, pid


class PeakRSS:
    def __init__(self):
        self.base = self.peak = self._rss()
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self):
        while not self._stop:
            self.peak = max(self.peak, self._rss())
            time.sleep(0.005)

    def stop(self) -> float:
        self._stop = True
        self._t.join()
        return (max(self.peak, self._rss()) - self.base) / 2**30


def reference(x: np.ndarray, k1: int, k2: int, eps: float, min_samples: int) -> tuple[np.ndarray, dict]:
    """Dense published algorithm (Cluster-Contrast faiss_rerank, CPU search), float32: the
    tests' dense reference (tests/reference_jaccard.py) on faiss's k1 nearest neighbours."""
    import faiss
    from reference_jaccard import dense_jaccard
    from sklearn.cluster import DBSCAN

    t0 = time.perf_counter()
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    _, rank = index.search(x, k1)
    jac = dense_jaccard(x, k1, k2, "spcl", rank=rank, dtype=np.float32)
    t1 = time.perf_counter()
    labels = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed", n_jobs=-1).fit_predict(jac)
    return labels, {"jaccard_s": t1 - t0, "dbscan_s": time.perf_counter() - t1}


def ours(x: np.ndarray, k1: int, k2: int, eps: float, min_samples: int) -> tuple[np.ndarray, dict]:
    from reidcli.cluster import cluster_features

    res = cluster_features(x, k1=k1, k2=k2, eps=eps, min_samples=min_samples)
    return res.labels, {k: round(v, 3) for k, v in res.timings.items()}


def one(args) -> None:
    import faiss  # noqa: F401  (imports are not what is measured: torch's alone is ~0.3 GiB)
    import scipy.sparse  # noqa: F401
    import sklearn.cluster  # noqa: F401
    import torch  # noqa: F401


    x, pid = make_features(args.one, args.dim)
    mem = PeakRSS()
    t0 = time.perf_counter()
    fn = reference if args.impl == "ref" else ours
    labels, extra = fn(x, args.k1, args.k2, args.eps, args.min_samples)
    total = time.perf_counter() - t0
    peak = mem.stop()
    np.save(args.labels_out, labels)
    from sklearn.metrics import adjusted_rand_score

    print(json.dumps({"n": args.one, "impl": args.impl, "time_s": total, "peak_gib": peak,
                      "n_clusters": int(labels.max() + 1), "n_outliers": int((labels < 0).sum()),
                      "ari_vs_ids": adjusted_rand_score(pid, labels), **extra}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="12936,16522,32621,200000")
    ap.add_argument("--ref-max", type=int, default=16522, help="largest size for the dense reference")
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--k1", type=int, default=30)
    ap.add_argument("--k2", type=int, default=6)
    ap.add_argument("--eps", type=float, default=0.6)
    ap.add_argument("--min-samples", type=int, default=4)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--impl", default="ours", help=argparse.SUPPRESS)
    ap.add_argument("--labels-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return one(args)
    from sklearn.metrics import adjusted_rand_score

    tmp = tempfile.mkdtemp(prefix="bench_cluster_")
    print(f"{'N':>7} {'impl':>4} {'time s':>8} {'peak GiB':>9} {'clusters':>8} {'outliers':>8} "
          f"{'ARI ids':>8} {'ARI ref':>8} {'speed-up':>8} {'mem ratio':>9} {'load':>5}  stages (s)")
    for n in (int(s) for s in args.sizes.split(",")):
        rows = {}
        for impl in (("ref", "ours") if n <= args.ref_max else ("ours",)):
            out = os.path.join(tmp, f"{impl}_{n}.npy")
            cmd = [sys.executable, __file__, "--one", str(n), "--impl", impl, "--labels-out", out,
                   "--dim", str(args.dim), "--k1", str(args.k1), "--k2", str(args.k2), "--eps", str(args.eps),
                   "--min-samples", str(args.min_samples)]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            r["labels"] = np.load(out)
            rows[impl] = r
        for impl, r in rows.items():
            ari_ref = speed = memr = ""
            if impl == "ours" and "ref" in rows:
                ari_ref = f"{adjusted_rand_score(rows['ref']['labels'], r['labels']):.5f}"
                speed = f"{rows['ref']['time_s'] / r['time_s']:.2f}x"
                memr = f"{r['peak_gib'] / max(rows['ref']['peak_gib'], 1e-9):.3f}"
            stages = " ".join(f"{k[:-2]}={r[k]:.1f}" for k in ("knn_s", "encode_s", "jaccard_s", "dbscan_s") if k in r)
            load = os.getloadavg()[0]
            print(f"{n:>7} {impl:>4} {r['time_s']:>8.2f} {r['peak_gib']:>9.3f} {r['n_clusters']:>8} "
                  f"{r['n_outliers']:>8} {r['ari_vs_ids']:>8.4f} {ari_ref:>8} {speed:>8} {memr:>9} "
                  f"{load:>5.1f}  {stages}", flush=True)


if __name__ == "__main__":
    main()
