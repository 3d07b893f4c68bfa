"""`reid cluster`: pseudo-labels from a features file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from reidcli.cli.common import Json, Output, Seed, reid_command


@reid_command("cluster")
def command(
    features: Annotated[Path, typer.Argument(help="A features .h5 file (reid features).")],
    output: Output,
    split: Annotated[str, typer.Option("--split", help="Split to cluster.")] = "train",
    method: Annotated[str, typer.Option("--method", help="dbscan-jaccard | dbscan-euclidean | kmeans.")] = "dbscan-jaccard",
    eps: Annotated[Optional[str], typer.Option("--eps", help="DBSCAN radius, or 'auto' (default 0.6 Jaccard, 1.0 Euclidean; the RBNet paper uses 0.42).")] = None,
    eps_quantile: Annotated[float, typer.Option("--eps-quantile", help="--eps auto: mean of this smallest fraction of pairwise distances.")] = 1.6e-3,
    min_samples: Annotated[int, typer.Option("--min-samples", min=1, help="DBSCAN core-point size (self included).")] = 4,
    k1: Annotated[int, typer.Option("--k1", min=1, help="k-reciprocal neighbours.")] = 30,
    k2: Annotated[int, typer.Option("--k2", min=1, help="Local query expansion neighbours.")] = 6,
    k: Annotated[int, typer.Option("--k", min=1, help="Clusters for --method kmeans.")] = 500,
    expand_threshold: Annotated[Optional[float], typer.Option("--expand-threshold", help="Label expansion: cosine similarity to a template needed to join it.")] = None,
    keep_clusters: Annotated[Optional[int], typer.Option("--keep-clusters", help="Label expansion: keep this many densest clusters as base classes.")] = None,
    centers: Annotated[bool, typer.Option("--centers", help="Also write cluster centres [K, D].")] = False,
    knn_index: Annotated[str, typer.Option("--knn-index", help="auto | flat | ivf neighbour search.")] = "auto",
    gpu: Annotated[str, typer.Option("--gpu", help="auto | yes | no: faiss on the GPU.")] = "auto",
    camera_norm: Annotated[bool, typer.Option("--camera-norm", help="Subtract each camera's mean feature before the neighbour search (clusters follow identities, not camera styles).")] = False,
    seed: Seed = 0,
    as_json: Json = False,
) -> None:
    """Cluster the features of one split into pseudo-labels (-1 = outlier): k-reciprocal
    Jaccard distance + DBSCAN by default, Euclidean DBSCAN, k-means, and label expansion.
    With true ids in the file, prints cluster quality (pair precision/recall, ARI, NMI).

    Example: reid cluster f.h5 -o labels.h5 --eps 0.42
    """
    from reidcli.cluster import run
    from reidcli.utils.progress import say

    if eps is not None and eps != "auto":
        try:
            eps = float(eps)
        except ValueError:
            raise typer.BadParameter(f"must be a float or 'auto'; got {eps!r}", param_hint="--eps")
    _, report = run(features, output, split=split, method=method, eps=eps, eps_quantile=eps_quantile,
                    min_samples=min_samples, k1=k1, k2=k2, k=k, expand_threshold=expand_threshold,
                    keep_clusters=keep_clusters, centers=centers, knn_index=knn_index, gpu=gpu, seed=seed,
                    camera_norm=camera_norm)
    p = report["params"]
    say(f"{report['n_clusters']} clusters, {report['n_outliers']} outliers of {report['n_images']} "
        f"({p['method']}{', eps %.4g' % p['eps'] if 'eps' in p else ''}"
        f"{' auto' if p.get('eps_mode') == 'auto' else ''}) in {report['timings']['total_s']:.1f} s -> {output}")
    if as_json:
        print(json.dumps(report))
    elif "quality" in report:
        _table(report["quality"])


def _table(q: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="pseudo-label quality (vs true ids)")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for key, val in q.items():
        t.add_row(key, f"{val:.4f}" if isinstance(val, float) else str(val))
    Console().print(t)
