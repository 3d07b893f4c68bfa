"""Shared test fixtures. Fixtures used by one test file live in that file; fixtures shared
by several live here or in a tests/fixtures_*.py module registered below as a plugin, each
under one name: a test names the fixture as an argument and never imports it (helpers and
constants of those modules are imported by their plain module name, ``from fixtures_train
import FAST``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest_plugins = ["fixtures_train", "fixtures_finetune"]

os.environ.setdefault("REIDCLI_QUIET", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _pin_xdist_worker() -> None:
    """Under pytest-xdist, give each worker its own share of the cores (inherited by the
    programs it starts), so that the commands' automatic thread and DataLoader-worker
    choice, which reads the CPU affinity, never oversubscribes the machine: two workers
    each running two OpenMP threads on two cores made training tests 3x slower. An
    OMP_NUM_THREADS larger than the worker's share (`OMP_NUM_THREADS=2 make test` on 2 cores,
    2 workers) is lowered to the share: the programs would otherwise warn, rightly, that they
    oversubscribe their core, on the one stderr line the error tests read."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cpus, i = sorted(os.sched_getaffinity(0)), int(worker[2:])
    share = cpus[i % count::count] if count <= len(cpus) else [cpus[i % len(cpus)]]
    if share:
        os.sched_setaffinity(0, share)
        given = os.environ.get("OMP_NUM_THREADS", "")
        if given.isdigit() and int(given) > len(share):
            os.environ["OMP_NUM_THREADS"] = str(len(share))


_pin_xdist_worker()


def write_jpeg(path: Path, h: int = 16, w: int = 8, seed: int = 0) -> Path:
    """A small random-colour JPEG (BGR noise), creating parent folders."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


@pytest.fixture(autouse=True)
def _torch_threads():
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    yield


@pytest.fixture
def market_tree(tmp_path: Path) -> Path:
    """A dozen tiny JPEGs over 3 ids and 2 cameras in the Market-1501 layout,
    with a junk (-1) and a distractor (0000) image in the gallery."""
    root = tmp_path / "Market-1501-v15.09.15"
    names = {
        "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg",
                               "0007_c1s1_000551_01.jpg", "0007_c2s3_071052_01.jpg",
                               "0010_c1s1_002301_02.jpg", "0010_c2s1_003201_01.jpg"],
        "query": ["0002_c1s1_001051_00.jpg", "0007_c2s1_000651_00.jpg"],
        "bounding_box_test": ["0002_c2s1_001251_02.jpg", "0007_c1s2_001351_01.jpg",
                              "0000_c1s1_000001_01.jpg", "-1_c2s1_000002_01.jpg"],
    }
    i = 0
    for folder, files in names.items():
        for name in files:
            write_jpeg(root / folder / name, seed=i)
            i += 1
    return root
