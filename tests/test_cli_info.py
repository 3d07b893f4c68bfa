"""`reid info` prints exactly this (sqlite-utils style exact-output tests)."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from reidcli import __version__
from reidcli.cli.app import app
from reidcli.io import h5

runner = CliRunner()


def _info(*args: str) -> str:
    r = runner.invoke(app, ["info", *args], env={"COLUMNS": "100"})
    assert r.exit_code == 0, r.output
    return r.stdout


def _pg(path) -> str:
    rec = h5.read_any(path).provenance[0]
    return f"  @PG 0: {' '.join(rec['argv'])}  ({rec['version']}, {rec['time']})"


def test_info_features_file_exact(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    h5.set_invocation("reid features", ["reid", "features"])
    s = h5.SplitFeatures(np.ones((3, 4), np.float32), ["a", "b", "c"], np.array([1, 2, -1]), np.array([0, 1, 1]))
    h5.write_features("f.h5", h5.FeaturesFile({"query": s}))
    assert _info("f.h5") == f"""\
f.h5: reidcli features file, version 1, valid
┏━━━━━━━┳━━━━━━━━┳━━━━━┳━━━━━━━━━┳━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━┓
┃ split ┃ images ┃ dim ┃ dtype   ┃ ids ┃ unlabelled ┃ cameras ┃
┡━━━━━━━╇━━━━━━━━╇━━━━━╇━━━━━━━━━╇━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━┩
│ query │ 3      │ 4   │ float32 │ 2   │ 1          │ 2       │
└───────┴────────┴─────┴─────────┴─────┴────────────┴─────────┘
  command: reid features
  created_by: reidcli {__version__}
{_pg("f.h5")}
"""


def test_info_labels_file_exact(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    h5.set_invocation("reid cluster", ["reid", "cluster", "f.h5"])
    h5.write_labels("l.h5", h5.LabelsFile(labels=np.array([0, 0, 1, -1, 2, 2, 2, 2]), paths=list("abcdefgh")))
    assert _info("l.h5") == f"""\
l.h5: reidcli labels file, version 1, valid
8 samples, 3 clusters, 1 outliers
┏━━━━━━━━━━━━━━┳━━━━━━━━━━┓
┃ cluster size ┃ clusters ┃
┡━━━━━━━━━━━━━━╇━━━━━━━━━━┩
│ 1            │ 1        │
│ 2            │ 1        │
│ 3            │ 0        │
│ 4-7          │ 1        │
│ 8-15         │ 0        │
│ 16-31        │ 0        │
│ 32+          │ 0        │
└──────────────┴──────────┘
  command: reid cluster f.h5
  created_by: reidcli {__version__}
  n_clusters: 3
  n_outliers: 1
{_pg("l.h5")}
"""


def test_info_dataset_exact(market_tree, monkeypatch):
    monkeypatch.chdir(market_tree.parent)
    assert _info(market_tree.name) == f"""\
market1501 at {market_tree.name}: train: 3 ids, 6 images, 2 cameras; query: 2 ids, 2 images, 2 cameras; \
gallery: 3 ids, 4 images, 2 cameras
┏━━━━━━━━━┳━━━━━━━━┳━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━━━━━┓
┃ split   ┃ images ┃ ids ┃ unlabelled ┃ cameras ┃ modalities ┃
┡━━━━━━━━━╇━━━━━━━━╇━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━━━━━┩
│ train   │ 6      │ 3   │ 0          │ 2       │ 0          │
│ query   │ 2      │ 2   │ 0          │ 2       │ 0          │
│ gallery │ 4      │ 3   │ 1          │ 2       │ 0          │
└─────────┴────────┴─────┴────────────┴─────────┴────────────┘
"""


def test_info_dataset_prints_its_summary_once(synth_market):
    """The summary and notes of `reid info DATA` are the result on stdout; they are not also
    logged on stderr."""
    r = runner.invoke(app, ["info", str(synth_market)], env={"COLUMNS": "100"})
    assert r.exit_code == 0, r.output
    both = r.stdout + r.stderr
    assert both.count(f"market1501 at {synth_market}") == 1, both
    assert r.stderr == ""
