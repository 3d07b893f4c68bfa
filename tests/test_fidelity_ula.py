"""ULA (Chen et al. 2022, sec. 1.3) in reidcli.cluster.expand: base classes are the densest clusters
(eq. 1), templates minimise the centre loss (eq. 2) or come from training, expansion is by
cosine (eq. 3), and eps is a distance in the features' own space."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reidcli.cluster.expand import (
    centre_loss_templates,
    cluster_centres,
    cluster_density,
    densest,
    expand_labels,
)
from reidcli.utils.errors import InputError


def _unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _blob(rng, centre, n, spread, dim=16):
    return _unit(centre + spread * rng.normal(size=(n, dim)))


def test_base_classes_are_dense_by_size_not_tiny_near_duplicates():
    rng = np.random.default_rng(0)
    a, b = np.eye(16)[0] * 3, np.eye(16)[1] * 3
    big = _blob(rng, a, 12, 0.5)  # one identity: 12 images, each with many close neighbours
    dup = _blob(rng, b, 3, 0.01)  # 3 near-identical frames
    x = np.concatenate([big, dup])
    labels = np.array([0] * 12 + [1] * 3)
    # the old rule (mean cosine to the template) prefers the near-duplicates ...
    t = cluster_centres(x, labels)
    assert (dup @ t[1]).mean() > (big @ t[0]).mean()
    # ... the paper's density (eq. 1) prefers the identity cluster
    dens = cluster_density(x, labels, eps=1.0)
    assert dens[0] > dens[1] == 2
    np.testing.assert_array_equal(densest(x, labels, 1), [0])
    out, templates = expand_labels(x, labels, threshold=0.8, keep_clusters=1)
    assert (out[:12] == 0).all() and templates.shape == (1, 16)


def test_density_counts_eps_neighbours_so_a_sparse_chain_ranks_below_a_dense_cluster():
    rng = np.random.default_rng(1)
    dense = _blob(rng, np.eye(16)[0] * 3, 8, 0.3)
    # a chain of 8 points, each within eps 1 of the next only (DBSCAN's arbitrary shapes)
    ang = np.arange(8) * 0.7  # neighbours 0.69 apart, every other pair > 1.2
    chain = np.zeros((8, 16), np.float32)
    chain[:, 2], chain[:, 3] = np.cos(ang), np.sin(ang)
    x = np.concatenate([dense, chain])
    labels = np.array([0] * 8 + [1] * 8)
    d = cluster_density(x, labels, eps=1.0)
    assert d[1] == pytest.approx(2 * 7 / 8)  # ends have 1 neighbour, the rest 2
    assert d[0] > d[1]
    np.testing.assert_array_equal(densest(x, labels, 1), [0])


def test_eps_is_a_distance_in_the_features_own_space():
    # unit vectors: ||a - b|| <= 1  <=>  cos(a, b) >= 0.5 (the paper's eps 1.0 on normalised features)
    def pair(cos):
        return _unit([[1, 0], [cos, np.sqrt(1 - cos**2)]])

    labels = np.array([0, 0])
    assert cluster_density(pair(0.55), labels, eps=1.0)[0] == 1
    assert cluster_density(pair(0.45), labels, eps=1.0)[0] == 0
    raw = 3 * pair(0.55)  # raw features: eps scales with the norm
    assert cluster_density(raw, labels, eps=1.0)[0] == 0
    assert cluster_density(raw, labels, eps=3.0)[0] == 1


def test_templates_minimise_the_centre_loss_and_expansion_is_cosine():
    from reidcli.losses.center import CenterLoss

    rng = np.random.default_rng(2)
    x = (rng.normal(size=(30, 8)) * rng.uniform(0.5, 4, size=(30, 1))).astype(np.float32)  # raw
    labels = np.array([0] * 10 + [1] * 10 + [-1] * 10)
    c = centre_loss_templates(x, labels)
    loss = CenterLoss(2, 8)
    loss.reset(torch.from_numpy(c))
    keep = labels >= 0
    loss(torch.from_numpy(x[keep]), torch.from_numpy(labels[keep])).backward()
    assert float(loss.centers.grad.abs().max()) < 1e-5  # dL/dc = 0: the minimiser of eq. 2
    out_raw, t = expand_labels(x, labels, threshold=0.5)
    np.testing.assert_allclose(t, _unit(c), atol=1e-6)
    out_unit, _ = expand_labels(_unit(x), labels, threshold=0.5)  # cosine: scale-free
    np.testing.assert_array_equal(out_raw, out_unit)


def test_templates_learned_in_training_can_be_passed():
    x = _unit([[1, 0, 0], [1, .2, 0], [1, 0, .2],  # cluster 0
               [0, 1, 0], [.2, 1, 0], [0, 1, .2],  # cluster 1
               [.6, 0, 1]])                        # unlabelled: cos 0.51 to cluster 0's mean
    labels = np.array([0, 0, 0, 1, 1, 1, -1])
    assert expand_labels(x, labels, threshold=0.8)[0][6] == -1
    learned = np.array([[1, 0, 1.2], [0, 1, 0]], np.float32)  # e.g. centre-loss centres
    out, t = expand_labels(x, labels, threshold=0.8, centers=learned)
    assert out[6] == 0
    np.testing.assert_allclose(t, _unit(learned), atol=1e-6)
    out, _ = expand_labels(x, labels, threshold=0.8, keep_clusters=1, centers=learned)
    assert out.max() == 0  # the kept cluster's own template, renumbered
    with pytest.raises(InputError, match="one centre per cluster id"):
        expand_labels(x, labels, centers=learned[:1])


@pytest.mark.parametrize("method, eps, want", [("dbscan-euclidean", 0.35, 0.35), ("dbscan-jaccard", 0.5, 1.0)])
def test_expansion_density_uses_the_euclidean_clustering_eps(monkeypatch, method, eps, want):
    """ULA's one eps (eq. 1) serves the clusters and their density; a Jaccard eps is not a
    Euclidean radius, so the paper's 1.0 stands there."""
    import reidcli.cluster.expand as expand
    from reidcli.cluster.run import cluster_features

    seen = {}
    real = expand.expand_labels

    def spy(x, labels, **kw):
        seen.update(kw)
        return real(x, labels, **kw)

    monkeypatch.setattr(expand, "expand_labels", spy)
    rng = np.random.default_rng(3)
    x = np.concatenate([_blob(rng, np.eye(16)[i] * 3, 10, 0.2) for i in range(3)])
    opts = {"eps": eps, "min_samples": 2} if method == "dbscan-euclidean" else {"eps": eps, "k1": 6, "k2": 2}
    res = cluster_features(x, method=method, expand_threshold=0.8, keep_clusters=2, **opts)
    assert seen["eps"] == pytest.approx(want)
    assert res.labels.max() == 1  # two base classes kept
