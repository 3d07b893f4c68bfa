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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from reidcli.utils.errors import ConfigError, InputError

PROTOCOLS = ("market", "sysu-all", "sysu-indoor", "regdb-v2i", "regdb-i2v")
SYSU_QUERY_CAMS = (2, 5)  # cam3, cam6 (infrared)
SYSU_GALLERY_CAMS = {"sysu-all": (0, 1, 3, 4), "sysu-indoor": (0, 1)}
SYSU_SKIP = ((2, 1),)  # cam3 queries never see cam2
SHOTS = {"single": 1, "multi": 10}


@dataclass
class Trial:
    """Rows of the (pooled) query and gallery arrays compared in one trial."""

    q_rows: np.ndarray
    g_rows: np.ndarray


def check_protocol(name: str) -> str:
    if name not in PROTOCOLS:
        from difflib import get_close_matches

        close = get_close_matches(name, PROTOCOLS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"--protocol must be one of {', '.join(PROTOCOLS)}; got '{name}'{hint}")
    return name


def detect_protocol(dataset_format: str, q_modality: Optional[np.ndarray],
                    g_modality: Optional[np.ndarray]) -> str:
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
    if shot not in SHOTS:
        raise ConfigError(f"--shot must be one of {', '.join(SHOTS)}; got '{shot}'")
    if trials < 1:
        raise ConfigError(f"--trials must be an integer >= 1; got {trials}")
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


def regdb_trial(direction: str, pooled: Optional[np.ndarray]) -> Trial:
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


def single_camera(q_camids: np.ndarray, g_camids: np.ndarray) -> Optional[int]:
    """The one camera id when every query and gallery image shares it, else None."""
    cams = np.unique(np.concatenate([q_camids, g_camids]))
    return int(cams[0]) if len(cams) == 1 else None
