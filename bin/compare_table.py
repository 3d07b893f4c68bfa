#!/usr/bin/env python3
"""Print the `make compare` table (bin/compare.mk) from the runs' JSON files.

    python bin/compare_table.py --out compare --rounds 5 --iters 200 --curves compare/curves.png \
        [--cross-modal compare/crossmodal/crossmodal.json] --row "pseudo=compare/pseudo=compare/direct.json" ...

Each ``--row NAME=DIR=DIRECT`` names a run folder holding ``r1.json .. rN.json`` (``reid
evaluate --json``), ``rN.labels.quality.json`` (``reid cluster --json``) and ``row.time.json``
(bin/run-timed), and the direct-transfer result of the source model it started from; a run
without clustering (camstyle, mar) has no quality file and shows "-" as its pair precision.
Columns: mAP and Rank-1 after the last round, the share of the direct -> oracle mAP gap it
closed (against the shared direct transfer and oracle in OUT), mAP after each round, the
pair precision of the last round's pseudo-labels, and the CPU / wall seconds of the row's
own stages with the 1-minute load average at its end. Above the table, the bed's
calibration block (`reidcli.eval.bed`): direct / oracle, the share of the gap plain
``pseudo`` closes (when it is a row), and the cross-modal ratios (with --cross-modal); with
--curves, one PNG of every row's target mAP against optimizer steps (ITERS per round).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # reidcli from this checkout

from reidcli.eval.bed import agreement_auc, calibration_block, calibration_checks, gap_closed, write_curves  # noqa: E402


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def row(name: str, folder: Path, direct: Path, rounds: int, base: tuple[float, float]) -> list[str]:
    d0, oracle = base
    res = [_load(folder / f"r{i}.json") for i in range(1, rounds + 1)]
    last = res[-1]
    qpath = folder / f"r{rounds}.labels.quality.json"
    quality = _load(qpath).get("quality", {}) if qpath.exists() else None
    timing = _load(folder / "row.time.json")
    own_direct = 100 * _load(direct)["mAP"]
    m = 100 * last["mAP"]
    closed = gap_closed(m, d0, oracle)
    label = name if abs(own_direct - d0) < 1e-9 else f"{name} (direct {own_direct:.1f})"
    return [label, f"{m:.1f}", f"{100 * last['rank1']:.1f}", f"{100 * closed:.0f}%",
            " ".join(f"{100 * r['mAP']:.1f}" for r in res),
            "-" if quality is None else f"{quality.get('pair_precision', float('nan')):.3f}",
            f"{timing['cpu_s']:.0f}", f"{timing['wall_s']:.0f}", f"{timing['load'][0]:.1f}"]


def render(rows: list[list[str]]) -> str:
    head = ["method", "mAP", "Rank-1", "gap closed", "mAP by round", "pair prec.", "CPU s", "wall s", "load"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def fmt(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in (0, 4) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--row", action="append", default=[], help="NAME=DIR=DIRECT_JSON")
    ap.add_argument("--iters", type=int, default=0, help="optimizer steps per round (the curves' x axis)")
    ap.add_argument("--curves", type=Path, help="write the learning curves here (PNG)")
    ap.add_argument("--cross-modal", type=Path, help="the cross-modal calibration's JSON (reidcli.eval.bed)")
    args = ap.parse_args(argv)
    d0 = 100 * _load(args.out / "direct.json")["mAP"]
    oracle_res = _load(args.out / "oracle.json")
    oracle = 100 * oracle_res["mAP"]
    direct_res = _load(args.out / "direct.json")
    rows = [["direct transfer", f"{d0:.1f}", f"{100 * direct_res['rank1']:.1f}", "0%", "", "", "", "", ""]]
    curves = {}
    pseudo = None
    for spec in args.row:
        name, folder, direct = spec.split("=")
        rows.append(row(name, Path(folder), Path(direct), args.rounds, (d0, oracle)))
        maps = [100 * _load(Path(folder) / f"r{i}.json")["mAP"] for i in range(1, args.rounds + 1)]
        curves[name] = [(0, 100 * _load(Path(direct))["mAP"])] + [(i * args.iters, m) for i, m in enumerate(maps, 1)]
        if name == "pseudo":
            pseudo = maps[-1]
    cross = _load(args.cross_modal) if args.cross_modal else None
    print(calibration_block(calibration_checks(d0, oracle, pseudo, cross)))
    if cross is not None:
        print(f"  (cross-modal mAP: ir->vis {100 * cross['ir2vis']:.1f}, vis->vis {100 * cross['vis2vis']:.1f}, "
              f"chance {100 * cross['chance']:.1f}"
              + (f", ir->ir {100 * cross['ir2ir']:.1f})" if "ir2ir" in cross else ")"))
    print()
    if args.curves and curves:
        write_curves(args.curves, curves, references={"direct transfer": d0, "oracle": oracle})
    rows.append(["oracle (target labels)", f"{oracle:.1f}", f"{100 * oracle_res['rank1']:.1f}", "100%", "", "", "", "", ""])
    print(render(rows))
    for spec in args.row:  # MAR's claim: the soft multilabel agreement separates identities better by round
        name, folder, _ = spec.split("=")
        h5s = [Path(folder) / f"r{i}.h5" for i in range(1, args.rounds + 1)]
        if name == "mar" and all(p.exists() for p in h5s):
            try:
                aucs = [agreement_auc(p) for p in h5s]
            except Exception as exc:  # no soft labels (or not a features file): say so, keep the table
                print(f"{name}: no agreement AUC ({str(exc).splitlines()[0][:100]})")
                continue
            print(f"{name}: soft multilabel agreement AUC (same vs different identity, target train) by round: "
                  + " ".join(f"{a:.3f}" for a in aucs))
    steps = f" of {args.iters} steps" if args.iters else ""
    print(f"budget per row: {args.rounds} rounds{steps}; gap closed = (mAP - direct) / (oracle - direct)"
          + (f"; curves: {args.curves}" if args.curves and curves else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
