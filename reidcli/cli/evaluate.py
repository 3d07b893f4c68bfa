"""`reid evaluate`: mAP / CMC / mINP of query vs gallery features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reidcli.cli.common import DeviceCPU, Json, Seed, Threads, reid_command, usage_checked
from reidcli.cli.defaults import opt
from reidcli.eval.api import GalleryDraws, Options
from reidcli.eval.protocols import PROTOCOLS
from reidcli.eval.report import OUTPUT_CONSTRAINTS, RANKS_QUERIES, RanksPicture
from reidcli.eval.rerank import RerankOptions


@reid_command("evaluate", outputs=("per_query", "ranks_png", "cmc_png"))
def command(
    features: Annotated[list[Path] | None, typer.Argument(
        help="Features file(s) with 'query' and 'gallery' splits; several (RegDB's ten trials): each is "
             "evaluated, then mean ± std over the files.", dir_okay=False)] = None,
    query: Annotated[Path | None, typer.Option("--query", help="Take the 'query' split from this file.")] = None,
    gallery: Annotated[Path | None, typer.Option("--gallery", help="Take the 'gallery' split from this file.")] = None,
    protocol: Annotated[str | None, typer.Option(
        help=" | ".join(PROTOCOLS.names()) + " (default: from the file).")] = None,
    metric: Annotated[str | None, opt("--metric", help="euclidean (squared) | cosine.", of=Options)] = None,
    ranks: Annotated[str | None, opt("--ranks", help="CMC ranks to report.", of=Options)] = None,
    ap: Annotated[str | None, opt("--ap", help="AP formula: noninterp (torchreid) | devkit (Market-1501 MATLAB "
                                  "devkit) | sklearn.", of=Options)] = None,
    no_cam_filter: Annotated[bool, typer.Option("--no-cam-filter", help="Keep same-identity same-camera "
                                                "gallery images (datasets without cameras).")] = False,
    cmc_single_gallery: Annotated[bool, typer.Option("--cmc-single-gallery", help="CUHK03-style CMC: one random "
                                                     "gallery image per identity, 10 seeded draws.")] = False,
    rerank: Annotated[bool, typer.Option("--rerank", help="k-reciprocal re-ranking (Zhong et al., CVPR 2017).")] = False,
    k1: Annotated[int | None, opt("--k1", min=1, help="--rerank: k1.", of=RerankOptions)] = None,
    k2: Annotated[int | None, opt("--k2", min=1, help="--rerank: k2.", of=RerankOptions)] = None,
    lambda_value: Annotated[float | None, opt("--lambda", help="--rerank: weight of the original distance.",
                                              of=RerankOptions, field="lambda_value")] = None,
    shot: Annotated[str | None, opt("--shot", help="SYSU-MM01 gallery: single | multi (10 images per id and camera).",
                                    of=GalleryDraws)] = None,
    trials: Annotated[int | None, opt("--trials", min=1, help="SYSU-MM01 gallery draws (mean ± std).",
                                      of=GalleryDraws)] = None,
    per_query: Annotated[Path | None, typer.Option("--per-query", help="CSV of each query's AP and first hit.",
                                                      dir_okay=False)] = None,
    ranks_png: Annotated[Path | None, typer.Option(
        help="Write a PNG of ranked lists here: each query (with its AP) and its --top valid gallery images "
             "(rank, identity, distance; green: a true match), ranked by the distances the metrics used "
             "(re-ranked with --rerank).", dir_okay=False)] = None,
    top: Annotated[int | None, opt("--top", min=1, max=50, help="Gallery images per query in --ranks-png.",
                                   of=RanksPicture)] = None,
    n_queries: Annotated[int | None, opt("--n-queries", min=1, help="Queries in --ranks-png.", of=RanksPicture)] = None,
    ranks_queries: Annotated[str | None, opt(
        "--ranks-queries", callback=usage_checked(OUTPUT_CONSTRAINTS, "ranks_queries"),
        help="Queries in --ranks-png: " + " | ".join(RANKS_QUERIES) + " (seeded sample in query order; lowest "
             "or highest AP first).", of=RanksPicture)] = None,
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
    from reidcli.eval.api import evaluate_file, evaluate_files, parse_ranks
    from reidcli.utils.device import device_name
    from reidcli.utils.progress import say

    given = {"metric": metric, "ranks": None if ranks is None else parse_ranks(ranks), "ap": ap}
    opts = Options(protocol=protocol, **{k: v for k, v in given.items() if v is not None},
                   cam_filter=not no_cam_filter, single_gallery=cmc_single_gallery, rerank=rerank, k1=k1, k2=k2, lambda_value=lambda_value,
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
