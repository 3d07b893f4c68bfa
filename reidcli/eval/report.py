"""Presenting an `EvalResult`: the table rows, the JSON object, and the files `Outputs`
asks for (the per-query CSV, the ranked-list grid and the CMC curve, drawn by
`reidcli.eval.plots`). It reads results (`reidcli.eval.result`) and never evaluates:
`reidcli.eval.api` calls `write_outputs`."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reidcli.eval.ranking import AP_FORMULAS
from reidcli.eval.result import EvalResult, FilesResult
from reidcli.io.atomic import atomic_write_bytes
from reidcli.utils.errors import ConfigError, InputError
from reidcli.utils.params import Interval, check_params, reject_given
from reidcli.utils.params import Options as OneOf

RANKS_QUERIES = {
    "sample": "seeded sample queries",
    "worst": "worst queries (lowest AP)",
    "best": "best queries (highest AP)",
}
OUTPUT_CONSTRAINTS = {"top": [Interval(int, 1, 50)], "n_queries": [Interval(int, 1, None)],
                      "ranks_queries": [OneOf(RANKS_QUERIES)]}
@dataclass(frozen=True)
class RanksPicture:
    """What the ranked-list grid shows when not told (None in `Outputs`: not given)."""

    top: int = 10
    n_queries: int = 8
    ranks_queries: str = "sample"


RANKS_DEFAULTS = dataclasses.asdict(RanksPicture())
RANKS_OPTIONS = (*RANKS_DEFAULTS, "image_root")


@dataclass
class Outputs:
    """Files an evaluation may write besides its metrics (each None: not written).

    Attributes:
        per_query: CSV of each query's AP and first hit.
        ranks_png: grid of ``n_queries`` valid queries, each with its AP, and their ``top``
            nearest valid gallery images, each with its rank, identity and distance, ranked
            by the distances the metrics used (re-ranked ones with re-ranking); images are
            read under ``image_root`` (default: the features file's root); one missing is an
            `InputError` naming it, before any file is written (`require_images`).
        ranks_queries: which queries the grid shows: ``sample`` (seeded, in query order),
            ``worst`` (lowest AP first) or ``best`` (highest AP first); equal APs in query
            order.
        cmc_png: the CMC curve, labelled with the features file's name; with several
            features files (`reidcli.eval.api.evaluate_files`), one curve per file.
    """

    per_query: Path | None = None
    ranks_png: Path | None = None
    top: int | None = None  # None: not given (`RANKS_DEFAULTS`); these four need ranks_png
    n_queries: int | None = None
    ranks_queries: str | None = None
    image_root: Path | None = None
    cmc_png: Path | None = None

    def check(self) -> None:
        check_params({k: v for k, v in vars(self).items() if v is not None}, OUTPUT_CONSTRAINTS)
        reject_given(vars(self), RANKS_OPTIONS, applies=self.ranks_png is not None,
                     what="without --ranks-png (it sets what the ranked-list picture shows)")

    def filled(self) -> "Outputs":
        """A copy with the ranked-list settings not given at their defaults."""
        return dataclasses.replace(self, **{k: v for k, v in RANKS_DEFAULTS.items() if getattr(self, k) is None})


def to_json(res: EvalResult | FilesResult) -> str:
    return json.dumps(res.as_dict(), allow_nan=True)


def _fmt(res: EvalResult, key: str) -> str:
    value = 100 * res.mean[key]
    if res.std is None:
        return f"{value:.2f}"
    return f"{value:.2f} ± {100 * res.std[key]:.2f}"


def table(res: EvalResult) -> dict:
    """The metrics (percent) as the keyword arguments of a (metric, value) table: title,
    rows, the AP formula and CMC kind in the caption."""
    m = res.metrics
    title = f"{res.protocol} protocol, {res.metric} distance" + (", re-ranked" if res.rerank else "")
    rows = [("mAP", _fmt(res, "mAP")), *((f"Rank-{k}", _fmt(res, f"rank{k}")) for k in m.cmc),
            ("mINP", _fmt(res, "mINP"))]
    trials = f", {res.n_trials} trials (mean ± std)" if res.n_trials > 1 else ""
    rows.append(("queries", f"{m.n_valid} valid / {m.n_query}{trials}"))
    return {"title": title, "rows": rows, "caption": f"AP: {AP_FORMULAS[m.ap]}; CMC: {m.cmc_kind}",
            "value_header": "value (%)"}


def files_table(res: FilesResult) -> dict:
    """One row per file (its metrics in percent), then the mean and the standard deviation
    over the files: the keyword arguments of `reidcli.cli.table.print_wide_table`."""
    first = res.results[0].metrics
    keys = ["mAP", *(f"rank{k}" for k in first.cmc), "mINP"]
    header = ["file", "mAP", *(f"Rank-{k}" for k in first.cmc), "mINP"]
    rows = [[f, *(f"{100 * r.mean[k]:.2f}" for k in keys)] for f, r in zip(res.files, res.results)]
    rows.append(["mean", *(f"{100 * res.mean[k]:.2f}" for k in keys)])
    rows.append(["std", *(f"{100 * res.std[k]:.2f}" for k in keys)])
    title = (f"{res.protocol} protocol, {res.metric} distance" + (", re-ranked" if res.results[0].rerank else "")
             + f", {len(res.files)} files (mean ± std over files)")
    return {"title": title, "header": header, "rows": rows,
            "caption": f"values in %; AP: {AP_FORMULAS[first.ap]}; CMC: {first.cmc_kind}"}


def write_per_query(path: str | os.PathLike, res: EvalResult, query: dict) -> Path:
    """One CSV row per query of the (first) trial: path, pid, camid, matches, first-hit
    rank (0 = no valid match, skipped), AP and INP (empty when skipped)."""
    pq, rows = res.per_query, res.q_rows
    paths = [query["paths"][i] for i in rows] if query.get("paths") is not None else [""] * len(rows)
    fh = io.StringIO(newline="")
    w = csv.writer(fh)
    w.writerow(["query", "pid", "camid", "n_matches", "first_hit_rank", "ap", "inp"])
    for j, i in enumerate(rows):
        ok = pq.npos[j] > 0
        w.writerow([paths[j], int(query["pids"][i]), int(query["camids"][i]), int(pq.npos[j]),
                    int(pq.first[j]), f"{pq.ap[j]:.6f}" if ok else "",
                    f"{pq.npos[j] / pq.last[j]:.6f}" if ok else ""])
    return atomic_write_bytes(path, fh.getvalue().encode("utf-8", "surrogateescape"))


def pick_queries(res: EvalResult, n: int, how: str = "sample", seed: int = 0) -> np.ndarray:
    """Positions in ``res.q_rows`` of ``n`` valid queries (fewer when fewer are valid):
    ``sample`` a seeded draw in query order, ``worst`` the lowest AP first, ``best`` the
    highest AP first, equal APs in query order."""
    check_params({"ranks_queries": how, "n_queries": n}, OUTPUT_CONSTRAINTS)
    valid = np.flatnonzero(res.per_query.valid)
    if how == "sample":
        return np.sort(np.random.default_rng(seed).choice(valid, size=min(n, len(valid)), replace=False))
    ap = res.per_query.ap[valid]
    return valid[np.lexsort((valid, ap if how == "worst" else -ap))][:n]


def ranked_rows(res: EvalResult, query: dict, gallery: dict, *, n: int, top: int, how: str = "sample",
                seed: int = 0) -> list[dict]:
    """The rows of the ranked-list grid: ``n`` queries picked by `pick_queries`, each with
    its top-``top`` valid gallery items under the distances the metrics used (re-ranked
    with re-ranking; kept in ``res.ranked`` by ``evaluate(..., keep_top=top)``).

    Returns:
        one dict per query: ``index`` (its row in ``query``), ``path``, ``pid``, ``camid``,
        ``ap`` and ``hits``, a list of (gallery path, gallery pid, is a true match,
        distance), nearest first.
    """
    if res.ranked is None or res.ranked.cols.shape[1] < top:
        have = 0 if res.ranked is None else res.ranked.cols.shape[1]
        raise ConfigError(f"the result keeps the {have} nearest gallery items per query but {top} are asked for; "
                          f"evaluate with keep_top={top}")
    qp, qc, gp = (np.asarray(x, dtype=np.int64) for x in (query["pids"], query["camids"], gallery["pids"]))
    qpaths = query.get("paths") if query.get("paths") is not None else [""] * len(qp)
    gpaths = gallery.get("paths") if gallery.get("paths") is not None else [""] * len(gp)
    out = []
    for j in pick_queries(res, n, how, seed):
        i = int(res.q_rows[j])
        cols, dist = res.ranked.cols[j, :top], res.ranked.dist[j, :top]
        hits = [(gpaths[g], int(gp[g]), bool(gp[g] == qp[i]), float(dv))
                for g, dv in ((int(res.g_rows[c]), dv) for c, dv in zip(cols, dist) if c >= 0)]
        out.append({"index": i, "path": qpaths[i], "pid": int(qp[i]), "camid": int(qc[i]),
                    "ap": float(res.per_query.ap[j]), "hits": hits})
    return out


def cmc_label(res: EvalResult, name: str) -> str:
    """The legend entry of one CMC curve: ``name`` (the features file's name) and its mAP and
    rank-1 in percent."""
    r1 = res.mean.get("rank1")
    r1s = f", R1 {100 * r1:.1f}%" if r1 is not None else ""
    return f"{name} (mAP {100 * res.mean['mAP']:.1f}%{r1s})"


def cmc_title(res: EvalResult) -> str:
    return f"CMC, {res.protocol} protocol, {res.metric} distance" + (", re-ranked" if res.rerank else "")


def curve_names(paths: Sequence[str | os.PathLike]) -> list[str]:
    """A legend name per features file: its file name, or the path as given where two files
    share a name (``run1/f.h5`` and ``run2/f.h5``)."""
    names = [Path(p).name for p in paths]
    return [n if names.count(n) == 1 else str(p) for n, p in zip(names, paths)]


def write_files_cmc(path: str | os.PathLike, files: Sequence[str | os.PathLike],
                    results: Sequence[EvalResult]) -> str:
    """One CMC picture with a curve per features file (models compared on one dataset), the
    legend naming each file; returns the line for people."""
    from reidcli.eval.plots import cmc_curve

    curves = {cmc_label(r, n): r.metrics.curve for n, r in zip(curve_names(files), results)}
    cmc_curve(path, curves, cmc_title(results[0]))
    return f"wrote {path} ({len(curves)} CMC curves, one per features file)"


def require_images(root: str, paths: Sequence[str], *, given: bool) -> None:
    """An `InputError` naming the first of ``paths`` (relative to ``root``) that is no file:
    a grid of grey boxes says nothing, and the usual cause is a dataset that moved since its
    features were extracted (or a wrong ``image_root``: ``given``)."""
    gone = [p for p in paths if not os.path.isfile(os.path.join(root, p))]
    if not gone:
        return
    counted = f"{len(gone)} of the {len(paths)} images the ranks_png grid shows are missing under"
    if given:
        raise InputError(f"{os.path.join(root, gone[0])}: no such image ({counted} image_root {root}); "
                         "give image_root the dataset folder the features were extracted from")
    raise InputError(f"{os.path.join(root, gone[0])}: no such image ({counted} {root}, the dataset folder the "
                     "features file records); pass image_root DIR, the folder the dataset is in now")


def write_outputs(res: EvalResult, query: dict, gallery: dict, outputs: Outputs, *, seed: int = 0,
                  file_root: str, name: str) -> list[str]:
    """Write the files ``outputs`` names; returns lines for people (images not found...).

    ``query``/``gallery`` are the arrays the result's rows index (`Protocol.splits`);
    ``seed`` draws the grid's ``sample`` queries (the evaluation's seed); ``name`` labels
    the CMC curve (the features file's name)."""
    from reidcli.eval.plots import cmc_curve, images_to_draw, ranks_grid

    notes, outputs = [], outputs.filled()
    if outputs.ranks_png:  # the grid's images are checked before any file is written
        rows = ranked_rows(res, query, gallery, n=outputs.n_queries, top=outputs.top, how=outputs.ranks_queries,
                           seed=seed)
        root = str(outputs.image_root) if outputs.image_root else file_root
        require_images(root, images_to_draw(rows, outputs.top), given=outputs.image_root is not None)
    if outputs.per_query:
        write_per_query(outputs.per_query, res, query)
        notes.append(f"wrote {outputs.per_query} (one row per query: {len(res.q_rows)} rows)")
    if outputs.ranks_png:
        missing, total = ranks_grid(outputs.ranks_png, root, rows, outputs.top)
        if missing:
            notes.append(f"{missing} of {total} images under '{root}' could not be decoded (damaged?); drawn "
                         "as grey boxes")
        by = "re-ranked" if res.rerank else res.metric
        shown = max((len(r["hits"]) for r in rows), default=0)  # fewer valid gallery items than --top
        top = f"top {outputs.top}" if shown == outputs.top else f"the {shown} valid (of --top {outputs.top})"
        notes.append(f"wrote {outputs.ranks_png} ({len(rows)} {RANKS_QUERIES[outputs.ranks_queries]} x {top} "
                     f"gallery images by {by} distance)")
    if outputs.cmc_png:
        cmc_curve(outputs.cmc_png, {cmc_label(res, name): res.metrics.curve}, cmc_title(res))
        notes.append(f"wrote {outputs.cmc_png} (CMC at ranks 1-{len(res.metrics.curve)})")
    return notes
