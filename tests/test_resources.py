"""Threads and loader workers: the default never oversubscribes the cores this process may
use (affinity mask, cgroup quota), the user's flags win, cgroup files parse."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from reidcli.utils import resources as R
from reidcli.utils.params import ParamError

DEVICES = ["cpu", "cuda", "cuda:1"]


def fake_machine(monkeypatch, affinity: int, quota: float | None) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(affinity)), raising=False)
    monkeypatch.setattr(R, "cgroup_cpu_limit", lambda *a, **k: quota)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("loads_data", [False, True])
@pytest.mark.parametrize("affinity,quota,cores", [
    (1, None, 1), (2, None, 2), (8, None, 8), (64, None, 64),   # affinity mask only
    (64, 1.0, 1), (64, 2.0, 2), (64, 8.0, 8), (8, 64.0, 8),     # a cgroup quota on a big host
    (64, 1.5, 2), (64, 0.2, 1),                                  # fractional quotas round up
])
def test_default_choice_never_exceeds_the_available_cores(monkeypatch, affinity, quota, cores, device, loads_data):
    fake_machine(monkeypatch, affinity, quota)
    assert R.available_cores()[0] == cores
    p = R.plan(device=device, loads_data=loads_data)
    assert p.cores == cores
    assert p.threads >= 1 and p.workers >= 0
    assert p.threads + p.workers <= cores
    if not loads_data:
        assert p.workers == 0 and p.threads == cores  # a compute-only command takes every core
    assert "affinity" in p.cores_from and (quota is None) == ("quota" not in p.cores_from)


@pytest.mark.parametrize("cores,device,threads,workers", [
    (2, "cpu", 2, 0), (8, "cpu", 7, 1), (64, "cpu", 60, 4),
    (1, "cuda", 1, 0), (2, "cuda", 1, 1), (16, "cuda", 8, 8),
])
def test_the_documented_rule(cores, device, threads, workers):
    p = R.plan(device=device, loads_data=True, cores=(cores, "test"), environ={})
    assert (p.threads, p.workers) == (threads, workers)


@pytest.mark.parametrize("cores", [1, 2, 8, 64])
def test_overrides_win_and_the_other_value_fits_beside_them(cores):
    both = R.plan(3, 5, device="cuda", loads_data=True, cores=(cores, "test"), environ={})
    assert (both.threads, both.workers) == (3, 5)
    only_threads = R.plan(1, None, device="cuda", loads_data=True, cores=(cores, "test"), environ={})
    assert only_threads.threads == 1 and only_threads.workers == min(8, cores - 1)
    only_workers = R.plan(None, 6, device="cpu", loads_data=True, cores=(cores, "test"), environ={})
    assert only_workers.workers == 6 and only_workers.threads == max(1, cores - 6)
    env = R.plan(device="cuda", loads_data=True, cores=(cores, "test"), environ={"OMP_NUM_THREADS": "2"})
    assert env.threads == 2 and env.threads + env.workers <= max(cores, 2)


def test_a_given_pair_that_oversubscribes_is_kept_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="reidcli.utils.resources"):
        p = R.plan(4, 4, loads_data=True, cores=(2, "affinity 2"), environ={})
    assert (p.threads, p.workers) == (4, 4)
    assert "oversubscribe 2 core(s)" in caplog.text


@pytest.mark.parametrize("value", ["", "0", "abc", "-3"])
def test_an_unusable_omp_num_threads_is_ignored(value):
    assert R.plan(cores=(4, "test"), environ={"OMP_NUM_THREADS": value}).threads == 4


def test_bad_values_name_the_parameter():
    with pytest.raises(ParamError, match=r"^threads must be an int >= 1 \(or None\); got 0"):
        R.plan(threads=0, cores=(2, "test"))
    with pytest.raises(ParamError, match=r"^workers must be an int >= 0 \(or None\); got -1"):
        R.plan(workers=-1, cores=(2, "test"))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("cpu_max,cores", [("max 100000", None), ("200000 100000", 2.0),
                                           ("150000 100000", 1.5), ("50000 100000", 0.5), ("garbage", None)])
def test_cgroup_v2_cpu_max(tmp_path, cpu_max, cores):
    proc = write(tmp_path / "proc", "0::/user.slice/job\n")
    write(tmp_path / "cg/user.slice/job/cpu.max", cpu_max + "\n")
    assert R.cgroup_cpu_limit(proc, tmp_path / "cg") == cores


def test_cgroup_v2_a_parent_quota_applies_and_the_tightest_wins(tmp_path):
    proc = write(tmp_path / "proc", "0::/a/b\n")
    write(tmp_path / "cg/a/cpu.max", "300000 100000\n")
    write(tmp_path / "cg/a/b/cpu.max", "max 100000\n")
    assert R.cgroup_cpu_limit(proc, tmp_path / "cg") == 3.0
    write(tmp_path / "cg/a/b/cpu.max", "100000 100000\n")
    assert R.cgroup_cpu_limit(proc, tmp_path / "cg") == 1.0


def test_cgroup_v2_in_a_container_the_mount_is_the_process_cgroup(tmp_path):
    proc = write(tmp_path / "proc", "0::/kubepods/pod1/abc\n")  # a host path, not mounted here
    write(tmp_path / "cg/cpu.max", "400000 100000\n")
    assert R.cgroup_cpu_limit(proc, tmp_path / "cg") == 4.0


@pytest.mark.parametrize("folder", ["cpu", "cpu,cpuacct"])
def test_cgroup_v1_cfs_quota(tmp_path, folder):
    proc = write(tmp_path / "proc", f"5:memory:/x\n4:{folder}:/docker/abc\n0::/\n")
    write(tmp_path / f"cg/{folder}/docker/abc/cpu.cfs_quota_us", "250000\n")
    write(tmp_path / f"cg/{folder}/docker/abc/cpu.cfs_period_us", "100000\n")
    assert R.cgroup_cpu_limit(proc, tmp_path / "cg") == 2.5
    write(tmp_path / f"cg/{folder}/docker/abc/cpu.cfs_quota_us", "-1\n")
    assert R.cgroup_cpu_limit(proc, tmp_path / "cg") is None


def test_no_cgroup_files_means_no_quota(tmp_path):
    assert R.cgroup_cpu_limit(tmp_path / "missing", tmp_path / "cg") is None
    proc = write(tmp_path / "proc", "0::/\n")
    assert R.cgroup_cpu_limit(proc, tmp_path / "cg") is None


def test_this_machine_reads_without_error():
    n, how = R.available_cores()
    assert 1 <= n <= (os.cpu_count() or 1) and how.startswith("affinity")


def test_apply_sets_the_environment_and_the_loaded_runtimes(monkeypatch):
    import faiss
    import torch

    for name in R.THREAD_ENV:
        monkeypatch.setenv(name, "1")
    try:
        R.apply(R.Plan(cores=2, threads=2, workers=0, cores_from="test"))
        assert all(os.environ[name] == "2" for name in R.THREAD_ENV)
        assert torch.get_num_threads() == 2 and faiss.omp_get_max_threads() == 2
    finally:
        R.apply(R.Plan(cores=2, threads=1, workers=0, cores_from="test"))
    assert torch.get_num_threads() == 1 and faiss.omp_get_max_threads() == 1


# -- wiring: the loader, the engine's split over streams, the JSONL log ---------------------

def test_auto_loader_workers_follow_the_plan(monkeypatch):
    from reidcli.data.loader import ImageDataset, make_loader

    fake_machine(monkeypatch, 16, None)
    ds = ImageDataset(".", [], transform=lambda img: img)
    for device in ("cpu", "cuda"):
        want = R.plan(device=device, loads_data=True).workers
        assert make_loader(ds, workers=None, device=device).num_workers == want
    assert make_loader(ds, workers=3).num_workers == 3


@pytest.mark.parametrize("total,given,want", [(5, None, [3, 2]), (1, None, [1, 0]), (0, None, [0, 0]),
                                              (5, 2, [2, 2])])
@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")  # worker counts are the input here
def test_automatic_workers_are_split_over_the_engine_streams(total, given, want):
    from types import SimpleNamespace

    from reidcli.data.loader import ImageDataset, make_loader
    from reidcli.train.engine import Engine, Stream

    ds = ImageDataset(".", [], transform=lambda img: img)
    streams = {name: Stream(ds, None, make_loader(ds, workers=2)) for name in ("source", "target")}
    fake = SimpleNamespace(cfg=SimpleNamespace(workers=given), streams=streams,
                           resources=R.Plan(cores=8, threads=8 - total, workers=total, cores_from="test"))
    Engine._share_workers(fake)
    assert [s.loader.num_workers for s in streams.values()] == want
    assert all(s.loader.prefetch_factor for s in streams.values() if s.loader.num_workers)


def test_training_records_its_choice_in_the_jsonl_log(synth_market, tmp_path):
    import json

    from reidcli.data.transforms import AugmentConfig
    from reidcli.models import ModelConfig
    from reidcli.train.config import TrainConfig
    from reidcli.train.pretrain import pretrain

    out = tmp_path / "m.pt"
    pretrain(synth_market, out, model=ModelConfig(arch="resnet18_quarter"),
             train=TrainConfig(epochs=1, iters_per_epoch=1, p=4, k=2, threads=1, warmup_epochs=0),
             augment=AugmentConfig(height=64, width=32), device="cpu")
    first = json.loads(out.with_name("m.log.jsonl").read_text().splitlines()[0])
    assert first["type"] == "resources" and first["threads"] == 1 and first["device"] == "cpu"
    assert first["workers"] == min(R.auto_workers(first["cores"]), first["cores"] - 1)
    assert first["cores"] == R.available_cores()[0]
