"""The library entry of ``reid evaluate``: `evaluate` (arrays in memory) and
`evaluate_file` (features files in, `EvalResult` out)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from reidcli.eval import protocols as P
from reidcli.eval.distance import check_features, check_metric, distance_chunks, prepare
from reidcli.eval.ranking import Metrics, PerQuery, RankOptions, rank_queries, summarize
from reidcli.utils.errors import ConfigError, InputError

log = logging.getLogger(__name__)
SCALARS = ("mAP", "mINP")


@dataclass
class EvalResult:
    """Metrics of one evaluation; for multi-trial protocols ``mean``/``std`` summarise
    the trials and ``metrics``/``per_query``/rows describe the first one."""

    protocol: str
    metric: str
    metrics: Metrics
    per_query: PerQuery
    q_rows: np.ndarray
    g_rows: np.ndarray
    mean: dict[str, float]
    std: Optional[dict[str, float]] = None
    n_trials: int = 1
    rerank: bool = False
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        out = {"protocol": self.protocol, "metric": self.metric, "rerank": self.rerank,
               **self.metrics.as_dict(), **self.mean, "n_trials": self.n_trials}
        if self.std is not None:
            out["std"] = self.std
        out["notes"] = self.notes
        return out


@dataclass
class Options:
    """Everything `evaluate` can be told (the CLI flags, with the same defaults)."""

    protocol: Optional[str] = None
    metric: str = "euclidean"
    ranks: Sequence[int] = (1, 5, 10, 20)
    ap: str = "noninterp"
    cam_filter: bool = True
    single_gallery: bool = False
    rerank: bool = False
    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3
    shot: str = "single"
    trials: int = 10
    seed: int = 0
    device: str = "cpu"
    chunk: Optional[int] = None

    def check(self) -> None:
        check_metric(self.metric)
        if self.protocol is not None:
            P.check_protocol(self.protocol)
        if not self.ranks or any(int(k) < 1 for k in self.ranks):
            raise ConfigError(f"--ranks must be positive integers like 1,5,10,20; got {list(self.ranks)}")
        if self.chunk is not None and self.chunk < 1:
            raise ConfigError(f"--chunk must be an integer >= 1; got {self.chunk}")
        if not 0.0 <= self.lambda_value <= 1.0:
            raise ConfigError(f"--lambda must be a float in [0, 1]; got {self.lambda_value}")


def _chunks(qf, gf, opts: Options, normalized: bool):
    if not opts.rerank:
        return distance_chunks(qf, gf, opts.metric, opts.chunk, normalized=normalized, device=opts.device)
    try:
        from reidcli.eval.rerank import rerank_chunks
    except ImportError as exc:
        raise ConfigError(f"--rerank is not available in this build ({exc}); evaluate without it") from exc
    q, g = (prepare(x, opts.metric, normalized).numpy() for x in (qf, gf))
    kw = {"chunk": opts.chunk} if opts.chunk else {}
    return rerank_chunks(q, g, k1=opts.k1, k2=opts.k2, lambda_value=opts.lambda_value, device=opts.device, **kw)


def _rank_options(protocol: str, opts: Options) -> RankOptions:
    sysu = protocol.startswith("sysu")
    return RankOptions(cam_filter=opts.cam_filter and protocol == "market",
                       skip_cams=P.SYSU_SKIP if sysu else (), ap=opts.ap,
                       cmc="unique-id" if sysu else "single-gallery" if opts.single_gallery else "standard",
                       seed=opts.seed)


def _trials(protocol: str, q: dict, g: dict, opts: Options):
    if protocol.startswith("sysu"):
        return list(P.sysu_trials(q["pids"], q["camids"], g["pids"], g["camids"], mode=protocol,
                                  shot=opts.shot, trials=opts.trials, seed=opts.seed))
    if protocol.startswith("regdb"):
        return [P.regdb_trial(protocol, q.get("modality"))]
    return [P.Trial(np.arange(len(q["pids"])), np.arange(len(g["pids"])))]


def _take(split: dict, rows: np.ndarray) -> dict:
    """The rows of a split's arrays (no copy when every row is taken in order)."""
    whole = len(rows) == len(split["pids"]) and bool((rows == np.arange(len(rows))).all())
    return {k: np.asarray(v) if whole else np.asarray(v)[rows]
            for k, v in split.items() if k != "paths" and v is not None}


def _no_valid_message(q: dict, g: dict, protocol: str, cam_filter: bool) -> str:
    cam = P.single_camera(q["camids"], g["camids"])
    if cam is not None and cam_filter and protocol == "market":
        return (f"every query and gallery image has camera id {cam}, so the same-identity-same-camera "
                "rule removes every true match; pass --no-cam-filter to evaluate without it")
    shared = np.intersect1d(q["pids"][q["pids"] >= 0], g["pids"][g["pids"] >= 0])
    return (f"no query has a true match in the gallery ({len(q['pids'])} queries, {len(shared)} identities "
            "shared with the gallery, after removing junk and same-camera images); check that query "
            "and gallery come from the same dataset")


def evaluate(query: dict, gallery: dict, options: Optional[Options] = None, *, normalized: bool = False,
             dataset_format: str = "") -> EvalResult:
    """Evaluate ``query`` against ``gallery``.

    Args:
        query, gallery: dicts with ``features`` [N, D], ``pids``, ``camids`` and optionally
            ``modality`` and ``paths`` (as in a features file's splits).
        options: protocol, metric, ranks, AP formula, filters, re-ranking, trials, seed.
        normalized: the features are already L2-normalised (the file's attribute).
        dataset_format: the file's ``dataset_format`` attribute (protocol auto-detection).
    """
    opts = options or Options()
    opts.check()
    check_features(np.asarray(query["features"]), np.asarray(gallery["features"]))
    protocol = opts.protocol or P.detect_protocol(dataset_format, query.get("modality"), gallery.get("modality"))
    query, gallery = protocol_splits(protocol, query, gallery)
    ropts = _rank_options(protocol, opts)
    runs = []
    for trial in _trials(protocol, query, gallery, opts):
        qs, gs = _take(query, trial.q_rows), _take(gallery, trial.g_rows)
        chunks = _chunks(qs["features"], gs["features"], opts, normalized)
        pq = rank_queries(chunks, qs["pids"], qs["camids"], gs["pids"], gs["camids"], ropts, opts.device)
        m = summarize(pq, opts.ranks, ropts)
        if m.n_valid == 0:
            raise InputError(_no_valid_message(qs, gs, protocol, ropts.cam_filter))
        runs.append((trial, pq, m))
    return _result(protocol, opts, runs)


def _result(protocol: str, opts: Options, runs: list) -> EvalResult:
    vals = {k: [] for k in (*SCALARS, *(f"rank{r}" for r in opts.ranks))}
    for _, _, m in runs:
        d = m.as_dict()
        for k in vals:
            vals[k].append(d[k])
    mean = {k: float(np.mean(v)) for k, v in vals.items()}
    std = {k: float(np.std(v)) for k, v in vals.items()} if len(runs) > 1 else None
    trial, pq, m = runs[0]
    if len(runs) > 1:
        m.curve = np.mean([r[2].curve for r in runs], axis=0)
    notes = []
    if m.n_skipped:
        notes.append(f"{m.n_skipped} of {m.n_query} queries have no valid match and were skipped")
    if protocol.startswith("sysu"):
        notes.append(f"{opts.shot}-shot gallery, {len(runs)} seeded draws (seed {opts.seed})")
    return EvalResult(protocol, opts.metric, m, pq, trial.q_rows, trial.g_rows, mean, std,
                      len(runs), opts.rerank, notes)


def protocol_splits(protocol: str, query: dict, gallery: dict) -> tuple[dict, dict]:
    """The arrays a protocol's trial rows index: RegDB pools query and gallery."""
    if not protocol.startswith("regdb"):
        return query, gallery
    pooled = {}
    for k in ("features", "pids", "camids", "modality", "paths"):
        if query.get(k) is not None and gallery.get(k) is not None:
            pooled[k] = (list(query[k]) + list(gallery[k]) if k == "paths"
                         else np.concatenate([np.asarray(query[k]), np.asarray(gallery[k])]))
    return pooled, pooled


def split_dict(split) -> dict:
    return {"features": split.features, "pids": split.pids, "camids": split.camids,
            "modality": split.modality, "paths": split.paths}


def evaluate_file(path: Optional[str | os.PathLike] = None, options: Optional[Options] = None, *,
                  query: Optional[str | os.PathLike] = None, gallery: Optional[str | os.PathLike] = None):
    """Evaluate the ``query`` and ``gallery`` splits of one features file, or the
    ``query`` split of one file against the ``gallery`` split of another.

    Returns:
        (EvalResult, query FeaturesFile, gallery FeaturesFile)
    """
    from reidcli.io.h5 import read_features

    if path is not None and (query or gallery):
        raise ConfigError("give either one features file or --query and --gallery, not both")
    if path is None and not (query and gallery):
        raise ConfigError("give a features file, or both --query a.h5 and --gallery b.h5")
    qfile = read_features(path or query, splits=["query", "gallery"] if path is not None else ["query"])
    gfile = qfile if path is not None else read_features(gallery, splits=["gallery"])
    if qfile.normalized != gfile.normalized:
        log.warning("query and gallery files disagree on 'normalized'; normalising both for cosine")
    res = evaluate(split_dict(qfile.split("query")), split_dict(gfile.split("gallery")), options,
                   normalized=qfile.normalized and gfile.normalized,
                   dataset_format=str(qfile.attrs.get("dataset_format", "")))
    return res, qfile, gfile
