"""Shared helpers of the contract tests (test_contract_*, test_e2e_cli, test_properties,
test_cli_output, test_docs_cli).

These tests go through public entry points only: the `reid` CLI (CliRunner on
`reidcli.cli.app.app`), the `read_*` functions of `reidcli.io.h5` and
`reidcli.io.ckpt.load_checkpoint`. The few library functions they compare against a
reference are imported here and nowhere else, so a refactor that moves one is fixed in
one place (`library()`).
"""

from __future__ import annotations

import json
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import h5py

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "format" / "v1"
FORMATS_DOC = ROOT / "docs" / "formats.md"
COLUMNS = 100  # terminal width for every rendered output compared in the tests
QUIET_ENV = {"COLUMNS": str(COLUMNS), "REIDCLI_QUIET": "1"}

# smallest real pipeline settings (resnet18_quarter is the smallest registered architecture)
ARCH = ["--arch", "resnet18_quarter", "--pretrained", "none", "--height", "32", "--width", "16"]
CPU = ["-j", "0", "--device", "cpu"]


def library() -> SimpleNamespace:
    """Library functions the property tests check against references (one import place)."""
    from reidcli.cluster.dbscan import dbscan_graph
    from reidcli.eval import Options, evaluate

    return SimpleNamespace(dbscan_graph=dbscan_graph, evaluate=evaluate, EvalOptions=Options)


def reid(*args, env: dict | None = None):
    """Run ``reid ARGS`` in-process at a fixed terminal width; returns typer's Result."""
    from typer.testing import CliRunner

    from reidcli.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args], env={**QUIET_ENV, **(env or {})})


def reid_ok(*args, env: dict | None = None):
    res = reid(*args, env=env)
    assert res.exit_code == 0, f"reid {' '.join(map(str, args))} -> {res.exit_code}\n{res.output}"
    return res


# --------------------------------------------------------------------------- fields on disk
def h5_fields(path: Path) -> dict[str, set[str]]:
    """Names found in a reidcli .h5 file, read with h5py (not with the readers under test).

    Keys: ``root_attrs``, ``datasets`` (at the root), ``group_datasets`` and ``group_attrs``
    (union over the split groups), ``provenance`` (keys of the records) and
    ``provenance_inputs`` (keys of their ``inputs`` entries).
    """
    out = {k: set() for k in ("root_attrs", "datasets", "group_datasets", "group_attrs",
                              "provenance", "provenance_inputs")}
    with h5py.File(path, "r") as f:
        out["root_attrs"] = set(f.attrs)
        for name, obj in f.items():
            if isinstance(obj, h5py.Group):
                out["group_attrs"] |= set(obj.attrs)
                out["group_datasets"] |= set(obj.keys())
            else:
                out["datasets"].add(name)
        for rec in f["provenance"].asstr()[()] if "provenance" in f else ():
            rec = json.loads(rec)
            out["provenance"] |= set(rec)
            for inp in rec.get("inputs", []):
                out["provenance_inputs"] |= set(inp)
    return out


def ckpt_fields(path: Path) -> dict[str, set[str]]:
    """Top-level, ``model_config`` and ``train_state`` keys of a checkpoint (torch.load)."""
    import torch

    ck = torch.load(path, map_location="cpu", weights_only=True)
    return {"keys": set(ck), "model_config": set(ck["model_config"]),
            "train_state": set(ck.get("train_state") or {}),
            "provenance": set().union(*(set(r) for r in ck.get("provenance", []))) if ck.get("provenance") else set()}


# --------------------------------------------------------------------------- docs/formats.md
_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|(.*)\|\s*$")


def doc_fields(path: Path = FORMATS_DOC) -> dict[tuple[str, str], dict[str, bool]]:
    """``{(section, subsection): {name: required}}`` from the tables of docs/formats.md.

    A table row whose first cell is a name in backticks documents that name; it is
    required unless a cell of the row starts with ``MAY``.
    """
    out: dict[tuple[str, str], dict[str, bool]] = {}
    section = sub = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section, sub = line[3:].strip(), ""
        elif line.startswith("### "):
            sub = line[4:].strip()
        else:
            m = _ROW.match(line)
            if m and section:
                cells = [c.strip() for c in m.group(2).split("|")]
                optional = any(c.startswith("MAY") for c in cells)
                out.setdefault((section, sub), {})[m.group(1)] = not optional
    return out


COMMON = "Common to every file"
# where each kind of name of each format is documented: (## section, ### table) pairs
H5_TABLES = {
    "features": {"root_attrs": [(COMMON, "Root attributes"), ("features", "Root attributes")],
                 "datasets": [(COMMON, "Datasets")],
                 "group_datasets": [("features", "Datasets in each split group")],
                 "group_attrs": [("features", "Split group attributes")]},
    "labels": {"root_attrs": [(COMMON, "Root attributes"), ("labels", "Root attributes")],
               "datasets": [(COMMON, "Datasets"), ("labels", "Datasets")]},
    "pose": {"root_attrs": [(COMMON, "Root attributes"), ("pose", "Root attributes")],
             "datasets": [(COMMON, "Datasets"), ("pose", "Datasets")]},
}
CKPT_TABLES = {"keys": "Keys", "model_config": "model_config keys", "train_state": "train_state keys"}


def documented(*tables: tuple[str, str]) -> dict[str, bool]:
    """``{name: required}`` of the named tables of docs/formats.md (each must exist)."""
    doc = doc_fields()
    out: dict[str, bool] = {}
    for section, sub in tables:
        match = [v for (s, b), v in doc.items() if s.startswith(section) and b == sub]
        assert match, f"{FORMATS_DOC.name} has no table under '## {section}' / '### {sub}'"
        out.update(match[0])
    return out


def check_names(written: set[str], docs: dict[str, bool], where: str) -> None:
    """Every written name is documented; every documented MUST name is written."""
    undocumented = sorted(written - set(docs))
    assert not undocumented, f"{where}: written but not in {FORMATS_DOC.name}: {undocumented}"
    missing = sorted(n for n, required in docs.items() if required and n not in written)
    assert not missing, f"{where}: documented as MUST in {FORMATS_DOC.name} but not written: {missing}"


def check_h5_against_docs(path: Path, kind: str) -> None:
    found = h5_fields(path)
    for what in ("root_attrs", "datasets", "group_datasets", "group_attrs"):
        tables = H5_TABLES[kind].get(what)
        if tables is None:
            assert not found[what], f"{path.name} holds {what} {sorted(found[what])} the format has no place for"
        else:
            check_names(found[what], documented(*tables), f"{path.name} {what}")


def check_ckpt_against_docs(path: Path) -> None:
    found = ckpt_fields(path)
    for what, table in CKPT_TABLES.items():
        check_names(found[what], documented(("Checkpoints", table)), f"{path.name} {what}")


# --------------------------------------------------------------------------- tiny pipeline
_RUNS: dict[str, SimpleNamespace] = {}


def tiny_source(tmp_path_factory) -> SimpleNamespace:
    """A tiny synthetic Market-1501 dataset and a checkpoint pretrained on it for 2 steps,
    both made through the CLI once per session (shared by the e2e and shard tests)."""
    if "source" not in _RUNS:
        d = tmp_path_factory.mktemp("tiny_pipeline")
        data, ckpt = d / "data", d / "m.pt"
        reid_ok("-q", "synth", data, "--ids", "4", "--test-ids", "3", "--images-per-id", "4", "--cams", "2",
                "--height", "32", "--width", "16", "--distractors", "1", "--junk", "1")
        reid_ok("-q", "pretrain", data, "-o", ckpt, *ARCH, "-P", "4", "-K", "2", "--epochs", "1",
                "--max-iters", "2", "--warmup-epochs", "0", *CPU)
        _RUNS["source"] = SimpleNamespace(dir=d, data=data, ckpt=ckpt)
    return _RUNS["source"]


@contextmanager
def fifo_drained_into(fifo: Path, copy: Path, timeout: float = 30):
    """Read everything written into the FIFO ``fifo`` in a background thread (a writer blocks
    until a reader opens it); when the block ends, store what was read in ``copy``."""
    got = {}

    def reader():
        with open(fifo, "rb") as fh:
            got["bytes"] = fh.read()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    yield copy
    t.join(timeout)
    if "bytes" in got:  # nothing read: the test's own assertions say why
        copy.write_bytes(got["bytes"])
