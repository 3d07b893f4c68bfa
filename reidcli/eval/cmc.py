"""The two CMC variants beside the standard one (`reidcli.eval.ranking`), on [b, G] blocks:

- unique-id (the SYSU-MM01 authors' code): the rank of the first true match among distinct
  identities;
- single-gallery (CUHK03, torchreid's ``eval_cuhk03``): per draw, one random valid gallery
  image per identity, with counter-based keys so a draw does not depend on the chunking.
"""

from __future__ import annotations

import numpy as np


def _first_match(d, pos):
    """Distance and gallery index of each row's first match under the stable tie rule."""
    import torch

    dp = d.masked_fill(~pos, float("inf")).min(dim=1).values
    idx = torch.arange(d.shape[1], device=d.device)[None, :]
    ip = torch.where(pos & (d == dp[:, None]), idx, d.shape[1]).min(dim=1).values
    return dp, ip, idx


def _precedes(d, dp, ip, idx):
    return (d < dp[:, None]) | ((d == dp[:, None]) & (idx < ip[:, None]))


def unique_id_ranks(d, valid, pos, gid) -> np.ndarray:
    """1 + distinct other identities with a valid image ranked before the first match."""
    import torch

    dp, ip, idx = _first_match(d, pos)
    before = _precedes(d, dp, ip, idx) & valid & ~pos
    n_ids = int(gid.max()) + 1
    seen = torch.zeros(d.shape[0], n_ids, dtype=torch.float32, device=d.device)
    seen.scatter_add_(1, gid[None, :].expand_as(d), before.to(torch.float32))
    rank = 1 + (seen > 0).sum(1)
    return torch.where(pos.any(1), rank, 0).cpu().numpy()


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
    import torch

    b, n_g = d.shape
    gidx = gid[None, :].expand(b, n_g)
    out = np.zeros((b, repeats), dtype=np.int64)
    for r in range(repeats):
        keys = torch.from_numpy(draw_keys(seed, r, np.arange(start, start + b), n_g)).to(d.device)
        keys = keys.masked_fill(~valid, -1)
        best = torch.full((b, int(gid.max()) + 1), -1, dtype=torch.int64, device=d.device)
        best.scatter_reduce_(1, gidx, keys, reduce="amax")
        kept = valid & (keys == best.gather(1, gidx))
        dp, ip, idx = _first_match(d, pos & kept)
        rank = 1 + (_precedes(d, dp, ip, idx) & kept & ~pos).sum(1)
        out[:, r] = torch.where((pos & kept).any(1), rank, 0).cpu().numpy()
    return out
