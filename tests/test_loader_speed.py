"""Where a training step's time goes (the JSONL log's data_s / compute_s / decode_ms /
augment_ms) and ``--cache-images`` (`reidcli.data.cache`): each image decoded once, the same
weights bit for bit, refused when it would not fit in memory."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch

SLOW_DECODE_S = 0.004  # each decode made at least this slow, so the timings can be asserted


@pytest.fixture(autouse=True)
def _thread_env():
    """These runs use 2 intra-op threads (the main-process loader then drops to one per
    image); `reidcli.utils.resources.apply` writes them to the environment, where later
    tests would read them as OMP_NUM_THREADS: put it back."""
    from reidcli.utils.resources import THREAD_ENV

    saved = {k: os.environ.get(k) for k in THREAD_ENV}
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _slow_decoding(monkeypatch) -> list:
    """Every image decode sleeps ``SLOW_DECODE_S`` first (inherited by forked workers);
    returns the list the parent process's decodes are counted in."""
    import reidcli.data.loader as loader

    real, calls = loader.read_rgb, []

    def slow(path):
        calls.append(path)
        time.sleep(SLOW_DECODE_S)
        return real(path)

    monkeypatch.setattr(loader, "read_rgb", slow)
    return calls


def _pretrain(root, out: Path, *, cache: bool, workers: int, resized_crop: bool = False) -> tuple[dict, list]:
    from reidcli.data.transforms import AugmentConfig
    from reidcli.models import ModelConfig
    from reidcli.train.config import TrainConfig
    from reidcli.train.pretrain import pretrain

    pretrain(root, out, model=ModelConfig(arch="resnet18_quarter"),
             train=TrainConfig(epochs=1, iters_per_epoch=2, p=3, k=2, workers=workers, threads=2,
                               warmup_epochs=0, images_per_bn=0, log_every=2, cache_images=cache),
             augment=AugmentConfig(height=32, width=16, resized_crop=resized_crop, jitter=0.2),
             device="cpu")
    rows = [json.loads(x) for x in out.with_name(out.stem + ".log.jsonl").read_text().splitlines()]
    return torch.load(out, weights_only=True)["model"], rows


@pytest.mark.parametrize("resized_crop", [False, True], ids=["resize-cached", "decoded-size-cached"])
def test_cache_gives_the_same_weights_and_removes_decoding(synth_market, tmp_path, monkeypatch,
                                                            resized_crop):
    """Without the cache every image of every step is decoded (decode_ms >= the sleep);
    with it the images are decoded once before training, in the parent, and neither the
    main process (workers 0) nor a worker process (workers 1) decodes again, yet the
    weights are bit-identical. The resize-free path (--resized-crop crops the decoded
    image) caches the images at their decoded size."""
    calls = _slow_decoding(monkeypatch)
    ref, rows = _pretrain(synth_market, tmp_path / "plain.pt", cache=False, workers=0, resized_crop=resized_crop)
    step = next(r for r in rows if r["type"] == "step")
    assert step["decode_ms"] >= 1000 * SLOW_DECODE_S
    assert step["data_s"] >= 6 * SLOW_DECODE_S  # 6 images decoded in the main process per step
    assert step["compute_s"] > 0 and step["augment_ms"] > 0
    n_train = len(calls)

    for workers in (0, 1):
        calls.clear()
        got, rows = _pretrain(synth_market, tmp_path / f"cached{workers}.pt", cache=True, workers=workers,
                              resized_crop=resized_crop)
        assert all(torch.equal(got[k], ref[k]) for k in ref), f"--cache-images changed the weights (workers {workers})"
        n_images = 24  # synth_market's labelled train images, each decoded once into the cache
        assert len(calls) == n_images, (len(calls), n_train)
        for r in rows:
            if r["type"] in ("step", "epoch"):
                assert r["decode_ms"] < 1000 * SLOW_DECODE_S / 2, r  # a copy out of memory


def test_epoch_record_times_add_up_to_the_step(synth_market, tmp_path):
    """data_s + compute_s is the step's wall time: at most the epoch's time per step."""
    _, rows = _pretrain(synth_market, tmp_path / "m.pt", cache=False, workers=0)
    ep = next(r for r in rows if r["type"] == "epoch")
    per_step = 6 / ep["img_s"]  # seconds per step of the epoch (6 images a step)
    assert 0 < ep["data_s"] + ep["compute_s"] <= per_step * 1.001


def test_refused_in_one_line_when_the_cache_would_not_fit(synth_market, tmp_path, monkeypatch):
    import reidcli.utils.resources as res
    from reidcli.utils.errors import ConfigError

    monkeypatch.setattr(res, "available_memory", lambda: 40_000)  # 24 images x 32x16x3 = 36,864 bytes
    with pytest.raises(ConfigError) as err:
        _pretrain(synth_market, tmp_path / "m.pt", cache=True, workers=0)
    msg = str(err.value)
    assert "\n" not in msg and "--cache-images" in msg
    assert "need 36.9 kB" in msg and "only 20.0 kB may be used" in msg and "40.0 kB" in msg
    assert not (tmp_path / "m.pt").exists()


def test_plan_sizes_and_budget(synth_market):
    """Bytes planned = images x h x w x 3 for a resizing head, the decoded sizes otherwise;
    refused above the fraction of the available memory, accepted at it."""
    from reidcli.data.cache import plan_caches
    from reidcli.data.layouts import load_dataset
    from reidcli.data.loader import ImageDataset
    from reidcli.data.transforms import AugmentConfig, build_train_transform
    from reidcli.utils.errors import ConfigError

    ds = load_dataset(synth_market)
    recs = [r for r in ds.split("train") if r.pid >= 0]
    resize = ImageDataset(ds.root, recs, build_train_transform(AugmentConfig(height=32, width=16)))
    crop = ImageDataset(ds.root, recs, build_train_transform(AugmentConfig(height=32, width=16, resized_crop=True)))
    need = len(recs) * 32 * 16 * 3 + len(recs) * 64 * 32 * 3  # synth_market's images are 64x32
    caches = plan_caches([resize, crop], available=2 * need)
    assert [c.nbytes for c in caches] == [len(recs) * 32 * 16 * 3, len(recs) * 64 * 32 * 3]
    with pytest.raises(ConfigError, match="--cache-images"):
        plan_caches([resize, crop], available=2 * need - 2)


def test_available_memory_is_capped_by_the_cgroup(tmp_path):
    from reidcli.utils.resources import _cgroup_memory_headroom, _meminfo_available

    info = tmp_path / "meminfo"
    info.write_text("MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    8000000 kB\n")
    assert _meminfo_available(info) == 8000000 * 1024
    proc = tmp_path / "cgroup"
    proc.write_text("0::/job/step\n")
    root = tmp_path / "fs"
    (root / "job" / "step").mkdir(parents=True)
    (root / "job" / "memory.max").write_text("3000\n")
    (root / "job" / "memory.current").write_text("1000\n")
    (root / "job" / "step" / "memory.max").write_text("max\n")
    (root / "job" / "step" / "memory.current").write_text("900\n")
    assert _cgroup_memory_headroom(proc, root) == 2000  # the parent's limit is the tight one
    proc.write_text("4:memory:/a\n")
    (root / "memory" / "a").mkdir(parents=True)
    (root / "memory" / "a" / "memory.limit_in_bytes").write_text(str(5000))
    (root / "memory" / "a" / "memory.usage_in_bytes").write_text(str(1500))
    (root / "memory" / "memory.limit_in_bytes").write_text(str(1 << 62))  # v1's "unlimited"
    (root / "memory" / "memory.usage_in_bytes").write_text("7")
    assert _cgroup_memory_headroom(proc, root) == 3500
    proc.write_text("0::/\n")
    assert _cgroup_memory_headroom(proc, tmp_path / "none") is None
