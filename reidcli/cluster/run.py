"""Features -> pseudo-labels: the array-level `cluster_features` and the file-level `run`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reidcli.utils.errors import ConfigError, InputError

log = logging.getLogger(__name__)

METHODS = ("dbscan-jaccard", "dbscan-euclidean", "kmeans")
DEFAULT_EPS = {"dbscan-jaccard": 0.6, "dbscan-euclidean": 1.0}


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


def check_params(n: int, *, method: str, eps, min_samples: int, k1: int, k2: int, k: int,
                 eps_quantile: float, expand_threshold: float | None,
                 keep_clusters: int | None, where: str = "features") -> float | str:
    """Validate the parameters against each other and N; return eps (a float or 'auto')."""
    if method not in METHODS:
        import difflib

        close = difflib.get_close_matches(method, METHODS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown --method '{method}'{hint} (choices: {', '.join(METHODS)})")
    if eps is None:
        eps = DEFAULT_EPS.get(method, 0.0)
    if isinstance(eps, str) and eps != "auto":
        try:
            eps = float(eps)
        except ValueError:
            raise ConfigError(f"--eps must be a float or 'auto'; got {eps!r}") from None
    if eps == "auto" and method != "dbscan-jaccard":
        raise ConfigError(f"--eps auto is only for --method dbscan-jaccard; give a number for {method}")
    if method == "dbscan-jaccard" and eps != "auto" and not 0 < eps <= 1:
        raise ConfigError(f"--eps must be a float in (0, 1] for Jaccard distances; got {eps:g}")
    if method == "dbscan-euclidean" and not eps > 0:
        raise ConfigError(f"--eps must be a float > 0; got {eps:g}")
    if not 0 < eps_quantile < 1:
        raise ConfigError(f"--eps-quantile must be a fraction in (0, 1); got {eps_quantile:g}")
    if min_samples < 1:
        raise ConfigError(f"--min-samples must be an int >= 1; got {min_samples}")
    if method == "dbscan-jaccard":
        if k1 < 1 or k2 < 1:
            raise ConfigError(f"--k1 and --k2 must be ints >= 1; got {k1} and {k2}")
        if n < k1 or n < k2:
            raise InputError(f"{where} has {n} features, fewer than --k1 {k1} (or --k2 {k2}); "
                             f"lower --k1/--k2 or cluster more images")
    if method == "kmeans" and not 1 <= k <= n:
        raise ConfigError(f"--k must be an int in [1, {n}] ({where} has {n} features); got {k}")
    if expand_threshold is not None and not -1 <= expand_threshold <= 1:
        raise ConfigError(f"--expand-threshold must be a cosine similarity in [-1, 1]; got {expand_threshold:g}")
    if keep_clusters is not None and keep_clusters < 1:
        raise ConfigError(f"--keep-clusters must be an int >= 1; got {keep_clusters}")
    return eps


def cluster_features(features: np.ndarray, *, method: str = "dbscan-jaccard", eps=None,
                     eps_quantile: float = 1.6e-3, min_samples: int = 4, k1: int = 30, k2: int = 6,
                     k: int = 500, kmeans_iter: int = 50, expand_threshold: float | None = None,
                     keep_clusters: int | None = None, knn_index: str = "auto", gpu: str = "auto",
                     seed: int = 0, centers: bool = False, where: str = "features",
                     camids: np.ndarray | None = None, camera_norm: bool = False) -> ClusterResult:
    """Pseudo-labels for ``features`` [N, D] (L2-normalised first); -1 marks outliers.

    ``dbscan-jaccard``: k-reciprocal Jaccard distance (Zhong et al., CVPR 2017) as SpCL /
    Cluster-Contrast compute it, then DBSCAN; ``dbscan-euclidean``: DBSCAN on Euclidean
    distances; ``kmeans``: faiss k-means. Optional label expansion (METHODS.md section 4).

    ``camera_norm`` (needs ``camids``) subtracts each camera's mean feature before the
    neighbour search, then re-normalises, so clusters follow identities rather than camera
    styles (the per-camera feature centring of camera-aware UDA, e.g. Wang et al., CAP,
    AAAI 2021). Only camera ids are used, never identities; centres stay in the original space.
    """
    from reidcli.cluster.knn import l2_normalize

    n = features.shape[0]
    eps = check_params(n, method=method, eps=eps, min_samples=min_samples, k1=k1, k2=k2, k=k,
                       eps_quantile=eps_quantile, expand_threshold=expand_threshold,
                       keep_clusters=keep_clusters, where=where)
    x = original = l2_normalize(features)
    params: dict = {"method": method, "normalized": True, "seed": seed, "camera_norm": camera_norm}
    if camera_norm:
        x = centre_cameras(x, camids, where)
    timings: dict = {}
    t0 = time.perf_counter()
    if method == "dbscan-jaccard":
        labels, eps_used = _dbscan_jaccard(x, eps, eps_quantile, min_samples, k1, k2, knn_index, gpu, timings)
        params.update(eps=eps_used, eps_mode="auto" if eps == "auto" else "fixed", min_samples=min_samples,
                      k1=k1, k2=k2, knn_index=knn_index, distance="jaccard")
        if eps == "auto":
            params["eps_quantile"] = eps_quantile
    elif method == "dbscan-euclidean":
        from reidcli.cluster.dbscan import dbscan_euclidean

        labels = dbscan_euclidean(x, float(eps), min_samples)
        params.update(eps=float(eps), min_samples=min_samples, distance="euclidean")
    else:
        from reidcli.cluster.kmeans import kmeans_labels

        labels, _ = kmeans_labels(x, k, niter=kmeans_iter, seed=seed, gpu=gpu)
        params.update(k=k, kmeans_iter=kmeans_iter)
    timings["cluster_s"] = time.perf_counter() - t0
    if expand_threshold is not None:
        from reidcli.cluster.expand import expand_labels

        labels, _ = expand_labels(x, labels, threshold=expand_threshold, keep_clusters=keep_clusters)
        params.update(expand_threshold=expand_threshold, keep_clusters=keep_clusters)
    elif keep_clusters is not None:
        raise ConfigError("--keep-clusters needs --expand-threshold (the label expansion it belongs to)")
    labels = _renumber(labels)
    cents = None
    if centers:
        from reidcli.cluster.expand import cluster_centres

        cents = cluster_centres(original, labels)
    timings["total_s"] = time.perf_counter() - t0
    return ClusterResult(labels=labels, params=params, centers=cents, timings=timings)


def _dbscan_jaccard(x, eps, eps_quantile, min_samples, k1, k2, knn_index, gpu, timings):
    from reidcli.cluster.dbscan import AutoEps, dbscan_graph
    from reidcli.cluster.jaccard import (
        KnnLookup,
        encode,
        jaccard_upper,
        pair_dots,
        symmetrize,
    )
    from reidcli.cluster.knn import knn

    t0 = time.perf_counter()
    dist, rank = knn(x, k1, index=knn_index, gpu=gpu)
    t1 = time.perf_counter()
    v = encode(rank, k1, k2, KnnLookup(dist, rank, lambda r, c: 2.0 - 2.0 * pair_dots(x, r, c)))
    del dist
    t2 = time.perf_counter()
    timings.update(knn_s=t1 - t0, encode_s=t2 - t1)
    if eps == "auto":
        auto = AutoEps(len(x), eps_quantile)
        upper = jaccard_upper(v, keep=auto)
        eps = auto.value()
        log.info("eps auto: %.4f (mean of the smallest %.3g%% of Jaccard distances)", eps, 100 * eps_quantile)
        if not 0 < eps <= 1:
            raise InputError(f"--eps auto found eps {eps:g} outside (0, 1]; give --eps explicitly")
    else:
        upper = jaccard_upper(v, keep=None if eps >= 1 else (lambda r, c, j: j <= eps))
    del v
    t3 = time.perf_counter()
    labels = dbscan_graph(symmetrize(upper), float(eps), min_samples, missing=1.0)
    timings.update(jaccard_s=t3 - t2, dbscan_s=time.perf_counter() - t3)
    return labels, float(eps)


def centre_cameras(x: np.ndarray, camids: np.ndarray | None, where: str = "features") -> np.ndarray:
    """L2-normalised ``x`` minus the mean feature of each row's camera, re-normalised."""
    from reidcli.cluster.knn import l2_normalize

    if camids is None or len(camids) != len(x):
        raise ConfigError(f"--camera-norm needs one camera id per row of {where}")
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
    uniq, inv = np.unique(labels[keep], return_inverse=True)
    out = np.full_like(labels, -1)
    out[keep] = inv
    return out


def run(features_path: str | Path, out_path: str | Path, *, split: str = "train",
        **kwargs) -> tuple[Path, dict]:
    """Cluster one split of a features file and write the labels file atomically.

    Keyword arguments are those of `cluster_features`. Returns the output path and a report
    (counts, eps, timings and, when the file holds true ids, `cluster_quality`).
    """
    from reidcli.cluster.quality import cluster_quality
    from reidcli.io.atomic import file_digest, same_file
    from reidcli.io.h5 import LabelsFile, read_features, write_labels

    features_path, out_path = Path(features_path), Path(out_path)
    if same_file(features_path, out_path):
        raise InputError(f"-o {out_path} is the input features file; give another output name")
    ff = read_features(features_path, [split])
    s = ff.split(split)
    if len(s) == 0:
        raise InputError(f"{features_path}:/{split} is empty; nothing to cluster")
    res = cluster_features(s.features, where=f"{features_path}:/{split}", camids=s.camids, **kwargs)
    attrs = {**res.params, "split": split, "source": str(features_path),
             "source_digest": file_digest(features_path), "n_images": len(s)}
    attrs = {k: v for k, v in attrs.items() if v is not None}
    write_labels(out_path, LabelsFile(labels=res.labels, paths=list(s.paths), attrs=attrs,
                                      centers=res.centers), inputs=[features_path], seed=res.params.get("seed"))
    report = {"output": str(out_path), "split": split, "n_images": len(s), "n_clusters": res.n_clusters,
              "n_outliers": res.n_outliers, "params": res.params, "timings": res.timings}
    if (s.pids >= 0).any():
        report["quality"] = cluster_quality(res.labels, s.pids)
    return out_path, report
