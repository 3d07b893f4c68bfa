"""The HDF5 contract (version 1): the only code that reads or writes reidcli .h5 files.

Every file carries root attributes ``reid_format`` (features | labels | pose),
``reid_format_version``, ``created_by`` and ``command``, and a ``/provenance`` dataset of
JSON records chained from the files it was made from (as samtools chains ``@PG``).
See docs/formats.md for the full schema. Readers validate everything they load and raise
`FormatError` with the file, the offending key and the fix.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import h5py
import numpy as np

from reidcli import __version__
from reidcli.io.atomic import atomic_write_bytes, file_digest, missing_message
from reidcli.utils.checks import ids_problem
from reidcli.utils.errors import FormatError, InputError

FORMAT_VERSION = 1
FORMATS = ("features", "labels", "pose")
STR = h5py.string_dtype("utf-8")
COCO17_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

_invocation: dict[str, Any] = {"argv": None, "program": None}


def set_invocation(program: str, argv: Sequence[str]) -> None:
    """Record the command line that the CLI is running (stored in every output)."""
    _invocation["program"] = program
    _invocation["argv"] = list(argv)


def _argv() -> list[str]:
    return _invocation["argv"] if _invocation["argv"] is not None else list(sys.argv)


# --------------------------------------------------------------------------- records
@dataclass
class SplitFeatures:
    """Embeddings of one split; ``paths`` are relative to the file's ``root``."""

    features: np.ndarray
    paths: list[str]
    pids: np.ndarray
    camids: np.ndarray
    modality: Optional[np.ndarray] = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class FeaturesFile:
    splits: dict[str, SplitFeatures]
    root: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    provenance: list[dict] = field(default_factory=list)
    path: Optional[Path] = None

    def split(self, name: str) -> SplitFeatures:
        if name not in self.splits:
            where = self.path or "features file"
            have = ", ".join(self.splits) or "none"
            raise InputError(
                f"{where} has no '{name}' split (it has: {have}); "
                f"extract it with 'reid features ... --split {name}' or pick another split"
            )
        return self.splits[name]

    @property
    def normalized(self) -> bool:
        return bool(self.attrs.get("normalized", False))


@dataclass
class LabelsFile:
    labels: np.ndarray
    paths: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    centers: Optional[np.ndarray] = None
    provenance: list[dict] = field(default_factory=list)
    path: Optional[Path] = None

    @property
    def n_clusters(self) -> int:
        return int(len(np.unique(self.labels[self.labels >= 0])))

    @property
    def n_outliers(self) -> int:
        return int((self.labels < 0).sum())


@dataclass
class PoseFile:
    """17 COCO keypoints per image: ``keypoints`` [N, 17, 3] = (x, y, score) in pixels."""

    keypoints: np.ndarray
    paths: list[str]
    image_size: np.ndarray  # [N, 2] = (height, width)
    root: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    provenance: list[dict] = field(default_factory=list)
    path: Optional[Path] = None

    def index(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.paths)}


# --------------------------------------------------------------------------- helpers
def _shown(text: str) -> str:
    """``text`` as one can print it: bytes that are no UTF-8 shown as \\xNN escapes."""
    return text.encode("utf-8", "surrogateescape" if _escaped_only(text) else "backslashreplace").decode(
        "utf-8", "backslashreplace")


def _escaped_only(text: str) -> bool:
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in text)


def check_utf8(values: Iterable[str], where: str) -> None:
    """Raise `InputError` at the first of ``values`` that is no valid UTF-8 (a file name in
    another encoding, kept by Python as surrogate escapes): the files store UTF-8 text, so
    such a name would fail only when the output is written, after all the work."""
    for v in values:
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"{where}: the name '{_shown(v)}' is not valid UTF-8 and cannot be stored in a "
                             "reidcli file; rename it to UTF-8 (e.g. convmv -f latin1 -t utf8)") from None


def _text(value: str) -> str:
    """An attribute's text, made storable (a non-UTF-8 command line or path is escaped)."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return _shown(value)


def _enc_attr(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, (bool, int, float, np.integer, np.floating, np.bool_)):
        return value
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return np.array([_text(v) for v in value], dtype=STR)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
        return np.asarray(value)
    return json.dumps(value)


def _dec_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [v.decode() if isinstance(v, bytes) else v for v in value.tolist()]
    return value


def _attrs(obj: h5py.HLObject) -> dict[str, Any]:
    return {k: _dec_attr(v) for k, v in obj.attrs.items()}


def read_provenance(path: str | os.PathLike) -> list[dict]:
    """Provenance records of a reidcli .h5 file ([] for anything else)."""
    try:
        with h5py.File(path, "r") as f:
            return _provenance(f)
    except (OSError, KeyError, ValueError, TypeError, FormatError):
        return []


def _provenance(f: h5py.File) -> list[dict]:
    if "provenance" not in f:
        return []
    p = Path(f.filename)
    ds = f["provenance"]
    if not isinstance(ds, h5py.Dataset) or h5py.check_string_dtype(ds.dtype) is None or ds.ndim != 1:
        raise _fail(p, "/provenance", "must be a 1-D dataset of JSON strings")
    out = []
    for i, s in enumerate(_decoded(ds, p, "/provenance")):
        try:
            rec = json.loads(s)
        except ValueError:
            raise _fail(p, "/provenance", f"record {i} is not valid JSON") from None
        if not isinstance(rec, dict):
            raise _fail(p, "/provenance", f"record {i} is a JSON {type(rec).__name__}, not an object")
        out.append(rec)
    return out


def _decoded(ds: h5py.Dataset, p: Path, key: str) -> list[str]:
    try:
        return list(ds.asstr()[()])
    except UnicodeDecodeError:
        raise _fail(p, key, "holds text that is not UTF-8") from None


def make_provenance(inputs: Iterable[str | os.PathLike], seed: Optional[int] = None,
                    params: Optional[dict] = None) -> list[dict]:
    """The chain of records of ``inputs`` (h5 files and checkpoints) plus this program's."""
    chain: list[dict] = []
    seen: set[str] = set()
    input_rows = []
    for p in inputs:
        p = Path(p)
        if not p.is_file():
            continue
        input_rows.append({"path": str(p), "digest": file_digest(p)})
        records = read_provenance(p) if p.suffix in (".h5", ".hdf5") else _ckpt_provenance(p)
        for rec in records:
            key = json.dumps(rec, sort_keys=True)
            if key not in seen:
                seen.add(key)
                chain.append(rec)
    argv = _argv()
    record = {
        "program": _invocation["program"] or Path(argv[0]).name if argv else "python",
        "version": __version__,
        "argv": argv,
        "seed": seed,
        "inputs": input_rows,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if params:
        record["params"] = params
    chain.append(record)
    return chain


def _ckpt_provenance(path: Path) -> list[dict]:
    if path.suffix not in (".pt", ".pth"):
        return []
    try:
        from reidcli.io.ckpt import read_ckpt_provenance

        return read_ckpt_provenance(path)
    except Exception:  # a foreign checkpoint carries no chain; its digest is enough
        return []


def _write_header(f: h5py.File, fmt: str, provenance: list[dict]) -> None:
    f.attrs["reid_format"] = fmt
    f.attrs["reid_format_version"] = FORMAT_VERSION
    f.attrs["created_by"] = f"reidcli {__version__}"
    f.attrs["command"] = _text(" ".join(_argv()))
    f.create_dataset("provenance", data=np.array([json.dumps(r) for r in provenance], dtype=object),
                     dtype=STR)


@contextmanager
def _h5_writer(path: Path) -> Iterator[h5py.File]:
    """An HDF5 file built in memory, written to ``path`` atomically when the block ends
    without error (a failed write is then one Python `OSError`, never an HDF5 error with a
    half-open file; see `reidcli.io.atomic.atomic_write_bytes`)."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        yield f
    atomic_write_bytes(path, buf.getbuffer())


def _str_array(values: Sequence[str]) -> np.ndarray:
    return np.array(list(values), dtype=object)


# what h5py raises on a file damaged past its header (a bad B-tree, a cut attribute, ...)
_DAMAGED = (OSError, RuntimeError, KeyError, ValueError, TypeError)


def _brief(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:160]


@contextmanager
def open_checked(path: str | os.PathLike, expected: Optional[str]) -> Iterator[h5py.File]:
    """Open a reidcli h5 file read-only (a context manager), checking its format name and
    version; an HDF5 error met while reading it (a damaged file) becomes one `FormatError`."""
    p = Path(path)
    if not p.exists():
        raise InputError(missing_message(p))
    if p.is_dir():
        raise InputError(f"{p} is a folder, not a reidcli .h5 file")
    if not h5py.is_hdf5(p):
        raise FormatError(f"{p} is not an HDF5 file; give a file written by reidcli (features, labels or pose)")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:  # truncated (a copy cut short), damaged, locked
        why = str(exc).split("(", 1)[-1].split(")")[0] if "(" in str(exc) else str(exc)
        raise FormatError(f"{p} is a damaged or truncated HDF5 file ({why}); copy it again or "
                          "regenerate it") from None
    try:
        with f:
            _check_format(f, p, expected)
            yield f
    except _DAMAGED as exc:
        raise FormatError(f"{p} is a damaged HDF5 file ({_brief(exc)}); copy it again or regenerate it") from None


def _check_format(f: h5py.File, p: Path, expected: Optional[str]) -> None:
    fmt = _dec_attr(f.attrs.get("reid_format", ""))
    ver = _dec_attr(f.attrs.get("reid_format_version", -1))
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise FormatError(f"{p} is an HDF5 file but not a reidcli file (no reid_format attribute); "
                          "make it with reid features, reid cluster or reid extract-pose")
    if expected is not None and fmt != expected:
        raise FormatError(f"{p} is a reidcli '{fmt}' file but a '{expected}' file is expected here")
    if not isinstance(ver, int) or isinstance(ver, bool) or ver > FORMAT_VERSION:
        raise FormatError(f"{p} has reid_format_version {ver!r} but this reidcli {__version__} reads "
                          f"version <= {FORMAT_VERSION}; upgrade reidcli")


def _fail(p: Path, key: str, what: str) -> FormatError:
    return FormatError(f"{p}:{key} {what}; the file is invalid, regenerate it")


def _need(g: h5py.Group, key: str, p: Path) -> h5py.Dataset:
    if key not in g:
        raise _fail(p, f"{g.name.rstrip('/')}/{key}", "is missing")
    if not isinstance(g[key], h5py.Dataset):
        raise _fail(p, f"{g.name.rstrip('/')}/{key}", "must be a dataset, not a group")
    return g[key]


def _paths(g: h5py.Group, p: Path) -> list[str]:
    ds = _need(g, "paths", p)
    key = f"{g.name.rstrip('/')}/paths"
    if h5py.check_string_dtype(ds.dtype) is None or ds.ndim != 1:
        raise _fail(p, key, f"must be a 1-D array of strings; found {ds.dtype} {ds.shape}")
    return _decoded(ds, p, key)


def _stored(f: h5py.File, p: Path) -> dict[str, Any]:
    """What every file object carries besides its data: attributes, provenance, its path."""
    return {"attrs": _attrs(f), "provenance": _provenance(f), "path": p}


def _read(path: str | os.PathLike, fmt: str, build: Callable, validate: Callable):
    """Open ``path`` as a ``fmt`` file, ``build(f, p)`` its object, then ``validate(obj, p)``."""
    p = Path(path)
    with open_checked(p, fmt) as f:
        obj = build(f, p)
    validate(obj, p)
    return obj


def _check_rows(p: Path, group: str, n: int, of: str, columns: dict[str, Any]) -> None:
    """Each of ``columns`` (name -> array, or None when absent) has the ``n`` rows ``of`` has."""
    for name, arr in columns.items():
        if arr is not None and len(arr) != n:
            raise _fail(p, f"{group}/{name}", f"has {len(arr)} rows but {of} has {n}")


def _check_finite(p: Path, key: str, arr) -> None:
    if not np.isfinite(arr).all():
        raise _fail(p, key, "holds NaN/Inf")


def _check_paths(paths: list[str], p: Path, key: str) -> None:
    if len(set(paths)) != len(paths):
        dup = next(x for x in paths if paths.count(x) > 1)
        raise _fail(p, key, f"holds a duplicate path '{dup}'")


# --------------------------------------------------------------------------- features
def write_features(path: str | os.PathLike, ff: FeaturesFile, *, inputs: Iterable = (),
                   seed: Optional[int] = None, provenance: Optional[list[dict]] = None) -> Path:
    """Validate ``ff`` and write it atomically to ``path``."""
    path = Path(path)
    check_utf8([ff.root], "the features file's root folder")
    for name, s in ff.splits.items():
        _validate_split(s, Path(f"<{name}>"), f"/{name}")
        check_utf8(s.paths, f"split '{name}'")
    _same_dims(ff.splits, Path("<features>"))
    prov = provenance if provenance is not None else make_provenance(inputs, seed)
    with _h5_writer(path) as f:
        _write_header(f, "features", prov)
        f.attrs["root"] = ff.root
        for k, v in ff.attrs.items():
            f.attrs[k] = _enc_attr(v)
        for name, s in ff.splits.items():
            g = f.create_group(name)
            g.create_dataset("features", data=s.features)
            g.create_dataset("paths", data=_str_array(s.paths), dtype=STR)
            g.create_dataset("pids", data=np.asarray(s.pids, dtype=np.int64))
            g.create_dataset("camids", data=np.asarray(s.camids, dtype=np.int64))
            if s.modality is not None:
                g.create_dataset("modality", data=np.asarray(s.modality, dtype=np.int8))
            for k, v in s.extra.items():
                g.create_dataset(k, data=v, compression="gzip" if v.ndim > 2 else None)
            g.attrs["feature_dim"] = int(s.features.shape[1]) if s.features.ndim == 2 else 0
    return path


def _ids(p: Path, key: str, values, min_value: int, dtype=np.int64) -> np.ndarray:
    problem = ids_problem(values, min_value)
    if problem:
        raise _fail(p, key, problem)
    return np.asarray(values).astype(dtype)


def _validate_split(s: SplitFeatures, p: Path, key: str) -> None:
    """Check one split; its id arrays become int64 (int8 modality) once they pass."""
    x = s.features = np.asarray(s.features)
    if x.ndim != 2:
        raise _fail(p, f"{key}/features", f"must be 2-D [N, D]; found shape {x.shape}")
    if x.dtype not in (np.float32, np.float16):
        raise _fail(p, f"{key}/features", f"must be float32 or float16; found {x.dtype}")
    n = x.shape[0]
    if n and x.shape[1] == 0:
        raise _fail(p, f"{key}/features", f"has {n} rows of 0 dimensions; re-extract the features")
    s.pids = _ids(p, f"{key}/pids", s.pids, -1)
    s.camids = _ids(p, f"{key}/camids", s.camids, 0)
    if s.modality is not None:
        s.modality = _ids(p, f"{key}/modality", s.modality, 0, np.int8)
    _check_rows(p, key, n, "features", {"paths": s.paths, "pids": s.pids, "camids": s.camids,
                                         "modality": s.modality})
    if n and not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise _fail(p, f"{key}/features", f"holds NaN/Inf (first at row {bad}, {s.paths[bad]})")
    _check_paths(list(s.paths), p, f"{key}/paths")


def _same_dims(splits: dict[str, SplitFeatures], p: Path) -> None:
    """Every non-empty split of one file has the same feature size (one network made them)."""
    dims = {name: s.features.shape[1] for name, s in splits.items() if len(s)}
    if len(set(dims.values())) > 1:
        listed = ", ".join(f"{n} {d}-d" for n, d in dims.items())
        raise _fail(p, "/", f"holds splits of different feature sizes ({listed}); extract all splits with "
                    "one checkpoint")


def read_features(path: str | os.PathLike, splits: Optional[Sequence[str]] = None) -> FeaturesFile:
    """Read and validate a features file (all splits, or those named)."""
    p = Path(path)
    with open_checked(p, "features") as f:
        names = [k for k in f.keys() if isinstance(f[k], h5py.Group)]
        if splits is not None:
            missing = [s for s in splits if s not in names]
            if missing:
                raise InputError(f"{p} has no '{missing[0]}' split (it has: {', '.join(names) or 'none'}); "
                                 f"extract it with 'reid features ... --split {missing[0]}'")
            names = list(splits)
        out = {}
        for name in names:
            g = f[name]
            feats = _need(g, "features", p)[()]
            s = SplitFeatures(
                features=feats,
                paths=_paths(g, p),
                pids=_need(g, "pids", p)[()],  # made int64 by _validate_split, never truncated
                camids=_need(g, "camids", p)[()],
                modality=_need(g, "modality", p)[()] if "modality" in g else None,
            )
            for k in g.keys():
                if k not in ("features", "paths", "pids", "camids", "modality"):
                    s.extra[k] = _need(g, k, p)[()]
            _validate_split(s, p, f"/{name}")
            _check_feature_dim(g.attrs.get("feature_dim"), s.features, p, f"/{name}")
            out[name] = s
        _same_dims(out, p)
        meta = _stored(f, p)
        for s in out.values():
            _check_feature_dim(meta["attrs"].get("feature_dim"), s.features, p, "")
        return FeaturesFile(splits=out, root=str(meta["attrs"].pop("root", "")), **meta)


def _check_feature_dim(value, feats: np.ndarray, p: Path, where: str) -> None:
    """A ``feature_dim`` attribute (MUST, docs/formats.md) equals the width of the features."""
    if value is None or np.ndim(feats) != 2:
        return
    d = int(np.shape(feats)[1])
    try:
        ok = int(value) == d and float(value) == int(value)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        shown = value.item() if isinstance(value, np.generic) else value
        raise _fail(p, f"{where or '/'} attribute feature_dim", f"is {shown!r} but the features are {d}-d")


# --------------------------------------------------------------------------- labels
def write_labels(path: str | os.PathLike, lf: LabelsFile, *, inputs: Iterable = (),
                 seed: Optional[int] = None) -> Path:
    path = Path(path)
    _validate_labels(lf, Path("<labels>"))
    check_utf8(lf.paths, "the labels' paths")
    labels = np.asarray(lf.labels, dtype=np.int64)
    prov = make_provenance(inputs, seed, params=None)
    with _h5_writer(path) as f:
        _write_header(f, "labels", prov)
        for k, v in lf.attrs.items():
            f.attrs[k] = _enc_attr(v)
        f.attrs["n_clusters"] = int(len(np.unique(labels[labels >= 0])))
        f.attrs["n_outliers"] = int((labels < 0).sum())
        f.create_dataset("labels", data=labels)
        f.create_dataset("paths", data=_str_array(lf.paths), dtype=STR)
        if lf.centers is not None:
            f.create_dataset("centers", data=np.asarray(lf.centers, dtype=np.float32))
    return path


def _validate_labels(lf: LabelsFile, p: Path) -> None:
    """Check a labels file's object; its labels become int64 once they pass."""
    labels = np.asarray(lf.labels)
    if labels.ndim == 1 and labels.dtype.kind in "iuf" and len(labels) and (labels < -1).any():
        raise _fail(p, "/labels", "holds values below -1 (only -1 may mark an outlier)")
    labels = lf.labels = _ids(p, "/labels", labels, -1)
    _check_rows(p, "", len(labels), "labels", {"paths": lf.paths})
    if lf.centers is not None:
        c = np.asarray(lf.centers)
        k = int(labels.max()) + 1 if len(labels) else 0
        if c.ndim != 2 or c.shape[0] < k:
            raise _fail(p, "/centers", f"must be [K, D] with K >= {k}; found {c.shape}")
        _check_finite(p, "/centers", c)
    _check_paths(list(lf.paths), p, "/paths")


def read_labels(path: str | os.PathLike) -> LabelsFile:
    """Read and validate a labels file."""
    return _read(path, "labels", lambda f, p: LabelsFile(
        labels=_need(f, "labels", p)[()], paths=_paths(f, p),
        centers=_need(f, "centers", p)[()] if "centers" in f else None, **_stored(f, p)), _validate_labels)


# --------------------------------------------------------------------------- pose
def write_pose(path: str | os.PathLike, pf: PoseFile, *, inputs: Iterable = (),
               seed: Optional[int] = None) -> Path:
    path = Path(path)
    _validate_pose(pf, Path("<pose>"))
    check_utf8([pf.root, *pf.paths], "the pose file")
    prov = make_provenance(inputs, seed)
    with _h5_writer(path) as f:
        _write_header(f, "pose", prov)
        f.attrs["root"] = pf.root
        attrs = {"keypoint_names": list(COCO17_NAMES), **pf.attrs}
        for k, v in attrs.items():
            f.attrs[k] = _enc_attr(v)
        f.create_dataset("keypoints", data=np.asarray(pf.keypoints, dtype=np.float32))
        f.create_dataset("paths", data=_str_array(pf.paths), dtype=STR)
        f.create_dataset("image_size", data=np.asarray(pf.image_size, dtype=np.int32))
    return path


def _validate_pose(pf: PoseFile, p: Path) -> None:
    k = np.asarray(pf.keypoints)
    if k.ndim != 3 or k.shape[1:] != (17, 3):
        raise _fail(p, "/keypoints", f"must be [N, 17, 3]; found {k.shape}")
    _check_rows(p, "", k.shape[0], "keypoints", {"paths": pf.paths})
    if np.asarray(pf.image_size).shape != (k.shape[0], 2):
        raise _fail(p, "/image_size", f"must be [N, 2]; found {np.asarray(pf.image_size).shape}")
    _check_finite(p, "/keypoints", k)
    _check_paths(list(pf.paths), p, "/paths")


def read_pose(path: str | os.PathLike) -> PoseFile:
    """Read and validate a pose file."""
    return _read(path, "pose", _pose_from, _validate_pose)


def _pose_from(f: h5py.File, p: Path) -> PoseFile:
    meta = _stored(f, p)
    return PoseFile(keypoints=_need(f, "keypoints", p)[()], paths=_paths(f, p),
                    image_size=_need(f, "image_size", p)[()], root=str(meta["attrs"].pop("root", "")), **meta)


def read_any(path: str | os.PathLike):
    """Read whichever reidcli h5 format ``path`` holds."""
    with open_checked(path, None) as f:
        fmt = _dec_attr(f.attrs["reid_format"])
    return {"features": read_features, "labels": read_labels, "pose": read_pose}[fmt](path)
