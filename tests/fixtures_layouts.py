"""Tiny trees named exactly like the real re-ID datasets (0-byte images: parsing only)."""

from __future__ import annotations

from pathlib import Path


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def build_bbox(root: Path, names: dict[str, list[str]]) -> Path:
    for folder, files in names.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in files:
            touch(root / folder / name)
    return root


MARKET_NAMES = {
    "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c1s1_000551_01.jpg",
                           "0007_c3s3_071052_01.jpg", "Thumbs.db"],
    "query": ["0002_c1s1_001051_00.jpg", "0007_c2s1_000651_00.jpg"],
    "bounding_box_test": ["0002_c2s1_001251_02.jpg", "0007_c6s2_001351_01.jpg", "0000_c1s1_000001_01.jpg",
                          "0000_c3s1_000002_02.jpg", "-1_c2s1_000002_01.jpg"],
}
DUKE_NAMES = {
    "bounding_box_train": ["0001_c2_f0046182.jpg", "0001_c6_f0030883.jpg", "0003_c8_f0091342.jpg",
                           "0003_c1_f0057129.jpg"],
    "query": ["0005_c2_f0046985.jpg", "0008_c7_f0088283.jpg"],
    "bounding_box_test": ["0005_c5_f0051341.jpg", "0008_c1_f0017291.jpg", "0019_c3_f0027161.jpg"],
}
CUHK03_NAMES = {
    "bounding_box_train": ["0001_c1_1.png", "0001_c2_6.png", "0003_c1_2.png", "0003_c2_7.png"],
    "query": ["0005_c1_1.png", "0006_c2_8.png"],
    "bounding_box_test": ["0005_c2_7.png", "0006_c1_3.png", "0009_c1_1.png"],
}


def build_market(parent: Path, names: dict[str, list[str]] = MARKET_NAMES) -> Path:
    return build_bbox(parent / "Market-1501-v15.09.15", names)


def build_duke(parent: Path) -> Path:
    return build_bbox(parent / "DukeMTMC-reID", DUKE_NAMES)


def build_cuhk03(parent: Path) -> Path:
    root = parent / "cuhk03-np"
    build_bbox(root / "detected", CUHK03_NAMES)
    labeled = {k: v[:-1] if k == "bounding_box_test" else v for k, v in CUHK03_NAMES.items()}
    build_bbox(root / "labeled", labeled)
    return root


MSMT_LISTS = {
    "train": ["0000/0000_000_01_0303morning_0015_0.jpg 0", "0000/0000_001_05_0303morning_0016_1.jpg 0",
              "0001/0001_000_15_0303afternoon_0107_0.jpg 1"],
    "val": ["0001/0001_002_03_0303noon_0200_2.jpg 1"],
    "query": ["0000/0000_000_01_0303morning_0008_0.jpg 0", "0002/0002_003_07_0113noon_0102_3.jpg 2"],
    "gallery": ["0000/0000_004_02_0303morning_0011_1.jpg 0", "0002/0002_001_12_0113noon_0050_0.jpg 2",
                "0003/0003_000_09_0113afternoon_1320_0.jpg 3"],
}


def build_msmt17(parent: Path, version: str = "V1", lists: dict[str, list[str]] = MSMT_LISTS) -> Path:
    root = parent / f"MSMT17_{version}"
    train_dir, test_dir = ("train", "test") if version == "V1" else ("mask_train_v2", "mask_test_v2")
    for split, lines in lists.items():
        folder = train_dir if split in ("train", "val") else test_dir
        for line in lines:
            touch(root / folder / line.split()[0])
        root.mkdir(parents=True, exist_ok=True)
        (root / f"list_{split}.txt").write_text("\n".join(lines) + "\n")
    return root


SYSU_IDS = {"train": [1, 2], "val": [3], "test": [6, 7]}


def build_sysu(parent: Path, ids: dict[str, list[int]] = SYSU_IDS) -> Path:
    """Every id is seen by cam1 (visible), cam3 (infrared) and, for even ids, cam2 and cam6."""
    root = parent / "SYSU-MM01"
    for pid in sorted({p for v in ids.values() for p in v}):
        cams = [1, 3] + ([2, 6] if pid % 2 == 0 else [])
        for cam in cams:
            for k in (1, 2):
                touch(root / f"cam{cam}" / f"{pid:04d}" / f"{k:04d}.jpg")
    (root / "exp").mkdir(parents=True)
    for key, values in ids.items():
        (root / "exp" / f"{key}_id.txt").write_text(",".join(str(v) for v in values))
    return root


def build_regdb(parent: Path, trials: tuple[int, ...] = (1, 2)) -> Path:
    """Two training and two test people, two images per modality, per trial."""
    root = parent / "RegDB"
    (root / "idx").mkdir(parents=True)
    people = {1: ("female", "front"), 2: ("male", "back"), 3: ("female", "back"), 4: ("male", "front")}
    for t in trials:
        train, test = ([1, 2], [3, 4]) if t == 1 else ([3, 4], [1, 2])
        for part, pids in (("train", train), ("test", test)):
            for modality, folder, letter in (("visible", "Visible", "v"), ("thermal", "Thermal", "t")):
                lines = []
                for label, pid in enumerate(pids):
                    sex, view = people[pid]
                    for k in range(2):
                        rel = f"{folder}/{pid}/{sex}_{view}_{letter}_{pid * 100 + k:05d}_{pid}.bmp"
                        touch(root / rel)
                        lines.append(f"{rel} {label}")
                (root / "idx" / f"{part}_{modality}_{t}.txt").write_text("\n".join(lines) + "\n")
    return root
