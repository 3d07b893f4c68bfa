#!/usr/bin/env python3
"""Benchmark the UDA demo goal: adaptation closes >= half of the direct-transfer -> oracle
mAP gap on the synthetic Market -> Duke domains, and `make demo` takes <= 15 minutes.

    python benchmarks/bench_uda.py                   # the demo's defaults, in a temp folder
    python benchmarks/bench_uda.py --out demo-bench METHOD=pseudo ROUNDS=2

Runs ``make -f bin/uda.mk demo`` from scratch (VAR=value arguments are passed to make),
then prints one JSON object: wall time, the mAP / Rank-1 of every row, the fraction of the
gap closed by the last round, and whether both goals are met (exit 1 when not).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_GAP, GOAL_MINUTES = 0.5, 15.0


def _make_vars(pairs: list[str]) -> dict[str, str]:
    out = {}
    for p in pairs:
        if "=" not in p:
            raise SystemExit(f"bench_uda.py: error: expected VAR=value, got {p!r}")
        k, v = p.split("=", 1)
        out[k] = v
    return out


def _result(path: Path) -> dict:
    r = json.loads(path.read_text())
    return {"mAP": round(100 * r["mAP"], 2), "rank1": round(100 * r["rank1"], 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="pipeline folder (default: a temporary one, removed)")
    ap.add_argument("vars", nargs="*", help="VAR=value for bin/uda.mk")
    args = ap.parse_args(argv)
    mvars = _make_vars(args.vars)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_uda_"))
    env = dict(os.environ, PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}")
    method, rounds = mvars.get("METHOD", "pseudo"), int(mvars.get("ROUNDS", "4"))  # bin/uda.mk's defaults
    mvars.setdefault("RUN", method)  # the run folder, so that the rounds are found whatever the variables
    cmd = ["make", "-s", "-f", "bin/uda.mk", "demo", f"OUT={out}", *[f"{k}={v}" for k, v in mvars.items()]]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    minutes = (time.perf_counter() - t0) / 60
    if proc.returncode:
        print(f"bench_uda.py: error: '{' '.join(cmd)}' failed (exit {proc.returncode})", file=sys.stderr)
        return 1
    rows = {"direct": _result(out / "direct.json")}
    rows.update({f"round{i}": _result(out / mvars["RUN"] / f"r{i}.json") for i in range(1, rounds + 1)})
    rows["oracle"] = _result(out / "oracle.json")
    gap = rows["oracle"]["mAP"] - rows["direct"]["mAP"]
    closed = (rows[f"round{rounds}"]["mAP"] - rows["direct"]["mAP"]) / gap if gap > 0 else float("nan")
    report = {"benchmark": "uda_demo", "method": method, "rounds": rounds, "minutes": round(minutes, 2),
              "rows": rows, "gap_closed": round(closed, 3),
              "goal_gap_met": bool(closed >= GOAL_GAP), "goal_time_met": bool(minutes <= GOAL_MINUTES),
              "cpu_count": os.cpu_count(), "make_vars": mvars}
    print(json.dumps(report))
    print(proc.stdout, file=sys.stderr)
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    return 0 if report["goal_gap_met"] and report["goal_time_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
