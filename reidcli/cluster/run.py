"""Features -> pseudo-labels: the array-level `cluster_features` and the file-level `run`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reidcli.cluster.methods import (
    DEFAULT_CLUSTERER,
    ClustererOptions,
    FitContext,
    make_options,
)
from reidcli.utils.device import check_device
from reidcli.utils.errors import InputError
from reidcli.utils.params import SEED, Interval, ParamError, check_params

if TYPE_CHECKING:
    from reidcli.utils.progress import StageProgress

log = logging.getLogger(__name__)

COMMON_CONSTRAINTS = {
    "expand_threshold": [None, Interval(float, -1, 1)],
    "keep_clusters": [None, Interval(int, 1, None)],
    "seed": SEED,
    "centers": ["boolean"],
    "camera_norm": ["boolean"],
}


@dataclass
class ClusterResult:
    labels: np.ndarray
    params: dict
    centers: np.ndarray | None = None
    timings: dict = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return len(np.unique(self.labels[self.labels >= 0]))

    @property
    def n_outliers(self) -> int:
        return int((self.labels < 0).sum())


def cluster_features(features: np.ndarray, *, method: str = DEFAULT_CLUSTERER,
                     options: ClustererOptions | None = None, expand_threshold: float | None = None,
                     keep_clusters: int | None = None, device: str = "auto", seed: int = 0, centers: bool = False,
                     where: str = "the input", camids: np.ndarray | None = None, camera_norm: bool = False,
                     progress: StageProgress | None = None, **method_options) -> ClusterResult:
    """Pseudo-labels for ``features`` [N, D] (L2-normalised first); -1 marks outliers.

    ``method`` names a clusterer of `reidcli.cluster.methods.CLUSTERERS`: ``dbscan-jaccard``
    (k-reciprocal Jaccard distance, Zhong et al., CVPR 2017, then DBSCAN), ``dbscan-euclidean``
    or ``kmeans``. Its options come as ``options`` (its options dataclass) and/or as keyword
    arguments (``eps=0.42, k1=20``; None keeps the default); one the method does not take is
    an error. Optional label expansion (ULA, Chen et al. 2022; docs/papers.md section 4):
    ``expand_threshold`` and ``keep_clusters``.

    ``camera_norm`` (needs ``camids``) subtracts each camera's mean feature before the
    neighbour search, then re-normalises, so clusters follow identities rather than camera
    styles (the per-camera feature centring of camera-aware UDA, e.g. Wang et al., CAP,
    AAAI 2021). Only camera ids are used, never identities; centres stay in the original space.

    ``progress`` (`reidcli.utils.progress.StageProgress`), when given, is called once per
    block of work as ``progress(stage, done, total)``: ``neighbours`` (rows searched),
    ``jaccard`` (rows of the Jaccard distance), ``eps auto``, ``dbscan`` (its steps) or
    ``k-means``; `reidcli.utils.progress.stage_bars` draws it as bars.
    """
    from reidcli.cluster.knn import l2_normalize

    opts = make_options(method, options, method_options)
    check_params({"expand_threshold": expand_threshold, "keep_clusters": keep_clusters, "seed": seed,
                  "centers": centers, "camera_norm": camera_norm}, COMMON_CONSTRAINTS)
    if keep_clusters is not None and expand_threshold is None:
        raise ParamError("keep_clusters", "needs expand_threshold (the label expansion it belongs to)")
    features = np.asarray(features)
    if features.ndim != 2 or (len(features) and features.shape[1] == 0):
        raise InputError(f"{where}: features must be [N, D] with D >= 1; found shape {features.shape}")
    opts.check(features.shape[0], where)
    x = original = l2_normalize(features)
    params: dict = {"method": method, "normalized": True, "seed": seed, "camera_norm": camera_norm}
    if camera_norm:
        x = centre_cameras(x, camids, where)
    ctx = FitContext(seed=seed, device=check_device(device), where=where, progress=progress)
    t0 = time.perf_counter()
    labels, fitted = opts.fit(x, ctx)
    params.update(fitted)
    ctx.timings["cluster_s"] = time.perf_counter() - t0
    if expand_threshold is not None:
        from reidcli.cluster.expand import expand_labels

        # ULA uses one eps for the clusters and their density (eq. 1): the fit's eps when it is a
        # Euclidean radius (given or auto); a Jaccard eps or none -> the paper's 1.0
        density_eps = params["eps"] if params.get("distance") == "euclidean" else 1.0
        labels, _ = expand_labels(x, labels, threshold=expand_threshold, keep_clusters=keep_clusters,
                                  eps=density_eps)
        params.update(expand_threshold=expand_threshold, keep_clusters=keep_clusters)
    labels = _renumber(labels)
    cents = None
    if centers:
        from reidcli.cluster.expand import cluster_centres

        cents = cluster_centres(original, labels)
    ctx.timings["total_s"] = time.perf_counter() - t0
    return ClusterResult(labels=labels, params=params, centers=cents, timings=ctx.timings)


def degenerate(labels: np.ndarray, params: dict, where: str = "the input") -> str | None:
    """A one-line description, with the numbers and the fix, when the clustering carries no
    training signal (0 clusters, or 1 cluster holding every clustered image); else None.

    DBSCAN gives 0 clusters when ``eps`` is too small (every image is an outlier) and 1
    cluster when it is too large (the Jaccard radius reaches every image), so the advice
    goes in opposite directions; k-means gives 1 only with ``k`` 1.
    """
    labels = np.asarray(labels)
    n, k = len(labels), len(np.unique(labels[labels >= 0]))
    if n == 0 or k >= 2:
        return None
    method, outliers = params.get("method", "?"), int((labels < 0).sum())
    used = ", ".join("--" + name.replace("_", "-") + " " + (f"{params[name]:g}" if isinstance(params[name], float)
                                                             else str(params[name]))
                     for name in ("eps", "min_samples", "k1", "k") if name in params)
    setting = f"{method}{', ' + used if used else ''}"
    if k == 0:
        fix = ("re-cluster with a larger --eps or a smaller --min-samples" if "eps" in params
               else "re-cluster with other settings")
        return f"{where}: 0 clusters, all {n} images are outliers ({setting}); {fix}"
    if "eps" in params and outliers > n - outliers:  # one small cluster among outliers: eps too tight
        fix = "re-cluster with a larger --eps or a smaller --min-samples"
    elif "eps" in params:
        fix = "re-cluster with a smaller --eps"
        if "k1" in params and params["k1"] >= n - outliers:
            fix += f" or a --k1 well below the {n - outliers} clustered images"
    elif "k" in params:
        fix = "re-cluster with a larger --k"
    else:
        fix = "re-cluster with other settings"
    return (f"{where}: 1 cluster holds all {n - outliers} clustered images ({outliers} outliers of {n}; "
            f"{setting}); pseudo-labels need at least 2 clusters: {fix}")


def centre_cameras(x: np.ndarray, camids: np.ndarray | None, where: str = "the input") -> np.ndarray:
    """L2-normalised ``x`` minus the mean feature of each row's camera, re-normalised."""
    from reidcli.cluster.knn import l2_normalize

    if camids is None or len(camids) != len(x):
        raise ParamError("camera_norm", f"needs one camera id per row of {where}")
    out = np.array(x, dtype=np.float32, copy=True)
    for cam in np.unique(camids):
        rows = camids == cam
        out[rows] -= out[rows].mean(axis=0, keepdims=True)
    return l2_normalize(out)


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Close the gaps in 0..K-1 (k-means may leave empty clusters), keeping the order."""
    labels = np.asarray(labels, np.int64)
    keep = labels >= 0
    if not keep.any():
        return labels
    _, inv = np.unique(labels[keep], return_inverse=True)
    out = np.full_like(labels, -1)
    out[keep] = inv
    return out


@dataclass
class ClusterReport:
    """What `run` did: counts, the parameters and timings, and, when the file holds true
    ids, `cluster_quality`. ``as_dict()`` is ``reid cluster --json``."""

    output: Path
    split: str
    n_images: int
    n_clusters: int
    n_outliers: int
    params: dict
    timings: dict
    quality: dict | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        out = {"output": str(self.output), "split": self.split, "n_images": self.n_images,
               "n_clusters": self.n_clusters, "n_outliers": self.n_outliers, "params": self.params,
               "timings": self.timings}
        if self.warnings:
            out["warnings"] = self.warnings
        if self.quality is not None:
            out["quality"] = self.quality
        return out

    def summary(self) -> str:
        """One line for people: counts, method, eps, time and output."""
        p = self.params
        eps = f", eps {p['eps']:.4g}" if "eps" in p else ""
        auto = " auto" if p.get("eps_mode") == "auto" else ""
        return (f"{self.n_clusters} clusters, {self.n_outliers} outliers of {self.n_images} ({p['method']}{eps}{auto})"
                f" in {self.timings['total_s']:.1f} s -> {self.output}")

    def quality_table(self) -> tuple[str, list[tuple[str, str]]]:
        """Title and (metric, value) rows of the quality against true ids."""
        rows = [(k, f"{v:.4f}" if isinstance(v, float) else str(v)) for k, v in (self.quality or {}).items()]
        return "pseudo-label quality (vs true ids)", rows


def run(features_path: str | Path, out_path: str | Path, *, split: str = "train", recipe: str | None = None,
        strict: bool = False, progress: StageProgress | None = None, **kwargs) -> ClusterReport:
    """Cluster one split of a features file and write the labels file atomically.

    Keyword arguments are those of `cluster_features` (a method's options included; None
    means not given). ``recipe`` names a paper recipe (`reidcli.recipes`) whose cluster
    settings fill those not given. A clustering with 0 clusters or 1 cluster for every image
    (`degenerate`) is logged as a warning and listed in the report's ``warnings``; with
    ``strict`` it is an `InputError` instead and nothing is written. ``progress``: as in
    `cluster_features`.
    """
    from reidcli.recipes import with_recipe

    kwargs = with_recipe(recipe, "cluster", kwargs)
    if kwargs.get("method") is None:
        kwargs.pop("method", None)
    from reidcli.cluster.quality import cluster_quality
    from reidcli.io.atomic import check_outputs, file_digest
    from reidcli.io.h5 import LabelsFile, read_features, write_labels

    features_path, out_path = Path(features_path), Path(out_path)
    check_outputs({"-o": out_path}, {"FEATURES": features_path})
    ff = read_features(features_path, [split])
    s = ff.split(split)
    if len(s) == 0:
        raise InputError(f"{features_path}:/{split} is empty; nothing to cluster")
    res = cluster_features(s.features, where=f"{features_path}:/{split}", camids=s.camids, progress=progress,
                           **kwargs)
    problem = degenerate(res.labels, res.params, f"{features_path}:/{split}")
    if problem is not None:
        if strict:
            raise InputError(f"{problem} (--strict: nothing written)")
        log.warning("%s", problem)
    attrs = {**res.params, "split": split, "source": str(features_path),
             "source_digest": file_digest(features_path), "n_images": len(s)}
    attrs = {k: v for k, v in attrs.items() if v is not None}
    quality = cluster_quality(res.labels, s.pids) if (s.pids >= 0).any() else None
    write_labels(out_path, LabelsFile(labels=res.labels, paths=list(s.paths), attrs=attrs,  # written last
                                      centers=res.centers), inputs=[features_path], seed=res.params.get("seed"))
    return ClusterReport(out_path, split, len(s), res.n_clusters, res.n_outliers, res.params, res.timings, quality,
                         warnings=[problem] if problem else [])
