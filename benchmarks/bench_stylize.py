#!/usr/bin/env python3
"""Benchmark `reid stylize` (issue 11): style, identity kept and speed, on `reid synth` data.

    python benchmarks/bench_stylize.py                  # CPU, a few minutes
    python benchmarks/bench_stylize.py --device cuda --stargan-iters 40

A synthetic Duke-like target (per-camera colour casts, gains, white balance) is made; the
``color`` model is fitted on its training split and applied to its *gallery* split (held
out from the fit) in every camera's style. Printed (one JSON object, plus a table on stderr):

* ``color_distance``: per camera pair (a -> b) the Frechet (2-Wasserstein) distance between
  Gaussians of Lab pixels of camera b's real gallery images and (before) camera a's
  originals / (after) camera a's images styled as b; the mean over pairs and each pair.
* ``camera_classifier``: a small CNN trained on real training images to tell the camera;
  its accuracy on real gallery images (sanity), on styled gallery images against the style
  camera, and the chance level 1/C.
* ``identity_kept``: a re-ID model trained on a separate synthetic source; styled gallery
  images as queries, original gallery images as the gallery: Rank-1 (same identity first),
  and Rank-1 with the query's own original left out (another image of the same person).
* ``speed``: ``color`` transfer images/s on one core at 128x64 (in memory, and apply end
  to end with decode + encode); StarGAN fit and apply images/s at a small size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # "one core" for the colour transfer
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _lab_stats(images) -> tuple:
    import numpy as np

    from reidcli.stylize.color import rgb_to_lab

    x = np.concatenate([rgb_to_lab(im).reshape(-1, 3) for im in images]).astype(np.float64)
    return x.mean(0), np.cov(x, rowvar=False)


def frechet(a: tuple, b: tuple) -> float:
    """2-Wasserstein distance between Gaussians (mu, Sigma)."""
    import numpy as np
    from scipy.linalg import sqrtm

    (m1, s1), (m2, s2) = a, b
    r = sqrtm(s1)
    cross = np.real(sqrtm(r @ s2 @ r))
    return float(np.sqrt(max(0.0, ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * cross))))


def color_distances(ds, styled_rows, read) -> dict:
    from collections import defaultdict

    import numpy as np

    real = defaultdict(list)
    for r in ds.split("gallery"):
        real[r.camid].append(read(ds.abspath(r)))
    by_pair = defaultdict(list)
    for row in styled_rows:
        by_pair[int(row["source_cam"]) - 1, int(row["style_cam"]) - 1].append(row)
    stats = {c: _lab_stats(v) for c, v in real.items()}
    pairs = {}
    for (a, b), rows in sorted(by_pair.items()):
        after = _lab_stats([read(row["path"]) for row in rows])
        pairs[f"c{a + 1}->c{b + 1}"] = {"before": round(frechet(stats[a], stats[b]), 2),
                                        "after": round(frechet(after, stats[b]), 2)}
    before = float(np.mean([p["before"] for p in pairs.values()]))
    after = float(np.mean([p["after"] for p in pairs.values()]))
    closer = sum(p["after"] < p["before"] for p in pairs.values())
    return {"mean_before": round(before, 2), "mean_after": round(after, 2), "pairs_closer": f"{closer}/{len(pairs)}",
            "pairs": pairs}


def camera_classifier(ds, styled_rows, read, seed: int, epochs: int) -> dict:
    import cv2
    import numpy as np
    import torch
    from torch import nn

    torch.manual_seed(seed)
    cams = sorted({r.camid for r in ds.split("train")})

    def tensor(images):
        x = np.stack([cv2.resize(im, (32, 64), interpolation=cv2.INTER_AREA) for im in images])
        return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1

    tr = ds.split("train")
    x, y = tensor([read(ds.abspath(r)) for r in tr]), torch.tensor([cams.index(r.camid) for r in tr])
    net = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                        nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(64, len(cams)))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(32):
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()

    def acc(images, labels) -> float:
        with torch.no_grad():
            pred = torch.cat([net(b).argmax(1) for b in tensor(images).split(256)])
        return round(float((pred == torch.tensor(labels)).float().mean()), 3)

    gal = ds.split("gallery")
    return {"cameras": len(cams), "chance": round(1 / len(cams), 3),
            "real_gallery_acc": acc([read(ds.abspath(r)) for r in gal], [cams.index(r.camid) for r in gal]),
            "styled_acc_vs_style_cam": acc([read(row["path"]) for row in styled_rows],
                                           [cams.index(int(row["style_cam"]) - 1) for row in styled_rows]),
            "styled_acc_vs_source_cam": acc([read(row["path"]) for row in styled_rows],
                                            [cams.index(int(row["source_cam"]) - 1) for row in styled_rows])}


def identity_kept(tmp: Path, ds, styled_root: Path, styled_rows, args) -> dict:
    import numpy as np

    from reidcli.data.layouts import load_dataset
    from reidcli.data.synth import synthesize
    from reidcli.data.transforms import AugmentConfig
    from reidcli.features import embed_records
    from reidcli.models import ModelConfig, load_network
    from reidcli.train.config import TrainConfig
    from reidcli.train.pretrain import pretrain

    ckpt = args.ckpt
    t0 = time.perf_counter()
    if ckpt is None:
        src = tmp / "source"
        synthesize(src, domain="market", ids=args.source_ids, test_ids=4, images_per_id=8, height=128, width=64,
                   seed=args.seed + 7)
        ckpt = tmp / "reid.pt"
        pretrain(src, ckpt, model=ModelConfig(arch="resnet18_half", pretrained="none"),
                 train=TrainConfig(epochs=1, iters_per_epoch=args.reid_iters, p=8, k=4, workers=0, warmup_epochs=0,
                                   images_per_bn=0, seed=args.seed),
                 augment=AugmentConfig(height=128, width=64), device=args.device)
    train_s = time.perf_counter() - t0
    model, ck = load_network(ckpt, args.device)
    size = tuple(int(v) for v in ck["input_size"])
    gal = ds.split("gallery")
    gf, _ = embed_records(model, ds.root, gal, size=size, device=args.device, workers=0)
    sty = load_dataset(styled_root).split("gallery")
    by_path = {str((styled_root / r.path).resolve()): r for r in sty}
    q_recs = [by_path[str((styled_root / row["output"]).resolve())] for row in styled_rows]
    qf, _ = embed_records(model, styled_root, q_recs, size=size, device=args.device, workers=0)
    own = {str(ds.abspath(r).resolve()): i for i, r in enumerate(gal)}
    q_own = np.array([own[str(Path(row["original"]).resolve())] for row in styled_rows])
    q_pid = np.array([int(row["pid"]) for row in styled_rows])
    g_pid = np.array([r.pid for r in gal])
    d = ((qf[:, None, :] - gf[None, :, :]) ** 2).sum(-1)
    r1 = float((g_pid[d.argmin(1)] == q_pid).mean())
    # left out: only identities (pid > 0: no junk or distractors) with another gallery image
    counts = {p: int((g_pid == p).sum()) for p in set(g_pid.tolist())}
    has_other = np.array([p > 0 and counts.get(p, 0) >= 2 for p in q_pid])
    d[np.arange(len(d)), q_own] = np.inf
    r1_other = float((g_pid[d.argmin(1)] == q_pid)[has_other].mean())
    # the same protocol on the originals (each original against the other gallery images)
    d0 = ((gf[:, None, :] - gf[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d0, np.inf)
    keep = np.array([p > 0 and counts[p] >= 2 for p in g_pid])
    r1_orig = float((g_pid[d0.argmin(1)] == g_pid)[keep].mean())
    return {"queries": len(q_recs), "rank1": round(100 * r1, 1), "rank1_own_original_left_out": round(100 * r1_other, 1),
            "rank1_originals_vs_other_originals": round(100 * r1_orig, 1), "reid_model_train_s": round(train_s, 1)}


def color_speed(ds, model_path: Path, tmp: Path, n: int) -> dict:
    import cv2
    import torch

    from reidcli.stylize import apply_style, load_style_model
    from reidcli.stylize.apply import color_styler

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    sm = load_style_model(model_path)
    style = color_styler(sm)
    recs = ds.split("train")
    imgs = [cv2.resize(cv2.imread(str(ds.abspath(r)))[:, :, ::-1], (64, 128)) for r in recs[:64]]
    pairs = [(i % len(imgs), recs[i % len(imgs)].camid, sm.cameras[(sm.cameras.index(recs[i % len(imgs)].camid) + 1)
                                                                   % len(sm.cameras)]) for i in range(n)]
    for i, a, b in pairs[: len(sm.cameras) ** 2]:
        style(imgs[i], a, b)  # warm the pair cache
    t0 = time.perf_counter()
    for i, a, b in pairs:
        style(imgs[i], a, b)
    mem = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    res = apply_style(model_path, ds.root, tmp / "speed", cams="all", split=("train",))
    e2e = res["images"] / (time.perf_counter() - t0)
    return {"color_in_memory_img_s_1core_128x64": round(mem, 1), "color_apply_end_to_end_img_s": round(e2e, 1),
            "apply_images": res["images"], "threads": 1, "goal_img_s": 500}


def stargan_speed(ds_root: Path, tmp: Path, args) -> dict:
    import json as _json

    from reidcli.stylize import apply_style
    from reidcli.stylize.train import fit_stargan, stargan_train_config

    h, w = args.stargan_size
    opts = {"g_conv_dim": args.stargan_width, "d_conv_dim": args.stargan_width, "g_repeat": args.stargan_blocks,
            "sample_every": 0}
    out = tmp / "g.pt"
    batch = 8
    t0 = time.perf_counter()
    fit_stargan(ds_root, out, options=opts, image_size=(h, w), device=args.device,
                train=stargan_train_config(epochs=1, iters_per_epoch=args.stargan_iters, p=batch, workers=0,
                                           amp=False, log_every=1, seed=args.seed))
    fit_s = time.perf_counter() - t0
    log = [_json.loads(x) for x in out.with_name(out.stem + ".log.jsonl").read_text().splitlines()]
    steps = [r for r in log if r.get("type") == "step" and "img_s" in r]
    t0 = time.perf_counter()
    res = apply_style(out, ds_root, tmp / "sg", cams="1", split=("query",), device=args.device)
    apply_s = time.perf_counter() - t0
    return {"size": f"{h}x{w}", "g_conv_dim": args.stargan_width, "g_repeat": args.stargan_blocks, "batch": batch,
            "fit_steps": args.stargan_iters, "fit_img_s_wall": round(args.stargan_iters * batch / fit_s, 2),
            "fit_img_s_engine_last": steps[-1]["img_s"] if steps else None,
            "apply_images": res["images"], "apply_img_s": round(res["images"] / apply_s, 2), "device": args.device}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    ap.add_argument("--ids", type=int, default=40, help="target training (and test) identities")
    ap.add_argument("--cams", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ckpt", type=Path, help="a re-ID checkpoint (default: train a small one on a synthetic source)")
    ap.add_argument("--source-ids", type=int, default=60)
    ap.add_argument("--reid-iters", type=int, default=150)
    ap.add_argument("--cls-epochs", type=int, default=30)
    ap.add_argument("--speed-n", type=int, default=2000)
    ap.add_argument("--stargan-size", type=lambda t: tuple(int(v) for v in t.split("x")), default=(64, 32))
    ap.add_argument("--stargan-width", type=int, default=16)
    ap.add_argument("--stargan-blocks", type=int, default=2)
    ap.add_argument("--stargan-iters", type=int, default=12)
    args = ap.parse_args(argv)

    import logging

    logging.basicConfig(level=logging.WARNING)
    from reidcli.data.images import read_image
    from reidcli.data.layouts import load_dataset
    from reidcli.data.synth import synthesize
    from reidcli.stylize import apply_style, fit_style
    from reidcli.stylize.manifest import read_manifest

    tmp = args.out or Path(tempfile.mkdtemp(prefix="bench_stylize_"))
    tmp.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    tgt = tmp / "target"
    synthesize(tgt, domain="duke", ids=args.ids, test_ids=args.ids, cams=args.cams, images_per_id=8,
               height=128, width=64, seed=args.seed)
    ds = load_dataset(tgt)
    t0 = time.perf_counter()
    model = fit_style(tgt, tmp / "color.pt", method="color", seed=args.seed)
    fit_s = time.perf_counter() - t0
    styled = Path(apply_style(model, tgt, tmp / "styled", cams="all", split=("gallery",))["out"])
    rows = [dict(r, path=str((styled / r["output"]).resolve())) for r in read_manifest(styled)]
    res = {"target": {"train_images": len(ds.split("train")), "gallery_images": len(ds.split("gallery")),
                      "cameras": args.cams, "styled_gallery_images": len(rows)},
           "color_fit_s": round(fit_s, 2)}
    res["color_distance"] = color_distances(ds, rows, read_image)
    res["camera_classifier"] = camera_classifier(ds, rows, read_image, args.seed, args.cls_epochs)
    res["identity_kept"] = identity_kept(tmp, ds, styled, rows, args)
    res["speed"] = {"color": color_speed(ds, model, tmp, args.speed_n), "stargan": stargan_speed(tgt, tmp, args)}
    res["wall_s"] = round(time.perf_counter() - t_all, 1)
    cd, cc, ik = res["color_distance"], res["camera_classifier"], res["identity_kept"]
    print(f"colour distance (Frechet, Lab) mean over {len(cd['pairs'])} pairs: {cd['mean_before']} -> "
          f"{cd['mean_after']} ({cd['pairs_closer']} pairs closer)\n"
          f"camera classifier: real {cc['real_gallery_acc']}, styled vs style cam {cc['styled_acc_vs_style_cam']} "
          f"(vs source cam {cc['styled_acc_vs_source_cam']}), chance {cc['chance']}\n"
          f"identity kept: Rank-1 {ik['rank1']}%, own original left out {ik['rank1_own_original_left_out']}% "
          f"(originals vs other originals {ik['rank1_originals_vs_other_originals']}%)\n"
          f"speed: {json.dumps(res['speed'])}", file=sys.stderr)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
