"""Presenting an `EvalResult`: the rich table, the JSON object, the per-query CSV and the
inputs of the ranked-list picture."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Optional

import numpy as np

from reidcli.eval.api import EvalResult, Options, _rank_options
from reidcli.eval.distance import pairwise_distance
from reidcli.eval.ranking import AP_FORMULAS
from reidcli.io.atomic import atomic_path


def to_json(res: EvalResult) -> str:
    return json.dumps(res.as_dict(), allow_nan=True)


def _fmt(res: EvalResult, key: str) -> str:
    value = 100 * res.mean[key]
    if res.std is None:
        return f"{value:.2f}"
    return f"{value:.2f} ± {100 * res.std[key]:.2f}"


def render_table(res: EvalResult, console=None) -> None:
    """A rich table of the metrics (percent) on stdout, the AP formula in its caption."""
    from rich.console import Console
    from rich.table import Table

    m = res.metrics
    title = f"{res.protocol} protocol, {res.metric} distance" + (", re-ranked" if res.rerank else "")
    table = Table(title=title, caption=f"AP: {AP_FORMULAS[m.ap]}; CMC: {m.cmc_kind}", show_header=True)
    table.add_column("metric")
    table.add_column("value (%)", justify="right")
    table.add_row("mAP", _fmt(res, "mAP"))
    for k in m.cmc:
        table.add_row(f"Rank-{k}", _fmt(res, f"rank{k}"))
    table.add_row("mINP", _fmt(res, "mINP"))
    trials = f", {res.n_trials} trials (mean ± std)" if res.n_trials > 1 else ""
    table.add_row("queries", f"{m.n_valid} valid / {m.n_query}{trials}")
    (console or Console(soft_wrap=True)).print(table)


def write_per_query(path: str | os.PathLike, res: EvalResult, query: dict) -> Path:
    """One CSV row per query of the (first) trial: path, pid, camid, matches, first-hit
    rank (0 = no valid match, skipped), AP and INP (empty when skipped)."""
    pq, rows = res.per_query, res.q_rows
    paths = [query["paths"][i] for i in rows] if query.get("paths") is not None else [""] * len(rows)
    with atomic_path(Path(path)) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["query", "pid", "camid", "n_matches", "first_hit_rank", "ap", "inp"])
        for j, i in enumerate(rows):
            ok = pq.npos[j] > 0
            w.writerow([paths[j], int(query["pids"][i]), int(query["camids"][i]), int(pq.npos[j]),
                        int(pq.first[j]), f"{pq.ap[j]:.6f}" if ok else "",
                        f"{pq.npos[j] / pq.last[j]:.6f}" if ok else ""])
    return Path(path)


def ranked_rows(res: EvalResult, query: dict, gallery: dict, opts: Options, *, n: int, top: int,
                normalized: bool) -> list[dict]:
    """Top-``top`` valid gallery items of ``n`` seeded sample queries (plain distances)."""
    import torch

    from reidcli.eval.ranking import _masks

    valid_q = np.flatnonzero(res.per_query.valid)
    rng = np.random.default_rng(opts.seed)
    pick = np.sort(rng.choice(valid_q, size=min(n, len(valid_q)), replace=False))
    qi, gi = res.q_rows[pick], res.g_rows
    qf, gf = np.asarray(query["features"])[qi], np.asarray(gallery["features"])[gi]
    d = pairwise_distance(qf, gf, opts.metric, normalized=normalized)
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.int64))  # noqa: E731
    qp, qc, gp, gc = (np.asarray(x) for x in (query["pids"], query["camids"], gallery["pids"], gallery["camids"]))
    valid, _ = _masks(torch.from_numpy(d), t(qp[qi]), t(qc[qi]), t(gp[gi]), t(gc[gi]),
                      _rank_options(res.protocol, opts))
    valid = valid.numpy()
    out = []
    for j, i in enumerate(qi):
        order = [o for o in np.argsort(d[j], kind="stable") if valid[j, o]][:top]
        hits = [(gallery["paths"][gi[o]], int(gp[gi[o]]), bool(gp[gi[o]] == qp[i])) for o in order]
        out.append({"path": query["paths"][i], "pid": int(qp[i]), "camid": int(qc[i]), "hits": hits})
    return out


def cmc_label(res: EvalResult) -> str:
    r1 = res.mean.get("rank1")
    r1s = f", R1 {100 * r1:.1f}%" if r1 is not None else ""
    return f"{res.protocol} (mAP {100 * res.mean['mAP']:.1f}%{r1s})"


def image_root(explicit: Optional[str], file_root: str) -> str:
    return explicit if explicit else file_root
