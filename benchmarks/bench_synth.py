"""Benchmark `reid synth`: images per second, and colour statistics per domain and camera.

For each domain preset it writes a dataset into a temporary folder (one process unless
``--workers``), reports images/s, then reads every image back and prints mean RGB,
brightness (HSV V) and saturation (HSV S) per domain and per camera, plus the share of
identities with long sleeves, coats, bags and hats: the numbers that show the presets
differ in camera style and in clothing (the two halves of a re-ID domain gap).

    python benchmarks/bench_synth.py --ids 64 --images-per-id 12
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from reidcli.data.synth import DOMAINS, get_preset, synthesize
from reidcli.data.synth.identity import sample_identities
from reidcli.io.h5 import read_pose


def camera_of(layout: str, rel: str) -> int:
    """1-based camera number from a path of each layout."""
    name = rel.split("/")[-1]
    if layout == "msmt17":
        return int(name.split("_")[2])
    if layout == "sysumm01":
        return int(rel.split("/")[0][3:])
    return int(name.split("_")[1][1:].split("s")[0])


def colour_stats(root: Path, layout: str) -> dict[int, np.ndarray]:
    """Per camera: mean R, G, B, brightness V, saturation S (0..255) over its images."""
    per: dict[int, list[np.ndarray]] = {}
    for rel in read_pose(root / "pose.h5").paths:
        bgr = cv2.imread(str(root / rel))
        hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV).reshape(-1, 3).mean(0)
        rgb = bgr[..., ::-1].reshape(-1, 3).mean(0)
        per.setdefault(camera_of(layout, rel), []).append(np.r_[rgb, hsv[2], hsv[1]])
    return {c: np.mean(v, 0) for c, v in sorted(per.items())}


def clothing_stats(domain: str, n: int = 1000) -> dict[str, float]:
    ids = sample_identities(get_preset(domain).clothing, n, np.random.default_rng(0))
    return {"long_sleeve": np.mean([i.long_sleeve for i in ids]), "coat": np.mean([i.coat > 0 for i in ids]),
            "long_trousers": np.mean([i.legs == "trousers" for i in ids]),
            "bag": np.mean([i.bag != "none" for i in ids]), "hat": np.mean([i.hat != "none" for i in ids]),
            "upper_luma": np.mean([0.3 * i.upper.colour[0] + 0.59 * i.upper.colour[1] + 0.11 * i.upper.colour[2]
                                   for i in ids])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", type=int, default=64)
    ap.add_argument("--images-per-id", type=int, default=12)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--domains", default=",".join(DOMAINS))
    ap.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    a = ap.parse_args()
    report: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dom in a.domains.split(","):
            cpu0 = time.process_time()
            s = synthesize(Path(tmp) / dom, domain=dom, ids=a.ids, images_per_id=a.images_per_id,
                           height=a.height, width=a.width, workers=a.workers)
            cpu = time.process_time() - cpu0  # this process only: --workers 1 gives per-core speed
            cams = colour_stats(Path(tmp) / dom, s["layout"])
            allc = np.mean(list(cams.values()), 0)
            ir = set(s["infrared_cams"])
            report[dom] = {"images": s["images"], "seconds": s["seconds"], "images_per_s": s["images_per_s"],
                           "images_per_cpu_s": round(s["images"] / max(cpu, 1e-9), 1),
                           "colour": allc.round(1).tolist(), "cameras": {c: v.round(1).tolist() for c, v in cams.items()},
                           "infrared_cams": sorted(ir), "clothing": {k: round(float(v), 3) for k, v in
                                                                     clothing_stats(dom).items()}}
    if a.json:
        print(json.dumps(report))
        return
    print(f"{'domain':8} {'images':>7} {'sec':>6} {'img/s':>7} {'img/cpu-s':>9}   mean R   G     B   | bright  sat")
    for dom, r in report.items():
        c = r["colour"]
        print(f"{dom:8} {r['images']:7d} {r['seconds']:6.1f} {r['images_per_s']:7.1f} {r['images_per_cpu_s']:9.1f}   "
              f"{c[0]:5.1f} {c[1]:5.1f} {c[2]:5.1f} | {c[3]:5.1f} {c[4]:5.1f}")
    print("\nper camera: mean R G B | brightness saturation   (IR = infrared camera)")
    for dom, r in report.items():
        cells = [f"c{c}{'(IR)' if c in r['infrared_cams'] else ''} {v[0]:.0f},{v[1]:.0f},{v[2]:.0f}|{v[3]:.0f},{v[4]:.0f}"
                 for c, v in r["cameras"].items()]
        print(f"{dom:8} " + "  ".join(cells))
    print("\nclothing (share of 1000 sampled identities; upper_luma = mean top luminance 0..255)")
    for dom, r in report.items():
        print(f"{dom:8} " + "  ".join(f"{k}={v:.2f}" if k != "upper_luma" else f"{k}={v:.0f}"
                                      for k, v in r["clothing"].items()))


if __name__ == "__main__":
    main()
