#!/usr/bin/env python3
"""Print the UDA demo table from `reid evaluate --json` files (bin/uda.mk).

    python bin/demo_table.py --method mmt demo/direct.json demo/mmt/r1.json ... demo/oracle.json

Rows: direct transfer (the first file), one per adaptation round, the oracle (the last
file, trained with the target's labels; --no-oracle when the target has none, with
--oracle-off when it was turned off instead, uda.mk's ORACLE=0); columns mAP and Rank-1 in
percent. The last line states how much of the direct-transfer -> oracle mAP gap the final
round closes.
Standard library only, so it runs without reidcli.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def rows(paths: list[Path], method: str, oracle: bool = True) -> list[tuple[str, float, float]]:
    out = []
    for i, p in enumerate(paths):
        res = json.loads(p.read_text())
        if i == 0:
            name = "direct transfer"
        elif oracle and i == len(paths) - 1:
            name = "oracle (target labels)"
        else:
            name = f"{method} round {i}"
        out.append((name, 100 * float(res["mAP"]), 100 * float(res["rank1"])))
    return out


def render(table: list[tuple[str, float, float]], oracle: bool = True, off: bool = False) -> str:
    """The table's lines; without ``oracle`` the last line says why there is no oracle row:
    ``off`` (turned off, uda.mk's ORACLE=0) or the target's missing training labels."""
    w = max(len(r[0]) for r in table)
    lines = [f"{'model':<{w}}  {'mAP':>6}  {'Rank-1':>6}", f"{'-' * w}  ------  ------"]
    lines += [f"{n:<{w}}  {m:6.1f}  {r:6.1f}" for n, m, r in table]
    if not oracle:
        why = " (ORACLE=0)" if off else ": the target's training split has no identity labels"
        lines.append(f"no oracle row{why}; the last round "
                     f"changed mAP by {table[-1][1] - table[0][1]:+.1f} points over direct transfer")
        return "\n".join(lines)
    direct, last, oracle = table[0][1], table[-2][1], table[-1][1]
    gap = oracle - direct
    if len(table) > 2 and gap > 0:
        closed = (last - direct) / gap
        verdict = "goal met" if closed >= 0.5 else "goal NOT met"
        lines.append(f"gap closed by the last round: {100 * closed:.0f}% of "
                     f"{gap:.1f} mAP points ({verdict}: >= 50%)")
    elif gap <= 0:
        lines.append(f"no gap: direct transfer {direct:.1f} >= oracle {oracle:.1f} mAP; "
                     "make the domains harder")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="mmt")
    ap.add_argument("--no-oracle", action="store_true",
                    help="the last file is a round, not an oracle (a target without training labels)")
    ap.add_argument("--oracle-off", action="store_true",
                    help="with --no-oracle: the oracle was turned off (uda.mk ORACLE=0), not impossible")
    ap.add_argument("results", nargs="+", type=Path, help="direct, rounds..., oracle")
    args = ap.parse_args(argv)
    if len(args.results) < 2:
        print("demo_table.py: error: give at least the direct-transfer and "
              + ("one round's" if args.no_oracle else "oracle") + " results", file=sys.stderr)
        return 2
    oracle = not args.no_oracle
    print(render(rows(args.results, args.method, oracle), oracle, off=args.oracle_off))
    return 0


if __name__ == "__main__":
    sys.exit(main())
