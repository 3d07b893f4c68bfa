"""The clusterers: each registers in `CLUSTERERS` as an options dataclass (its defaults, its
`CONSTRAINTS`) whose `fit` turns L2-normalised features into labels.

Adding one (see CONTRIBUTING.md, "Adding a clusterer")::

    @CLUSTERERS.register("my-method")
    @dataclass
    class MyOptions(ClustererOptions):
        radius: float = 0.5
        CONSTRAINTS: ClassVar[dict] = {"radius": [Interval(float, 0, None, closed="neither")]}

        def fit(self, x, ctx):
            return labels, {"radius": self.radius}

``reid cluster --method my-method --radius ...`` then needs only a ``--radius`` option in
cli/cluster.py (default None, so that only a given value counts).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Optional

import numpy as np

from reidcli.utils.errors import InputError
from reidcli.utils.params import (
    Interval,
    NotApplicable,
    Options,
    ParamError,
    Satisfies,
    check_params,
    reject_unknown,
)
from reidcli.utils.registry import Registry

if TYPE_CHECKING:
    from reidcli.utils.progress import StageProgress

log = logging.getLogger(__name__)

CLUSTERERS: Registry[type[ClustererOptions]] = Registry("clusterer")
DEFAULT_CLUSTERER = "dbscan-jaccard"
KNN_INDEXES = ("auto", "flat", "ivf")
JACCARD_VARIANTS = ("spcl", "mmt")  # = reidcli.cluster.jaccard.VARIANTS (kept import-free here)


@dataclass
class FitContext:
    """What every clusterer may use besides its own options. ``progress`` (None: nobody
    listens) is called once per block of each stage, ``progress(stage, done, total)``."""

    seed: int = 0
    device: str = "auto"
    where: str = "the input"
    timings: dict = field(default_factory=dict)
    progress: Optional[StageProgress] = None

    def report(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)


@dataclass
class ClustererOptions:
    """Base of the clusterers' options: fields with defaults, a constraints table, `fit`."""

    CONSTRAINTS: ClassVar[dict] = {}

    def check(self, n: int, where: str = "the input") -> None:
        """The constraints, then the checks that need the number of features ``n``."""
        check_params(self, self.CONSTRAINTS)

    def check_given(self, given: Mapping[str, Any]) -> None:
        """Reject a given value that these options would ignore (none by default)."""

    def fit(self, x: np.ndarray, ctx: FitContext) -> tuple[np.ndarray, dict]:  # pragma: no cover
        """Labels [N] (-1 = outlier) of L2-normalised ``x`` and the parameters to record."""
        raise NotImplementedError

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


def make_options(method: str, options: ClustererOptions | None = None,
                 given: Mapping[str, Any] | None = None) -> ClustererOptions:
    """The options of ``method``: ``options`` as given, or built from the ``given`` keyword
    values (None = the default). A value the method does not take is a `ParamError`."""
    cls = CLUSTERERS.get(method)
    given = {k: v for k, v in (given or {}).items() if v is not None}
    reject_unknown(given, cls.names(), what=f"--method {method}")
    if options is not None and not isinstance(options, cls):
        raise ParamError("options", f"must be a {cls.__name__} for --method {method}; got {type(options).__name__}")
    opts = cls(**given) if options is None else dataclasses.replace(options, **given)
    opts.check_given(given)
    return opts


def at_most_n(name: str, value: int, n: int, where: str) -> None:
    """A count parameter (neighbours, clusters) cannot exceed the number of features."""
    if value > n:
        raise ParamError(name, f"must be an int in [1, {n}] ({where} holds {n} features); got {value}")


POSITIVE_INT = [Interval(int, 1, None)]


class _DbscanEps:
    """What the two DBSCAN clusterers share: ``eps`` a float or 'auto' (with ``eps_quantile``)."""

    def check_given(self, given: Mapping[str, Any]) -> None:
        if "eps_quantile" in given and self.eps != "auto":
            raise ParamError("eps_quantile", f"applies only with eps 'auto'; got eps {self.eps!r}")

    def _dbscan_params(self, eps: float, **more: Any) -> dict:
        """The report of a fit: the eps used (found, for 'auto'), how it was chosen, the rest."""
        auto = self.eps == "auto"
        params = {"eps": float(eps), "eps_mode": "auto" if auto else "fixed", "min_samples": self.min_samples, **more}
        if auto:
            params["eps_quantile"] = self.eps_quantile
        return params


@CLUSTERERS.register("dbscan-jaccard")
@dataclass
class JaccardDbscanOptions(_DbscanEps, ClustererOptions):
    """k-reciprocal Jaccard distance (Zhong et al., CVPR 2017), then DBSCAN. ``jaccard``
    says whose code's distance: 'spcl' (SpCL / Cluster-Contrast: k1 neighbours, the squared
    distance as it is) or 'mmt' (MMT, Ge et al. ICLR 2020: k1 + 1 neighbours, each row of the
    squared distance divided by its maximum); the same ``eps`` cuts the two differently
    (`reidcli.cluster.jaccard`). ``eps`` 'auto' takes the mean of the smallest
    ``eps_quantile`` fraction of the Jaccard distances."""

    eps: float | str = 0.6
    eps_quantile: float = 1.6e-3
    min_samples: int = 4
    k1: int = 30
    k2: int = 6
    knn_index: str = "auto"
    jaccard: str = "spcl"
    CONSTRAINTS: ClassVar[dict] = {
        "eps": [Interval(float, 0, 1, closed="right"), Satisfies(lambda v: v == "auto", "'auto'")],
        "eps_quantile": [Interval(float, 0, 1, closed="neither")],
        "min_samples": POSITIVE_INT,
        "k1": POSITIVE_INT,
        "k2": POSITIVE_INT,
        "knn_index": [Options(KNN_INDEXES)],
        "jaccard": [Options(JACCARD_VARIANTS)],
    }

    def check(self, n: int, where: str = "the input") -> None:
        super().check(n, where)
        at_most_n("k1", self.k1, n, where)
        at_most_n("k2", self.k2, n, where)
        if self.jaccard == "mmt" and self.knn_index == "ivf":
            raise NotApplicable("knn_index", "'ivf' does not apply to jaccard 'mmt' (its distances are divided by each "
                                          "row's maximum, which takes the exact search); use auto or flat")

    def fit(self, x: np.ndarray, ctx: FitContext) -> tuple[np.ndarray, dict]:
        from reidcli.cluster.dbscan import AutoEps, dbscan_graph
        from reidcli.cluster.jaccard import encode_features, jaccard_upper, symmetrize

        auto, eps = self.eps == "auto", self.eps
        v = encode_features(x, self.k1, self.k2, variant=self.jaccard, knn_index=self.knn_index, device=ctx.device,
                            progress=ctx.progress, timings=ctx.timings)
        t2 = time.perf_counter()
        if auto:
            keep = AutoEps(len(x), self.eps_quantile)
            upper = jaccard_upper(v, keep=keep, progress=ctx.progress)
            eps = keep.value()
            log.info("eps auto: %.4f (mean of the smallest %.3g%% of Jaccard distances)", eps, 100 * self.eps_quantile)
            if not 0 < eps <= 1:
                raise InputError(f"--eps auto found eps {eps:g} outside (0, 1]; give --eps explicitly")
        else:
            upper = jaccard_upper(v, max_dist=float(eps), progress=ctx.progress)
        del v
        t3 = time.perf_counter()
        labels = dbscan_graph(symmetrize(upper), float(eps), self.min_samples, missing=1.0, progress=ctx.progress)
        ctx.timings.update(jaccard_s=t3 - t2, dbscan_s=time.perf_counter() - t3)
        return labels, self._dbscan_params(eps, k1=self.k1, k2=self.k2, knn_index=self.knn_index, distance="jaccard",
                                           jaccard=self.jaccard)


@CLUSTERERS.register("dbscan-euclidean")
@dataclass
class EuclideanDbscanOptions(_DbscanEps, ClustererOptions):
    """DBSCAN (Ester et al., KDD 1996) on Euclidean distances of the normalised features.
    ``eps`` 'auto' takes the mean of the smallest ``eps_quantile`` fraction of the pairwise
    distances (the rule `dbscan-jaccard` uses), which follows the features' scale: ULA's eps
    1.0 (Chen et al. 2022) is a radius in its raw feature space, where L2-normalised features
    (distances in [0, 2]) call for another value."""

    eps: float | str = 1.0
    eps_quantile: float = 1.6e-3
    min_samples: int = 4
    CONSTRAINTS: ClassVar[dict] = {
        "eps": [Interval(float, 0, None, closed="neither"), Satisfies(lambda v: v == "auto", "'auto'")],
        "eps_quantile": [Interval(float, 0, 1, closed="neither")],
        "min_samples": POSITIVE_INT,
    }

    def fit(self, x: np.ndarray, ctx: FitContext) -> tuple[np.ndarray, dict]:
        from reidcli.cluster.dbscan import dbscan_euclidean, euclidean_auto_eps

        auto, eps = self.eps == "auto", self.eps
        if auto:
            eps = euclidean_auto_eps(x, self.eps_quantile, progress=ctx.progress)
            log.info("eps auto: %.4f (mean of the smallest %.3g%% of Euclidean distances)", eps,
                     100 * self.eps_quantile)
            if not (np.isfinite(eps) and eps > 0):
                raise InputError(f"--eps auto found eps {eps:g}; give --eps explicitly")
        labels = dbscan_euclidean(x, float(eps), self.min_samples, progress=ctx.progress)
        return labels, self._dbscan_params(eps, distance="euclidean")


@CLUSTERERS.register("kmeans")
@dataclass
class KMeansOptions(ClustererOptions):
    """faiss k-means, as the original MMT code (Ge et al., ICLR 2020) uses."""

    k: int = 500
    kmeans_iter: int = 50
    CONSTRAINTS: ClassVar[dict] = {"k": POSITIVE_INT, "kmeans_iter": POSITIVE_INT}

    def check(self, n: int, where: str = "the input") -> None:
        super().check(n, where)
        at_most_n("k", self.k, n, where)

    def fit(self, x: np.ndarray, ctx: FitContext) -> tuple[np.ndarray, dict]:
        from reidcli.cluster.kmeans import kmeans_labels

        ctx.report("k-means", 0, 1)
        labels, _ = kmeans_labels(x, self.k, niter=self.kmeans_iter, seed=ctx.seed, device=ctx.device)
        ctx.report("k-means", 1, 1)
        return labels, {"k": self.k, "kmeans_iter": self.kmeans_iter}
