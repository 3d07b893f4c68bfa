"""reidcli.cluster: features -> pseudo-labels (k-NN, k-reciprocal Jaccard, DBSCAN, k-means,
label expansion, quality against true ids). Heavy modules are imported lazily.

Clusterers are registered in `CLUSTERERS` with their options dataclasses
(`reidcli.cluster.methods`); `cluster_features` works on arrays, `run` on files.
"""

from reidcli.cluster.methods import CLUSTERERS, DEFAULT_CLUSTERER, ClustererOptions
from reidcli.cluster.run import ClusterReport, ClusterResult, cluster_features, run

cluster_file = run

__all__ = ["CLUSTERERS", "DEFAULT_CLUSTERER", "ClusterReport", "ClusterResult", "ClustererOptions",
           "cluster_features", "cluster_file", "run"]
