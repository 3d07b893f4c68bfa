"""The pictures of ``reid plot``, of a run rather than an evaluation: training curves,
t-SNE, cluster sizes (an evaluation's own pictures, ``reid evaluate --cmc-png / --ranks-png``,
are `reidcli.eval.plots`).

What ``reid plot`` calls::

    from reidcli.plot import plot
    report = plot("m.log.jsonl", "curves.png")                      # training curves
    report = plot("f.h5", "tsne.png", tsne=True, color="camera")    # t-SNE of a split
    report = plot("f.h5", "tsne.png", tsne=True, color="cluster", labels="labels.h5")
    report = plot("labels.h5", "sizes.png")                         # cluster-size histogram

Each returns a `PlotReport` whose ``data`` holds exactly what was drawn (the curves as
(x, y) series, the 2-D points and their colour classes, the histogram counts), so a caller
can redraw or check it. The lower functions (`read_log`, `log_series`, `training_curves`,
`tsne_embedding`, `tsne_figure`, `cluster_size_histogram`) take Python objects.

Drawn with matplotlib's Agg backend (no display needed) and written atomically; the
picture format is the output's suffix (.png, .pdf or .svg). Torch is never imported.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from reidcli.io.atomic import atomic_path, check_outputs, missing_message
from reidcli.utils.errors import ConfigError, FormatError, InputError
from reidcli.utils.params import SEED, Interval, ParamError, check_params, reject_given

PICTURE_SUFFIXES = (".png", ".pdf", ".svg")
COLORS = ("camera", "cluster", "identity")
# keys of a step / epoch record that are not per-step scalars of the method
_NOT_SCALARS = {"type", "epoch", "iter", "steps", "lr", "img_s", "data_s", "compute_s", "decode_ms", "augment_ms"}
OUTLIER_GREY = (0.6, 0.6, 0.6, 0.5)


@dataclass
class PlotReport:
    """What `plot` drew: ``kind`` (curves | tsne | histogram), where, and the drawn data."""

    kind: str
    output: Path
    source: Path
    panels: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        what = {"curves": "training curves", "tsne": "t-SNE", "histogram": "cluster-size histogram"}[self.kind]
        extra = f" ({', '.join(self.panels)})" if self.panels else ""
        if self.kind == "tsne":
            extra = f": {len(self.data['xy'])} images coloured by {self.data['color']}"
        elif self.kind == "histogram":
            extra = f": {self.data['clusters']} clusters, {self.data['outliers']} outliers"
        return f"wrote {self.output}: {what} of {self.source}{extra}"

    def as_dict(self) -> dict:
        out = {"kind": self.kind, "output": str(self.output), "source": str(self.source), "panels": self.panels,
               "notes": self.notes}
        if self.kind == "tsne":
            out.update(points=int(len(self.data["xy"])), color=self.data["color"],
                       classes=int(len(np.unique(self.data["classes"]))))
        elif self.kind == "histogram":
            out.update(clusters=self.data["clusters"], outliers=self.data["outliers"], images=self.data["images"])
        else:
            out.update(series={k: int(len(v[0])) for k, v in self.data["series"].items()})
        return out


# --------------------------------------------------------------------------- entry point
def plot(source: str | os.PathLike, output: str | os.PathLike, *, tsne: bool = False, color: Optional[str] = None,
         labels: Optional[str | os.PathLike] = None, split: Optional[str] = None, max_points: Optional[int] = None,
         perplexity: Optional[float] = None, seed: int = 0) -> PlotReport:
    """Draw ``source`` to the picture ``output``; what is drawn follows the source:

    - a training log (``*.log.jsonl``, docs/formats.md): `training_curves`;
    - a features file with ``tsne=True``: t-SNE of ``split`` (at most ``max_points`` rows,
      a seeded sample), coloured by ``color`` = camera | cluster (needs ``labels``, a
      labels file of that split) | identity; default cluster with ``labels``, else camera;
    - a labels file: the histogram of cluster sizes (`cluster_size_histogram`).

    ``split``, ``max_points`` and ``perplexity`` (None: `TSNE_DEFAULTS`) apply to ``tsne`` only.
    """
    source, output = Path(source), Path(output)
    check_output(output)
    check_outputs({"-o": output}, {"SOURCE": source, "--labels": labels})
    if not source.exists():
        raise InputError(missing_message(source))
    if source.is_dir():
        raise InputError(f"{source} is a folder; give a training log (.log.jsonl), a features or a labels file")
    if color is not None and color not in COLORS:
        raise ParamError("color", f"must be one of {' | '.join(COLORS)}; got {color!r}")
    given = {"split": split, "max_points": max_points, "perplexity": perplexity}
    reject_given(given, TSNE_DEFAULTS, applies=tsne, what="without --tsne (a t-SNE setting)")
    split, max_points, perplexity = (TSNE_DEFAULTS[k] if v is None else v for k, v in given.items())
    import h5py

    if not h5py.is_hdf5(source):
        if _is_checkpoint(source):
            raise InputError(f"{source} is a checkpoint, not a training log; reid plot draws a training log (the "
                             ".log.jsonl written beside a checkpoint), a features file (--tsne) or a labels file")
        _only_for_features(tsne, color, labels, source, "not an HDF5 file (read as a training log)")
        series = log_series(read_log(source))
        panels = training_curves(series, output, title=source.name)
        return PlotReport("curves", output, source, panels, {"series": _flat(series)})
    from reidcli.io.h5 import open_checked, read_features, read_labels

    with open_checked(source, None) as f:
        fmt = f.attrs["reid_format"]
        fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
    if fmt == "labels":
        _only_for_features(tsne, color, labels, source, "a labels file")
        lf = read_labels(source)
        data = cluster_size_histogram(lf.labels, output, title=source.name)
        return PlotReport("histogram", output, source, [], data)
    if fmt != "features":
        raise InputError(f"{source} is a reidcli '{fmt}' file; reid plot draws a training log (.log.jsonl), "
                         "a features file (--tsne) or a labels file")
    if not tsne:
        raise ConfigError(f"{source} is a features file: draw it with --tsne (t-SNE of a split's embeddings)")
    check_params({"max_points": max_points, "perplexity": perplexity, "seed": seed}, TSNE_CONSTRAINTS)
    color = color or ("cluster" if labels is not None else "camera")
    if color == "cluster" and labels is None:
        raise ParamError("color", "cluster needs --labels labels.h5 (reid cluster of the same split)")
    if labels is not None and color != "cluster":
        raise ParamError("labels", f"is used only with --color cluster; got --color {color}")
    s = read_features(source, [split]).split(split)
    classes = {"camera": s.camids, "identity": s.pids}.get(color)
    if color == "cluster":
        classes = labels_for(read_labels(labels), s.paths, Path(labels), source, split)
    x = np.asarray(s.features, np.float32)
    rows, notes = sample_rows(len(x), max_points, seed), []
    if len(rows) < len(x):
        notes.append(f"a seeded sample of {len(rows)} of {len(x)} images (--max-points)")
    xy = tsne_embedding(x[rows], perplexity=perplexity, seed=seed)
    title = f"{source.name} [{split}] by {color}"
    drawn = tsne_figure(xy, np.asarray(classes)[rows], output, title=title, what=color)
    return PlotReport("tsne", output, source, [], {"xy": xy, "rows": rows, "classes": np.asarray(classes)[rows],
                                                    "color": color, **drawn}, notes)


def check_output(output: Path) -> None:
    """The picture format comes from the suffix; refuse anything else before any work."""
    if output.suffix.lower() not in PICTURE_SUFFIXES:
        raise ParamError("output", f"must end in {' | '.join(PICTURE_SUFFIXES)} (the picture format); got {output}")
    if output.is_dir():
        raise InputError(f"{output} is a folder; give a file name for the picture")


@dataclass(frozen=True)
class TsneOptions:
    """The t-SNE picture's settings when not told (`reid plot --tsne`)."""

    split: str = "train"
    max_points: int = 5000
    perplexity: float = 30.0


TSNE_DEFAULTS = dataclasses.asdict(TsneOptions())
TSNE_CONSTRAINTS = {
    "max_points": [Interval(int, 5, None)],
    "perplexity": [Interval(float, 0, None, closed="neither")],
    "seed": SEED,  # scikit-learn's random_state: [0, 2**32 - 1]
}


def _is_checkpoint(source: Path) -> bool:
    """A PyTorch file (a zip archive or a legacy pickle), as `reidcli.io.ckpt` recognises one."""
    try:
        with open(source, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _only_for_features(tsne, color, labels, source: Path, what: str) -> None:
    given = [name for name, v in (("--tsne", tsne), ("--color", color), ("--labels", labels)) if v]
    if given:
        raise ConfigError(f"{' and '.join(given)} apply only to a features file; {source} is {what}")


# --------------------------------------------------------------------------- training log
def read_log(path: str | os.PathLike) -> list[dict]:
    """The records of a JSONL training log, in file order (empty lines skipped)."""
    p = Path(path)
    records = []
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise FormatError(f"{p} is neither a reidcli HDF5 file nor a text training log (.log.jsonl)") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FormatError(f"{p}:{n} is not JSON ({exc.msg}); give the .log.jsonl that reid pretrain, "
                              "finetune or stylize wrote beside the checkpoint") from None
        if not isinstance(row, dict) or "type" not in row:
            raise FormatError(f"{p}:{n} is not a training-log record (an object with a 'type'); "
                              "see docs/formats.md, 'Training log'")
        records.append(row)
    if not any(r["type"] in ("step", "epoch") for r in records):
        raise InputError(f"{p} has no step or epoch records; train at least one logged step "
                         "(reid pretrain / finetune write <checkpoint>.log.jsonl)")
    return records


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def log_series(records: Sequence[dict]) -> dict[str, dict[str, tuple[list, list]]]:
    """Group a log's records into panels of (x = optimizer steps, y) series:
    ``{"loss": {"loss": ..., "ce": ..., "loss (epoch mean)": ...}, "accuracy": {"acc": ...},
    "learning rate": {"lr": ...}, "evaluation": {"mAP": ..., "rank1": ...}}`` (empty panels
    left out). A run starts with a ``resources`` record naming the epochs already done; a
    resumed run's records replace those of the epochs after its checkpoint (logged by a run
    that stopped before saving them).
    Evaluation records carry only the epoch; they are placed at that epoch's last step."""
    by_type: dict[str, list[dict]] = {}
    for r in records:
        if r["type"] == "resources" and _number(r.get("epoch")):  # a run (re)starts after this many epochs
            for rows in by_type.values():
                rows[:] = [q for q in rows if not (_number(q.get("epoch")) and q["epoch"] > r["epoch"])]
        by_type.setdefault(r["type"], []).append(r)
    panels: dict[str, dict[str, tuple[list, list]]] = {}

    def add(panel: str, name: str, x, y) -> None:
        if _number(x) and _number(y):
            xs, ys = panels.setdefault(panel, {}).setdefault(name, ([], []))
            xs.append(x)
            ys.append(y)

    def panel_of(key: str) -> str:
        return "accuracy" if "acc" in key.lower() or "prec" in key.lower() else "loss"

    for r in by_type.get("step", []):
        for k, v in r.items():
            if k not in _NOT_SCALARS:
                add(panel_of(k), k, r.get("iter"), v)
        add("learning rate", "lr", r.get("iter"), r.get("lr"))
    for r in by_type.get("epoch", []):
        for k, v in r.items():
            if k not in _NOT_SCALARS:
                add(panel_of(k), f"{k} (epoch mean)", r.get("iter"), v)
    epoch_iter = {r.get("epoch"): r.get("iter") for r in by_type.get("epoch", [])}
    for r in by_type.get("eval", []):
        for k, v in r.items():
            if k not in ("type", "epoch"):
                add("evaluation", k, epoch_iter.get(r.get("epoch")), v)
    order = ("loss", "accuracy", "learning rate", "evaluation")
    return {p: panels[p] for p in order if p in panels}


def _flat(series: dict) -> dict[str, tuple[list, list]]:
    return {f"{panel}/{name}": xy for panel, named in series.items() for name, xy in named.items()}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, output: Path) -> None:
    plt = _pyplot()
    try:
        with atomic_path(output) as tmp:
            fig.savefig(tmp, format=output.suffix.lower().lstrip("."))
    finally:
        plt.close(fig)


def training_curves(series: dict[str, dict[str, tuple[list, list]]], output: str | os.PathLike,
                    title: str = "") -> list[str]:
    """One panel per group of `log_series` (shared x axis: optimizer steps); returns the
    panel names. Epoch means are drawn as dots over the per-window line."""
    if not series:
        raise InputError("the log has no numeric step or epoch values to draw")
    plt = _pyplot()
    panels = list(series)
    fig, axes = plt.subplots(len(panels), 1, figsize=(6.4, 2.3 * len(panels)), dpi=110, sharex=True, squeeze=False)
    for ax, panel in zip(axes[:, 0], panels):
        for name, (x, y) in series[panel].items():
            if name.endswith("(epoch mean)"):
                ax.plot(x, y, "o", markersize=3.5, label=name)
            else:
                ax.plot(x, y, "-", linewidth=1.2, marker="." if len(x) < 30 else None, label=name)
        ax.set_ylabel(panel)
        if panel == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        ax.grid(alpha=0.3)
        if len(series[panel]) > 1 or panel == "evaluation":
            ax.legend(fontsize=7, loc="best")
    axes[-1, 0].set_xlabel("optimizer steps")
    if title:
        axes[0, 0].set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, Path(output))
    return panels


# --------------------------------------------------------------------------- t-SNE
def sample_rows(n: int, max_points: int, seed: int) -> np.ndarray:
    """All rows when ``n <= max_points``, else a seeded sample of ``max_points`` (sorted)."""
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def labels_for(lf, paths: Sequence[str], labels_path: Path, source: Path, split: str) -> np.ndarray:
    """The cluster label of each of ``paths`` (a labels file made from the same split)."""
    index = {p: i for i, p in enumerate(lf.paths)}
    missing = [p for p in paths if p not in index]
    if missing:
        raise InputError(f"{labels_path} has no label for {len(missing)} of the {len(paths)} images of "
                         f"{source} [{split}] (first: {missing[0]}); cluster that split: "
                         f"reid cluster {source} --split {split} -o {labels_path.name}")
    return np.asarray(lf.labels)[[index[p] for p in paths]]


def tsne_embedding(x: np.ndarray, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """2-D t-SNE (van der Maaten & Hinton, JMLR 2008; scikit-learn, PCA initialisation) of
    the L2-normalised rows of ``x``; the perplexity is lowered to (n - 1) / 3 for small n."""
    from sklearn.manifold import TSNE

    n = len(x)
    if n < 5:
        raise InputError(f"t-SNE needs at least 5 images; the split has {n}")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    perp = float(min(perplexity, (n - 1) / 3))
    xy = TSNE(n_components=2, perplexity=perp, init="pca", learning_rate="auto", random_state=seed,
              max_iter=1000).fit_transform(x.astype(np.float64))
    return xy.astype(np.float32)


LEGEND_MAX = 20  # classes a legend lists, and a qualitative palette (tab20) holds
GOLDEN = (math.sqrt(5) - 1) / 2


def class_palette(n: int, plt=None) -> list[tuple[float, float, float, float]]:
    """``n`` distinct RGBA colours: matplotlib's tab20 (its dark hues first, then the light
    ones) up to 20; beyond, hues stepped by the golden ratio (each new hue falls in the
    largest gap left) with saturation and value cycling over three levels each, so that
    neighbouring classes differ in brightness too and no two classes share a colour."""
    import colorsys

    if n <= LEGEND_MAX:
        cmap = (plt or _pyplot()).get_cmap("tab20")
        return [tuple(cmap(i)) for i in (*range(0, 20, 2), *range(1, 20, 2))][:n]
    out = []
    for i in range(n):
        s, v = (0.9, 0.55, 0.75)[i % 3], (0.95, 0.7, 0.5)[(i // 3) % 3]
        out.append((*colorsys.hsv_to_rgb((i * GOLDEN) % 1.0, s, v), 1.0))
    return out


def tsne_figure(xy: np.ndarray, classes: np.ndarray, output: str | os.PathLike, title: str = "",
                what: str = "class") -> dict:
    """Scatter ``xy`` coloured by ``classes`` (-1, outliers or junk, in grey), one distinct
    colour per class (`class_palette`); a legend up to 20 classes, and the title says how
    many classes are drawn. Returns ``{"colors": class -> RGBA, "legend": bool, "title"}``."""
    plt = _pyplot()
    classes = np.asarray(classes)
    fig, ax = plt.subplots(figsize=(6, 6), dpi=110)
    names = [c for c in np.unique(classes) if c >= 0]
    palette = class_palette(len(names), plt)
    size = float(np.clip(3000 / max(len(xy), 1), 4, 30))
    grey = classes < 0
    if grey.any():
        ax.scatter(xy[grey, 0], xy[grey, 1], s=size * 0.7, color=OUTLIER_GREY, label="-1 (none)", linewidths=0)
    for c, color in zip(names, palette):
        m = classes == c
        ax.scatter(xy[m, 0], xy[m, 1], s=size, color=color, label=f"{what} {c}", linewidths=0)
    legend = len(names) <= LEGEND_MAX
    if legend:
        ax.legend(fontsize=6, markerscale=2, loc="best", frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    drawn = f"{len(xy)} images, {len(names)} {what} classes" + ("" if legend else " (too many for a legend)")
    shown = f"{title}: {drawn}" if title else drawn
    ax.set_title(shown, fontsize=9)
    fig.tight_layout()
    _save(fig, Path(output))
    return {"colors": {c.item() if hasattr(c, "item") else c: color for c, color in zip(names, palette)},
            "legend": legend, "title": shown}


# --------------------------------------------------------------------------- cluster sizes
def cluster_size_histogram(labels: np.ndarray, output: str | os.PathLike, title: str = "") -> dict:
    """Histogram of cluster sizes (images per cluster, outliers -1 left out); returns
    ``{"sizes": size of each cluster, "bins": sizes drawn, "counts": clusters of each size,
    "clusters", "outliers", "images"}``."""
    labels = np.asarray(labels).astype(np.int64)
    kept = labels[labels >= 0]
    _, sizes = np.unique(kept, return_counts=True)
    bins, counts = (np.unique(sizes, return_counts=True) if len(sizes) else (np.zeros(0, int), np.zeros(0, int)))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    ax.bar(bins, counts, width=0.8 if len(bins) < 60 else 1.0, color="tab:blue")
    ax.set_xlabel("images per cluster")
    ax.set_ylabel("clusters")
    n, outliers = len(labels), int((labels < 0).sum())
    share = 100 * outliers / n if n else 0.0
    head = f"{title}: " if title else ""
    ax.set_title(f"{head}{len(sizes)} clusters, {outliers} outliers ({share:.1f}%) of {n} images", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    _save(fig, Path(output))
    return {"sizes": sizes, "bins": bins, "counts": counts, "clusters": int(len(sizes)), "outliers": outliers,
            "images": int(n)}
