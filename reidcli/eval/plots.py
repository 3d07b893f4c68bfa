"""Pictures of an evaluation: a ranked-list grid and the CMC curve.

The grid follows torchreid's ``visualize_ranked_results``: each row is a query (black
border, captioned with its identity, camera and AP; the camera as the dataset numbers it,
1-based, as in its file names) then its top-k valid gallery images
(same identity and camera, and junk, are left out as the metric leaves them out), with a
green border for a true match and red otherwise, each captioned with its rank, identity and
the distance it was ranked by.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reidcli.io.atomic import atomic_write_bytes

CELL_H, CELL_W, BORDER, GAP, LINE = 128, 64, 4, 12, 12
CAPTION = 2 * LINE + 2  # two lines of text under each cell
GREEN, RED, BLACK, GREY = (0, 170, 0), (0, 0, 220), (0, 0, 0), (160, 160, 160)  # BGR


def short(value: float) -> str:
    """A distance or an AP in at most about five characters: 0.412, 17.2, 1.23e+03."""
    return f"{value:.3g}"


def query_caption(row: dict) -> tuple[str, str]:
    """The two caption lines of a query cell: identity and camera, then its AP. ``camid``
    is 0-based (docs/formats.md); the caption shows the dataset's own 1-based number, as in
    its file names (``0002_c7s1_...`` is camid 6, shown ``c7``)."""
    return f"q {row['pid']} c{row['camid'] + 1}", f"AP {short(row['ap'])}"


def hit_caption(rank: int, pid: int, distance: float) -> tuple[str, str]:
    """The two caption lines of a gallery cell: rank and identity, then its distance."""
    return f"{rank}: {pid}", f"d {short(distance)}"


def _cell(image: np.ndarray | None, color, caption: Sequence[str]) -> np.ndarray:
    import cv2

    if image is None:
        inner = np.full((CELL_H, CELL_W, 3), 200, np.uint8)
        cv2.line(inner, (0, 0), (CELL_W - 1, CELL_H - 1), GREY, 1)
        cv2.line(inner, (CELL_W - 1, 0), (0, CELL_H - 1), GREY, 1)
    else:
        inner = cv2.resize(image, (CELL_W, CELL_H), interpolation=cv2.INTER_LINEAR)
    cell = cv2.copyMakeBorder(inner, BORDER, BORDER, BORDER, BORDER, cv2.BORDER_CONSTANT, value=color)
    cap = np.full((CAPTION, cell.shape[1], 3), 255, np.uint8)
    for n, text in enumerate(caption[:2], 1):
        cv2.putText(cap, text[:12], (2, n * LINE - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([cell, cap])


class _Images:
    """Reads images under ``root`` and counts the ones that are missing or undecodable
    (decoded from their bytes: OpenCV's ``imread`` would print a warning per missing file)."""

    def __init__(self, root: str | os.PathLike):
        self.root, self.missing, self.total = Path(root), 0, 0

    def __call__(self, rel: str) -> np.ndarray | None:
        import cv2

        self.total += 1
        try:
            data = np.fromfile(self.root / rel, np.uint8)
            img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        except (OSError, ValueError, cv2.error):
            img = None
        self.missing += img is None
        return img


def images_to_draw(rows: Sequence[dict], top: int) -> list[str]:
    """The image paths `ranks_grid` reads for ``rows``, in drawing order: each query, then
    its ``top`` hits."""
    return [p for row in rows for p in [row["path"], *(hit[0] for hit in row["hits"][:top])]]


def ranks_grid(path: str | os.PathLike, root: str | os.PathLike, rows: Sequence[dict], top: int) -> tuple[int, int]:
    """Write the grid PNG atomically.

    Args:
        rows: one dict per query with ``path``, ``pid``, ``camid``, ``ap`` and ``hits``: a
            list of (gallery path, gallery pid, is a true match, distance) for its top-k
            valid gallery items, nearest first (`reidcli.eval.report.ranked_rows`).
    Returns:
        (images missing, images asked for) so the caller can warn about a moved dataset.
    """
    import cv2

    read = _Images(root)
    lines = []
    for row in rows:
        cells = [_cell(read(row["path"]), BLACK, query_caption(row)),
                 np.full((CELL_H + 2 * BORDER + CAPTION, GAP, 3), 255, np.uint8)]
        for r, (gpath, gpid, ok, dist) in enumerate(row["hits"][:top], 1):
            cells.append(_cell(read(gpath), GREEN if ok else RED, hit_caption(r, gpid, dist)))
        width = (CELL_W + 2 * BORDER) * (top + 1) + GAP
        line = np.hstack(cells)
        line = np.hstack([line, np.full((line.shape[0], width - line.shape[1], 3), 255, np.uint8)])
        lines.append(np.vstack([line, np.full((4, width, 3), 255, np.uint8)]))
    grid = np.vstack(lines)
    ok, buf = cv2.imencode(".png", grid)
    atomic_write_bytes(path, buf.tobytes())
    return read.missing, read.total


def cmc_curve(path: str | os.PathLike, curves: dict[str, np.ndarray], title: str = "CMC") -> None:
    """Plot CMC curves (label -> CMC at ranks 1..n, fractions) to a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
    for label, curve in curves.items():
        ranks = np.arange(1, len(curve) + 1)
        ax.plot(ranks, 100 * np.asarray(curve), marker="o", markersize=2.5, linewidth=1.4, label=label)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_ylim(0, 100.5)
    ax.set_xlim(1, max(len(c) for c in curves.values()))
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getbuffer())
