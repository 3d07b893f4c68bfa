"""k-means pseudo-labels with faiss, as the original MMT code (Ge et al., ICLR 2020) uses."""

from __future__ import annotations

import numpy as np

from reidcli.utils.params import ParamError


def kmeans_labels(x: np.ndarray, k: int = 500, *, niter: int = 50, seed: int = 0,
                  device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means (faiss) on ``x``; the same seed gives the same labels.

    Returns:
        (labels [N] int64 in 0..k-1, centres [k, D] float32).
    """
    import faiss

    from reidcli.cluster.knn import faiss_on_gpu

    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if not 1 <= k <= n:
        raise ParamError("k", f"must be an int in [1, {n}] (the number of features); got {k}")
    km = faiss.Kmeans(d, k, niter=niter, seed=int(seed) % (2**31), verbose=False,
                      gpu=faiss_on_gpu(device), max_points_per_centroid=max(256, n // k + 1))
    km.train(x)
    _, assign = km.index.search(x, 1)
    return assign[:, 0].astype(np.int64), km.centroids.astype(np.float32)
