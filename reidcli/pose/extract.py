"""`extract_pose`: every image of a dataset -> one pose file (ARCHITECTURE.md, pose format).

Images are read in batches, optionally by worker processes that each hold their own
backend (a mediapipe graph or an onnxruntime session is not shareable across processes),
and the file is written once at the end, atomically, so an interrupted run leaves nothing.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from reidcli.pose.backends import DEFAULT_BACKEND, PoseBackend, get_backend
from reidcli.pose.backends.gt import GT_NAME
from reidcli.pose.pck import PCK, pck_against
from reidcli.utils.errors import InputError
from reidcli.utils.params import Interval, check_params

log = logging.getLogger(__name__)

CONSTRAINTS = {"batch_size": [Interval(int, 1, None)], "workers": [Interval(int, 0, None)]}


@dataclass
class PoseResult:
    """What `extract_pose` did: the file, counts per split, speed."""

    path: Optional[Path]
    backend: str
    n_images: int
    n_missing: int  # images where no person was found (all scores 0)
    per_split: dict[str, tuple[int, int]] = field(default_factory=dict)  # split -> (images, missing)
    seconds: float = 0.0
    attrs: dict[str, Any] = field(default_factory=dict)
    pck: PCK | None = None  # PCK@0.2 against a ground-truth pose file, when one was given
    preview: Path | None = None  # the PNG grid of skeletons, when one was asked for

    @property
    def images_per_s(self) -> float:
        return self.n_images / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        splits = "; ".join(f"{k}: {n} images, {m} without a person" for k, (n, m) in self.per_split.items())
        return (f"{self.backend}: {self.n_images} images, {self.n_missing} without a person "
                f"({splits}) in {self.seconds:.1f} s ({self.images_per_s:.1f} images/s)")

    def to_dict(self) -> dict:
        out = {"output": str(self.path) if self.path else None, "backend": self.backend,
               "images": self.n_images, "no_person": self.n_missing,
               "splits": {k: {"images": n, "no_person": m} for k, (n, m) in self.per_split.items()},
               "seconds": round(self.seconds, 3), "images_per_s": round(self.images_per_s, 2)}
        if self.pck is not None:
            out["pck@0.2"] = round(self.pck.value, 4)
        if self.preview is not None:
            out["preview"] = str(self.preview)
        return out


def dataset_images(root: Path, data_format: Optional[str] = None,
                   split: Optional[Sequence[str]] = None, cam_regex: Optional[str] = None,
                   ) -> tuple[list[str], list[str]]:
    """(relative paths, split of each) for the chosen splits, in split then path order.

    An image listed by several splits (some cross-modality protocols) is kept once.
    ``data_format`` and ``cam_regex`` go to `reidcli.data.layouts.load_dataset`.
    """
    from reidcli.data.layouts import load_dataset

    ds = load_dataset(root, format=data_format, cam_regex=cam_regex)
    names = list(split) if split else list(ds.splits)
    paths, splits, seen = [], [], set()
    for name in names:
        for rec in ds.split(name):
            if rec.path not in seen:
                seen.add(rec.path)
                paths.append(rec.path)
                splits.append(name)
    if not paths:
        raise InputError(f"{root} ({ds.format}) has no images in split(s) {', '.join(names)}")
    return paths, splits


def _load(root: Path, paths: Sequence[str]) -> tuple[list[np.ndarray], np.ndarray]:
    from reidcli.data.images import read_image

    images = [read_image(root / p) for p in paths]
    sizes = np.array([im.shape[:2] for im in images], dtype=np.int64).reshape(-1, 2)
    return images, sizes


def _predict_chunk(backend: PoseBackend, root: Path, paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    if not backend.needs_images:
        return backend.predict([], paths), backend.image_sizes(paths)  # type: ignore[attr-defined]
    images, sizes = _load(root, paths)
    return backend.predict(images, paths), sizes


_worker: dict[str, Any] = {}


def _worker_init(name: str, options: dict) -> None:
    import torch  # keep each worker to one thread: the pool itself is the parallelism

    torch.set_num_threads(1)
    _worker["backend"] = get_backend(name, **options)


def _worker_chunk(args: tuple[Path, list[str]]) -> tuple[np.ndarray, np.ndarray]:
    return _predict_chunk(_worker["backend"], *args)


def _chunks(paths: Sequence[str], size: int) -> list[list[str]]:
    return [list(paths[i:i + size]) for i in range(0, len(paths), size)]


def _run(backend: PoseBackend, name: str, options: dict, root: Path, paths: Sequence[str],
         batch_size: int, workers: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    chunks = _chunks(paths, batch_size)
    if workers <= 0 or len(chunks) == 1:
        for chunk in chunks:
            yield _predict_chunk(backend, root, chunk)
        return
    import multiprocessing as mp

    # spawn: never fork a process that holds a TFLite graph or an onnxruntime session.
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                             initializer=_worker_init, initargs=(name, options)) as pool:
        yield from pool.map(_worker_chunk, [(root, c) for c in chunks])


def predict_paths(root: Path, paths: Sequence[str], backend: str = DEFAULT_BACKEND, *,
                  batch_size: int = 16, workers: int | None = None, progress: str = "pose",
                  device: str = "auto", **options) -> tuple[np.ndarray, np.ndarray, dict]:
    """Keypoints [N, 17, 3] and image sizes [N, 2] for ``paths`` under ``root``, plus the
    backend's attributes. The library core of `extract_pose`, usable on any file list.
    ``workers``: processes (None: auto, from the cores; 0 = in this process). ``device``:
    auto | cpu | cuda | cuda:N (`reidcli.pose.backends.check_device`)."""
    from reidcli.utils.progress import progress_bar
    from reidcli.utils.resources import process_workers

    workers = process_workers(workers)

    check_params({"batch_size": batch_size, "workers": workers}, CONSTRAINTS)
    options = {**options, "data_root": Path(root), "device": device}
    kps, sizes = np.zeros((len(paths), 17, 3), np.float32), np.zeros((len(paths), 2), np.int64)
    with get_backend(backend, **options) as be:  # built here too, so bad options fail at once
        attrs = be.attrs()
        start = 0
        with progress_bar(progress, total=len(paths)) as bar:
            for k, s in _run(be, backend, options, Path(root), paths, batch_size, workers):
                kps[start:start + len(k)], sizes[start:start + len(k)] = k, s
                start += len(k)
                bar.advance(len(k))
                bar.set(no_person=int(_missing(kps[:start]).sum()))
    return kps, sizes, attrs


def _missing(kps: np.ndarray) -> np.ndarray:
    return ~(kps[..., 2] > 0).any(axis=-1)


def extract_pose(data_root, out=None, *, backend: str = DEFAULT_BACKEND,
                 split: Optional[Sequence[str]] = None, data_format: Optional[str] = None,
                 cam_regex: Optional[str] = None, batch_size: int = 16, workers: int | None = None, limit: Optional[int] = None,
                 gt=None, preview=None, device: str = "auto", **options) -> PoseResult:
    """Detect 17 COCO keypoints on every image of a dataset and write a pose file.

    Args:
        data_root: dataset folder (any layout `reidcli.data.layouts` reads).
        out: pose file to write (atomically); None computes without writing.
        backend: "mediapipe" (default, offline BlazePose), "onnx" (``model=`` an mmpose
            top-down export), "gt" (a ground-truth pose file, ``model=`` or DATA/pose.h5) or
            "rbnet" (``ckpt=`` an RBNet checkpoint).
        split: split names to keep (default: every split).
        data_format: the dataset layout (None: detected).
        cam_regex: folder / unlabelled layouts: each image's camera is this regex's first
            group matched against its relative path (the pose file holds no cameras; given
            so that a pipeline may pass every command the same dataset options, and checked).
        batch_size, workers: images per batch; worker processes (None: auto, from the cores;
            0 = in this process).
        limit: process only the first ``limit`` images (previews, benchmarks).
        gt: a ground-truth pose file to score the keypoints against (PCK@0.2, matched by
            path); "auto": DATA/pose.h5 when it exists and the backend is not "gt".
        preview: also write a PNG grid of sample images with their skeletons here.
        device: auto | cpu | cuda | cuda:N. onnx: onnxruntime's CUDA provider (auto: the
            providers installed); rbnet: torch's GPU (auto: CUDA when present); mediapipe and
            gt run on the CPU and refuse cuda (`reidcli.pose.backends.check_device`).
        **options: backend options (model, ckpt, input_size, mean, std, box_padding, refine, ...).

    Returns:
        A `PoseResult` (counts, per-split images without a person, speed, PCK, preview).
    """
    from reidcli.io.atomic import atomic_write_bytes, check_outputs
    from reidcli.io.h5 import PoseFile, check_utf8, write_pose
    from reidcli.pose.backends import backend_names, check_device, check_options

    check_device(backend, device)  # a device the backend cannot use fails before any work
    if backend in backend_names():  # else get_backend says 'did you mean'
        check_options(backend, options)  # as must an option the backend does not read
    root = Path(data_root)
    gt_path = _ground_truth(gt, root, backend)
    model = options.get("model") or (root / GT_NAME if backend == "gt" else None)
    check_outputs({"-o": out, "--preview": preview},
                  {"--gt": gt_path, "--model": model, "--ckpt": options.get("ckpt")})
    paths, splits = dataset_images(root, data_format, split, cam_regex)
    if limit is not None:
        paths, splits = paths[:limit], splits[:limit]
    if out is not None:  # a name the pose file cannot hold fails now, not after the work
        check_utf8([str(root.resolve())], "the dataset folder")
        check_utf8(paths, str(root))
    t0 = time.perf_counter()
    kps, sizes, attrs = predict_paths(root, paths, backend, batch_size=batch_size, workers=workers,
                                      progress=f"pose ({backend})", device=device, **options)
    seconds = time.perf_counter() - t0
    missing = _missing(kps)
    per_split = _per_split(splits, missing)
    attrs = {**attrs, "n_no_person": int(missing.sum()), "splits": sorted(per_split)}
    res = PoseResult(path=Path(out) if out is not None else None, backend=backend,
                     n_images=len(paths), n_missing=int(missing.sum()), per_split=per_split,
                     seconds=seconds, attrs=attrs)
    # everything that can fail comes before the first write: a failed run leaves no output
    if gt_path is not None:
        res.pck = pck_against(paths, kps, gt_path, name=Path(out).name if out is not None else "the keypoints")
    png = None
    if preview is not None:
        from reidcli.pose.preview import preview_png

        png = preview_png(root, paths, kps)
    if out is not None:
        files = [options.get("model"), options.get("ckpt")]  # their digests go into provenance
        write_pose(out, PoseFile(keypoints=kps, paths=list(paths), image_size=sizes,
                                 root=str(root.resolve()), attrs=attrs),
                   inputs=[f for f in files if f is not None and Path(f).is_file()])
    if png is not None:
        res.preview = atomic_write_bytes(preview, png)
    return res


def _per_split(splits: Sequence[str], missing: np.ndarray) -> dict[str, tuple[int, int]]:
    """split -> (images, images without a person), in order of first appearance."""
    per_split: dict[str, tuple[int, int]] = {}
    for s, m in zip(splits, missing):
        n, k = per_split.get(s, (0, 0))
        per_split[s] = (n + 1, k + int(m))
    return per_split


def _ground_truth(gt, root: Path, backend: str) -> Path | None:
    if gt is None:
        return None
    if isinstance(gt, str) and gt == "auto":
        found = root / GT_NAME
        return found if backend != "gt" and found.is_file() else None
    return Path(gt)
