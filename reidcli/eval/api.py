"""The library entry of ``reid evaluate``: `evaluate` (arrays in memory), `evaluate_file`
(features files in, `EvalResult` out) and `evaluate_files` (one evaluation per file, then
their mean: `FilesResult`). The results are plain data (`reidcli.eval.result`); the files an
evaluation may write besides its metrics are `reidcli.eval.report`'s."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from reidcli.eval import protocols as P
from reidcli.eval.distance import METRICS, check_features, distance_chunks, prepare
from reidcli.eval.ranking import AP_FORMULAS, Metrics, PerQuery, TopRanked, full_cmc, rank_queries, summarize, top_valid
from reidcli.eval.rerank import RerankOptions
from reidcli.eval.report import Outputs, write_files_cmc, write_outputs
from reidcli.eval.result import EvalResult, FilesResult
from reidcli.utils.checks import as_ids
from reidcli.utils.errors import ConfigError, InputError, ReidError
from reidcli.utils.params import SEED, Interval, ParamError, Satisfies, check_params, reject_given
from reidcli.utils.params import Options as OneOf

log = logging.getLogger(__name__)
SCALARS = ("mAP", "mINP")
POSITIVE_INT = [Interval(int, 1, None)]


def _positive_ints(ranks) -> bool:
    return len(ranks) > 0 and all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1
                                  for k in ranks)


CONSTRAINTS = {
    "protocol": [None, str],
    "metric": [OneOf(METRICS)],
    "ranks": [Satisfies(_positive_ints, "positive integers like 1,5,10,20")],
    "ap": [OneOf(AP_FORMULAS)],
    "cam_filter": ["boolean"],
    "single_gallery": ["boolean"],
    "rerank": ["boolean"],
    "k1": POSITIVE_INT,  # k1 .. trials: None (not given) is checked by `Options.check`
    "k2": POSITIVE_INT,
    "lambda_value": [Interval(float, 0, 1)],
    "shot": [OneOf(P.SHOTS)],
    "trials": POSITIVE_INT,
    "seed": SEED,
    "device": [str],
    "chunk": [None, Interval(int, 1, None)],
}


def parse_ranks(text: str) -> list[int]:
    """``"1,5,10"`` -> [1, 5, 10] (the ``--ranks`` flag)."""
    try:
        ranks = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        ranks = []
    if not ranks or min(ranks) < 1:
        raise ParamError("ranks", f"must be comma-separated positive integers like 1,5,10,20; got '{text}'")
    return ranks


@dataclass
class Options:
    """Everything `evaluate` can be told (the CLI flags, with the same defaults)."""

    protocol: str | None = None
    metric: str = "euclidean"
    ranks: Sequence[int] = (1, 5, 10, 20)
    ap: str = "noninterp"
    cam_filter: bool = True
    single_gallery: bool = False
    rerank: bool = False
    # None: not given, i.e. the default of `FILLED` (a value given where it does nothing, k1
    # without rerank or shot under the market protocol, is refused rather than ignored)
    k1: int | None = None
    k2: int | None = None
    lambda_value: float | None = None
    shot: str | None = None
    trials: int | None = None
    seed: int = 0
    device: str = "cpu"
    chunk: int | None = None

    def check(self) -> None:
        check_params({k: v for k, v in vars(self).items() if v is not None or k not in FILLED}, CONSTRAINTS)
        if self.protocol is not None:
            P.PROTOCOLS.get(self.protocol)
        reject_given(vars(self), RERANK_OPTIONS, applies=self.rerank, what="without --rerank (a re-ranking parameter)")

    def check_protocol(self, protocol: P.Protocol) -> None:
        """``shot`` and ``trials`` are gallery draws of the SYSU-MM01 protocols only."""
        reject_given(vars(self), TRIAL_OPTIONS, applies=isinstance(protocol, P.SysuMM01),
                     what=f"to the {protocol.name} protocol (SYSU-MM01 gallery draws: --protocol sysu-all | sysu-indoor)")

    def filled(self) -> "Options":
        """A copy with every option not given at its default (`FILLED`)."""
        return dataclasses.replace(self, **{k: v for k, v in FILLED.items() if getattr(self, k) is None})


RERANK_OPTIONS = ("k1", "k2", "lambda_value")
TRIAL_OPTIONS = ("shot", "trials")
# the defaults of the options that apply only in some cases (the paper's re-ranking; SYSU-MM01's)
@dataclass(frozen=True)
class GalleryDraws:
    """The SYSU-MM01 gallery draws (Wu et al., ICCV 2017): ``shot`` single (one image per
    identity and camera) | multi (10), averaged over ``trials`` random galleries."""

    shot: str = "single"
    trials: int = 10


FILLED = {**dataclasses.asdict(RerankOptions()), **dataclasses.asdict(GalleryDraws())}  # the defaults of the None options


class Run(NamedTuple):
    """One trial of a protocol and what it gave."""

    trial: P.Trial
    per_query: PerQuery
    metrics: Metrics
    ranked: TopRanked | None = None


def _with_progress(chunks, n_queries: int):
    """The distance chunks, with a progress bar over the queries ranked (quiet when not a TTY)."""
    from reidcli.utils.progress import progress_bar

    with progress_bar("evaluate", total=n_queries) as bar:
        for start, d in chunks:
            yield start, d
            bar.advance(int(d.shape[0]))


def _keeping(chunks, top: TopRanked, qs: dict, gs: dict, ropts):
    """The distance chunks, unchanged, while each row's nearest valid gallery items go to ``top``."""
    k = top.cols.shape[1]
    for start, d in chunks:
        e = start + int(d.shape[0])
        top.cols[start:e], top.dist[start:e] = top_valid(d, qs["pids"][start:e], qs["camids"][start:e],
                                                         gs["pids"], gs["camids"], ropts, k)
        yield start, d


def _chunks(qf, gf, opts: Options, normalized: bool):
    if not opts.rerank:
        return distance_chunks(qf, gf, opts.metric, opts.chunk, normalized=normalized, device=opts.device)
    try:
        from reidcli.eval.rerank import rerank_chunks
    except ImportError as exc:
        raise ConfigError(f"--rerank is not available in this build ({exc}); evaluate without it") from exc
    q, g = (prepare(x, opts.metric, normalized) for x in (qf, gf))
    kw = {"chunk": opts.chunk} if opts.chunk else {}
    return rerank_chunks(q, g, k1=opts.k1, k2=opts.k2, lambda_value=opts.lambda_value, device=opts.device, **kw)


def _take(split: dict, rows: np.ndarray) -> dict:
    """The rows of a split's arrays (no copy when every row is taken in order)."""
    whole = len(rows) == len(split["pids"]) and bool((rows == np.arange(len(rows))).all())
    return {k: np.asarray(v) if whole else np.asarray(v)[rows]
            for k, v in split.items() if k != "paths" and v is not None}


def _checked_ids(split: dict, name: str) -> dict:
    """``split`` with its id arrays checked (`reidcli.utils.checks`) and made int64, one per row."""
    n = len(split["features"])
    out = dict(split)
    for key, low in (("pids", -1), ("camids", 0), ("modality", 0)):
        if split.get(key) is None:
            continue
        out[key] = as_ids(split[key], f"{name} {key}", low)
        if len(out[key]) != n:
            raise InputError(f"{name} {key} has {len(out[key])} rows but {name} features has {n}")
    return out


def _no_valid_message(q: dict, g: dict, cam_filter: bool) -> str:
    cam = P.single_camera(q["camids"], g["camids"])
    if cam is not None and cam_filter:
        return (f"every query and gallery image has camera id {cam}, so the same-identity-same-camera "
                "rule removes every true match; pass --no-cam-filter to evaluate without it")
    shared = np.intersect1d(q["pids"][q["pids"] >= 0], g["pids"][g["pids"] >= 0])
    return (f"no query has a true match in the gallery ({len(q['pids'])} queries, {len(shared)} identities "
            "shared with the gallery, after removing junk and same-camera images); check that query "
            "and gallery come from the same dataset")


def evaluate(query: dict, gallery: dict, options: Options | None = None, *, normalized: bool = False,
             dataset_format: str = "", keep_top: int = 0) -> EvalResult:
    """Evaluate ``query`` against ``gallery``.

    Args:
        query, gallery: dicts with ``features`` [N, D], ``pids``, ``camids`` and optionally
            ``modality`` and ``paths`` (as in a features file's splits).
        options: protocol, metric, ranks, AP formula, filters, re-ranking, trials, seed.
        normalized: the features are already L2-normalised (the file's attribute).
        dataset_format: the file's ``dataset_format`` attribute (protocol auto-detection).
        keep_top: also keep each query's ``keep_top`` nearest valid gallery items, and their
            distances, as the chunks stream by (``EvalResult.ranked``; what ``--ranks-png``
            draws): no distance is computed twice and no [Q, G] matrix is held.
    """
    opts = options or Options()
    opts.check()
    check_params({"keep_top": keep_top}, {"keep_top": [Interval(int, 0, None)]})
    check_features(np.asarray(query["features"]), np.asarray(gallery["features"]))
    query, gallery = _checked_ids(query, "query"), _checked_ids(gallery, "gallery")
    protocol = P.PROTOCOLS.get(opts.protocol or P.detect_protocol(dataset_format, query.get("modality"),
                                                                  gallery.get("modality")))
    protocol.check_inputs(query, gallery)
    opts.check_protocol(protocol)
    opts = opts.filled()
    query, gallery = protocol.splits(query, gallery)
    ropts = protocol.rank_options(opts)
    runs = []
    for trial in protocol.trials(query, gallery, opts):
        qs, gs = _take(query, trial.q_rows), _take(gallery, trial.g_rows)
        chunks = _with_progress(_chunks(qs["features"], gs["features"], opts, normalized), len(qs["pids"]))
        top = TopRanked.empty(len(qs["pids"]), keep_top) if keep_top and not runs else None
        if top is not None:
            chunks = _keeping(chunks, top, qs, gs, ropts)
        pq = rank_queries(chunks, qs["pids"], qs["camids"], gs["pids"], gs["camids"], ropts, opts.device)
        m = summarize(pq, opts.ranks, ropts)
        if m.n_valid == 0:
            raise InputError(_no_valid_message(qs, gs, ropts.cam_filter))
        runs.append(Run(trial, pq, m, top))
    return _result(protocol, opts, runs)


def _result(protocol: P.Protocol, opts: Options, runs: list[Run]) -> EvalResult:
    keys = (*SCALARS, *(f"rank{r}" for r in opts.ranks))
    per_run = [run.metrics.as_dict() for run in runs]
    vals = {k: [d[k] for d in per_run] for k in keys}
    mean = {k: float(np.mean(v)) for k, v in vals.items()}
    std = {k: float(np.std(v)) for k, v in vals.items()} if len(runs) > 1 else None
    first = runs[0]
    m = first.metrics
    if len(runs) > 1:
        m.curve = np.mean([run.metrics.curve for run in runs], axis=0)
    notes = []
    if m.n_skipped:
        notes.append(f"{m.n_skipped} of {m.n_query} queries have no valid match and were skipped")
    notes += protocol.notes(opts, len(runs))
    curves = [full_cmc(run.per_query) for run in runs]
    length = max(len(c) for c in curves)
    cmc = np.mean([np.pad(c, (0, length - len(c)), mode="edge") if len(c) else np.zeros(length)
                   for c in curves], axis=0)
    rr = {"k1": opts.k1, "k2": opts.k2, "lambda": opts.lambda_value} if opts.rerank else None
    return EvalResult(protocol.name, opts.metric, m, first.per_query, first.trial.q_rows, first.trial.g_rows,
                      mean, std, len(runs), opts.rerank, notes, cmc=cmc, rerank_options=rr, ranked=first.ranked)


def split_dict(split) -> dict:
    return {"features": split.features, "pids": split.pids, "camids": split.camids,
            "modality": split.modality, "paths": split.paths}


def _describe_input(path, ff) -> dict:
    """A features file as the JSON names it: path, digest, and the checkpoint that made it."""
    from reidcli.io.atomic import file_digest

    return {"path": str(path), "digest": file_digest(path), "checkpoint": ff.attrs.get("checkpoint"),
            "checkpoint_path": ff.attrs.get("checkpoint_path"), "model": ff.attrs.get("model")}


def evaluate_file(path: str | os.PathLike | None = None, options: Options | None = None, *,
                  query: str | os.PathLike | None = None, gallery: str | os.PathLike | None = None,
                  outputs: Outputs | None = None) -> EvalResult:
    """Evaluate the ``query`` and ``gallery`` splits of one features file, or the
    ``query`` split of one file against the ``gallery`` split of another; then write what
    ``outputs`` (`reidcli.eval.report.Outputs`) asks for: the per-query CSV, the
    ranked-list and CMC pictures. What that found is in the result's ``output_notes``.
    """
    from reidcli.io.h5 import read_features

    if path is not None and (query or gallery):
        raise ConfigError("give either one features file or --query and --gallery, not both")
    if path is None and not (query and gallery):
        raise ConfigError("give a features file, or both --query a.h5 and --gallery b.h5")
    if outputs is not None:
        outputs.check()
    qfile = read_features(path or query, splits=["query", "gallery"] if path is not None else ["query"])
    gfile = qfile if path is not None else read_features(gallery, splits=["gallery"])
    if outputs is not None:
        _outputs_outside_datasets(outputs, [(path or query, qfile.root), (gallery, gfile.root)])
    if qfile.normalized != gfile.normalized:
        log.warning("query and gallery files disagree on 'normalized'; normalising both for cosine")
    q, g = split_dict(qfile.split("query")), split_dict(gfile.split("gallery"))
    keep = outputs.filled().top if outputs is not None and outputs.ranks_png else 0
    res = evaluate(q, g, options, normalized=qfile.normalized and gfile.normalized,
                   dataset_format=str(qfile.attrs.get("dataset_format", "")), keep_top=keep)
    qi = _describe_input(path or query, qfile)
    res.inputs = {"query": qi, "gallery": qi if gfile is qfile else _describe_input(gallery, gfile)}
    qck, gck = res.inputs["query"]["checkpoint"], res.inputs["gallery"]["checkpoint"]
    if qck != gck:
        note = (f"warning: the query features ({query}) come from checkpoint {qck} "
                f"({res.inputs['query']['checkpoint_path']}) but the gallery features ({gallery}) from "
                f"{gck} ({res.inputs['gallery']['checkpoint_path']}); distances between two different "
                "embeddings mean little: extract both with the same --ckpt")
        res.notes.append(note)
    if outputs is not None:
        q, g = P.PROTOCOLS.get(res.protocol).splits(q, g)
        res.output_notes += write_outputs(res, q, g, outputs, seed=(options or Options()).seed, file_root=gfile.root,
                                          name=_curve_name(path, query, gallery))
    return res


def _outputs_outside_datasets(outputs, files: list) -> None:
    """Refuse an output inside the dataset a features file was extracted from (its recorded
    root): ``--ranks-png data/query/x.jpg`` would replace an image (`check_outputs`)."""
    from reidcli.io.atomic import check_outputs

    roots = {f"dataset of {f}": root for f, root in files if f is not None and root and os.path.isdir(root)}
    if outputs.image_root is not None:
        roots["--image-root"] = outputs.image_root
    check_outputs({"--per-query": outputs.per_query, "--ranks-png": outputs.ranks_png,
                   "--cmc-png": outputs.cmc_png}, roots)


def _curve_name(path, query, gallery) -> str:
    """What a CMC legend calls an evaluation: the features file's name, or both names when
    the query and gallery splits come from two files."""
    if path is not None:
        return Path(path).name
    q, g = Path(query).name, Path(gallery).name
    return q if q == g else f"{q} vs {g}"


def evaluate_files(paths: Sequence[str | os.PathLike], options: Options | None = None, *,
                   outputs: Outputs | None = None) -> FilesResult:
    """Evaluate each features file on its own (its ``query`` against its ``gallery``), then
    average: the mean and (population) standard deviation of every metric over the files,
    as RegDB reports its ten random train/test trials (``reid evaluate trial*.h5 --protocol
    regdb-v2i``). Every file must evaluate under the same protocol. ``outputs.cmc_png``
    draws one CMC curve per file on one picture (models compared on one dataset), each
    labelled with its file name.

    Raises:
        ConfigError: no file; files that fall under different protocols; ``outputs`` that
            ask for a per-query CSV or a ranked-list grid (those describe one evaluation).
        InputError, FormatError: as `evaluate_file`, naming the file.
    """
    from reidcli.utils.errors import FormatError

    paths = [str(p) for p in paths]
    if not paths:
        raise ConfigError("give one or more features files")
    if outputs is not None and (outputs.per_query or outputs.ranks_png):
        raise ConfigError(f"--per-query and --ranks-png describe one evaluation; got {len(paths)} "
                          "features files, give one (--cmc-png draws one curve per file)")
    if outputs is not None:
        outputs.check()
        from reidcli.io.h5 import read_features

        roots = []
        for p in paths:
            try:
                roots.append((p, read_features(p, splits=[]).root))
            except ReidError:  # said with the file's name by the evaluation below
                pass
        _outputs_outside_datasets(outputs, roots)
    options = options or Options()
    options.check()
    results = []
    for p in paths:
        try:
            results.append(evaluate_file(p, options))
        except (InputError, FormatError) as exc:
            text = str(exc)
            if p not in text:
                exc.args = (f"{p}: {text}", *exc.args[1:])
            raise
    protos = {r.protocol for r in results}
    if len(protos) > 1:
        first = {proto: next(f for f, r in zip(paths, results) if r.protocol == proto) for proto in sorted(protos)}
        shown = ", ".join(f"{f} under {proto}" for proto, f in first.items())
        raise ConfigError(f"the files evaluate under different protocols ({shown}); pass --protocol")
    keys = list(results[0].mean)
    vals = {k: np.array([r.mean[k] for r in results], dtype=np.float64) for k in keys}
    res = FilesResult(paths, results, {k: float(v.mean()) for k, v in vals.items()},
                      {k: float(v.std()) for k, v in vals.items()})
    if outputs is not None and outputs.cmc_png:
        res.output_notes.append(write_files_cmc(outputs.cmc_png, paths, results))
    return res
