"""The two CMC variants beside the standard one (`reidcli.eval.ranking`), on [b, G] blocks:

- unique-id (the SYSU-MM01 authors' code): the rank of the first true match among distinct
  identities;
- single-gallery (CUHK03, torchreid's ``eval_cuhk03``): per draw, one random valid gallery
  image per identity, with counter-based keys so a draw does not depend on the chunking.
"""

from __future__ import annotations

import numpy as np

from reidcli.utils.arrays import ops


def _first_match(d, pos):
    """Distance and gallery index of each row's first match under the stable tie rule."""
    xp = ops(d)
    dp = xp.row_min(xp.masked_fill(d, ~pos, float("inf")))
    idx = xp.arange(0, d.shape[1])[None, :]
    ip = xp.row_min(xp.masked_fill(xp.broadcast_to(idx, d.shape), ~(pos & (d == dp[:, None])), d.shape[1]))
    return dp, ip, idx


def _precedes(d, dp, ip, idx):
    return (d < dp[:, None]) | ((d == dp[:, None]) & (idx < ip[:, None]))


def unique_id_ranks(d, valid, pos, gid) -> np.ndarray:
    """1 + distinct other identities with a valid image ranked before the first match."""
    xp = ops(d)
    dp, ip, idx = _first_match(d, pos)
    before = _precedes(d, dp, ip, idx) & valid & ~pos
    seen = xp.scatter_add(int(gid.max()) + 1, gid[None, :], before)
    rank = 1 + (seen > 0).sum(1)
    return xp.to_numpy(rank) * xp.to_numpy(pos.any(1))


def draw_keys(seed: int, repeat: int, q_rows: np.ndarray, n_gallery: int) -> np.ndarray:
    """Counter-based random keys [b, G] (splitmix64 of seed, repeat, query row, gallery
    row): the single-gallery draw of a query does not depend on the chunking."""
    with np.errstate(over="ignore"):
        z = (np.uint64(seed * 64 + repeat) << np.uint64(42)) + (
            q_rows.astype(np.uint64)[:, None] << np.uint64(21)) + np.arange(n_gallery, dtype=np.uint64)[None, :]
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(1)).astype(np.int64)


def single_gallery_ranks(d, valid, pos, start: int, gid, repeats: int, seed: int) -> np.ndarray:
    """CUHK03-style CMC ranks [b, repeats]: per draw, keep the valid image with the largest
    key of every identity, then rank the kept match among the kept images."""
    xp = ops(d)
    b, n_g = d.shape
    gidx = xp.broadcast_to(gid[None, :], (b, n_g))
    out = np.zeros((b, repeats), dtype=np.int64)
    for r in range(repeats):
        keys = xp.masked_fill(xp.asarray(draw_keys(seed, r, np.arange(start, start + b), n_g)), ~valid, -1)
        best = xp.scatter_amax(int(gid.max()) + 1, gidx, keys, -1)
        kept = valid & (keys == xp.take_along(best, gidx))
        dp, ip, idx = _first_match(d, pos & kept)
        rank = 1 + (_precedes(d, dp, ip, idx) & kept & ~pos).sum(1)
        out[:, r] = xp.to_numpy(rank) * xp.to_numpy((pos & kept).any(1))
    return out
