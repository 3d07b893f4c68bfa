"""`synthesize`: plan, render (optionally in worker processes), write atomically.

The dataset is written into a hidden temporary sibling of ``out`` and renamed onto it
only when every image, list file and the pose file are complete, so an interrupted run
leaves nothing that looks like a dataset.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Optional

import numpy as np

from reidcli.data.synth.camera import sample_camera
from reidcli.data.synth.identity import sample_identities, thermal_levels
from reidcli.data.synth.layouts import Plan, make_plan
from reidcli.data.synth.presets import get_preset
from reidcli.data.synth.render import Context, Job, render_job
from reidcli.utils.errors import InputError
from reidcli.utils.params import Interval, ParamError, check_params
from reidcli.utils.progress import progress_bar

log = logging.getLogger(__name__)
DEFAULT_IDS, DEFAULT_IMAGES_PER_ID = 128, 12  # images per id: the presets' (regdb: 20)
_worker: dict = {}


CONSTRAINTS = {
    "ids": [Interval(int, 1, 100000)],
    "images_per_id": [None, Interval(int, 2, 10000)],
    "test_ids": [None, Interval(int, 1, 100000)],
    "cams": [None, Interval(int, 2, 99)],
    "height": [Interval(int, 16, 2048)],
    "width": [Interval(int, 8, 2048)],
    "workers": [Interval(int, 0, 256)],
    "distractors": [None, Interval(int, 0, 10**6)],
    "junk": [None, Interval(int, 0, 10**6)],
    "camera_shift": [Interval(float, 0.0, 4.0)],
}


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder; give a new folder name for the dataset")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InputError(f"{out} exists and is not empty; pick a new folder or pass --force to replace it")


def build_context(domain: str, *, n_identities: int, cams: int, height: int, width: int, seed: int,
                  camera_shift: float = 1.0) -> Context:
    """Identities, camera styles and (lazily) scenes of one synthetic domain."""
    preset = get_preset(domain)
    cameras = [sample_camera(preset, c, np.random.default_rng([seed, 2, c]), camera_shift) for c in range(cams)]
    idents = sample_identities(preset.clothing, n_identities, np.random.default_rng([seed, 1]))
    if preset.thermal:  # own random stream: the other domains' identities stay as they were
        for i, ident in enumerate(idents):
            ident.thermal = thermal_levels(ident, np.random.default_rng([seed, 5, i]))
    return Context(preset, idents, cameras, height, width, seed)


def _init_worker(ctx: Context, root: str) -> None:
    _worker["ctx"], _worker["root"] = ctx, root


def _render_write(job: Job) -> np.ndarray:
    data, kps = render_job(_worker["ctx"], job)
    path = os.path.join(_worker["root"], job.path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    return kps


def _render_all(ctx: Context, plan: Plan, root: Path, workers: int) -> np.ndarray:
    kps = np.zeros((len(plan.jobs), 17, 3), np.float32)
    with progress_bar("synthesizing", total=len(plan.jobs)) as bar:
        if workers <= 1:
            _init_worker(ctx, str(root))
            for i, job in enumerate(plan.jobs):
                kps[i] = _render_write(job)
                bar.advance(1)
        else:
            with get_context("spawn" if os.name == "nt" else "fork").Pool(
                    workers, initializer=_init_worker, initargs=(ctx, str(root))) as pool:
                for i, k in enumerate(pool.imap(_render_write, plan.jobs, chunksize=16)):
                    kps[i] = k
                    bar.advance(1)
    return kps


def _summary(plan: Plan, ctx: Context, out: Path, seconds: float) -> dict:
    folders: dict[str, int] = {}
    for job in plan.jobs:
        top = job.path.split("/")[0]
        folders[top] = folders.get(top, 0) + 1
    return {"out": str(out), "domain": ctx.preset.name, "layout": ctx.preset.layout,
            "images": len(plan.jobs), "folders": folders, "cams": len(ctx.cameras),
            "ids": {k: len(v) for k, v in plan.split_ids.items()},
            "infrared_cams": [c.cam + 1 for c in ctx.cameras if c.infrared],
            "height": ctx.height, "width": ctx.width, "seed": ctx.seed,
            "seconds": round(seconds, 2), "images_per_s": round(len(plan.jobs) / max(seconds, 1e-9), 1)}


def synthesize(out: str | os.PathLike, *, domain: str = "market", ids: int = DEFAULT_IDS,
               test_ids: Optional[int] = None, cams: Optional[int] = None,
               images_per_id: Optional[int] = None, height: int = 128, width: int = 64,
               seed: int = 0, distractors: Optional[int] = None, junk: Optional[int] = None,
               workers: int | None = None, force: bool = False, camera_shift: float = 1.0) -> dict:
    """Write a synthetic re-ID dataset of ``domain`` in its real layout under ``out``.

    Args:
        out: the dataset folder to create (must not exist or be empty, unless ``force``).
        domain: ``market`` | ``duke`` | ``msmt`` | ``sysu`` | ``regdb`` (see `presets`).
        ids: training identities; ``test_ids`` (default: same) query/gallery identities.
            RegDB: every trial draws its own ``ids`` / ``test_ids`` split of all of them.
        cams: number of cameras (default: the preset's: 6, 8, 15, 6, 2; regdb takes only 2).
        images_per_id: images per identity (default: the preset's, 12; regdb 20), spread over
            2+ cameras and 1-2 tracklets each; regdb: half visible, half thermal, in pairs.
        height, width: image size in pixels.
        distractors, junk: Market-style ``0000_``/``-1_`` gallery images (Duke: distractor
            identities' images); default about 8% and 5% of the gallery.
        workers: rendering processes (None: auto, from the cores; 0 or 1 = in this process);
            the bytes do not depend on it.
        camera_shift: how far the cameras' light and colour differ within the domain (1: the
            preset; 0: all alike; `camera.sample_camera`).

    Returns:
        A summary dict (images per folder, ids per split, cameras, seconds, images/s).
    """
    t0 = time.perf_counter()
    preset = get_preset(domain)
    if workers is None:
        from reidcli.utils.resources import process_workers

        workers = max(1, process_workers(None))
    check_params({"ids": ids, "images_per_id": images_per_id, "test_ids": test_ids, "cams": cams,
                  "height": height, "width": width, "workers": workers, "distractors": distractors,
                  "junk": junk, "camera_shift": camera_shift}, CONSTRAINTS)
    per_id = preset.images_per_id if images_per_id is None else int(images_per_id)
    ids, height, width, workers = int(ids), int(height), int(width), int(workers)
    test_ids = ids if test_ids is None else int(test_ids)
    cams = preset.cams if cams is None else int(cams)
    if preset.layout == "regdb" and cams != 2:
        raise ParamError("cams", f"must be 2 for --domain regdb (one visible and one thermal camera); got {cams}")
    if preset.layout == "regdb" and per_id % 2:
        raise ParamError("images_per_id", f"must be even for --domain regdb (visible/thermal pairs); got {per_id}")
    if preset.infrared_cams and cams < max(preset.infrared_cams):
        raise ParamError("cams", f"must be at least {max(preset.infrared_cams)} for --domain {domain} "
                                 f"(infrared cameras {preset.infrared_cams}); got {cams}")
    gallery = test_ids * per_id
    distractors = round(0.08 * gallery) if distractors is None else int(distractors)
    junk = round(0.05 * gallery) if junk is None else int(junk)
    out = Path(out)
    _prepare_out(out, force)
    ctx0 = build_context(domain, n_identities=0, cams=cams, height=height, width=width, seed=seed,
                         camera_shift=camera_shift)
    plan = make_plan(preset, ctx0.cameras, n_train=ids, n_test=test_ids, per_id=per_id,
                     distractors=distractors, junk=junk, rng=np.random.default_rng([seed, 4]))
    ctx = build_context(domain, n_identities=plan.n_identities, cams=cams, height=height, width=width, seed=seed,
                        camera_shift=camera_shift)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        kps = _render_all(ctx, plan, tmp, workers)
        _write_extras(tmp, plan, ctx, kps, seed)
        summary = _summary(plan, ctx, out, time.perf_counter() - t0)
        (tmp / "synth.json").write_text(json.dumps(
            {**summary, "camera_shift": camera_shift, "cameras": [c.as_dict() for c in ctx.cameras]},
            indent=1) + "\n")
        _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.debug("wrote %d images to %s", len(plan.jobs), out)
    return summary


def _write_extras(root: Path, plan: Plan, ctx: Context, kps: np.ndarray, seed: int) -> None:
    from reidcli.io.h5 import PoseFile, write_pose

    for rel, text in plan.files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    pf = PoseFile(keypoints=kps, paths=[j.path for j in plan.jobs],
                  image_size=np.tile([ctx.height, ctx.width], (len(plan.jobs), 1)), root=".",
                  attrs={"backend": "synth", "model": f"ground truth ({ctx.preset.name} preset)",
                         "score_meaning": "1 visible, 0.5 self-occluded, 0.2 occluded, 0 outside"})
    write_pose(root / "pose.h5", pf, seed=seed)


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename the finished dataset onto ``out`` (replacing an old one only now)."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
