"""`reid cluster`: pseudo-labels from a features file.

A clusterer's own options default to None here, so that only the ones given count (and one
that does not apply to --method is an error); their defaults live in the clusterer's
options dataclass (reidcli.cluster.methods) and are shown in the help.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from reidcli.cli.common import Json, Output, Recipe, Seed, Threads, reid_command
from reidcli.cli.defaults import opt
from reidcli.utils.errors import ConfigError
from reidcli.cluster.methods import (
    CLUSTERERS,
    DEFAULT_CLUSTERER,
    EuclideanDbscanOptions,
    JaccardDbscanOptions,
    KMeansOptions,
)

J, E, K = JaccardDbscanOptions, EuclideanDbscanOptions, KMeansOptions  # their defaults are shown in the help
_DBSCANS = {"dbscan-jaccard": J, "dbscan-euclidean": E}
_GPU_TO_DEVICE = {"auto": "auto", "yes": "cuda", "no": "cpu"}  # the deprecated --gpu's values


def parse_eps(text: str) -> float | str:
    """--eps: a float or 'auto'; anything else is a usage error."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise typer.BadParameter(f"must be a float or 'auto'; got {text!r}") from None


def _for(*names: str) -> str:
    return "--method " + " | ".join(names)


@reid_command("cluster")
def command(
    features: Annotated[Path, typer.Argument(help="A features .h5 file (reid features).")],
    output: Output,
    split: Annotated[str, typer.Option("--split", help="Split to cluster.")] = "train",
    method: Annotated[str | None, opt("--method", help=" | ".join(CLUSTERERS.names()) + ".", shows=DEFAULT_CLUSTERER)] = None,
    eps: Annotated[str | None, opt("--eps", parser=parse_eps, metavar="FLOAT|auto", help=(
        f"DBSCAN radius, or 'auto' ({_for('dbscan-jaccard', 'dbscan-euclidean')}; the RBNet paper uses 0.42)."),
        of=_DBSCANS)] = None,
    eps_quantile: Annotated[float | None, opt("--eps-quantile", help=(
        "--eps auto: mean of this smallest fraction of pairwise distances."), of=_DBSCANS)] = None,
    min_samples: Annotated[int | None, opt("--min-samples", min=1, help=(
        f"DBSCAN core-point size, self included ({_for('dbscan-jaccard', 'dbscan-euclidean')})."), of=_DBSCANS)] = None,
    k1: Annotated[int | None, opt("--k1", min=1, help=f"k-reciprocal neighbours ({_for('dbscan-jaccard')}).", of=J)] = None,
    k2: Annotated[int | None, opt("--k2", min=1, help=(
        f"Local query expansion neighbours ({_for('dbscan-jaccard')})."), of=J)] = None,
    knn_index: Annotated[str | None, opt("--knn-index", help=(
        f"auto | flat | ivf neighbour search ({_for('dbscan-jaccard')})."), of=J)] = None,
    jaccard: Annotated[str | None, opt("--jaccard", help=(
        "spcl | mmt: whose code's Jaccard distance, SpCL's (k1 neighbours) or MMT's (k1 + 1, each distance "
        f"row divided by its maximum); one eps cuts them differently ({_for('dbscan-jaccard')})."), of=J)] = None,
    k: Annotated[int | None, opt("--k", min=1, help=f"Clusters ({_for('kmeans')}).", of=K)] = None,
    kmeans_iter: Annotated[int | None, opt("--kmeans-iter", min=1, help=f"k-means iterations ({_for('kmeans')}).", of=K)] = None,
    expand_threshold: Annotated[float | None, typer.Option("--expand-threshold", help="Label expansion: cosine similarity to a template needed to join it.")] = None,
    keep_clusters: Annotated[int | None, typer.Option("--keep-clusters", help="Label expansion: keep this many densest clusters as base classes.")] = None,
    centers: Annotated[bool, typer.Option("--centers", help="Also write cluster centres [K, D].")] = False,
    device: Annotated[str, typer.Option("--device", help=(
        "auto | cpu | cuda | cuda:N: where faiss searches neighbours (auto: its GPU when it has one)."))] = "auto",
    gpu: Annotated[str | None, typer.Option("--gpu", hidden=True, help="Deprecated: --device (yes = cuda, "
                                                                        "no = cpu).")] = None,
    camera_norm: Annotated[bool, typer.Option("--camera-norm", help="Subtract each camera's mean feature before the neighbour search (clusters follow identities, not camera styles).")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Fail (exit 1, nothing written) instead of warning when the result is 0 clusters or 1 cluster for every image.")] = False,
    seed: Seed = 0,
    threads: Threads = None,
    recipe: Recipe = None,
    as_json: Json = False,
) -> None:
    """Cluster the features of one split into pseudo-labels (-1 = outlier): k-reciprocal
    Jaccard distance + DBSCAN by default, Euclidean DBSCAN, k-means, and label expansion.
    With true ids in the file, prints cluster quality (pair precision/recall, ARI, NMI).

    Example: reid cluster f.h5 -o labels.h5 --eps 0.42
    """
    from reidcli.cli.table import print_metric_table
    from reidcli.cluster import run
    from reidcli.utils.device import check_device
    from reidcli.utils.progress import say, stage_bars

    if gpu is not None:  # the old flag: auto | yes | no, checked by the library
        if device != "auto":
            raise ConfigError("give --device only; --gpu is its deprecated form")
        say("reid cluster: --gpu is deprecated; use --device auto | cpu | cuda")
        if gpu not in _GPU_TO_DEVICE:
            raise typer.BadParameter(f"--gpu must be auto, yes or no; got {gpu!r} (use --device)")
        device = _GPU_TO_DEVICE[gpu]
    device = check_device(device)  # a bad value is refused before any work
    with stage_bars("cluster: ") as progress:  # None (no bars) with --quiet or when stderr is no TTY
        report = run(features, output, split=split, method=method, expand_threshold=expand_threshold,
                     keep_clusters=keep_clusters, centers=centers, device=device, seed=seed, camera_norm=camera_norm,
                     eps=eps, eps_quantile=eps_quantile, min_samples=min_samples, k1=k1, k2=k2,
                     knn_index=knn_index, jaccard=jaccard, k=k, kmeans_iter=kmeans_iter, recipe=recipe, strict=strict,
                     progress=progress)
    say(report.summary())
    if as_json:
        print(json.dumps(report.as_dict()))
    elif report.quality is not None:
        print_metric_table(*report.quality_table())
