"""Rank metrics (CMC, mAP, mINP) from chunks of a distance matrix, without sorting it.

The single-modality protocol of Market-1501 (Zheng et al., ICCV 2015), DukeMTMC-reID and
MSMT17, as torchreid's ``eval_market1501`` and fast-reid's ``evaluate_rank`` compute it:
for every query, gallery images of the same identity *and* camera are removed, junk
gallery images (pid -1) never count, distractors (pid 0) are ordinary negatives, and
queries without a remaining true match are skipped (and counted).

Instead of arg-sorting every row (O(G log G)), each row only needs, for its k true matches
sorted by distance, how many valid negatives precede each match: a batched binary search of
the gallery distances into the k sorted match distances (O(G log k)) and a scatter-add. On
the CPU only the distances up to a row's farthest match are searched (one compare per entry
finds them); the rest precede no match.
The rank ``r_i`` of the i-th match (1-based, among valid gallery items) gives

- non-interpolated AP = (1/k) sum_i i / r_i (torchreid, fast-reid; the default);
- devkit AP = (1/k) sum_i (p_{i-1}' + i / r_i) / 2, the trapezoid of the official Market-1501
  devkit ``compute_AP.m`` where p' is the precision one valid item earlier (1 at rank 0);
- sklearn AP = sum over distinct distances of (recall step) x precision, i.e.
  ``sklearn.metrics.average_precision_score`` on -distance (tied distances form one step);
- CMC: r_1; mINP (Ye et al., "Deep Learning for Person Re-identification: A Survey and
  Outlook", TPAMI 2021): INP = k / r_k.

Tie rule: equal distances are ordered by gallery index (a stable sort), as
``np.argsort(kind="stable")``. Rows in which a negative ties a match (or, for sklearn, two
matches tie) are recomputed exactly with a stable arg-sort, so every metric equals that of
the sorted reference on every input.

The blocks are numpy arrays on the CPU (no torch import) and torch tensors on a GPU; the
code is written once over `reidcli.utils.arrays`, and counts are integers on both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from reidcli.eval.cmc import draw_keys, single_gallery_ranks, unique_id_ranks
from reidcli.utils.arrays import NUMPY, by_row_blocks, ops, ops_for
from reidcli.utils.params import SEED, Interval, check_params
from reidcli.utils.params import Options as OneOf

AP_FORMULAS = {
    "noninterp": "non-interpolated AP = mean_i(i / rank_i) (torchreid / fast-reid)",
    "devkit": "trapezoidal AP of the Market-1501 devkit compute_AP.m",
    "sklearn": "step AP of sklearn average_precision_score (tied distances grouped)",
}
CMC_KINDS = ("standard", "single-gallery", "unique-id")
RANK_CONSTRAINTS = {
    "cam_filter": ["boolean"],
    "ap": [OneOf(AP_FORMULAS)],
    "cmc": [OneOf(CMC_KINDS)],
    "repeats": [Interval(int, 1, None)],
    "seed": SEED,
}


@dataclass
class RankOptions:
    """How one query's gallery is filtered and its CMC counted.

    Attributes:
        cam_filter: drop gallery images of the query's identity *and* camera.
        skip_cams: (query camid, gallery camid) pairs never compared (SYSU-MM01: the
            infrared camera 3 and the visible camera 2 share a room, so (2, 1) 0-based).
        ap: ``noninterp`` | ``devkit`` | ``sklearn``.
        cmc: ``standard``; ``single-gallery`` (CUHK03: one random gallery image per
            identity, averaged over ``repeats`` seeded draws); ``unique-id`` (SYSU-MM01
            authors' code: rank among distinct identities).
    """

    cam_filter: bool = True
    skip_cams: Sequence[tuple[int, int]] = ()
    ap: str = "noninterp"
    cmc: str = "standard"
    repeats: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        check_params(self, RANK_CONSTRAINTS)


@dataclass
class PerQuery:
    """Per-query results; ``first``/``last`` are 1-based ranks among valid gallery items
    (0 when the query has no true match), ``first_sg`` [Q, repeats] for single-gallery."""

    npos: np.ndarray
    first: np.ndarray
    last: np.ndarray
    ap: np.ndarray
    cmc_rank: np.ndarray = field(default=None)  # [Q, R] rank used for the CMC

    @property
    def valid(self) -> np.ndarray:
        return self.npos > 0


class QueryIds(NamedTuple):
    """The queries' ids as int64 arrays (numpy, or tensors on the device)."""

    pids: Any
    camids: Any
    gid: Any  # index of the query's identity among the gallery identities, -1 if absent

    def rows(self, start: int, b: int) -> QueryIds:
        return QueryIds(*(t[start:start + b] for t in self))


class GalleryIds(NamedTuple):
    """The gallery's ids as int64 arrays, grouped by identity for the fast path."""

    pids: Any
    camids: Any
    gid: Any  # identity index 0..P-1 of each gallery item (np.unique order of the pids)
    members: Any  # [P, m] gallery columns of each identity, -1 padded
    junk: Any  # columns whose pid < 0


def valid_and_matches(qp, qc, gp, gc, opts: RankOptions):
    """valid [b, G] (comparable gallery items) and pos [b, G] (true matches among them)."""
    same = qp[:, None] == gp[None, :]
    valid = (gp >= 0)[None, :] & ops(same).full(same.shape, True, "bool")
    if opts.cam_filter:
        valid &= ~(same & (qc[:, None] == gc[None, :]))
    for qcam, gcam in opts.skip_cams:
        valid &= ~((qc == qcam)[:, None] & (gc == gcam)[None, :])
    pos = same & valid & (qp >= 0)[:, None]
    return valid, pos


def _rank_core(d, valid, pos, npos, kmax: int):
    """Ranks [b, kmax] of the sorted matches (float64) and the rows that need a stable sort."""
    xp = ops(d)
    pv, _ = xp.topk_smallest(xp.masked_fill(d, ~pos, float("inf")), kmax)
    left = xp.searchsorted(pv, d)  # matches strictly closer than each gallery item
    neg = valid & ~pos
    tied = (xp.take_along(pv, left.clip(max=kmax - 1)) == d) & neg
    before = xp.as_float64(xp.scatter_add(kmax + 1, left, neg).cumsum(1)[:, :kmax])
    ranks = xp.arange(1, kmax + 1, "float64")[None, :] + before
    redo = tied.any(1)
    if kmax > 1:
        redo |= _finite_ties(pv)
    return ranks, redo


def _finite_ties(pv):
    """Rows whose sorted match distances hold two equal finite values."""
    return ((pv[:, 1:] == pv[:, :-1]) & (pv[:, 1:] < float("inf"))).any(1)


def ap_from_ranks(ranks: np.ndarray, npos: np.ndarray, kind: str) -> np.ndarray:
    """AP per row from the ranks [b, k] of its sorted matches (columns >= npos ignored)."""
    k = ranks.shape[1]
    i = np.arange(1, k + 1, dtype=np.float64)[None, :]
    inside = i <= npos[:, None]
    safe = np.where(inside, ranks, 1.0)
    prec = i / safe
    if kind == "devkit":
        old = np.where(safe > 1, (i - 1) / np.maximum(safe - 1, 1), 1.0)
        prec = (old + prec) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(npos > 0, (prec * inside).sum(1) / npos, np.nan)


def exact_row(d: np.ndarray, valid: np.ndarray, pos: np.ndarray, kind: str) -> tuple[np.ndarray, float]:
    """Ranks of the matches and the AP of one row by a stable arg-sort (the tie path)."""
    order = np.argsort(d, kind="stable")
    keep = valid[order]
    m = pos[order][keep]
    ranks = (np.flatnonzero(m) + 1).astype(np.float64)
    n = len(ranks)
    if n == 0:
        return ranks, float("nan")
    if kind != "sklearn":
        return ranks, float(ap_from_ranks(ranks[None, :], np.array([n]), kind)[0])
    ds = d[order][keep]
    ends = np.flatnonzero(np.r_[ds[1:] != ds[:-1], True])  # last index of each tie group
    cum = np.cumsum(m)[ends]
    gained = np.diff(np.r_[0, cum])
    return ranks, float((gained / n * cum / (ends + 1)).sum())


def _members(gid: np.ndarray, gp: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[P, m] gallery indices of each identity in ``wanted`` (the queries' identities; other
    rows stay empty), -1 padded, and the junk (pid < 0) columns. Only wanted identities set
    the width m: MSMT17-style distractors (pid 0, a sixth of the gallery) would otherwise
    make every query gather a 13,000-wide row."""
    order = np.argsort(gid, kind="stable")
    counts = np.bincount(gid)
    starts = np.cumsum(counts) - counts
    want = np.zeros(len(counts), bool)
    want[wanted[(wanted >= 0) & (wanted < len(counts))]] = True
    width = int(max(1, counts[want].max())) if want.any() else 1
    keep = want[gid[order]]
    col = np.arange(len(gid)) - starts[gid[order]]
    table = np.full((len(counts), width), -1, dtype=np.int64)
    table[gid[order][keep], col[keep]] = order[keep]
    return table, np.flatnonzero(gp < 0)


def _bucket_counts(pv, x, kmax: int, keep=None):
    """Per row: histogram over buckets 0..kmax of ``searchsorted(pv, x)`` and how many x
    equal the threshold of their bucket (a tie); only entries where ``keep`` if given."""
    xp = ops(x)
    left = xp.searchsorted(pv, x)
    hist = xp.scatter_add(kmax + 1, left, keep)
    padded = xp.concat([pv, xp.full((len(pv), 1), float("inf"), "float32")])
    eq = xp.take_along(padded, left) == x
    return hist, (eq & keep if keep is not None else eq).sum(1)


def _bucket_counts_pruned(pv: np.ndarray, d: np.ndarray, npos: np.ndarray):
    """`_bucket_counts` of a whole [b, G] numpy block, reading only the entries that can
    change a match's rank: those at most the row's farthest match distance. Entries past it
    fall in buckets >= npos, which no rank reads, so they are left out (counts in those
    buckets are then not totals). One compare per entry selects the candidates (a trained
    model's farthest match lies in the first few percent of the gallery); only they are
    binary-searched, row by row, into the row's own sorted matches, over row blocks in
    threads (numpy's compare, gather and search release the GIL)."""
    return by_row_blocks(_pruned_rows, d, pv, npos)


def _pruned_rows(d: np.ndarray, pv: np.ndarray, npos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b, kmax = pv.shape
    last = np.where(npos > 0, pv[np.arange(b), np.maximum(npos - 1, 0)], -np.inf).astype(d.dtype)
    below = d <= last[:, None]
    bounds = np.r_[0, np.cumsum(np.count_nonzero(below, axis=1))]
    v = d[below]
    hist = np.zeros((b, kmax + 1), np.int64)
    eq = np.zeros(b, np.int64)
    for i in np.flatnonzero(bounds[1:] > bounds[:-1]):
        vi, p = v[bounds[i]:bounds[i + 1]], pv[i, :npos[i]]
        left = np.searchsorted(p, vi)  # < npos[i]: every candidate is <= the last match
        hist[i, :npos[i]] = np.bincount(left, minlength=npos[i])
        eq[i] = np.count_nonzero(p[left] == vi)
    return hist, eq


def _chunk_fast(start: int, d, q: QueryIds, g: GalleryIds, opts: RankOptions, out: PerQuery) -> bool:
    """The standard protocol without [b, G] masks: a query's true matches are one
    identity's gallery columns (gathered from a table), junk columns are few, and every
    other column is a negative. Returns False when the chunk has no true match at all."""
    xp = ops(d)
    b = d.shape[0]
    qb = q.rows(start, b)
    seg = g.members[qb.gid.clip(min=0)]
    seg_ok = (seg >= 0) & (qb.gid >= 0)[:, None] & (qb.pids >= 0)[:, None]
    cols = seg.clip(min=0)
    dseg = xp.take_along(d, cols)
    pos = seg_ok & ~(g.camids[cols] == qb.camids[:, None]) if opts.cam_filter else seg_ok
    npos = pos.sum(1)
    kmax = int(npos.max()) if b else 0
    rows = slice(start, start + b)
    out.npos[rows] = xp.to_numpy(npos)
    if kmax == 0:
        return False
    pv = xp.sort(xp.masked_fill(dseg, ~pos, float("inf")))[:, :kmax]
    hist, eq = _bucket_counts_pruned(pv, d, npos) if xp is NUMPY else _bucket_counts(pv, d, kmax)
    for sub, ok in ((dseg, seg_ok), (d[:, g.junk], None)):
        h, e = _bucket_counts(pv, sub, kmax, ok)
        hist -= h
        eq -= e
    redo = eq > 0
    if opts.ap == "sklearn" and kmax > 1:
        redo |= _finite_ties(pv)
    ranks = xp.arange(1, kmax + 1, "float64")[None, :] + xp.as_float64(hist.cumsum(1)[:, :kmax])
    _finish(start, d, ranks, redo, q, g, opts, out)
    return True


def _finish(start: int, d, ranks, redo, q: QueryIds, g: GalleryIds, opts: RankOptions, out: PerQuery) -> None:
    """AP, first and last hit from the ranks; stable-sort rows flagged in ``redo``."""
    xp = ops(d)
    b = d.shape[0]
    rows = slice(start, start + b)
    ranks, redo, n = xp.to_numpy(ranks), xp.to_numpy(redo), out.npos[rows]
    ap = ap_from_ranks(ranks, n, "noninterp" if opts.ap == "sklearn" else opts.ap)
    if redo.any():
        sel = xp.asarray(np.flatnonzero(redo))
        qb = q.rows(start, b)
        valid, pos = valid_and_matches(qb.pids[sel], qb.camids[sel], g.pids, g.camids, opts)
        dn, vn, pn = xp.to_numpy(d[sel]), xp.to_numpy(valid), xp.to_numpy(pos)
        for j, r in enumerate(np.flatnonzero(redo)):
            near = dn[j] <= dn[j][pn[j]].max()  # entries past the farthest match change no rank
            exact, ap[r] = exact_row(dn[j][near], vn[j][near], pn[j][near], opts.ap)
            ranks[r, :len(exact)] = exact
    has = n > 0
    out.ap[rows] = ap
    out.first[rows] = np.where(has, ranks[:, 0], 0).astype(np.int64)
    out.last[rows] = np.where(has, ranks[np.arange(len(n)), np.maximum(n - 1, 0)], 0).astype(np.int64)


def _chunk(start: int, d, q: QueryIds, g: GalleryIds, opts: RankOptions, out: PerQuery) -> None:
    """Fill ``out`` rows [start, start + b) from one distance block."""

    if opts.cmc == "standard" and not opts.skip_cams:
        if _chunk_fast(start, d, q, g, opts, out):
            out.cmc_rank[start:start + d.shape[0], 0] = out.first[start:start + d.shape[0]]
        return

    qb = q.rows(start, d.shape[0])
    valid, pos = valid_and_matches(qb.pids, qb.camids, g.pids, g.camids, opts)
    npos = pos.sum(1)
    kmax = int(npos.max()) if len(npos) else 0
    rows = slice(start, start + d.shape[0])
    out.npos[rows] = ops(npos).to_numpy(npos)
    if kmax == 0:
        return
    ranks, redo = _rank_core(d, valid, pos, npos, kmax)
    _finish(start, d, ranks, redo, q, g, opts, out)
    if opts.cmc == "single-gallery":
        out.cmc_rank[rows] = single_gallery_ranks(d, valid, pos, start, g.gid, opts.repeats, opts.seed)
    elif opts.cmc == "unique-id":
        out.cmc_rank[rows, 0] = unique_id_ranks(d, valid, pos, g.gid)
    else:
        out.cmc_rank[rows, 0] = out.first[rows]


def rank_queries(chunks: Iterable[tuple[int, object]], q_pids: np.ndarray, q_camids: np.ndarray,
                 g_pids: np.ndarray, g_camids: np.ndarray, opts: RankOptions | None = None,
                 device: str = "cpu") -> PerQuery:
    """Per-query ranks and AP from ``(first query row, [b, G] distances)`` blocks, as
    yielded by `reidcli.eval.distance.distance_chunks` or ``rerank_chunks``; they are ranked
    with numpy on ``cpu`` and as torch tensors on another ``device``."""
    opts = opts or RankOptions()
    n_q = len(q_pids)
    cols = opts.repeats if opts.cmc == "single-gallery" else 1
    out = PerQuery(np.zeros(n_q, np.int64), np.zeros(n_q, np.int64), np.zeros(n_q, np.int64),
                   np.full(n_q, np.nan), np.zeros((n_q, cols), np.int64))
    xp = ops_for(device)
    t = lambda a: xp.asarray(np.asarray(a, dtype=np.int64))
    uniq, gid = np.unique(np.asarray(g_pids), return_inverse=True)
    gid = gid.reshape(-1).astype(np.int64)
    pos_in = np.searchsorted(uniq, np.asarray(q_pids))
    qgid = np.where((pos_in < len(uniq)) & (uniq[np.minimum(pos_in, len(uniq) - 1)] == np.asarray(q_pids)),
                    pos_in, -1)
    q = QueryIds(t(q_pids), t(q_camids), t(qgid))
    g = GalleryIds(t(g_pids), t(g_camids), t(gid), *(t(a) for a in _members(gid, np.asarray(g_pids), qgid)))
    with xp.context():
        for start, d in chunks:
            _chunk(start, xp.asarray(d, "float32"), q, g, opts, out)
    return out


@dataclass
class TopRanked:
    """Each query's ``k`` nearest valid gallery items, in the order the metrics rank them
    (junk and, with the camera filter, same identity and camera left out; equal distances
    in gallery order): ``cols`` [Q, k] gallery rows (-1 past a query's last valid item) and
    ``dist`` [Q, k] float32 their distances (inf there)."""

    cols: np.ndarray
    dist: np.ndarray

    @classmethod
    def empty(cls, n_query: int, k: int) -> TopRanked:
        return cls(np.full((n_query, k), -1, np.int64), np.full((n_query, k), np.inf, np.float32))


def _invalid_to_inf(d: np.ndarray, qp: np.ndarray, qc: np.ndarray, gp: np.ndarray, gc: np.ndarray,
                    opts: RankOptions) -> np.ndarray:
    """A copy of ``d`` with inf at the items `valid_and_matches` leaves out, written sparsely
    on the CPU (junk columns, then each row's few same-identity same-camera columns) instead
    of building [b, G] masks."""
    m = np.array(d, dtype=np.float32)
    m[:, gp < 0] = np.inf
    if opts.cam_filter:
        order = np.argsort(gp, kind="stable")
        sp = gp[order]
        lo, hi = np.searchsorted(sp, qp, "left"), np.searchsorted(sp, qp, "right")
        for r in np.flatnonzero(hi > lo):
            cols = order[lo[r]:hi[r]]
            m[r, cols[gc[cols] == qc[r]]] = np.inf
    for qcam, gcam in opts.skip_cams:
        rows, cols = np.flatnonzero(qc == qcam), np.flatnonzero(gc == gcam)
        m[np.ix_(rows, cols)] = np.inf
    return m


def top_valid(d, q_pids: np.ndarray, q_camids: np.ndarray, g_pids: np.ndarray, g_camids: np.ndarray,
              opts: RankOptions, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(cols [b, k], dist [b, k]) of the ``k`` nearest valid gallery items of each row of
    the distance block ``d`` [b, G] (numpy, or a tensor on its device), as `TopRanked`
    holds them: nearest first, ties in gallery order exactly as ``np.argsort(kind="stable")``
    of the row with the invalid items removed."""
    xp = ops(d)
    ids = [np.asarray(a, dtype=np.int64) for a in (q_pids, q_camids, g_pids, g_camids)]
    if xp is NUMPY:
        masked = _invalid_to_inf(d, *ids, opts)
    else:
        valid, _ = valid_and_matches(*(xp.asarray(a) for a in ids), opts)
        masked = xp.masked_fill(xp.asarray(d, "float32"), ~valid, float("inf"))
    n, width = len(ids[0]), int(masked.shape[1])
    kk = min(k, width)
    cols, dist = np.full((n, k), -1, np.int64), np.full((n, k), np.inf, np.float32)
    if kk == 0:
        return cols, dist
    vals, idx = (xp.to_numpy(a) for a in xp.topk_smallest(masked, min(kk + 1, width)))
    vals, idx = vals.astype(np.float32), idx.astype(np.int64)
    # a tie straddles the k-th place when the (k+1)-th smallest equals the k-th: which of the
    # tied items are kept is then up to the top-k, so sort that row stably
    crowded = (vals[:, kk] == vals[:, kk - 1]) & np.isfinite(vals[:, kk - 1]) if kk < width else \
        np.zeros(n, bool)
    vals, idx = vals[:, :kk], idx[:, :kk]
    for r in np.flatnonzero(crowded):
        row = xp.to_numpy(masked[int(r)])
        idx[r] = np.argsort(row, kind="stable")[:kk]
        vals[r] = row[idx[r]]
    order = np.lexsort((idx, vals), axis=-1)  # torch's top-k leaves ties in any order
    vals, idx = np.take_along_axis(vals, order, 1), np.take_along_axis(idx, order, 1)
    idx[~np.isfinite(vals)] = -1
    cols[:, :kk], dist[:, :kk] = idx, vals
    return cols, dist


def rank_queries_reference(dist: np.ndarray, q_pids: np.ndarray, q_camids: np.ndarray, g_pids: np.ndarray,
                           g_camids: np.ndarray, opts: RankOptions | None = None) -> PerQuery:
    """The same `PerQuery` as `rank_queries`, one query at a time from a dense [Q, G]
    ``dist`` (as torchreid's ``eval_market1501`` reads): slow, for reading and for tests."""
    opts = opts or RankOptions()
    n_q = len(q_pids)
    out = PerQuery(np.zeros(n_q, np.int64), np.zeros(n_q, np.int64), np.zeros(n_q, np.int64), np.full(n_q, np.nan),
                   np.zeros((n_q, opts.repeats if opts.cmc == "single-gallery" else 1), np.int64))
    for i in range(n_q):
        order = np.argsort(dist[i], kind="stable")  # ties: the lower gallery index first
        keep = g_pids[order] >= 0  # junk never counts
        if opts.cam_filter:  # the same identity seen by the same camera is too easy
            keep &= ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        for q_cam, g_cam in opts.skip_cams:
            keep &= ~((q_camids[i] == q_cam) & (g_camids[order] == g_cam))
        order = order[keep]
        match = (g_pids[order] == q_pids[i]) & (q_pids[i] >= 0)
        if not match.any():
            continue  # no true match left: the query is skipped
        hits = np.flatnonzero(match) + 1  # 1-based ranks of the true matches
        out.npos[i], out.first[i], out.last[i] = len(hits), hits[0], hits[-1]
        out.ap[i] = _reference_ap(match, dist[i][order], opts.ap)
        out.cmc_rank[i] = _reference_cmc(i, order, match, g_pids, opts)
    return out


def _reference_ap(match: np.ndarray, d: np.ndarray, kind: str) -> float:
    hits = np.flatnonzero(match) + 1
    if kind == "noninterp":  # mean of the precision at each true match
        return float(np.mean(np.arange(1, len(hits) + 1) / hits))
    if kind == "devkit":  # compute_AP.m: trapezoid between consecutive precisions
        before = np.where(hits > 1, np.arange(len(hits)) / np.maximum(hits - 1, 1), 1.0)  # one item earlier
        return float(np.mean((before + np.arange(1, len(hits) + 1) / hits) / 2))
    ends = np.flatnonzero(np.r_[d[1:] != d[:-1], True])  # sklearn: one step per distinct distance
    tp = np.cumsum(match)[ends]
    return float(np.sum(np.diff(np.r_[0, tp]) / len(hits) * tp / (ends + 1)))


def _reference_cmc(i: int, order: np.ndarray, match: np.ndarray, g_pids: np.ndarray, opts: RankOptions) -> list:
    first = int(np.flatnonzero(match)[0])
    if opts.cmc == "standard":
        return [first + 1]
    if opts.cmc == "unique-id":  # rank among distinct identities
        return [1 + len(np.unique(g_pids[order[:first]]))]
    ranks = []  # single-gallery: per draw, one image per identity (the largest key)
    for r in range(opts.repeats):
        keys = draw_keys(opts.seed, r, np.array([i]), len(g_pids))[0][order]
        ids = g_pids[order]
        kept = np.array([keys[j] == keys[ids == ids[j]].max() for j in range(len(order))], bool)
        ranks.append(int(np.flatnonzero(match[kept])[0]) + 1)
    return ranks


@dataclass
class Metrics:
    """Summary over the valid queries (those with at least one true match)."""

    mAP: float
    mINP: float
    cmc: dict[int, float]
    curve: np.ndarray  # CMC at ranks 1..len(curve)
    n_query: int
    n_valid: int
    ap: str
    cmc_kind: str

    @property
    def n_skipped(self) -> int:
        return self.n_query - self.n_valid

    def as_dict(self) -> dict:
        return {"mAP": self.mAP, "mINP": self.mINP, **{f"rank{k}": v for k, v in self.cmc.items()},
                "n_query": self.n_query, "n_valid_query": self.n_valid, "n_skipped_query": self.n_skipped,
                "ap": self.ap, "ap_formula": AP_FORMULAS[self.ap], "cmc_kind": self.cmc_kind}


def full_cmc(pq: PerQuery) -> np.ndarray:
    """The whole CMC curve of the valid queries: the matching rate at ranks 1..R, where R is
    the largest rank at which a valid query first meets a true match (the curve is flat,
    at its final value, after R). Equals `summarize`'s ``curve`` on their common ranks."""
    cr = pq.cmc_rank[pq.valid].reshape(-1)
    if cr.size == 0:
        return np.zeros(0)
    counts = np.bincount(cr[cr >= 1].astype(np.int64), minlength=int(cr.max()) + 1)[1:]
    return np.cumsum(counts) / cr.size


def summarize(pq: PerQuery, ranks: Sequence[int] = (1, 5, 10, 20), opts: RankOptions | None = None,
              curve_len: int = 50) -> Metrics:
    """mAP, mINP and CMC at ``ranks`` (fractions in [0, 1]) over the valid queries."""
    opts = opts or RankOptions()
    v = pq.valid
    n_valid = int(v.sum())
    cr = pq.cmc_rank[v]
    curve_len = max(curve_len, *ranks) if len(ranks) else curve_len
    if n_valid:
        hits = (cr[:, :, None] >= 1) & (cr[:, :, None] <= np.arange(1, curve_len + 1))
        curve = hits.mean(axis=(0, 1))
        m_ap = float(pq.ap[v].mean())
        m_inp = float((pq.npos[v] / pq.last[v]).mean())
    else:
        curve, m_ap, m_inp = np.zeros(curve_len), float("nan"), float("nan")
    return Metrics(mAP=m_ap, mINP=m_inp, cmc={int(k): float(curve[k - 1]) for k in ranks}, curve=curve,
                   n_query=len(pq.npos), n_valid=n_valid, ap=opts.ap, cmc_kind=opts.cmc)
