"""The test bed's measurements: calibration targets, cross-modal ratios, learning curves.

`make compare` (bin/compare.mk) runs every adaptation method on one synthetic domain pair.
A bed is only useful if it stands in the relations the papers' real data stand in, so it
is calibrated on the baseline alone, before any paper method runs, against these targets
(docs/compare.md gives their sources):

* direct transfer reaches 0.20-0.45 of the oracle's target mAP (Yu & Piao 2024: ResNet-50
  Market -> Duke 17.3 against supervised Duke 81.1; BoT-style models about 30 against 76);
* plain pseudo-label self-training (DBSCAN on Jaccard distances, no camera centring) closes
  at least 30% of the direct -> oracle gap, as every UDA paper's own baseline does;
* cross-modal: a one-stream baseline's infrared -> visible mAP is well above chance (3x)
  and below its visible -> visible mAP (real SYSU-MM01: about 0.5-0.6 of it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

DIRECT_OVER_ORACLE = (0.20, 0.45)
PSEUDO_GAP_CLOSED = 0.30
CROSS_MODAL_OVER_CHANCE = 3.0
CROSS_MODAL_OVER_VISIBLE = (0.0, 0.9)


def gap_closed(m: float, direct: float, oracle: float) -> float:
    """Share of the direct -> oracle gap that ``m`` closes (nan when the oracle is not above)."""
    return (m - direct) / (oracle - direct) if oracle > direct else float("nan")


@dataclass(frozen=True)
class Check:
    """One calibration target and its measurement."""

    name: str
    value: float
    target: str
    holds: bool

    def line(self, width: int = 44) -> str:
        return f"  {self.name:<{width}} {self.value:7.3f}   target {self.target:<22} {'holds' if self.holds else 'DOES NOT HOLD'}"


def calibration_checks(direct: float, oracle: float, pseudo: float | None = None,
                       cross_modal: Mapping[str, float] | None = None) -> list[Check]:
    """The calibration targets measured: ``direct``, ``oracle`` and ``pseudo`` target mAPs
    (any one scale, e.g. fractions), and `cross_modal_maps`'s dict when a cross-modal
    baseline ran."""
    lo, hi = DIRECT_OVER_ORACLE
    ratio = direct / oracle if oracle > 0 else float("nan")
    checks = [Check("direct / oracle target mAP", ratio, f"{lo:.2f}-{hi:.2f}", lo <= ratio <= hi)]
    if pseudo is not None:
        closed = gap_closed(pseudo, direct, oracle)
        checks.append(Check("pseudo (no camera-norm): share of gap closed", closed,
                            f">= {PSEUDO_GAP_CLOSED:.2f}", closed >= PSEUDO_GAP_CLOSED))
    if cross_modal is not None:
        over = cross_modal["ir2vis"] / cross_modal["chance"]
        checks.append(Check("cross-modal ir->vis mAP / chance", over, f">= {CROSS_MODAL_OVER_CHANCE:.0f}",
                            over >= CROSS_MODAL_OVER_CHANCE))
        lo, hi = CROSS_MODAL_OVER_VISIBLE
        r = cross_modal["ir2vis"] / cross_modal["vis2vis"]
        checks.append(Check("cross-modal ir->vis / vis->vis mAP", r, f"< {hi:.2f} (SYSU ~0.5-0.6)", lo < r < hi))
    return checks


def calibration_block(checks: Sequence[Check]) -> str:
    head = "calibration (baseline only, fixed before any paper method ran):"
    verdict = "all targets hold" if all(c.holds for c in checks) else "SOME TARGETS DO NOT HOLD"
    return "\n".join([head, *(c.line() for c in checks), f"  -> {verdict}"])


def _market_map(q: dict, g: dict) -> float:
    from reidcli.eval.api import Options, evaluate

    return float(evaluate(q, g, Options(protocol="market", metric="cosine"), normalized=False).mean["mAP"])


def cross_modal_maps(path: str | os.PathLike, seed: int = 0) -> dict[str, float]:
    """Infrared -> visible and visible -> visible mAP of a cross-modal features file.

    Both directions use the same gallery, the file's visible images (query and gallery
    splits pooled), and the same rule (the Market one: a gallery image of the query's
    identity and camera is left out, which also removes the query itself); the queries are
    the infrared images for the first, the visible ones for the second. ``chance`` is the
    infrared -> visible mAP of random features (seeded): the floor a network must clear.
    ``ir2ir`` (infrared queries against the other infrared camera) tells whether the infrared
    images themselves carry identity, when ``ir2vis`` is low."""
    from reidcli.io.h5 import read_features

    ff = read_features(path)
    parts = [ff.split(n) for n in ("query", "gallery") if n in ff.splits]
    if any(p.modality is None for p in parts):
        raise ValueError(f"{path}: the splits record no modality; extract the features of a "
                         "cross-modal dataset (SYSU-MM01 or RegDB layout)")
    feats = np.concatenate([p.features for p in parts]).astype(np.float32)
    pids = np.concatenate([p.pids for p in parts])
    cams = np.concatenate([p.camids for p in parts])
    mod = np.concatenate([p.modality for p in parts])
    keep = pids >= 0

    def split(mask: np.ndarray, x: np.ndarray) -> dict:
        m = mask & keep
        return {"features": x[m], "pids": pids[m], "camids": cams[m]}

    vis, ir = mod == 0, mod == 1
    noise = np.random.default_rng(seed).normal(size=feats.shape).astype(np.float32)
    return {"ir2vis": _market_map(split(ir, feats), split(vis, feats)),
            "vis2vis": _market_map(split(vis, feats), split(vis, feats)),
            "ir2ir": _market_map(split(ir, feats), split(ir, feats)),
            "chance": _market_map(split(ir, noise), split(vis, noise))}


def agreement_auc(path: str | os.PathLike, split: str = "train", max_images: int = 2000, seed: int = 0) -> float:
    """MAR's claim made measurable: how well the soft multilabel agreement
    A(y_i, y_j) = sum_k min(y_ik, y_jk) (MAR eq. 2) separates pairs of one identity from pairs
    of two, as the ROC AUC over all pairs of ``split`` (at most ``max_images`` images, drawn
    with ``seed``). The file must hold soft labels (``reid features --soft-labels``)."""
    from sklearn.metrics import roc_auc_score

    from reidcli.io.h5 import read_features

    s = read_features(path, [split]).split(split)
    if "soft_labels" not in s.extra:
        raise ValueError(f"{path}: split '{split}' holds no soft labels; extract with reid features --soft-labels")
    y, pids = np.asarray(s.extra["soft_labels"], np.float32), np.asarray(s.pids)
    keep = np.flatnonzero(pids >= 0)
    if len(keep) > max_images:
        keep = np.sort(np.random.default_rng(seed).choice(keep, max_images, replace=False))
    y, pids = y[keep], pids[keep]
    iu = np.triu_indices(len(y), 1)
    agree = np.concatenate([np.minimum(y[i], y[i + 1:]).sum(1) for i in range(len(y) - 1)])
    same = (pids[iu[0]] == pids[iu[1]])
    return float(roc_auc_score(same, agree))


def write_curves(path: str | os.PathLike, curves: Mapping[str, Sequence[tuple[int, float]]], *,
                 title: str = "target mAP during adaptation", references: Mapping[str, float] | None = None) -> None:
    """One PNG of target mAP (percent) against optimizer steps, one line per row, with
    horizontal reference lines (direct transfer, oracle); written atomically."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reidcli.io.atomic import atomic_write_bytes

    if not curves:
        raise ValueError("no curve to draw")
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    cmap = plt.get_cmap("tab20")
    for i, (label, points) in enumerate(curves.items()):
        steps, maps = zip(*points)
        ax.plot(steps, maps, marker="o", markersize=3, linewidth=1.4, label=label, color=cmap(i % 20),
                linestyle="-" if i < 10 else "--")
    for j, (label, value) in enumerate((references or {}).items()):
        ax.axhline(value, color="grey", linewidth=1, linestyle=(":" if j else "-."), label=label)
    ax.set_xlabel("optimizer steps on the target")
    ax.set_ylabel("target mAP (%)")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getbuffer())


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m reidcli.eval.bed cross-modal F.h5``: the cross-modal maps as JSON."""
    import json
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "cross-modal":
        print("usage: python -m reidcli.eval.bed cross-modal FEATURES.h5", file=sys.stderr)
        return 2
    print(json.dumps(cross_modal_maps(args[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
