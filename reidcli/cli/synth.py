"""`reid synth OUT`: write the synthetic default dataset in a real layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from reidcli.cli.common import Json, ProcessWorkers, Quiet, Seed, reid_command

Domain = Annotated[str, typer.Option("--domain", "-d", help="market | duke | msmt | sysu | regdb (sets "
                                                            "layout, clothing and camera styles; sysu: two "
                                                            "near-infrared cameras, regdb: visible/thermal "
                                                            "pairs and ten trials' splits).")]


@reid_command("synth")
def command(
    out: Annotated[Path, typer.Argument(help="Dataset folder to create (must be new or empty).")],
    domain: Domain = "market",
    ids: Annotated[int, typer.Option("--ids", min=1, help="Training identities.")] = 128,
    test_ids: Annotated[Optional[int], typer.Option("--test-ids", min=1,
                                                    help="Query/gallery identities (default: as --ids).")] = None,
    cams: Annotated[Optional[int], typer.Option("--cams", min=2, help="Cameras (default: the domain's: "
                                                                      "6, 8, 15, 6, 2).")] = None,
    images_per_id: Annotated[Optional[int], typer.Option(
        "--images-per-id", min=2, help="Images per identity (default: 12; regdb 20, ten visible + ten "
                                       "thermal).")] = None,
    height: Annotated[int, typer.Option("--height", min=16, help="Image height in pixels.")] = 128,
    width: Annotated[int, typer.Option("--width", min=8, help="Image width in pixels.")] = 64,
    distractors: Annotated[Optional[int], typer.Option("--distractors", min=0, help="Distractor gallery "
                                                       "images (default: 8% of the gallery).")] = None,
    junk: Annotated[Optional[int], typer.Option("--junk", min=0, help="Market junk (-1) gallery images "
                                                "(default: 5% of the gallery).")] = None,
    camera_shift: Annotated[float, typer.Option(
        "--camera-shift", min=0.0, max=4.0,
        help="How far the cameras' light and colour differ within the domain: 1 the domain's "
             "own, 0.5 half as far, 0 all alike (the domain keeps its look).")] = 1.0,
    seed: Seed = 0,
    workers: ProcessWorkers = None,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists and is not empty.")] = False,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Write a synthetic person re-ID dataset in the real layout of a domain (Market-1501,
    DukeMTMC-reID, MSMT17, SYSU-MM01 or RegDB names and folders, query/gallery/train splits,
    distractors and junk), with ground-truth COCO keypoints in OUT/pose.h5. Domains differ
    in clothing and camera styles, so a model trained on one loses accuracy on another.
    The same --seed gives byte-identical images.

    Example: reid synth data/market --domain market --ids 128 --images-per-id 12
    """
    from reidcli.data.synth import synthesize
    from reidcli.utils.progress import say, set_quiet

    if quiet:
        set_quiet(True)
    s = synthesize(out, domain=domain, ids=ids, test_ids=test_ids, cams=cams, images_per_id=images_per_id,
                   height=height, width=width, seed=seed, distractors=distractors, junk=junk,
                   workers=workers, force=force, camera_shift=camera_shift)
    if as_json:
        print(json.dumps(s))
    folders = ", ".join(f"{k}: {v}" for k, v in s["folders"].items())
    say(f"reid synth: {s['images']} images ({s['domain']} preset, {s['layout']} layout, {s['cams']} cameras; "
        f"{folders}) in {s['out']} + pose.h5, {s['seconds']:.1f} s ({s['images_per_s']:.0f} images/s)")
