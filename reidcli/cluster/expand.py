"""Unsupervised label adaptation by template expansion (METHODS.md section 4, ULA).

Keep the densest clusters as base classes, build one template (the renormalised mean of
the members' L2-normalised features) per class, and give every unlabelled image the label
of its most similar template when that cosine similarity exceeds a threshold.
"""

from __future__ import annotations

import numpy as np


def cluster_centres(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """L2-normalised mean feature of each cluster 0..K-1 ([K, D] float32)."""
    k = int(labels.max()) + 1 if (labels >= 0).any() else 0
    keep = labels >= 0
    sums = np.zeros((k, x.shape[1]), np.float64)
    np.add.at(sums, labels[keep], x[keep])
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32)


def densest(x: np.ndarray, labels: np.ndarray, keep: int) -> np.ndarray:
    """Ids of the ``keep`` densest clusters: highest mean cosine similarity of the members to
    their template (compactness), larger clusters first on ties; in cluster-id order."""
    centres = cluster_centres(x, labels)
    member = labels >= 0
    sim = np.einsum("ij,ij->i", x[member], centres[labels[member]])
    sizes = np.bincount(labels[member], minlength=len(centres))
    compact = np.bincount(labels[member], weights=sim, minlength=len(centres)) / np.maximum(sizes, 1)
    order = np.lexsort((-sizes, -compact))
    return np.sort(order[:keep])


def expand_labels(x: np.ndarray, labels: np.ndarray, *, threshold: float = 0.8,
                  keep_clusters: int | None = None, block: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Label expansion from templates.

    Args:
        x: [N, D] L2-normalised features.
        labels: [N] cluster labels, -1 for outliers.
        threshold: cosine similarity a point needs to its best template to join it.
        keep_clusters: base classes kept (the densest); None keeps every cluster.
    Returns:
        (new labels renumbered 0..K-1 in the kept clusters' order, templates [K, D]).
    """
    labels = np.asarray(labels, np.int64)
    n_clusters = int(labels.max()) + 1 if (labels >= 0).any() else 0
    kept = np.arange(n_clusters) if keep_clusters is None or keep_clusters >= n_clusters \
        else densest(x, labels, keep_clusters)
    remap = np.full(n_clusters + 1, -1, np.int64)
    remap[kept] = np.arange(len(kept))
    out = np.where(labels >= 0, remap[labels], -1)
    templates = cluster_centres(x, out)
    free = np.flatnonzero(out < 0)
    for s in range(0, len(free), block):
        rows = free[s : s + block]
        if len(templates) == 0:
            break
        sim = x[rows] @ templates.T
        best = sim.argmax(1)
        ok = sim[np.arange(len(rows)), best] > threshold
        out[rows[ok]] = best[ok]
    return out, templates
