#!/usr/bin/env python3
"""Benchmark `reid finetune --method mar` (Zhang et al. 2020 / MAR) on the demo's synthetic pair:
does the soft-multilabel agreement of true target pairs rise, and what does a step cost?

    python benchmarks/bench_mar.py                          # demo size, in a temp folder
    python benchmarks/bench_mar.py --out bench-mar IDS=16 PRE_EPOCHS=5 ITERS=20

Runs bin/uda.mk (the demo's data, source model and direct transfer, then ONE round of
``mar`` with the source as the reference set, and one round of ``pseudo`` with the same
batch and steps), then measures on the target's training images:

* the label agreement A(y_i, y_j) = sum_k min(y_ik, y_jk) (MAR eq. 2) of the soft
  multilabels y = softmax(30 a^T f) over the reference agents a, before (source model, the
  agents `mar` starts from: each reference identity's mean unit-norm embedding) and after
  the round (its model and learnt agents); the ROC AUC of A for same-identity vs
  different-identity pairs (the target's identities are read here, for the measure only);
* target mAP / Rank-1 before (direct transfer) and after (``reid evaluate``);
* optimizer steps per second of ``mar`` relative to ``pseudo`` at the same P x K batch (from
  the engines' per-epoch ``img_s``; both draw P x K images per step: ``mar`` half target,
  half reference).

Prints one JSON object. VAR=value arguments go to make (bin/uda.mk's variables).
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
sys.path.insert(0, str(ROOT))  # this checkout's reidcli, as bin/reid (which make runs) uses
# one round of two epochs: MDL starts after the first (MAR's warm-up), as the recipe does
DEFAULTS = {"ROUNDS": "1", "EPOCHS": "2", "ITERS": "40"}


def _make(out: Path, mvars: dict, method: str, targets: list[str]) -> float:
    env = dict(os.environ, PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}")
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    cmd = ["make", "-s", "-f", "bin/uda.mk", f"OUT={out}", f"METHOD={method}", f"RUN={method}",
           f"REID={sys.executable} {ROOT / 'bin' / 'reid'}", f"PYTHON={sys.executable}",
           *[f"{k}={v}" for k, v in mvars.items()], *targets]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"bench_mar.py: error: '{' '.join(cmd)}' failed (exit {proc.returncode})")
    return time.perf_counter() - t0


def _result(path: Path) -> dict:
    r = json.loads(path.read_text())
    return {"mAP": round(100 * r["mAP"], 2), "rank1": round(100 * r["rank1"], 2)}


def _steps_per_s(log: Path, batch: int) -> float:
    """Mean optimizer steps per second over the round's epochs (engine ``img_s`` / batch)."""
    rows = [json.loads(x) for x in log.read_text().splitlines()]
    speeds = [r["img_s"] for r in rows if r.get("type") == "epoch"]
    return sum(speeds) / len(speeds) / batch


def _embed(ckpt: Path, root: Path, records, net: str | None = None):
    import torch
    import torch.nn.functional as F

    from reidcli.features import embed_records
    from reidcli.models import load_network

    model, ck = load_network(ckpt, net=net)
    f, _ = embed_records(model, root, records, size=tuple(ck["input_size"]), mean=ck["pixel_mean"],
                         std=ck["pixel_std"], workers=0, normalize=False, desc="bench")
    return F.normalize(torch.as_tensor(f).float(), dim=1), ck


def agreement_auc(ckpt: Path, target: Path, reference: Path, agents=None) -> float:
    """ROC AUC of the label agreement for same- vs different-identity target training pairs.
    ``agents`` None: each reference identity's mean unit-norm embedding (mar's start)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from sklearn.metrics import roc_auc_score

    from reidcli.data.layouts import load_dataset
    from reidcli.data.records import relabel
    from reidcli.losses.soft_multilabel import SoftMultilabel, label_agreement

    tgt = load_dataset(target)
    recs = tgt.split("train")
    ft, _ = _embed(ckpt, tgt.root, recs)
    if agents is None:
        ref = load_dataset(reference)
        rrecs = [r for r in ref.split("train") if r.pid >= 0]
        fr, _ = _embed(ckpt, ref.root, rrecs)
        y, _ = relabel([r.pid for r in rrecs])
        y = torch.as_tensor(y).long()
        agents = torch.zeros(int(y.max()) + 1, fr.shape[1]).index_add_(0, y, fr)
    with torch.no_grad():
        a = label_agreement(SoftMultilabel(30.0)(ft, F.normalize(agents.float(), dim=1)))
    i, j = np.triu_indices(len(recs), k=1)
    pids = np.asarray([r.pid for r in recs])
    return float(roc_auc_score(pids[i] == pids[j], a.numpy()[i, j]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="pipeline folder (default: a temporary one, removed)")
    ap.add_argument("vars", nargs="*", help="VAR=value for bin/uda.mk")
    args = ap.parse_args(argv)
    mvars = dict(DEFAULTS)
    for pair in args.vars:
        if "=" not in pair:
            raise SystemExit(f"bench_mar.py: error: expected VAR=value, got {pair!r}")
        k, v = pair.split("=", 1)
        mvars[k] = v
    if mvars["ROUNDS"] != "1":
        raise SystemExit("bench_mar.py: error: the benchmark measures one round; drop ROUNDS")
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_mar_"))
    base_s = _make(out, mvars, "mar", [str(out / "source.pt"), str(out / "direct.json")])
    mar_s = _make(out, mvars, "mar", [str(out / "mar" / "r1.json")])
    pseudo_s = _make(out, mvars, "pseudo", [str(out / "pseudo" / "r1.json")])

    import torch

    target, reference = out / "data" / mvars.get("TGT_DOMAIN", "duke"), out / "data" / mvars.get("SRC_DOMAIN", "market")
    batch = int(mvars.get("P", 16)) * int(mvars.get("K", 4))
    agents = torch.load(out / "mar" / "r1.pt", weights_only=True)["nets"]["agents"]["weight"]
    mar_steps, pseudo_steps = (_steps_per_s(out / m / "r1.log.jsonl", batch) for m in ("mar", "pseudo"))
    report = {
        "benchmark": "mar", "make_vars": mvars, "batch": batch,
        "agreement_auc": {"before": round(agreement_auc(out / "source.pt", target, reference), 4),
                          "after": round(agreement_auc(out / "mar" / "r1.pt", target, reference, agents), 4)},
        "target": {"before": _result(out / "direct.json"), "mar": _result(out / "mar" / "r1.json"),
                   "pseudo": _result(out / "pseudo" / "r1.json")},
        "steps_per_s": {"mar": round(mar_steps, 3), "pseudo": round(pseudo_steps, 3),
                        "mar_vs_pseudo": round(mar_steps / pseudo_steps, 3)},
        "wall_s": {"base": round(base_s, 1), "mar_round": round(mar_s, 1), "pseudo_round": round(pseudo_s, 1)},
        "load_average": [round(x, 2) for x in os.getloadavg()], "cpu_count": os.cpu_count(),
    }
    print(json.dumps(report))
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
