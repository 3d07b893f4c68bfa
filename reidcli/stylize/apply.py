"""`apply_style`: write every image of DATA in each requested camera's style as a dataset
in DATA's own layout (`reidcli.stylize.naming`), plus ``manifest.csv`` (split, pid,
original path (absolute), source camera, style camera, output path; cameras 1-based as in
the file names) and ``provenance.json`` (the chain of the style model plus this run).

Splits not styled are linked to DATA's own folders so the tree parses as a whole. An image
is not styled to its own camera. The tree is written to a temporary sibling folder and
swapped into place at the end (`reidcli.io.atomic.replace_folder`), so a failed or
interrupted run leaves nothing behind and a previous output (``--force``) complete.
``stargan`` models write their images at the model's input size (the re-ID loaders resize
anyway) and refuse images whose
aspect ratio is not the model's (`reidcli.stylize.stargan.generator_styler`); ``color``
works at any size.

``shard=(i, n)`` styles the i-th of n contiguous blocks of the images (all requested splits
in order, as ``reid features --shard``), with the names one run would give them, into its
own tree; `merge_styled` (``reid merge``) joins the n trees into the tree one run writes.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from reidcli.data.images import read_image
from reidcli.io.atomic import check_output_folder, folder_temp, replace_folder
from reidcli.stylize.manifest import MANIFEST, MANIFEST_COLUMNS, write_manifest
from reidcli.stylize.model import StyleModel, load_style_model
from reidcli.stylize.naming import Namer, TreeLayout, build_tree, tree_layout, writer_for
from reidcli.utils.errors import InputError, OutputError
from reidcli.utils.params import Interval, check_params
from reidcli.utils.progress import track

log = logging.getLogger(__name__)


def parse_cams(cams: str | Sequence[int] | None, model: StyleModel, where) -> list[int]:
    """``all``/None or 1-based camera numbers (``"1,3"`` or a list) -> 0-based ids the model knows."""
    if cams is None or (isinstance(cams, str) and cams.strip().lower() == "all"):
        return list(model.cameras)
    items = cams.split(",") if isinstance(cams, str) else list(cams)
    out = []
    for item in items:
        text = str(item).strip().lower().lstrip("c")
        if not text.isdigit() or int(text) < 1:
            raise InputError(f"--cams {cams}: {item!r} is not a camera number (1-based, e.g. 1,3 or all)")
        cam = int(text) - 1
        if cam not in model.cameras:
            raise InputError(f"--cams: camera c{cam + 1} is not in {where} (it knows "
                             f"{', '.join(f'c{c + 1}' for c in model.cameras)}); fit it on data with that camera")
        out.append(cam)
    return sorted(set(out))


def write_image(path: Path, rgb: np.ndarray) -> None:
    import cv2

    ext = path.suffix.lower() or ".jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise InputError(f"{path}: could not encode the image; use .jpg or .png names")
    buf.tofile(str(path))


def color_styler(model: StyleModel) -> Callable[[np.ndarray, int, int], np.ndarray]:
    """``fn(rgb, source_cam, style_cam) -> rgb`` with the pair transforms cached."""
    from reidcli.stylize.color import PairTransform

    cache: dict[tuple[int, int], PairTransform] = {}

    def style(img: np.ndarray, src: int, dst: int) -> np.ndarray:
        if (src, dst) not in cache:
            cache[src, dst] = PairTransform.between(model.stats[src], model.stats[dst])
        return cache[src, dst].image(img)

    return style


class BatchStyler:
    """Styles images in batches: ``prepare(rgb)`` checks and readies one image (an
    `InputError` names what is wrong with it), ``run(images, source_cams, style_cams)``
    styles a batch of prepared images and returns them as uint8 RGB."""

    def __init__(self, prepare: Callable[[np.ndarray], np.ndarray],
                 run: Callable[[list, list, list], list]):
        self.prepare, self.run = prepare, run


def styler(model: StyleModel, device: str = "auto") -> BatchStyler:
    """The `BatchStyler` of a fitted model: ``stargan`` runs the generator once per batch
    on ``device``; ``color`` transfers image by image (CPU, pair transforms cached)."""
    if model.method == "stargan":
        from reidcli.stylize.stargan import generator_styler

        return BatchStyler(*generator_styler(model, device))
    one = color_styler(model)
    return BatchStyler(lambda img: img, lambda imgs, srcs, dsts: [one(*a) for a in zip(imgs, srcs, dsts)])


def _check_device(device: str) -> None:
    """A ``cuda`` device without CUDA is refused, as every command refuses it, rather than run
    on the CPU (a color model runs on the CPU anyway: a pipeline's one --device for every
    command still works where there is a GPU)."""
    from reidcli.utils.device import is_cuda, resolve_device

    if is_cuda(device):
        resolve_device(device)


def apply_style(model: str | os.PathLike, data: str | os.PathLike, output: str | os.PathLike, *,
                cams: str | Sequence[int] | None = "all", split: Sequence[str] = ("train",),
                format: Optional[str] = None, force: bool = False, device: str = "auto",
                shard: Optional[tuple[int, int]] = None, batch_size: int = 32,
                cam_regex: Optional[str] = None) -> dict:
    """Style ``split`` of ``data`` to every camera of ``cams`` with the model at ``model``.

    ``shard=(i, n)`` writes only the i-th of n blocks of the images (module docstring).
    ``batch_size`` images go through a ``stargan`` generator at once (on ``device``).
    ``format`` and ``cam_regex`` go to `reidcli.data.layouts.load_dataset` (the folder /
    unlabelled layouts that take ``cam_regex`` are refused here: their names cannot carry a
    style camera, `reidcli.stylize.naming.writer_for`).
    Returns a summary: the output folder, the manifest path and the images written.

    Raises:
        InputError: an unsupported layout, a camera the model does not know (in ``cams``
            or among DATA's images), an image of another aspect ratio than a ``stargan``
            model's, an existing non-empty ``output`` without ``force``, an ``output`` that is,
            contains or lies inside DATA or the model, or is a device node or FIFO
            (`reidcli.io.atomic.check_output_folder`).
    """
    from reidcli.data.layouts import load_dataset
    from reidcli.io.h5 import make_provenance

    # DATA absolute: the manifest's ``original`` paths then match from any working folder
    data, out = Path(os.path.abspath(data)), Path(output)
    check_params({"batch_size": batch_size}, {"batch_size": [Interval(int, 1, None)]})
    dest = check_output_folder(out, {"DATA": data, "--model": Path(model)}, force)
    _check_device(device)
    sm = load_style_model(model)
    targets = parse_cams(cams, sm, model)
    ds = load_dataset(data, format, cam_regex=cam_regex)
    writer = writer_for(ds)
    writer.check(ds, split, targets)
    layout = tree_layout(ds, writer, split, targets)  # once: the names below and the tree around them
    jobs = plan_jobs(ds, sm, model, split, targets, shard, writer, layout)
    style = styler(sm, device)
    tmp = None
    try:
        tmp = folder_temp(dest)  # the new tree is built beside -o, swapped in at the end
        rows, pending, last = [], [], (None, None)

        def flush() -> None:
            for (s, r, t, rel, _), img in zip(pending, style.run([p[4] for p in pending],
                                                              [p[1].camid for p in pending],
                                                              [p[2] for p in pending])):
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                write_image(tmp / rel, img)
                rows.append((s, r.pid, str(ds.abspath(r)), r.camid + 1, t + 1, rel))
            pending.clear()

        for s, r, t, rel in track(jobs, f"stylize {len(jobs)} images"):
            if last[0] != r.path:  # an image's styles are consecutive jobs: decode it once
                try:
                    last = (r.path, style.prepare(read_image(ds.abspath(r))))
                except InputError as exc:
                    raise InputError(f"{ds.abspath(r)}: {exc}") from None
            pending.append((s, r, t, rel, last[1]))
            if len(pending) == batch_size:
                flush()
        flush()
        build_tree(tmp, ds, writer, split, layout, [dict(zip(MANIFEST_COLUMNS, row)) for row in rows])
        write_manifest(tmp, rows)
        params = {"data": str(data), "cams": [t + 1 for t in targets], "split": list(dict.fromkeys(split)),
                  "method": sm.method, "format": format}
        if shard is not None:
            params["shard"] = list(shard)
        prov = make_provenance([model], params=params)
        (tmp / "provenance.json").write_text(json.dumps(prov, indent=1))
        replace_folder(tmp, dest, shown=out)
    except BaseException as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            kept = "; the previous folder is kept" if os.path.lexists(dest) else ""
            raise OutputError(f"cannot write {out}: {exc.strerror}{kept} (free space, check 'ulimit -f', "
                              "or give another -o)") from None
        raise
    log.info("wrote %d styled images to %s", len(rows), out)
    return {"out": str(out), "manifest": str(out / MANIFEST), "images": len(rows)}


def plan_jobs(ds, sm: StyleModel, model, split: Sequence[str], targets: list[int],
              shard: Optional[tuple[int, int]] = None, writer=None,
              layout: Optional[TreeLayout] = None) -> list[tuple]:
    """``(split, record, style camera, output name)`` of every image to write: names as one
    run over every image gives them, then only shard ``(i, n)``'s block of the images (the
    requested splits' records in order). A camera the model does not know is an
    `InputError`, whatever the shard."""
    from reidcli.features.extract import shard_slice

    items, seen = [], set()
    for s in dict.fromkeys(split):  # an image in two requested splits (MSMT17 val is in train) once
        for r in ds.split(s):
            if r.path not in seen:
                seen.add(r.path)
                items.append((s, r))
    for _, r in items:
        if r.camid not in sm.cameras:
            raise InputError(f"{ds.abspath(r)}: camera c{r.camid + 1} is not in {model} (it knows "
                             f"{', '.join(f'c{c + 1}' for c in sm.cameras)}); fit the model on this camera")
    keep = shard_slice(len(items), shard)
    writer = writer or writer_for(ds)
    layout = layout or tree_layout(ds, writer, split, targets)
    namer, jobs = Namer(writer.rename, layout.linked), []
    for j, (s, r) in enumerate(items):
        for t in targets:
            if t != r.camid:
                rel = namer.name(r.path, t)  # every name, so collisions bump as in one run
                if keep.start <= j < keep.stop:
                    jobs.append((s, r, t, rel))
    return jobs
