"""Fuzzing the readers (issue 16): damaged and hostile HDF5 files, checkpoints and dataset
trees give the project's own one-line errors (`ReidError`) and never an uncaught exception.

Seeded (``derandomize``) and small (tens of examples per target), so the suite stays fast and
every run checks the same inputs; raise ``REIDCLI_FUZZ_EXAMPLES`` for a longer hunt.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reidcli.io import h5
from reidcli.io.ckpt import describe_checkpoint, load_checkpoint
from reidcli.io.describe import describe_file
from reidcli.utils.errors import ReidError

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "format" / "v1"
N = int(os.environ.get("REIDCLI_FUZZ_EXAMPLES", "30"))
FUZZ = settings(max_examples=N, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
READERS = {"features": h5.read_features, "labels": h5.read_labels, "pose": h5.read_pose}


def only_our_errors(fn, *args) -> None:
    """``fn(*args)`` either works or raises a `ReidError` with a one-line message."""
    try:
        fn(*args)
    except ReidError as exc:
        assert str(exc) and "\n" not in str(exc), repr(exc)


# --------------------------------------------------------------------------- HDF5: bytes
@FUZZ
@given(kind=st.sampled_from(sorted(READERS)), cut=st.floats(0, 1),
       flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8))
def test_hdf5_bytes_damaged(tmp_path_factory, kind, cut, flips):
    data = bytearray((GOLDEN / f"{kind}.h5").read_bytes())
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    data = data[: max(1, int(cut * len(data)))] if cut < 0.98 else data
    p = tmp_path_factory.mktemp("h5b") / f"{kind}.h5"
    p.write_bytes(bytes(data))
    only_our_errors(READERS[kind], p)
    only_our_errors(describe_file, p)


# --------------------------------------------------------------------------- HDF5: structure
def _objects(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visit(names.append)
    return [n for n in names if isinstance(f[n], h5py.Dataset)]


# HDF5 strings cannot hold NUL nor lone surrogates: writing them is the test's problem, not a reader's
NO_NUL = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))
VALUES = st.one_of(
    st.builds(lambda shape, kind: np.zeros(shape, kind),
              st.lists(st.integers(0, 3), min_size=0, max_size=3).map(tuple),
              st.sampled_from(["f4", "f8", "i1", "i8", "u8", "bool"])),
    st.builds(lambda n, v: np.full(n, v), st.integers(0, 4), st.sampled_from([-5, -1, 0.5, np.nan, np.inf, 2**62])),
    st.lists(st.text(NO_NUL, max_size=6), max_size=4).map(
        lambda xs: np.array(xs, dtype=object)),
    st.just(np.array([b"\xff\xfe", b"ok"], dtype=object)),
    st.text(NO_NUL, max_size=10),
)


def _put(f: h5py.File, key: str, value) -> None:
    if key in f:
        del f[key]
    if isinstance(value, np.ndarray) and value.dtype == object:
        if value.size and isinstance(value.flat[0], bytes):
            f.create_dataset(key, data=value, dtype=h5py.string_dtype("ascii"))
        else:
            f.create_dataset(key, data=value, dtype=h5py.string_dtype())
    else:
        f.create_dataset(key, data=value)


@FUZZ
@given(kind=st.sampled_from(sorted(READERS)), data=st.data())
def test_hdf5_structure_damaged(tmp_path_factory, kind, data):
    p = tmp_path_factory.mktemp("h5s") / f"{kind}.h5"
    shutil.copy(GOLDEN / f"{kind}.h5", p)
    with h5py.File(p, "r+") as f:
        keys = _objects(f)
        for _ in range(data.draw(st.integers(1, 3))):
            action = data.draw(st.sampled_from(["replace", "delete", "group", "attr"]))
            key = data.draw(st.sampled_from(keys))
            if key not in f and action != "attr":
                continue
            if action == "replace":
                _put(f, key, data.draw(VALUES))
            elif action == "delete":
                del f[key]
            elif action == "group":
                del f[key]
                f.create_group(key)
            else:
                name = data.draw(st.sampled_from(["reid_format", "reid_format_version", "root", "normalized",
                                                  "n_clusters", "keypoint_names", "created_by"]))
                f.attrs[name] = data.draw(st.one_of(st.integers(-3, 9), st.text(NO_NUL, max_size=8), st.floats(),
                                                    st.just(np.array([1, 2]))))
    only_our_errors(READERS[kind], p)
    only_our_errors(describe_file, p)


# --------------------------------------------------------------------------- checkpoints
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**40), st.floats(allow_nan=True), st.text(max_size=6),
                   st.builds(torch.zeros, st.integers(0, 3)))
JSONISH = st.recursive(LEAVES, lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                      st.dictionaries(st.text(max_size=5), kids, max_size=3)),
                       max_leaves=8)


def _golden_ckpt() -> dict:
    return torch.load(GOLDEN / "checkpoint.pt", map_location="cpu", weights_only=True)


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(["format", "version", "model_config", "input_size", "pixel_mean",
                                                "pixel_std", "model", "feat_dim", "method", "epoch", "iteration",
                                                "nets", "bn", "provenance", "train_state", "kind"]),
                               st.one_of(JSONISH, st.just("<drop>")), min_size=1, max_size=4))
def test_checkpoint_fields_damaged(tmp_path_factory, changes):
    ck = _golden_ckpt()
    for k, v in changes.items():
        if v == "<drop>":
            ck.pop(k, None)
        else:
            ck[k] = v
    p = tmp_path_factory.mktemp("ck") / "m.pt"
    torch.save(ck, p)
    only_our_errors(load_checkpoint, p)
    only_our_errors(describe_checkpoint, p)


# values of the right type that no reader may accept (issue 22): a zero or NaN pixel std divides,
# a 100000-pixel side allocates 30 GB per image, NaN weights give NaN features or a NaN loss
HOSTILE_FIELDS = st.one_of(
    st.tuples(st.just("pixel_std"), st.lists(st.sampled_from([0.0, -1.0, float("nan"), float("inf"), 0.2]),
                                             min_size=3, max_size=3).filter(lambda v: v != [0.2] * 3)),
    st.tuples(st.just("pixel_mean"), st.lists(st.sampled_from([float("nan"), float("inf"), 0.4]), min_size=3,
                                              max_size=3).filter(lambda v: v != [0.4] * 3)),
    st.tuples(st.just("input_size"), st.tuples(st.integers(1, 10**9), st.integers(4097, 2**62)).flatmap(
        lambda hw: st.sampled_from([list(hw), list(hw[::-1])]))),
    st.tuples(st.just("model"), st.sampled_from([float("nan"), float("inf"), float("-inf")])),
)


@FUZZ
@given(field=HOSTILE_FIELDS)
def test_checkpoint_hostile_values_are_refused(tmp_path_factory, field):
    from reidcli.utils.errors import FormatError

    key, value = field
    ck = _golden_ckpt()
    if key == "model":
        name = next(n for n, t in ck["model"].items() if t.is_floating_point())
        ck["model"][name].view(-1)[0] = value
    else:
        ck[key] = value
    p = tmp_path_factory.mktemp("ckh") / "m.pt"
    torch.save(ck, p)
    for fn in (load_checkpoint, describe_checkpoint):
        try:
            fn(p)
        except FormatError as exc:
            assert "\n" not in str(exc) and (f"'{key}'" in str(exc) or "NaN/Inf" in str(exc)), str(exc)
        else:
            raise AssertionError(f"{key}={value!r} accepted by {fn.__name__}")



# what a checkpoint says it trained on (`train_data`), as read back for --resume: any shape
def _fingerprints(target: bool) -> dict:
    from reidcli.data.records import Record, fingerprint

    recs = [Record("a/0001_c1s1_000001_00.jpg", 1, 0), Record("a/0002_c2s1_000001_00.jpg", 2, 1)]
    return {"data": fingerprint("/d", recs), **({"target": fingerprint("/t", recs[:1])} if target else {})}


FINGERPRINT = st.fixed_dictionaries({}, optional={"root": JSONISH, "images": st.one_of(JSONISH, st.just(2)),
                                                  "identities": st.one_of(JSONISH, st.just(2)),
                                                  "digest": st.one_of(JSONISH, st.just(_fingerprints(False)["data"]["digest"]))})


@FUZZ
@given(saved=st.one_of(JSONISH, st.dictionaries(st.sampled_from(["data", "target", "x"]),
                                                st.one_of(JSONISH, FINGERPRINT), max_size=3),
                       st.booleans().map(_fingerprints)),
       target=st.booleans())
def test_resume_refuses_other_training_data_in_one_line(saved, target):
    """``--resume``'s data check on a checkpoint's ``train_data`` of any shape: accepted only
    for an older checkpoint (no mapping: nothing recorded) or the very data of this run,
    otherwise one line naming what the run was started on."""
    from reidcli.train.pretrain import check_resumed_data

    now = _fingerprints(target)
    try:
        check_resumed_data(Path("m.pt"), {"train_data": saved}, now)
    except ReidError as exc:
        assert str(exc).startswith("--resume: m.pt ") and "\n" not in str(exc), repr(exc)
        assert str(exc).endswith("drop --resume (or give a new -o) to start a new run"), repr(exc)
    else:
        same = lambda a, b: isinstance(a, dict) and all(type(a.get(k)) is type(b[k]) and a.get(k) == b[k]  # noqa: E731
                                                       for k in ("images", "identities", "digest"))
        assert not isinstance(saved, dict) or all(
            same(saved.get(role), now[role]) if role in now else saved.get(role) is None
            for role in ("data", "target")), saved


# --------------------------------------------------------------------------- hostile settings (issue 22)
NUMBERS = st.one_of(st.integers(-2**80, 2**80), st.floats(allow_nan=True), st.text(max_size=4), st.booleans(),
                    st.none(), st.lists(st.integers(-3, 3), max_size=3))


@FUZZ
@given(seed=NUMBERS, shard=st.one_of(st.text(max_size=12), st.builds(lambda i, n: f"{i}/{n}", st.integers(-2**70, 2**70),
                                                                     st.integers(-2**70, 2**70))),
       augment=st.dictionaries(st.sampled_from(["height", "width", "flip", "erasing", "pad", "jitter", "crop_scale",
                                                "crop_ratio", "resized_crop"]), NUMBERS, max_size=3),
       size=st.tuples(st.integers(-5, 2**40), st.integers(-5, 2**40)),
       scale=st.one_of(NUMBERS, st.sampled_from([float("inf"), float("-inf"), float("nan"), 0.0, -0.0, 1e308])))
def test_hostile_settings_are_refused_in_one_line(seed, shard, augment, size, scale):
    """Seeds, shard specs, augmentation values (as a --config file gives them), image sizes and
    soft-label scales are accepted only within their bounds; anything else is a one-line `ReidError`."""
    from reidcli.data.transforms import AugmentConfig
    from reidcli.features import parse_shard
    from reidcli.features.extract import CONSTRAINTS as FEATURES
    from reidcli.features.extract import soft_multilabels
    from reidcli.plot.figures import TSNE_CONSTRAINTS
    from reidcli.stylize.fit import CONSTRAINTS as STYLE
    from reidcli.train.config import TrainConfig
    from reidcli.utils.params import MAX_IMAGE_SIDE, check_params

    def ok(fn, *args) -> bool:
        try:
            fn(*args)
        except ReidError as exc:
            assert str(exc) and "\n" not in str(exc), repr(exc)
            return False
        return True

    if ok(lambda: TrainConfig(seed=seed).validate()):
        assert isinstance(seed, int) and 0 <= seed < 2**32
    assert ok(check_params, {"seed": seed}, TSNE_CONSTRAINTS) == ok(check_params, {"seed": seed}, STYLE)
    if ok(parse_shard, shard):
        i, n = parse_shard(shard)
        assert 1 <= i <= n <= 10**6
    if ok(lambda: AugmentConfig(**augment).validate()):
        cfg = AugmentConfig(**augment)
        assert 8 <= cfg.height <= MAX_IMAGE_SIDE and 8 <= cfg.width <= MAX_IMAGE_SIDE and 0 <= cfg.flip <= 1
    if ok(check_params, {"image_size": size}, STYLE):
        assert max(size) <= MAX_IMAGE_SIDE
    if ok(check_params, {"soft_label_scale": scale}, FEATURES):  # an accepted scale gives finite soft labels
        assert not isinstance(scale, bool) and np.isfinite(scale) and scale > 0
        rng = np.random.default_rng(0)
        y = soft_multilabels(rng.normal(size=(3, 4)), rng.normal(size=(5, 4)), scale)
        assert np.isfinite(y).all() and np.allclose(y.sum(1), 1, atol=1e-5)


@FUZZ
@given(cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=6),
       obj=st.one_of(st.none(), JSONISH))
def test_checkpoint_bytes_damaged(tmp_path_factory, cut, flips, obj):
    if obj is not None:  # any other object torch can save
        buf = io.BytesIO()
        torch.save(obj, buf)
        data = bytearray(buf.getvalue())
    else:
        data = bytearray((GOLDEN / "checkpoint.pt").read_bytes())
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    data = data[: int(cut * len(data))] if cut < 0.98 else data
    p = tmp_path_factory.mktemp("ckb") / "m.pt"
    p.write_bytes(bytes(data))
    only_our_errors(load_checkpoint, p)



# --------------------------------------------------------------------------- styled shards (issue 22)
_SHARDS: dict[str, list[Path]] = {}


def _styled_shards(tmp_path_factory) -> list[Path]:
    """Two shards of one tiny 'reid stylize apply --shard i/2' run (made once per session)."""
    if "parts" not in _SHARDS:
        from reidcli.data.synth import synthesize
        from reidcli.stylize import apply_style, fit_style

        d = tmp_path_factory.mktemp("shards")
        synthesize(d / "data", domain="market", ids=3, test_ids=2, images_per_id=2, cams=2, height=32, width=16,
                   seed=0, distractors=0, junk=0)
        model = fit_style(d / "data", d / "style.pt", method="color")
        _SHARDS["parts"] = [Path(apply_style(model, d / "data", d / f"p{i}", shard=(i, 2), device="cpu")["out"])
                            for i in (1, 2)]
    return _SHARDS["parts"]


@FUZZ
@given(edits=st.lists(st.tuples(st.sampled_from(["drop_row", "drop_image", "stray_image"]), st.integers(0, 1),
                                st.floats(0, 1)), max_size=3))
def test_merge_refuses_shards_whose_manifest_and_images_disagree(tmp_path_factory, edits):
    """Rows dropped from a shard's manifest.csv, listed images deleted, unlisted images added:
    `reid merge` joins the shards only while each manifest lists exactly its shard's styled
    images; otherwise one line naming the first such shard, and nothing written."""
    from reidcli.stylize.manifest import MANIFEST, MANIFEST_COLUMNS, read_manifest, write_manifest
    from reidcli.stylize.merge import merge_styled

    root = tmp_path_factory.mktemp("merge")
    parts = [Path(shutil.copytree(p, root / p.name, symlinks=True)) for p in _styled_shards(tmp_path_factory)]
    rows = [read_manifest(p) for p in parts]
    disk = [{r["output"] for r in shard} for shard in rows]
    for what, i, pick in edits:
        if what == "drop_row" and rows[i]:
            rows[i].pop(int(pick * (len(rows[i]) - 1)))
        elif what == "drop_image" and disk[i]:
            gone = sorted(disk[i])[int(pick * (len(disk[i]) - 1))]
            (parts[i] / gone).unlink()
            disk[i].discard(gone)
        elif what == "stray_image":
            stray = f"bounding_box_train/{9000 + int(pick * 99):04d}_c1s1_000001_01.jpg"
            src = next(f for f in sorted((_styled_shards(tmp_path_factory)[0] / "bounding_box_train").glob("*.jpg"))
                       if not f.is_symlink())
            shutil.copy(src, parts[i] / stray)
            disk[i].add(stray)
    for p, shard in zip(parts, rows):
        write_manifest(p, [[r[c] for c in MANIFEST_COLUMNS] for r in shard])
    bad = [i for i in range(2) if {r["output"] for r in rows[i]} != disk[i]]
    try:
        merge_styled(parts, root / "merged")
    except ReidError as exc:
        assert bad and "\n" not in str(exc), repr(exc)
        assert str(exc).startswith(f"{parts[bad[0]] / MANIFEST} (shard {bad[0] + 1}/2) "), str(exc)
        assert not (root / "merged").exists()
    else:
        assert not bad, edits
        assert sorted(r["output"] for r in read_manifest(root / "merged")) == sorted(set().union(*disk))



JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                              st.text(max_size=6)),
                    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=6), kids,
                                                                                       max_size=3)), max_leaves=8)


@FUZZ
@given(record=st.one_of(JSON, st.builds(lambda shard, more: [{"params": {"shard": shard, **more}}],
                                        st.one_of(JSON, st.lists(st.one_of(st.integers(-3, 9), JSON, st.sampled_from(
                                            [float("inf"), float("-inf"), float("nan"), 1.5, "2", 10**30])),
                                            min_size=2, max_size=2)),
                                        st.dictionaries(st.sampled_from(["data", "merged_shards"]), JSON))),
       raw=st.one_of(st.none(), st.binary(max_size=12)))
def test_styled_folder_shard_mark_of_any_shape(tmp_path_factory, record, raw):
    """`--styled`'s shard check reads any provenance.json (damaged bytes, other JSON): a
    readable ``shard`` [i, n] is one line saying to merge first; anything else is no shard
    (the manifest's own checks then apply), never an exception."""
    import json

    from reidcli.stylize.manifest import require_whole_tree, shard_of

    folder = tmp_path_factory.mktemp("styled")
    (folder / "provenance.json").write_bytes(raw if raw is not None else json.dumps(record).encode())
    got = shard_of(folder)
    assert got is None or (isinstance(got, tuple) and len(got) == 2 and all(type(v) is int for v in got))
    try:
        require_whole_tree(folder)
    except ReidError as exc:
        assert got is not None and "\n" not in str(exc) and f"is shard {got[0]}/{got[1]} of" in str(exc), repr(exc)
        assert "'reid merge SHARD... -o STYLED'" in str(exc)
    else:
        assert got is None


# --------------------------------------------------------------------------- layout parsers
FOLDERS = ["bounding_box_train", "bounding_box_test", "query", "train", "test", "gallery", "images", "cam1",
           "cam2", "exp", "idx", "0001", "detected", "labeled", "Visible", "Thermal", "junk"]
FILES = st.one_of(
    st.builds(lambda p, c, s, f: f"{p:04d}_c{c}s{s}_{f:06d}_01.jpg", st.integers(-1, 9999), st.integers(0, 9),
              st.integers(0, 9), st.integers(0, 999999)),
    st.builds(lambda p, c: f"{p:04d}_{c:02d}_0001.jpg", st.integers(0, 99), st.integers(0, 20)),
    st.sampled_from(["list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt", "train_id.txt",
                     "test_id.txt", "train_visible_1.txt", "train_thermal_1.txt", "test_visible_1.txt",
                     "test_thermal_1.txt", "list.csv", "pose.h5", "splits.json", "a.jpg", ".hidden.jpg"]),
    st.text(alphabet="abc_-.0123456789jpg", min_size=1, max_size=10),
)
CONTENT = st.one_of(
    st.just(b""), st.binary(max_size=30),
    st.lists(st.builds(lambda a, b, c: f"{a},{b},{c}", st.text(alphabet="ab/._0123456789", max_size=12),
                       st.integers(-3, 99), st.integers(-2, 9)), max_size=4).map(lambda r: "\n".join(r).encode()),
    st.lists(st.builds(lambda a, b: f"{a} {b}", st.text(alphabet="ab/._0123456789", max_size=12),
                       st.integers(-3, 99)), max_size=4).map(lambda r: "\n".join(r).encode()),
    st.lists(st.integers(-2, 9999), max_size=5).map(lambda r: ",".join(map(str, r)).encode()),
    st.just(b"path,pid,camid\nx.jpg,1,0\n"), st.just("caf\xe9,1,0\n".encode("latin-1")),
)


@FUZZ
@given(tree=st.lists(st.tuples(st.lists(st.sampled_from(FOLDERS), max_size=2), FILES, CONTENT), min_size=1,
                     max_size=8),
       fmt=st.sampled_from([None, "csv", "cuhk03", "dukemtmc", "folder", "market1501", "msmt17", "regdb", "sysu",
                            "unlabelled"]))
def test_layout_parsers_on_random_trees(tmp_path_factory, tree, fmt):
    from reidcli.data.layouts import load_dataset

    root = tmp_path_factory.mktemp("tree")
    for folders, name, content in tree:
        path = root.joinpath(*folders, name)
        if any(p.is_file() for p in [*path.parents][: len(folders)]) or path.is_dir():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    only_our_errors(load_dataset, root, fmt)
    csvs = sorted(root.rglob("*.csv"))
    if csvs:
        only_our_errors(load_dataset, csvs[0], None)


# --------------------------------------------------------------------------- hostile output paths (issue 22)
# Outputs placed on, in, around and through links to a command's inputs: each is refused in one
# line or written without changing any input (a dataset, a model, a config, shard folders).
OUT_NAMES = ["nest/d", "nest/d/query/a.jpg", "nest/d/query/new.jpg", "nest/d/../d/query/a.jpg", "nest/d/query",
             "nest", "nest/style.pt", "nest/../nest/style.pt", "x.pt", "x.config.toml", "new/f.h5", "q/a.jpg",
             "q/new.jpg", "lnk", "dlnk", "olnk", "fifo", "sh1", "sh1/sub", "other", "other/../f.h5", "/dev/null"]


def _output_tree(root: Path) -> dict:
    (root / "nest" / "d" / "query").mkdir(parents=True)
    (root / "nest" / "d" / "query" / "a.jpg").write_bytes(b"\xff\xd8image")
    (root / "nest" / "style.pt").write_bytes(b"model")
    (root / "x.config.toml").write_text("# mine\nepochs = 1\n")
    for name in ("sh1", "sh2", "other"):
        (root / name).mkdir()
        (root / name / "keep").write_bytes(name.encode())
    os.mkfifo(root / "fifo")
    (root / "q").symlink_to(root / "nest" / "d" / "query")
    (root / "lnk").symlink_to(root / "nest" / "d" / "query" / "a.jpg")
    (root / "dlnk").symlink_to(root / "nest" / "d")
    (root / "olnk").symlink_to(root / "other")  # -o a link to a folder that is no input: its target is replaced
    return {"DATA": root / "nest" / "d", "--model": root / "nest" / "style.pt", "--config": root / "x.config.toml",
            "SHARDS": [root / "sh1", root / "sh2"]}


def _inputs_state(root: Path) -> dict:
    """Every input's bytes and kind (the folders' whole trees), the FIFO and the links."""
    state = {"fifo": (root / "fifo").is_fifo(), "links": [os.readlink(root / n) for n in ("q", "lnk", "dlnk")],
             "x.config.toml": (root / "x.config.toml").read_bytes()}
    for name in ("nest", "sh1", "sh2"):
        state[name] = {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
                       for p in sorted((root / name).rglob("*"))}
    return state


def _one_line_refusal(fn, *args, **kwargs) -> bool:
    try:
        fn(*args, **kwargs)
    except ReidError as exc:
        assert str(exc) and "\n" not in str(exc), repr(exc)
        return True
    return False


@FUZZ
@given(name=st.sampled_from(OUT_NAMES), sides=st.booleans(), folder=st.booleans(), force=st.booleans())
def test_hostile_output_paths_never_change_an_input(tmp_path_factory, name, sides, folder, force):
    from reidcli.io.atomic import (atomic_write_bytes, check_output_folder, check_outputs, folder_temp, is_special,
                                   replace_folder, side_file)

    root = tmp_path_factory.mktemp("out")
    inputs = _output_tree(root)
    out = Path(name) if name.startswith("/") else root / name
    before = _inputs_state(root)
    if folder:  # stylize apply -o / merge -o: a whole folder replaced (with --force)
        if not _one_line_refusal(check_output_folder, out, inputs, force):
            dest = check_output_folder(out, inputs, force)
            tmp = folder_temp(dest)
            (tmp / "manifest.csv").write_text("new")
            replace_folder(tmp, dest)
            assert (dest / "manifest.csv").read_text() == "new"
            assert (out / "manifest.csv").read_text() == "new"  # through a link too, the link kept
            assert name != "olnk" or (out.is_symlink() and not list(root.glob(".other.tmp-*")))
    else:  # a file output with (pretrain, finetune) or without side files
        suffixes = (".config.toml", ".log.jsonl") if sides else ()
        if not _one_line_refusal(check_outputs, {"-o": out}, inputs, side_files={"-o": suffixes}):
            if not is_special(out):  # a FIFO without a reader would block; /dev/null needs no check
                atomic_write_bytes(out, b"new")
                for s in suffixes:
                    atomic_write_bytes(side_file(out, s), b"side")
    assert _inputs_state(root) == before
    assert [p.name for p in root.rglob("*") if ".tmp-" in p.name] == []


@FUZZ
@given(planted=st.lists(st.tuples(st.sampled_from(["dead", "live", "self"]), st.sampled_from(["file", "link", "dir"]),
                                  st.sampled_from(["", ".old"])), max_size=5, unique_by=lambda t: (t[0], t[2])))
def test_stale_temporaries_are_removed_and_never_followed(tmp_path_factory, planted):
    import subprocess
    import sys

    from reidcli.io.atomic import atomic_write_bytes

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    pids = {"dead": proc.pid, "live": os.getppid(), "self": os.getpid()}
    root = tmp_path_factory.mktemp("stale")
    victim = root / "victim"
    victim.write_bytes(b"keep")
    for who, kind, tail in planted:
        p = root / f".o.h5.tmp-{pids[who]}{tail}"
        if kind == "file":
            p.write_bytes(b"half")
        elif kind == "link":
            p.symlink_to(victim)
        else:
            (p / "sub").mkdir(parents=True)
    atomic_write_bytes(root / "o.h5", b"new")
    assert (root / "o.h5").read_bytes() == b"new" and victim.read_bytes() == b"keep"
    left = sorted(p.name for p in root.iterdir() if ".tmp-" in p.name)
    assert left == sorted(f".o.h5.tmp-{pids[w]}{t}" for w, _, t in planted if w == "live" or (w == "self" and t))


# --------------------------------------------------------------------------- issue 22: bad data, idle flags
def _small_net_ckpt() -> dict:
    from reidcli.io.ckpt import make_checkpoint
    from reidcli.models import ModelConfig, build_model

    cfg = ModelConfig(arch="resnet18_quarter", num_classes=2)
    net = build_model(cfg)
    return make_checkpoint(model_config=cfg.to_dict(), model_state=net.state_dict(), input_size=(32, 16),
                           method="supervised", epoch=1, feat_dim=net.feat_dim)


@FUZZ
@given(edit=st.sampled_from(["drop", "shape", "extra", "feat_dim"]), pick=st.floats(0, 1),
       dim=st.integers(-10, 10**4))
def test_crafted_checkpoints_are_never_valid(tmp_path_factory, edit, pick, dim):
    """A checkpoint whose tensors do not fit its config (missing, extra, mis-shaped) or whose
    feat_dim its weights do not give is refused in one line by `reid info` (`describe`)."""
    from reidcli.data.describe import describe

    ck = _small_net_ckpt()
    names = sorted(k for k, v in ck["model"].items() if v.ndim > 0)
    name = names[int(pick * (len(names) - 1))]
    if edit == "drop":
        del ck["model"][name]
    elif edit == "shape":
        ck["model"][name] = torch.zeros(*[s + 1 for s in ck["model"][name].shape])
    elif edit == "extra":
        ck["model"]["bogus.weight"] = torch.zeros(3)
    elif dim == ck["feat_dim"]:
        return
    else:
        ck["feat_dim"] = dim
    p = tmp_path_factory.mktemp("ckc") / "m.pt"
    torch.save(ck, p)
    try:
        describe(p)
    except ReidError as exc:
        assert str(exc) and "\n" not in str(exc) and str(p) in str(exc), repr(exc)
    else:
        raise AssertionError(f"{edit} {name} {dim}: called valid")


@FUZZ
@given(value=st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True), st.text(max_size=4)),
       where=st.sampled_from(["train", "query", "gallery", "/"]))
def test_features_file_feature_dim_must_be_the_width(tmp_path_factory, value, where):
    p = tmp_path_factory.mktemp("fd") / "f.h5"
    shutil.copy(GOLDEN / "features.h5", p)
    with h5py.File(p, "r+") as f:
        (f if where == "/" else f[where]).attrs["feature_dim"] = value
    try:
        h5.read_features(p)
    except ReidError as exc:
        assert "feature_dim" in str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(value, int) and value == 16


IDLE = {"evaluate": [["--k1", "3"], ["--k2", "3"], ["--lambda", "0.1"], ["--top", "2"], ["--n-queries", "2"],
                     ["--ranks-queries", "best"], ["--image-root", "."], ["--shot", "multi"], ["--trials", "2"]],
        "plot": [["--perplexity", "3"], ["--max-points", "9"], ["--split", "query"]]}


@FUZZ
@given(command=st.sampled_from(sorted(IDLE)), picks=st.lists(st.integers(0, 8), min_size=1, max_size=3))
def test_flags_that_would_do_nothing_are_one_line(tmp_path_factory, command, picks):
    from typer.testing import CliRunner

    from reidcli.cli.app import app

    tmp = tmp_path_factory.mktemp("idle")
    flags = [f for i in dict.fromkeys(picks) for f in IDLE[command][i % len(IDLE[command])]]
    argv = (["evaluate", str(GOLDEN / "features.h5")] if command == "evaluate"
            else ["plot", str(GOLDEN / "labels.h5"), "-o", str(tmp / "p.png")])
    res = CliRunner().invoke(app, [*argv, *flags])
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and "does not apply" in lines[0], res.output
    assert not list(tmp.iterdir())
