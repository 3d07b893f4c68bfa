"""Pseudo-label quality against true identities: counts, pair precision / recall, ARI, NMI.

Outliers (-1) are scored as singleton clusters: they join no pair, so they lower recall,
never precision. Images whose true id is unknown (pid < 0) are left out.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def _pairs(counts: np.ndarray) -> float:
    counts = counts.astype(np.float64)
    return float((counts * (counts - 1) / 2).sum())


def cluster_quality(labels: np.ndarray, pids: np.ndarray) -> dict:
    """Quality of ``labels`` (-1 = outlier) against true ``pids`` (pid < 0 ignored)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels, pids = np.asarray(labels, np.int64), np.asarray(pids, np.int64)
    known = pids >= 0
    lab, pid = labels[known], pids[known]
    n = len(lab)
    singles = np.flatnonzero(lab < 0)
    scored = lab.copy()
    scored[singles] = lab.max(initial=-1) + 1 + np.arange(len(singles))  # each outlier alone
    _, ci = np.unique(scored, return_inverse=True)
    _, ti = np.unique(pid, return_inverse=True)
    cont = sp.coo_matrix((np.ones(n), (ci, ti))).tocsr()
    cont.sum_duplicates()
    both = _pairs(cont.data)
    same_cluster = _pairs(np.bincount(ci))
    same_id = _pairs(np.bincount(ti))
    precision = both / same_cluster if same_cluster else 0.0
    recall = both / same_id if same_id else 0.0
    clustered = lab >= 0
    return {
        "n_images": int(n),
        "n_ids": len(np.unique(pid)),
        "n_clusters": len(np.unique(lab[clustered])),
        "outlier_rate": float(1 - clustered.mean()) if n else 0.0,
        "pair_precision": precision,
        "pair_recall": recall,
        "pair_f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "pair_precision_chance": same_id / (n * (n - 1) / 2) if n > 1 else 0.0,
        "ari": float(adjusted_rand_score(ti, ci)) if n else 0.0,
        "nmi": float(normalized_mutual_info_score(ti, ci)) if n else 0.0,
    }
