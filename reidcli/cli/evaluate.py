"""`reid evaluate`: mAP / CMC / mINP of query vs gallery features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reidcli.cli.common import DeviceCPU, Json, Seed, Threads, reid_command, usage_checked
from reidcli.eval.protocols import PROTOCOLS
from reidcli.eval.api import FILLED
from reidcli.eval.report import OUTPUT_CONSTRAINTS, RANKS_DEFAULTS, RANKS_QUERIES

@reid_command("evaluate", outputs=("per_query", "ranks_png", "cmc_png"))
def command(
    features: Annotated[list[Path] | None, typer.Argument(
        help="Features file(s) with 'query' and 'gallery' splits; several (RegDB's ten trials): each is "
             "evaluated, then mean ± std over the files.", dir_okay=False)] = None,
    query: Annotated[Path | None, typer.Option("--query", help="Take the 'query' split from this file.")] = None,
    gallery: Annotated[Path | None, typer.Option("--gallery", help="Take the 'gallery' split from this file.")] = None,
    protocol: Annotated[str | None, typer.Option(
        help=" | ".join(PROTOCOLS.names()) + " (default: from the file).")] = None,
    metric: Annotated[str, typer.Option(help="euclidean (squared) | cosine.")] = "euclidean",
    ranks: Annotated[str, typer.Option(help="CMC ranks to report.")] = "1,5,10,20",
    ap: Annotated[str, typer.Option(help="AP formula: noninterp (torchreid) | devkit (Market-1501 "
                                         "MATLAB devkit) | sklearn.")] = "noninterp",
    no_cam_filter: Annotated[bool, typer.Option("--no-cam-filter", help="Keep same-identity same-camera "
                                                "gallery images (datasets without cameras).")] = False,
    cmc_single_gallery: Annotated[bool, typer.Option("--cmc-single-gallery", help="CUHK03-style CMC: one random "
                                                     "gallery image per identity, 10 seeded draws.")] = False,
    rerank: Annotated[bool, typer.Option("--rerank", help="k-reciprocal re-ranking (Zhong et al., CVPR 2017).")] = False,
    k1: Annotated[int | None, typer.Option("--k1", min=1, help=f"--rerank: k1. \\[default: {FILLED['k1']}]")] = None,
    k2: Annotated[int | None, typer.Option("--k2", min=1, help=f"--rerank: k2. \\[default: {FILLED['k2']}]")] = None,
    lambda_value: Annotated[float | None, typer.Option("--lambda", help=(
        f"--rerank: weight of the original distance. \\[default: {FILLED['lambda_value']}]"))] = None,
    shot: Annotated[str | None, typer.Option(help=(
        "SYSU-MM01 gallery: single | multi (10 images per id and camera). \\[default: single]")),
    ] = None,
    trials: Annotated[int | None, typer.Option(min=1, help=(
        f"SYSU-MM01 gallery draws (mean ± std). \\[default: {FILLED['trials']}]"))] = None,
    per_query: Annotated[Path | None, typer.Option("--per-query", help="CSV of each query's AP and first hit.",
                                                      dir_okay=False)] = None,
    ranks_png: Annotated[Path | None, typer.Option(
        help="Write a PNG of ranked lists here: each query (with its AP) and its --top valid gallery images "
             "(rank, identity, distance; green: a true match), ranked by the distances the metrics used "
             "(re-ranked with --rerank).", dir_okay=False)] = None,
    top: Annotated[int | None, typer.Option(min=1, max=50, help=(
        f"Gallery images per query in --ranks-png. \\[default: {RANKS_DEFAULTS['top']}]"))] = None,
    n_queries: Annotated[int | None, typer.Option("--n-queries", min=1, help=(
        f"Queries in --ranks-png. \\[default: {RANKS_DEFAULTS['n_queries']}]"))] = None,
    ranks_queries: Annotated[str | None, typer.Option(
        "--ranks-queries", callback=usage_checked(OUTPUT_CONSTRAINTS, "ranks_queries"),
        help="Queries in --ranks-png: " + " | ".join(RANKS_QUERIES) + " (seeded sample in query order; lowest "
             "or highest AP first). \\[default: sample]")] = None,
    image_root: Annotated[Path | None, typer.Option("--image-root", help="--ranks-png: folder the image paths are "
                                                       "relative to (default: the file's root attribute).")] = None,
    cmc_png: Annotated[Path | None, typer.Option(
        help="Write a PNG of the CMC curve here, labelled with the features file's name; with several "
             "features files (models to compare), one curve per file.", dir_okay=False)] = None,
    chunk: Annotated[int | None, typer.Option(min=1, help="Queries per distance block (default: auto).")] = None,
    seed: Seed = 0,
    device: DeviceCPU = "cpu",
    threads: Threads = None,
    as_json: Json = False,
) -> None:
    """Evaluate retrieval: mAP, CMC at --ranks and mINP of the 'query' split against the
    'gallery' split, under the Market-1501 protocol (same identity + camera removed, junk -1
    ignored) or a cross-modality one (SYSU-MM01, RegDB), as a table or --json on stdout.

    Example: reid evaluate f.h5 --metric cosine --ranks-png ranks.png --cmc-png cmc.png
    Example: reid evaluate f.h5 --rerank --ranks-png worst.png --ranks-queries worst
    Example: reid evaluate trial*.h5 --protocol regdb-v2i
    Example: reid evaluate a.h5 b.h5 --cmc-png compare.png
    """
    from reidcli.cli.table import print_metric_table, print_wide_table
    from reidcli.eval import report
    from reidcli.eval.api import Options, evaluate_file, evaluate_files, parse_ranks
    from reidcli.utils.device import device_name
    from reidcli.utils.progress import say

    opts = Options(protocol=protocol, metric=metric, ranks=parse_ranks(ranks), ap=ap, cam_filter=not no_cam_filter,
                   single_gallery=cmc_single_gallery, rerank=rerank, k1=k1, k2=k2, lambda_value=lambda_value,
                   shot=shot, trials=trials, seed=seed, device=device_name(device), chunk=chunk)
    outputs = report.Outputs(per_query=per_query, ranks_png=ranks_png, top=top, n_queries=n_queries,
                             ranks_queries=ranks_queries, image_root=image_root, cmc_png=cmc_png)
    several = bool(features) and len(features) > 1 and not (query or gallery)  # else evaluate_file refuses
    res = (evaluate_files(features, opts, outputs=outputs) if several else
           evaluate_file(features[0] if features else None, opts, query=query, gallery=gallery, outputs=outputs))
    for message in res.messages:
        say(f"reid evaluate: {message}")
    if as_json:
        print(report.to_json(res))
    elif several:
        print_wide_table(**report.files_table(res))
    else:
        print_metric_table(**report.table(res))
