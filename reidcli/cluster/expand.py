"""Unsupervised label adaptation (ULA) by template expansion (Chen et al. 2022, sec. 1.3;
docs/papers.md section 4: attention + ULA + KD).

1. Density clustering of the target features (eq. 1, N_eps(x_j) = {x_i : dist(x_i, x_j) <=
   eps}, DBSCAN with eps 1.0) gives sample clusters (`reidcli.cluster.run`).
2. Base classes: the ``keep_clusters`` *densest* clusters (750 in the paper). `densest`
   ranks a cluster by the mean size of its members' eps-neighbourhoods inside the cluster
   (eq. 1's density), which grows with the cluster's size and falls with its spread: a
   handful of near-duplicate images (compact but tiny) ranks below a large identity cluster
   whose members each have many close neighbours. Ties: larger, then more compact, first.
3. Templates (eq. 2): the common feature C_j of each base class minimises the centre loss
   L = 1/2 sum_i ||f_i - c_j||^2 over its members. On fixed features the minimiser is the
   members' mean (dL/dc_j = 0), used by default (`centre_loss_templates`). Templates learned
   *during training* - the centres of a run's `reidcli.losses.center.CenterLoss` trained on
   these very labels - can be passed as ``centers`` instead (they must live in the space of
   ``x``: a centre loss on the pre-BNNeck feature needs features extracted there too).
4. Expansion (eq. 3): any image outside the base classes whose cosine similarity to its best
   template exceeds ``threshold`` (0.8) gets that template's label.

eps, normalised vs raw features: eps is a Euclidean distance in the space of the features
it is applied to. ``reid cluster`` L2-normalises features first, where ||a - b||^2 =
2 - 2 cos(a, b): eps lies in (0, 2] and the paper's eps 1.0 means cosine >= 0.5. On raw
(unnormalised) features eps scales with the feature norm - the paper's 1.0 was chosen for
its own features - and must be re-chosen for another network. Templates and the cosine
threshold of eq. 3 do not depend on the feature scale.
"""

from __future__ import annotations

import numpy as np

from reidcli.utils.errors import InputError


def _members(labels: np.ndarray) -> list[np.ndarray]:
    """Row indices of each cluster 0..K-1 (outliers, -1, left out)."""
    k = int(labels.max()) + 1 if (labels >= 0).any() else 0
    keep = np.flatnonzero(labels >= 0)
    order = keep[np.argsort(labels[keep], kind="stable")]
    return np.split(order, np.cumsum(np.bincount(labels[keep], minlength=k))[:-1]) if k else []


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _sums(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster feature sums [K, D] (float64) and member counts [K]."""
    k = int(labels.max()) + 1 if (labels >= 0).any() else 0
    keep = labels >= 0
    sums = np.zeros((k, x.shape[1]), np.float64)
    np.add.at(sums, labels[keep], x[keep])
    return sums, np.bincount(labels[keep], minlength=k)


def centre_loss_templates(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The minimiser of the centre loss (eq. 2) for fixed features: each cluster's mean
    feature, in the space of ``x`` ([K, D] float32; not normalised)."""
    sums, n = _sums(x, labels)
    return (sums / np.maximum(n, 1)[:, None]).astype(np.float32)


def cluster_centres(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """L2-normalised mean feature of each cluster 0..K-1 ([K, D] float32)."""
    sums, _ = _sums(x, labels)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32)


def cluster_density(x: np.ndarray, labels: np.ndarray, eps: float = 1.0, block: int = 2048) -> np.ndarray:
    """Per cluster, the mean number of other members within Euclidean distance ``eps`` of a
    member (eq. 1's |N_eps| restricted to the cluster) [K]."""
    out = []
    for m in _members(labels):
        f = np.asarray(x[m], np.float64)
        sq = (f * f).sum(1)
        count = 0
        for s in range(0, len(f), block):
            d2 = sq[s : s + block, None] + sq[None, :] - 2.0 * f[s : s + block] @ f.T
            count += int((d2 <= eps * eps + 1e-9).sum()) - len(d2)  # self excluded
        out.append(count / len(f))
    return np.asarray(out, np.float64)


def densest(x: np.ndarray, labels: np.ndarray, keep: int, eps: float = 1.0) -> np.ndarray:
    """Ids of the ``keep`` densest clusters (see the module docstring), in cluster-id order."""
    labels = np.asarray(labels, np.int64)
    density = cluster_density(x, labels, eps)
    members = _members(labels)
    sizes = np.array([len(m) for m in members])
    t = cluster_centres(x, labels)
    xs = _unit(x)
    compact = np.array([float((xs[m] @ t[j]).mean()) for j, m in enumerate(members)])
    order = np.lexsort((np.arange(len(sizes)), -compact, -sizes, -density))
    return np.sort(order[:keep])


def expand_labels(x: np.ndarray, labels: np.ndarray, *, threshold: float = 0.8,
                  keep_clusters: int | None = None, eps: float = 1.0,
                  centers: np.ndarray | None = None, block: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Label expansion from templates (the module docstring's steps 2-4).

    Args:
        x: [N, D] features (L2-normalised as ``reid cluster`` gives them, or raw).
        labels: [N] cluster labels, -1 for outliers.
        threshold: cosine similarity (eq. 3) a point needs to its best template to join it.
        keep_clusters: base classes kept (the densest); None keeps every cluster.
        eps: the density radius of `densest` (Euclidean, in the space of ``x``).
        centers: optional [K, D] templates for clusters 0..K-1 of ``labels`` (e.g. centre-
            loss centres learned on these labels); default: `centre_loss_templates`.
    Returns:
        (new labels renumbered 0..K'-1 in the kept clusters' order, unit templates [K', D]).
    """
    labels = np.asarray(labels, np.int64)
    n_clusters = int(labels.max()) + 1 if (labels >= 0).any() else 0
    if centers is not None and np.shape(centers) != (n_clusters, x.shape[1]):
        raise InputError(f"ULA templates are {np.shape(centers)} but the labels have {n_clusters} "
                         f"clusters of {x.shape[1]}-d features; pass one centre per cluster id")
    kept = np.arange(n_clusters) if keep_clusters is None or keep_clusters >= n_clusters \
        else densest(x, labels, keep_clusters, eps)
    remap = np.full(n_clusters + 1, -1, np.int64)
    remap[kept] = np.arange(len(kept))
    out = np.where(labels >= 0, remap[labels], -1)
    # the centre-loss minimiser's direction = the normalised sum of the members
    templates = cluster_centres(x, out) if centers is None else _unit(np.asarray(centers)[kept]).astype(np.float32)
    free = np.flatnonzero(out < 0)
    for s in range(0, len(free), block):
        rows = free[s : s + block]
        if len(templates) == 0:
            break
        sim = _unit(x[rows]).astype(np.float32) @ templates.T
        best = sim.argmax(1)
        ok = sim[np.arange(len(rows)), best] > threshold
        out[rows[ok]] = best[ok]
    return out, templates
