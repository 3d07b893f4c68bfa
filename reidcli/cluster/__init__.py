"""reidcli.cluster: features -> pseudo-labels (k-NN, k-reciprocal Jaccard, DBSCAN, k-means,
label expansion, quality against true ids). Heavy modules are imported lazily."""

from reidcli.cluster.run import METHODS, ClusterResult, cluster_features, run

cluster_file = run

__all__ = ["METHODS", "ClusterResult", "cluster_features", "cluster_file", "run"]
