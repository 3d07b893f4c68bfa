"""`reid extract-pose`: 17 COCO keypoints per image -> pose.h5."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from reidcli.cli.common import BatchSize, CamRegex, DataFormat, Json, Output, ProcessWorkers, reid_command
from reidcli.cli.defaults import opt
from reidcli.pose.options import PoseOptions


def _size(value: Optional[str]) -> Optional[tuple[int, int]]:
    if value is None:
        return None
    try:
        h, w = (int(v) for v in value.lower().split("x"))
        assert h > 0 and w > 0
    except (ValueError, AssertionError):
        raise typer.BadParameter(f"must be HxW with positive ints, e.g. 256x192; got {value!r}")
    return h, w


def _check(parse):
    """A Typer callback that validates at parse time, so a bad value is a usage error (exit 2)."""
    def callback(value):
        parse(value)
        return value

    return callback


def _triple(value: Optional[str]) -> Optional[tuple[float, float, float]]:
    if value is None:
        return None
    try:
        parts = tuple(float(v) for v in value.split(","))
        assert len(parts) == 3
    except (ValueError, AssertionError):
        raise typer.BadParameter(f"must be three comma-separated numbers (R,G,B); got {value!r}")
    return parts  # type: ignore[return-value]


@reid_command("extract-pose", outputs=("output", "preview"))
def command(
    data: Annotated[Path, typer.Argument(help="Dataset folder (any supported layout).", exists=True,
                                         file_okay=False)],
    output: Output,
    backend: Annotated[str, typer.Option("--backend", "-B", help="mediapipe (offline BlazePose) | onnx "
                                         "(--model FILE.onnx) | gt (a ground-truth pose file) | rbnet "
                                         "(--ckpt M.pt, an RBNet's own heat-maps).")] = "mediapipe",
    model: Annotated[Optional[Path], typer.Option("--model", help="onnx: the model file; gt: the pose file "
                                                  "(DATA/pose.h5 when omitted).", dir_okay=False)] = None,
    ckpt: Annotated[Path | None, typer.Option("--ckpt", help="rbnet: the checkpoint (of 'reid pretrain "
                                                 "--arch rbnet').", dir_okay=False)] = None,
    split: Annotated[Optional[list[str]], typer.Option("--split", help="Only this split (repeatable).")] = None,
    data_format: DataFormat = None,
    cam_regex: CamRegex = None,
    input_size: Annotated[Optional[str], typer.Option("--input-size", callback=_check(_size), help="onnx: model input HxW "
                                                      "(default: from the model, else 256x192).")] = None,
    mean: Annotated[Optional[str], opt("--mean", callback=_check(_triple), help="onnx: RGB mean, 0-255 scale.",
                                       of=PoseOptions)] = None,
    std: Annotated[Optional[str], opt("--std", callback=_check(_triple), help="onnx: RGB std, 0-255 scale.",
                                      of=PoseOptions)] = None,
    box_padding: Annotated[Optional[float], opt("--box-padding", min=1.0, help="onnx: box enlargement around the crop.",
                                                of=PoseOptions)] = None,
    refine: Annotated[Optional[str], opt("--refine", help="onnx, rbnet heat-maps: dark | quarter | none.",
                                         of=PoseOptions)] = None,
    min_confidence: Annotated[Optional[float], opt("--min-confidence", min=0.0, max=1.0,
                                                   help="mediapipe: person detection threshold.", of=PoseOptions)] = None,
    batch_size: BatchSize = 16,
    device: Annotated[str, typer.Option("--device", help=(
        "auto | cpu | cuda | cuda:N (auto: CUDA when present). onnx: onnxruntime's CUDA provider; rbnet: torch's "
        "GPU; mediapipe and gt run on the CPU and refuse cuda."))] = "auto",
    workers: ProcessWorkers = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Only the first N images.")] = None,
    preview: Annotated[Optional[Path], typer.Option("--preview", help="Also write a PNG grid of "
                                                    "sample images with their skeletons.", dir_okay=False)] = None,
    gt: Annotated[Optional[Path], typer.Option("--gt", exists=True, help="Report PCK@0.2 against this pose file "
                                               "(default: DATA/pose.h5 when present).", dir_okay=False)] = None,
    as_json: Json = False,
) -> None:
    """Detect 17 COCO body keypoints on every image of DATA and write a pose file.

    x, y are in each image's own pixels, with a score per keypoint; an image where no
    person is found gets score-0 keypoints and is counted in the summary. With a
    ground-truth pose file (--gt, or DATA/pose.h5 as 'reid synth' writes) PCK@0.2 is printed.

    Example: reid extract-pose data/ -o pose.h5 --preview pose.png
    """
    from reidcli.pose.extract import extract_pose
    from reidcli.utils.progress import say

    res = extract_pose(data, output, backend=backend, split=split, data_format=data_format, cam_regex=cam_regex,
                       batch_size=batch_size, workers=workers, limit=limit, gt=gt or "auto", preview=preview,
                       device=device,
                       model=model, ckpt=ckpt, input_size=_size(input_size), mean=_triple(mean), std=_triple(std),
                       box_padding=box_padding, refine=refine, min_confidence=min_confidence)
    say(f"wrote {output}: {res.summary()}")
    if res.pck is not None and not as_json:
        print(f"{backend}\t{res.pck.summary()}")
    if res.preview is not None:
        say(f"wrote {res.preview}")
    if as_json:
        print(json.dumps(res.to_dict()))
