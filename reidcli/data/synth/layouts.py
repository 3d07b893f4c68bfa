"""Plans: which image goes where, under which name, in the real layout of each preset.

* ``market1501`` - ``bounding_box_train/``, ``query/``, ``bounding_box_test/``, names
  ``0002_c1s1_000451_03.jpg`` (query boxes end in ``_00``); gallery distractors ``0000_*``
  (false detections: background or a far person) and junk ``-1_*`` (a body part).
* ``dukemtmc`` - the same folders, names ``0001_c2_f0046182.jpg``; distractors are
  gallery-only identities seen by one camera, as in DukeMTMC-reID.
* ``msmt17`` - ``train/<pid>/`` and ``test/<pid>/`` with ``list_train.txt``,
  ``list_val.txt``, ``list_query.txt``, ``list_gallery.txt`` (``0000/0000_000_01_0303morning_0015_0.jpg 0``,
  paths relative to ``train/`` or ``test/``; ids numbered from 0 in each part).
* ``sysumm01`` - ``cam1..cam6/<pid:04d>/<n:04d>.jpg`` and ``exp/{train,val,test}_id.txt``
  (comma-separated ids); every identity is seen by a visible and an infrared camera.
* ``regdb`` - ``Visible/<pid>/`` and ``Thermal/<pid>/`` (``female_front_v_00012_3.jpg``,
  ``..._t_...``) with the ten random trials of Ye et al. as ``idx/{train,test}_{visible,
  thermal}_<t>.txt`` (``Visible/3/female_front_v_00012_3.jpg 2``, label = pid - 1); each
  trial splits all identities anew into ``ids`` training and ``test_ids`` test ones. Every
  thermal image is the twin of a visible one (same moment: pose, place, occluders).

Test identities get one query image per camera they appear in (the first frame of the
camera's first tracklet), the rest go to the gallery, as in the real query sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reidcli.data.synth.camera import CameraStyle
from reidcli.data.synth.presets import Preset
from reidcli.data.synth.render import Job


@dataclass
class Track:
    ident: int
    cam: int  # 0-based
    n: int
    heading: float
    bg_x: float
    tod: str


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # extra text files: relative path -> content
    split_ids: dict[str, list[int]] = field(default_factory=dict)  # split -> identity indices
    n_identities: int = 0  # identities to sample (train + test + distractor ids)

    def add(self, path: str, kind: str, t: Track | None, ident: int = -1, cam: int = 0,
            rng: np.random.Generator | None = None) -> None:
        if t is not None:
            ident, cam = t.ident, t.cam
        heading = t.heading if t else float(rng.uniform(-np.pi, np.pi))
        bg = t.bg_x if t else float(rng.uniform(0, 1))
        self.jobs.append(Job(path, kind, ident, cam, heading, bg, t.tod if t else "", len(self.jobs)))


def _cams_of(preset: Preset, n_cams: int, n_images: int, min_per_cam: int, rng) -> list[int]:
    k_max = max(1, min(n_cams, preset.max_cams_per_id, n_images // min_per_cam))
    k = int(rng.integers(min(2, k_max), k_max + 1))
    cams = sorted(rng.choice(n_cams, size=k, replace=False).tolist())
    ir = [c for c in range(n_cams) if c + 1 in preset.infrared_cams]
    vis = [c for c in range(n_cams) if c + 1 not in preset.infrared_cams]
    if ir and vis and k >= 2:  # cross-modality sets need both kinds for every identity
        if not set(cams) & set(ir):
            cams[int(rng.integers(k))] = int(rng.choice(ir))
        if not set(cams) - set(ir):
            cams[[i for i, c in enumerate(cams) if c in ir][0]] = int(rng.choice(vis))
    return sorted(set(cams))


def tracks_of(preset: Preset, cameras: list[CameraStyle], ident: int, n_images: int,
              min_per_cam: int, rng: np.random.Generator) -> list[Track]:
    """Split ``n_images`` of one identity over cameras and tracklets (1-2 per camera)."""
    cams = _cams_of(preset, len(cameras), n_images, min_per_cam, rng)
    counts = np.full(len(cams), min_per_cam) + rng.multinomial(
        max(0, n_images - min_per_cam * len(cams)), np.ones(len(cams)) / len(cams))
    out = []
    for cam, n in zip(cams, counts.tolist()):
        parts = [n] if n < 6 or rng.random() < 0.5 else [n // 2, n - n // 2]
        for m in parts:
            heading = cameras[cam].heading + np.pi * (rng.random() < 0.5) + rng.normal(0, 0.35)
            tod = str(rng.choice(preset.times_of_day)) if preset.times_of_day else ""
            out.append(Track(ident, cam, int(m), float(heading), float(rng.uniform(0, 1)), tod))
    return out


def _frames(n: int, rng: np.random.Generator, top: int) -> list[int]:
    start = int(rng.integers(1, max(2, top - 30 * n)))
    return (start + np.cumsum(rng.integers(5, 30, size=n))).tolist()


def plan_market_like(preset: Preset, cameras, n_train: int, n_test: int, per_id: int,
                     distractors: int, junk: int, rng: np.random.Generator) -> Plan:
    """Market-1501 or DukeMTMC-reID naming, folders and distractor conventions."""
    duke = preset.layout == "dukemtmc"
    n_dis_ids = (distractors + 3) // 4 if duke else (distractors + 7) // 8
    plan = Plan(n_identities=n_train + n_test + n_dis_ids)
    pids = (rng.choice(np.arange(1, max(1502, 2 * plan.n_identities + 2)), plan.n_identities, replace=False)
            if not duke else rng.choice(np.arange(1, max(7141, 2 * plan.n_identities + 2)), plan.n_identities,
                                        replace=False))
    used: set[str] = set()

    def name(pid: int, cam: int, frame: int, bb: int) -> str:
        while True:
            n = (f"{pid:04d}_c{cam + 1}_f{frame:07d}.jpg" if duke else
                 f"{pid:04d}_c{cam + 1}s{1 + frame // 166667}_{frame % 1000000:06d}_{bb:02d}.jpg"
                 if pid >= 0 else f"-1_c{cam + 1}s{1 + frame // 166667}_{frame % 1000000:06d}_{bb:02d}.jpg")
            if n not in used:
                used.add(n)
                return n
            frame += 1

    for split, idents in (("train", range(n_train)), ("test", range(n_train, n_train + n_test))):
        plan.split_ids[split] = list(idents)
        for i in idents:
            seen: set[int] = set()
            for t in tracks_of(preset, cameras, i, per_id, 1 if split == "train" else 2, rng):
                for frame in _frames(t.n, rng, 999999):
                    query = split == "test" and t.cam not in seen
                    seen.add(t.cam)
                    folder = "bounding_box_train" if split == "train" else "query" if query else "bounding_box_test"
                    bb = 0 if query else int(rng.integers(1, 4))
                    plan.add(f"{folder}/{name(int(pids[i]), t.cam, frame, bb)}", "person", t)
    dis_ids = list(range(n_train + n_test, plan.n_identities))
    plan.split_ids["distractor"] = dis_ids
    for k in range(distractors):
        cam = int(rng.integers(len(cameras)))
        frame = int(rng.integers(1, 999999))
        if duke:  # gallery-only identities, one camera each
            i = dis_ids[k // 4]
            t = Track(i, (i * 7919) % len(cameras), 1, float(rng.uniform(-3.1, 3.1)), float(rng.uniform(0, 1)), "")
            plan.add(f"bounding_box_test/{name(int(pids[i]), t.cam, frame, 1)}", "person", t)
        else:
            plan.add(f"bounding_box_test/{name(0, cam, frame, int(rng.integers(1, 9)))}", "distractor", None,
                     ident=int(rng.choice(dis_ids)), cam=cam, rng=rng)
    for _ in range(0 if duke else junk):
        cam = int(rng.integers(len(cameras)))
        plan.add(f"bounding_box_test/{name(-1, cam, int(rng.integers(1, 999999)), int(rng.integers(1, 9)))}",
                 "junk", None, ident=int(rng.integers(n_train, n_train + n_test)), cam=cam, rng=rng)
    return plan


def plan_msmt(preset: Preset, cameras, n_train: int, n_test: int, per_id: int,
              rng: np.random.Generator) -> Plan:
    """MSMT17 (V1) folders and list files; ids are numbered from 0 in train and in test."""
    plan = Plan(n_identities=n_train + n_test)
    lists: dict[str, list[str]] = {k: [] for k in ("train", "val", "query", "gallery")}
    for split, idents in (("train", range(n_train)), ("test", range(n_train, n_train + n_test))):
        plan.split_ids[split] = list(idents)
        for pid, i in enumerate(idents):
            seen: set[int] = set()
            k = 0
            for t in tracks_of(preset, cameras, i, per_id, 1 if split == "train" else 2, rng):
                date = f"03{int(rng.integers(1, 29)):02d}"
                for frame in _frames(t.n, rng, 9999):
                    rel = f"{pid:04d}/{pid:04d}_{k:03d}_{t.cam + 1:02d}_{date}{t.tod}_{frame:04d}_{int(rng.integers(0, 3))}.jpg"
                    k += 1
                    if split == "train":
                        lists["val" if rng.random() < 0.1 else "train"].append(f"{rel} {pid}")
                    else:
                        lists["query" if t.cam not in seen else "gallery"].append(f"{rel} {pid}")
                        seen.add(t.cam)
                    plan.add(f"{split}/{rel}", "person", t)
    if not lists["val"] and len(lists["train"]) > 1:  # the parsers refuse an empty list file
        lists["val"].append(lists["train"].pop())
    plan.files = {f"list_{k}.txt": "".join(f"{line}\n" for line in v) for k, v in lists.items()}
    return plan


def plan_sysu(preset: Preset, cameras, n_train: int, n_test: int, per_id: int,
              rng: np.random.Generator) -> Plan:
    """SYSU-MM01 camera folders and exp/ id files; an eighth of the training ids are 'val'."""
    plan = Plan(n_identities=n_train + n_test)
    pids = (rng.permutation(plan.n_identities) + 1).tolist()
    counter: dict[tuple[int, int], int] = {}
    n_val = max(1, n_train // 8) if n_train >= 2 else 0
    plan.split_ids = {"train": list(range(n_train - n_val)), "val": list(range(n_train - n_val, n_train)),
                      "test": list(range(n_train, plan.n_identities))}
    for i in range(plan.n_identities):
        for t in tracks_of(preset, cameras, i, per_id, 1, rng):
            for _ in range(t.n):
                key = (t.cam, pids[i])
                counter[key] = counter.get(key, 0) + 1
                plan.add(f"cam{t.cam + 1}/{pids[i]:04d}/{counter[key]:04d}.jpg", "person", t)
    for split in ("train", "val", "test"):
        plan.files[f"exp/{split}_id.txt"] = ",".join(str(pids[i]) for i in sorted(
            plan.split_ids[split], key=lambda i: pids[i])) + "\n"
    return plan


REGDB_TRIALS = 10


def plan_regdb(preset: Preset, cameras, n_train: int, n_test: int, per_id: int,
               rng: np.random.Generator) -> Plan:
    """RegDB: per identity ``per_id / 2`` visible/thermal pairs, walking towards then away
    from the dual camera; ten trials, each a random ``n_train`` / ``n_test`` identity split."""
    plan = Plan(n_identities=n_train + n_test)
    lists: dict[str, list[str]] = {}
    pairs = per_id // 2
    for i in range(plan.n_identities):
        pid, sex = i + 1, ("female", "male")[int(rng.integers(2))]
        frame = int(rng.integers(1, 9000))
        for j in range(pairs):
            side = "front" if j < (pairs + 1) // 2 else "back"
            t = Track(i, 0, 1, float(rng.normal(0.0 if side == "front" else np.pi, 0.25)), float(rng.uniform(0, 1)), "")
            frame += int(rng.integers(3, 12))
            vis = f"Visible/{pid}/{sex}_{side}_v_{frame:05d}_{pid}.jpg"
            plan.add(vis, "person", t)
            twin = plan.jobs[-1].index
            plan.add(f"Thermal/{pid}/{sex}_{side}_t_{frame:05d}_{pid}.jpg", "person",
                     Track(i, 1, 1, t.heading, t.bg_x, ""))
            plan.jobs[-1].key = twin
            lists.setdefault(i, []).extend([vis, plan.jobs[-1].path])
    for trial in range(1, REGDB_TRIALS + 1):
        order = np.random.default_rng([int(rng.integers(2**31)), trial]).permutation(plan.n_identities)
        parts = {"train": sorted(order[:n_train].tolist()), "test": sorted(order[n_train:].tolist())}
        if trial == 1:
            plan.split_ids = dict(parts)
        for part, idents in parts.items():
            for mod, folder in (("visible", "Visible/"), ("thermal", "Thermal/")):
                plan.files[f"idx/{part}_{mod}_{trial}.txt"] = "".join(
                    f"{p} {i}\n" for i in idents for p in lists[i] if p.startswith(folder))
    return plan


def make_plan(preset: Preset, cameras, *, n_train: int, n_test: int, per_id: int,
              distractors: int, junk: int, rng: np.random.Generator) -> Plan:
    if preset.layout in ("market1501", "dukemtmc"):
        return plan_market_like(preset, cameras, n_train, n_test, per_id, distractors, junk, rng)
    if preset.layout == "msmt17":
        return plan_msmt(preset, cameras, n_train, n_test, per_id, rng)
    if preset.layout == "regdb":
        return plan_regdb(preset, cameras, n_train, n_test, per_id, rng)
    return plan_sysu(preset, cameras, n_train, n_test, per_id, rng)
