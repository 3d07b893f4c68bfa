"""`reid export --ckpt m.pt -o m.onnx | m.ts`, or `--slim -o m-slim.pt`."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from reidcli.cli.common import Ckpt, Json, Output, reid_command
from reidcli.cli.defaults import opt
from reidcli.models.export import OPSET


@reid_command("export")
def command(
    ckpt: Ckpt,
    output: Output,
    slim: Annotated[bool, typer.Option("--slim", help=(
        "Write a checkpoint with the weights only (no optimizer, scheduler or sampler state): it deploys "
        "and starts a finetune round, but cannot --resume."))] = False,
    flip: Annotated[bool, typer.Option("--flip", help="Also embed the mirrored image, as reid features --flip.")] = False,
    normalize: Annotated[bool, typer.Option("--normalize/--no-normalize", help="L2-normalise the output, as reid features.")] = True,
    net: Annotated[Optional[str], typer.Option("--net", help="Network of the checkpoint, as reid features --net (model when omitted).")] = None,
    bn_domain: Annotated[Optional[str], typer.Option("--bn-domain", help="With domain-specific BN: source | target.")] = None,
    opset: Annotated[Optional[int], opt("--opset", min=11, help="ONNX opset version (-o NAME.onnx).", shows=OPSET)] = None,
    as_json: Json = False,
) -> None:
    """Export the deployed network of --ckpt for inference outside reidcli: ONNX (-o m.onnx)
    or TorchScript (-o m.ts), the format chosen by the file name. The input 'images' is
    float32 [B, 3, H, W], RGB, 0-255, resized to the checkpoint's input size (bilinear with
    antialiasing, as torchvision's resize(antialias=True) and PIL's BILINEAR); the output
    'features' equals what reid features computes. The file is run once on a random batch
    and its largest difference from PyTorch is reported. --slim instead writes a checkpoint
    without the training state.

    Example: reid export --ckpt m.pt -o m.onnx
    """
    from reidcli.models.export import export
    from reidcli.utils.progress import say

    report = export(ckpt, output, slim=slim, flip=flip, normalize=normalize, net=net, bn_domain=bn_domain,
                    opset=opset)
    say(report.summary())
    if as_json:
        print(json.dumps(report.as_dict()))
