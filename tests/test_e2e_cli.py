"""One end-to-end run through files, as a Makefile drives the stages:
synth -> pretrain -> features -> cluster -> finetune -> features -> evaluate,
at the smallest size (resnet18_quarter at 32x16, a few steps). Every file must pass
`reid info`, hold only fields docs/formats.md names (and all it requires), keep every
field of the v1 golden files, and evaluate prints a table."""

from __future__ import annotations

import json
import re

import pytest
from fixtures_contracts import (
    CPU,
    GOLDEN,
    check_ckpt_against_docs,
    check_h5_against_docs,
    ckpt_fields,
    h5_fields,
    reid_ok,
    tiny_source,
)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return tiny_source(tmp_path_factory)


def _info(path, kind: str) -> dict:
    info = json.loads(reid_ok("info", path, "--json").stdout)
    assert info["valid"] is True and info["format"] == kind, info
    return info


def test_uda_round_through_files(source):
    d = source.dir
    data = _info(source.data, "dataset")
    assert data["layout"] == "market1501" and set(data["splits"]) == {"train", "query", "gallery"}
    assert _info(source.ckpt, "checkpoint")["method"] == "supervised"

    reid_ok("-q", "features", "--ckpt", source.ckpt, source.data, "-o", d / "f0.h5", *CPU)
    f0 = _info(d / "f0.h5", "features")
    assert {s: v["n"] for s, v in f0["splits"].items()} == {s: v["images"] for s, v in data["splits"].items()}

    reid_ok("-q", "cluster", d / "f0.h5", "-o", d / "labels.h5", "--k1", "6", "--k2", "2",
            "--min-samples", "2", "--centers")
    labels = _info(d / "labels.h5", "labels")
    assert labels["n"] == data["splits"]["train"]["images"] and labels["n_clusters"] >= 2, labels

    reid_ok("-q", "finetune", source.data, "--ckpt", source.ckpt, "--labels", d / "labels.h5",
            "-o", d / "m1.pt", "--method", "pseudo", "--iters", "1", "-P", "2", "-K", "2",
            "--images-per-bn", "0", *CPU)
    m1 = _info(d / "m1.pt", "checkpoint")
    assert m1["method"] == "pseudo" and m1["num_classes"] == labels["n_clusters"]
    assert [r["program"] for r in m1["provenance"]] == \
        ["reid pretrain", "reid features", "reid cluster", "reid finetune"]

    reid_ok("-q", "features", "--ckpt", d / "m1.pt", source.data, "-o", d / "f1.h5", *CPU)
    f1 = _info(d / "f1.h5", "features")
    assert f1["provenance"][:4] == m1["provenance"]

    table = reid_ok("evaluate", d / "f1.h5").stdout
    rows = dict(re.findall(r"│ (mAP|Rank-1|Rank-5|mINP)\s+│\s+([\d.]+) │", table))
    assert set(rows) == {"mAP", "Rank-1", "Rank-5", "mINP"}, table
    assert all(0 <= float(v) <= 100 for v in rows.values()), table
    assert re.search(r"│ queries\s+│\s+\d+ valid / \d+ │", table), table

    # what the writers write today is documented, and keeps every field of version 1
    for fresh, kind in ((d / "f1.h5", "features"), (d / "labels.h5", "labels")):
        check_h5_against_docs(fresh, kind)
        new, old = h5_fields(fresh), h5_fields(GOLDEN / f"{kind}.h5")
        for what in ("root_attrs", "datasets", "group_datasets", "group_attrs"):
            assert old[what] <= new[what], f"{fresh.name} lost v1 {what} {sorted(old[what] - new[what])}"
    for ck in (source.ckpt, d / "m1.pt"):
        check_ckpt_against_docs(ck)
        new, old = ckpt_fields(ck), ckpt_fields(GOLDEN / "checkpoint.pt")
        for what in ("keys", "model_config"):
            assert old[what] <= new[what], f"{ck.name} lost v1 {what} {sorted(old[what] - new[what])}"
