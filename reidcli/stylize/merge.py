"""`merge_styled` (``reid merge`` on folders): join the n trees of ``reid stylize apply
--shard i/n`` into the tree one run writes (same files, same manifest rows in the same order).

A shard's ``provenance.json`` records its ``shard`` [i, n] with the run's settings; the
shards must be all n of one run (same model, data, cameras, splits, method), each once,
and each shard's ``manifest.csv`` must list exactly the styled images in its folder.
The links to DATA's unstyled images and the layout's own files (list files, the CSV) are
rebuilt from DATA and the merged manifest, as one run builds them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Sequence

from reidcli.data.layouts import load_dataset
from reidcli.io.atomic import check_output_folder, folder_temp, replace_folder
from reidcli.stylize.manifest import MANIFEST, MANIFEST_COLUMNS, read_manifest, write_manifest
from reidcli.stylize.naming import build_tree, tree_layout, writer_for
from reidcli.utils.errors import ConfigError, FormatError, InputError

PROVENANCE = "provenance.json"


def _shard_record(folder: Path) -> tuple[list, dict]:
    path = folder / PROVENANCE
    try:
        chain = json.loads(path.read_text())
        params = dict(chain[-1]["params"])
        i, n = (int(v) for v in params["shard"])
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; merge folders written by 'reid stylize apply --shard i/n'") from None
    except (ValueError, OverflowError, KeyError, IndexError, TypeError):
        raise FormatError(f"{folder} is not a shard of 'reid stylize apply --shard i/n' (no shard in "
                          f"{PROVENANCE}); merge only such folders") from None
    return chain, {**params, "shard": (i, n), "model": chain[-1].get("inputs")}


def styled_images(folder: Path) -> list[str]:
    """Relative POSIX paths of the images a ``reid stylize apply`` run wrote below ``folder``:
    image files that are no links (the links to DATA's unstyled images are left out, and
    linked folders are not entered), hidden folders skipped, sorted."""
    from reidcli.data.layouts._common import is_image_name

    found = []
    for dirpath, dirnames, filenames in os.walk(folder):  # links to folders are listed, never entered
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(folder).as_posix()
        prefix = "" if rel == "." else rel + "/"
        found += [prefix + f for f in filenames if is_image_name(f) and not os.path.islink(os.path.join(dirpath, f))]
    return sorted(found)


def check_shard_images(folder: Path, rows: list[dict], shard: tuple[int, int]) -> None:
    """An `InputError` unless ``folder``'s manifest rows list exactly the styled images in it:
    a row whose image is gone, or an image (no link) that no row lists, means a damaged shard
    that would merge into a tree whose manifest and images disagree."""
    listed = [row["output"] for row in rows]
    on_disk = styled_images(folder)
    gone = [o for o in listed if not (folder / o).is_file()]
    extra = sorted(set(on_disk) - set(listed))
    if not gone and not extra:
        return
    i, n = shard
    what = (f"lists {len(gone)} image(s) missing from the folder, first {gone[0]}" if gone else
            f"does not list {len(extra)} styled image(s) of the folder, first {extra[0]}")
    raise InputError(f"{folder / MANIFEST} (shard {i}/{n}) {what}; the shard is damaged: re-run "
                     f"'reid stylize apply --shard {i}/{n}' into a new folder, then merge again")


def merge_styled(paths: Sequence[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Join the n shard trees of one ``reid stylize apply --shard i/n`` run into ``out``
    (written to a temporary sibling and renamed into place).

    Raises:
        InputError: a missing or repeated shard, shards of different runs, a shard whose
            manifest.csv and styled images disagree (`check_shard_images`), two shards with
            one file name, an existing non-empty ``out``, an ``out`` that is, contains or lies
            inside a shard or the styled dataset (`reidcli.io.atomic.check_output_folder`).
    """
    if not paths:
        raise ConfigError("give the shard folders to merge")
    folders = [Path(p) for p in paths]
    recs = [(f, *_shard_record(f)) for f in folders]
    n = recs[0][2]["shard"][1]
    got = sorted(r[2]["shard"][0] for r in recs)
    if got != list(range(1, n + 1)) or any(r[2]["shard"][1] != n for r in recs):
        missing = sorted(set(range(1, n + 1)) - set(got))
        what = f"missing shard(s) {missing}" if missing else f"shards {got} of {n}"
        raise InputError(f"{what}: give each of the {n} shard folders of one 'reid stylize apply' run exactly once")
    for key in ("data", "cams", "split", "method", "model"):
        other = next((r for r in recs if r[2].get(key) != recs[0][2].get(key)), None)
        if other is not None:
            raise InputError(f"{other[0]} differs from {recs[0][0]} in {key}; merge shards of one run only")
    out = Path(out)
    recs.sort(key=lambda r: r[2]["shard"][0])
    params = recs[0][2]
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} exists and is not empty; remove it or choose another -o")
    dest = check_output_folder(out, {"SHARDS": folders, "DATA": Path(str(params["data"]))})
    manifests = []  # every shard's rows, each checked against its images before anything is written
    for folder, _, p in recs:
        rows = read_manifest(folder, empty_ok=True,  # a shard may hold no images
                             fix="merge folders written by 'reid stylize apply --shard i/n'")
        check_shard_images(folder, rows, p["shard"])
        manifests.append(rows)
    ds = load_dataset(params["data"], params.get("format"))  # the tree's links and layout files
    tmp = None
    try:
        tmp = folder_temp(dest)
        rows, seen = [], set()
        for (folder, _, _), shard_rows in zip(recs, manifests):
            for row in shard_rows:
                if row["output"] in seen:
                    raise InputError(f"{folder}: {row['output']} is in two shards; re-run the shards of one run")
                seen.add(row["output"])
                dst = tmp / row["output"]
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(folder / row["output"], dst)
                rows.append([row[c] for c in MANIFEST_COLUMNS])
        writer = writer_for(ds)
        layout = tree_layout(ds, writer, params["split"], [c - 1 for c in params["cams"]])
        build_tree(tmp, ds, writer, params["split"], layout, [dict(zip(MANIFEST_COLUMNS, row)) for row in rows])
        write_manifest(tmp, rows)
        chain = recs[0][1]
        last = dict(chain[-1])
        last["params"] = {k: v for k, v in last["params"].items() if k != "shard"}
        last["params"]["merged_shards"] = n
        (tmp / PROVENANCE).write_text(json.dumps(chain[:-1] + [last], indent=1))
        replace_folder(tmp, dest, shown=out)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
