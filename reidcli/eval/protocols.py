"""Evaluation protocols: which query and gallery rows are compared, and how.

- ``market``: Market-1501 / DukeMTMC-reID / MSMT17 / CUHK03 (new protocol) single-modality
  rule (see `reidcli.eval.ranking`), one trial over the files' query and gallery splits.
- ``sysu-all`` / ``sysu-indoor``: SYSU-MM01 (Wu et al., ICCV 2017) as in the authors' code
  and its Python port in AGW/DDAG (Ye et al., TPAMI 2021): infrared queries of cameras 3
  and 6; the gallery draws, per trial, one (single-shot) or ten (multi-shot) random visible
  images per identity and camera from cameras 1, 2, 4, 5 (all-search) or 1, 2 (indoor);
  camera-3 queries skip camera-2 gallery images (the two share a room); CMC counts distinct
  identities; mean and standard deviation over ``trials`` seeded draws. Camera ids here
  are reidcli's 0-based ones (SYSU ``camN`` -> N - 1).
- ``regdb-v2i`` / ``regdb-i2v``: RegDB (Nguyen et al., Sensors 2017) visible -> thermal and
  thermal -> visible over the test images of the trial the file holds (query + gallery
  splits pooled, then divided by modality); no camera filter.

Each protocol is a `Protocol` registered in `PROTOCOLS` (``--protocol`` takes its name):
what it pools, which trials it runs, how it filters and counts ranks, what it notes.
CONTRIBUTING.md ("Adding an evaluation protocol") says how to add one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol as Interface

import numpy as np

from reidcli.eval.ranking import RankOptions
from reidcli.utils.errors import InputError
from reidcli.utils.params import Interval, check_params
from reidcli.utils.params import Options as OneOf
from reidcli.utils.registry import Registry

SYSU_QUERY_CAMS = (2, 5)  # cam3, cam6 (infrared)
SYSU_GALLERY_CAMS = {"sysu-all": (0, 1, 3, 4), "sysu-indoor": (0, 1)}
SYSU_SKIP = ((2, 1),)  # cam3 queries never see cam2
SHOTS = {"single": 1, "multi": 10}


@dataclass
class Trial:
    """Rows of the (pooled) query and gallery arrays compared in one trial."""

    q_rows: np.ndarray
    g_rows: np.ndarray


class EvalOptions(Interface):
    """What a protocol reads of the evaluation options (`reidcli.eval.api.Options`, which
    imports this module: the protocols depend on these fields only)."""

    cam_filter: bool
    single_gallery: bool
    ap: str
    seed: int
    shot: str | None
    trials: int | None


TRIAL_CONSTRAINTS = {"shot": [OneOf(SHOTS)], "trials": [Interval(int, 1, None)]}


def detect_protocol(dataset_format: str, q_modality: np.ndarray | None,
                    g_modality: np.ndarray | None) -> str:
    """``sysu-all`` / ``regdb-v2i`` when the file's ``dataset_format`` names those layouts,
    a cross-modality guess from the modality arrays otherwise, else ``market``."""
    fmt = (dataset_format or "").lower().replace("-", "").replace("_", "")
    if "sysu" in fmt:
        return "sysu-all"
    if "regdb" in fmt:
        return "regdb-i2v" if q_modality is not None and (q_modality == 1).all() else "regdb-v2i"
    return "market"


def sysu_trials(q_pids: np.ndarray, q_camids: np.ndarray, g_pids: np.ndarray, g_camids: np.ndarray, *,
                mode: str, shot: str = "single", trials: int = 10, seed: int = 0) -> Iterator[Trial]:
    """Seeded SYSU-MM01 gallery draws (one `Trial` each)."""
    check_params({"shot": shot, "trials": trials}, TRIAL_CONSTRAINTS)
    q_rows = np.flatnonzero(np.isin(q_camids, SYSU_QUERY_CAMS) & (q_pids >= 0))
    cand = np.flatnonzero(np.isin(g_camids, SYSU_GALLERY_CAMS[mode]) & (g_pids >= 0))
    if len(q_rows) == 0 or len(cand) == 0:
        which = "query (infrared cams 3, 6)" if len(q_rows) == 0 else \
            f"gallery (visible cams {', '.join(str(c + 1) for c in SYSU_GALLERY_CAMS[mode])})"
        raise InputError(f"the {mode} protocol found no {which} images in the file; "
                         "evaluate SYSU-MM01 features, or pass --protocol market")
    keys = g_pids[cand] * 1000 + g_camids[cand]
    groups = np.split(cand[np.argsort(keys, kind="stable")], np.flatnonzero(np.diff(np.sort(keys))) + 1)
    for t in range(trials):
        rng = np.random.default_rng([seed, t])
        picked = [rng.choice(gr, size=min(SHOTS[shot], len(gr)), replace=False) for gr in groups]
        yield Trial(q_rows, np.sort(np.concatenate(picked)))


def regdb_trial(direction: str, pooled: np.ndarray | None) -> Trial:
    """Rows of the pooled [query; gallery] arrays (``pooled`` = their modality): visible
    vs thermal per ``direction``."""
    if pooled is None:
        raise InputError("the RegDB protocols need the 'modality' arrays in the features file; "
                         "extract RegDB features with 'reid features', or pass --protocol market")
    vis, ir = np.flatnonzero(pooled == 0), np.flatnonzero(pooled == 1)
    if len(vis) == 0 or len(ir) == 0:
        raise InputError(f"RegDB needs visible and thermal images; the file holds {len(vis)} visible "
                         f"and {len(ir)} thermal ones")
    return Trial(vis, ir) if direction == "regdb-v2i" else Trial(ir, vis)


def single_camera(q_camids: np.ndarray, g_camids: np.ndarray) -> int | None:
    """The one camera id when every query and gallery image shares it, else None."""
    cams = np.unique(np.concatenate([q_camids, g_camids]))
    return int(cams[0]) if len(cams) == 1 else None


class Protocol:
    """The ``market`` protocol, and the base of the others: override what differs.

    Methods take the split dicts of `reidcli.eval.api.evaluate` (``features``, ``pids``,
    ``camids``, optional ``modality``, ``paths``) and its options (`EvalOptions`).
    """

    modal = False  # cross-modality: both splits must say each image's modality

    def __init__(self, name: str = "market"):
        self.name = name

    def check_inputs(self, query: dict, gallery: dict) -> None:
        """Refuse inputs this protocol cannot evaluate (before any ranking)."""
        if not self.modal:
            return
        lacking = [name for name, split in (("query", query), ("gallery", gallery)) if split.get("modality") is None]
        if lacking:
            raise InputError(f"the {self.name} protocol needs each image's modality, but the {' and '.join(lacking)} "
                             f"split{'s' if len(lacking) > 1 else ''} of the features file hold{'' if len(lacking) > 1 else 's'} "
                             "no 'modality' array; extract the cross-modality dataset with 'reid features', "
                             "or pass --protocol market")

    def splits(self, query: dict, gallery: dict) -> tuple[dict, dict]:
        """The arrays the trials' rows index (RegDB pools query and gallery)."""
        return query, gallery

    def trials(self, query: dict, gallery: dict, opts: EvalOptions) -> list[Trial]:
        """The (query rows, gallery rows) compared; metrics are averaged over trials."""
        return [Trial(np.arange(len(query["pids"])), np.arange(len(gallery["pids"])))]

    def rank_options(self, opts: EvalOptions) -> RankOptions:
        """The gallery filter and the CMC kind of every query."""
        return RankOptions(cam_filter=opts.cam_filter, ap=opts.ap, seed=opts.seed,
                           cmc="single-gallery" if opts.single_gallery else "standard")

    def notes(self, opts: EvalOptions, n_trials: int) -> list[str]:
        """Lines for people about how this evaluation was run."""
        return []


class SysuMM01(Protocol):
    """``sysu-all`` / ``sysu-indoor``: seeded gallery draws, camera 3 never sees camera 2,
    no same-camera filter (the modalities differ), CMC over distinct identities."""

    modal = True

    def trials(self, query: dict, gallery: dict, opts: EvalOptions) -> list[Trial]:
        return list(sysu_trials(query["pids"], query["camids"], gallery["pids"], gallery["camids"], mode=self.name,
                                shot=opts.shot, trials=opts.trials, seed=opts.seed))

    def rank_options(self, opts: EvalOptions) -> RankOptions:
        return RankOptions(cam_filter=False, skip_cams=SYSU_SKIP, ap=opts.ap, cmc="unique-id", seed=opts.seed)

    def notes(self, opts: EvalOptions, n_trials: int) -> list[str]:
        return [f"{opts.shot}-shot gallery, {n_trials} seeded draws (seed {opts.seed})"]


class RegDB(Protocol):
    """``regdb-v2i`` / ``regdb-i2v``: query and gallery pooled, then divided by modality."""

    modal = True

    def splits(self, query: dict, gallery: dict) -> tuple[dict, dict]:
        pooled = {}
        for k in ("features", "pids", "camids", "modality", "paths"):
            if query.get(k) is not None and gallery.get(k) is not None:
                pooled[k] = (list(query[k]) + list(gallery[k]) if k == "paths"
                             else np.concatenate([np.asarray(query[k]), np.asarray(gallery[k])]))
        return pooled, pooled

    def trials(self, query: dict, gallery: dict, opts: EvalOptions) -> list[Trial]:
        return [regdb_trial(self.name, query.get("modality"))]

    def rank_options(self, opts: EvalOptions) -> RankOptions:
        return dataclasses.replace(super().rank_options(opts), cam_filter=False)


PROTOCOLS: Registry[Protocol] = Registry("protocol")
for _p in (Protocol("market"), SysuMM01("sysu-all"), SysuMM01("sysu-indoor"), RegDB("regdb-v2i"), RegDB("regdb-i2v")):
    PROTOCOLS.add(_p.name, _p)
