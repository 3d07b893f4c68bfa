"""P x K identity sampling (Hermans et al., "In Defense of the Triplet Loss", 2017).

Each batch holds P identities with K images each, so batch-hard triplet mining always
finds positives. Like torchreid's ``RandomIdentitySampler`` an identity with fewer than K
images is sampled with replacement, and each identity contributes ``ceil(n / K)`` groups
of K per epoch, drawn in random order.

The sampler is a *batch* sampler that yields lists of ``(index, seed)`` pairs: the seed
is a pure function of (sampler seed, epoch, position), so augmentations of a sample do not
depend on the number of DataLoader workers, and a run resumed at any step
(`state_dict` / `load_state_dict`) sees exactly the batches and augmentations of an
uninterrupted run (the engine sets ``start`` to the batches it has consumed, since the
DataLoader prefetches ahead of the loop). Under DDP every rank draws the same global batch and keeps its own
P / world identities (fast-reid's scheme), so the union over ranks is one P x K batch.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterator, Sequence

import numpy as np

from reidcli.utils.errors import ConfigError, InputError


class ResumablePosition:
    """Seed, epoch and the next batch to yield: all a seeded batch sampler needs to resume."""

    seed: int
    epoch: int = 0
    start: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's permutation (call before iterating); resets the start position."""
        self.epoch, self.start = int(epoch), 0

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "start": self.start}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch, self.start = int(state["seed"]), int(state["epoch"]), int(state["start"])


class PKBatchSampler(ResumablePosition):
    """Yield batches of ``(dataset index, sample seed)`` with P identities x K images.

    Args:
        labels: identity label per dataset index (>= 0; negative labels are never drawn).
        p: identities per *global* batch (across all DDP ranks).
        k: images per identity.
        seed: base seed; the epoch is mixed in by `set_epoch`.
        rank, world_size: DDP position; ``p`` must be divisible by ``world_size``.
        drop_last: drop the last incomplete global batch (default True, as fast-reid).
    """

    def __init__(self, labels: Sequence[int], p: int, k: int, *, seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = True):
        if p < 2:
            raise ConfigError(f"--ids-per-batch must be an int >= 2; got {p}")
        if k < 1:
            raise ConfigError(f"--images-per-id must be an int >= 1; got {k}")
        if p % world_size:
            raise ConfigError(f"--ids-per-batch {p} must be divisible by the number of processes ({world_size})")
        self.labels = np.asarray(labels, dtype=np.int64)
        groups: dict[int, list[int]] = defaultdict(list)
        for i, lab in enumerate(self.labels.tolist()):
            if lab >= 0:
                groups[lab].append(i)
        if len(groups) < 2:
            raise InputError(f"the training set has {len(groups)} labelled identity; P x K sampling "
                             "and the triplet loss need at least 2")
        self.groups = {lab: np.array(ix) for lab, ix in sorted(groups.items())}
        self.p = min(p, len(self.groups) // world_size * world_size)
        self.k, self.seed, self.rank, self.world = k, seed, rank, world_size
        self.drop_last = drop_last
        self.epoch, self.start = 0, 0
        self._cache: tuple = (None, [])

    def _global_batches(self) -> list[np.ndarray]:
        key = (self.seed, self.epoch)
        if self._cache[0] != key:
            self._cache = (key, self._draw())
        return self._cache[1]

    def _chunks(self, rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
        """(identity, its K indices) groups of one epoch, identity by identity."""
        chunks: list[tuple[int, np.ndarray]] = []
        for lab, ix in self.groups.items():
            chunks += [(lab, c) for c in _k_groups(rng, ix, self.k)]
        return chunks

    def _draw(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        chunks = self._chunks(rng)
        order = rng.permutation(len(chunks))
        pending = defaultdict(list)
        for j in order:
            pending[chunks[j][0]].append(chunks[j][1])
        batches = []
        while len(pending) >= self.p:
            labs = rng.choice(np.array(sorted(pending)), self.p, replace=False)
            batches.append(np.stack([pending[lab].pop() for lab in labs]))
            for lab in labs:
                if not pending[lab]:
                    del pending[lab]
        if pending and not self.drop_last and len(pending) >= self.world:
            labs = sorted(pending)[: len(pending) // self.world * self.world]
            batches.append(np.stack([pending[lab].pop() for lab in labs]))
        return batches

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        batches = self._global_batches()
        for b in range(self.start, len(batches)):
            groups = batches[b]  # [P, K]
            per_rank = len(groups) // self.world
            mine = groups[self.rank * per_rank:(self.rank + 1) * per_rank].reshape(-1)
            width = groups.shape[1]
            base = b * len(groups) * width + self.rank * per_rank * width
            yield [(int(i), sample_seed(self.seed, self.epoch, base + j)) for j, i in enumerate(mine)]

    def __len__(self) -> int:
        return len(self._global_batches())

    @property
    def batch_size(self) -> int:
        """Images per batch on this rank."""
        return self.p // self.world * self.k * self.per_k

    per_k = 1  # images per identity are per_k x K (the cross-modal sampler: K of each modality)


def _k_groups(rng: np.random.Generator, ix: np.ndarray, k: int) -> list[np.ndarray]:
    """``ix`` shuffled, topped up to K by drawing with replacement, cut into groups of K."""
    ix = rng.permutation(ix)
    if len(ix) < k:
        ix = np.concatenate([ix, rng.choice(ix, k - len(ix), replace=True)])
    return [ix[j * k:(j + 1) * k] for j in range(len(ix) // k)]


class CrossModalPKSampler(PKBatchSampler):
    """P identities x (K visible + K infrared) images (MRDA, Zhang et al. 2023, sec. 3.2:
    3 x (6 + 6)).

    Each identity's visible and infrared images are cut into groups of K as `PKBatchSampler`
    does (topped up with replacement when fewer); its i-th visible group is paired with its
    i-th infrared group (the shorter list cycles), so an identity contributes
    ``max(ceil(n_v / K), ceil(n_r / K))`` groups per epoch. A batch lists each identity's
    K visible then K infrared indices; seeds and resuming are `PKBatchSampler`'s.

    Args:
        labels, p, k, seed, rank, world_size, drop_last: as `PKBatchSampler`.
        modality: per dataset index, 0 visible, 1 infrared.

    Raises:
        InputError: fewer than 2 identities with images of both modalities.
    """

    per_k = 2

    def __init__(self, labels: Sequence[int], modality: Sequence[int], p: int, k: int, **kw):
        mod = np.asarray(modality, dtype=np.int64)
        labels = np.asarray(labels, dtype=np.int64)
        both = {int(lab) for lab in np.unique(labels[labels >= 0])
                if (mod[labels == lab] == 0).any() and (mod[labels == lab] == 1).any()}
        if len(both) < 2:
            raise InputError(f"{len(both)} identities have both visible and infrared images; the "
                             "cross-modal sampler needs at least 2 (is modality in the dataset?)")
        super().__init__(np.where(np.isin(labels, list(both)), labels, -1), p, k, **kw)
        self.modality = mod

    def _chunks(self, rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
        chunks: list[tuple[int, np.ndarray]] = []
        for lab, ix in self.groups.items():
            vis = _k_groups(rng, ix[self.modality[ix] == 0], self.k)
            ir = _k_groups(rng, ix[self.modality[ix] == 1], self.k)
            n = max(len(vis), len(ir))
            chunks += [(lab, np.concatenate([vis[j % len(vis)], ir[j % len(ir)]])) for j in range(n)]
        return chunks


class SequentialSeeds(ResumablePosition):
    """A batch sampler over ``range(n)`` in order, with per-sample seeds (unlabelled data)."""

    def __init__(self, n: int, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 rank: int = 0, world_size: int = 1, drop_last: bool = True):
        if n < 1:
            raise InputError("the unlabelled set is empty")
        self.n, self.bs, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world, self.drop_last = rank, world_size, drop_last
        self.epoch, self.start = 0, 0

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = (np.random.default_rng([self.seed, self.epoch, 1]).permutation(self.n)
                 if self.shuffle else np.arange(self.n))
        step = self.bs * self.world
        for b in range(self.start, len(self)):
            lo = b * step + self.rank * self.bs
            yield [(int(order[j % self.n]), sample_seed(self.seed, self.epoch, j + (1 << 40)))
                   for j in range(lo, lo + self.bs)]

    def __len__(self) -> int:
        step = self.bs * self.world
        return max(1, self.n // step) if self.drop_last else -(-self.n // step)


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A 63-bit seed for one sample draw (SplitMix64 of the three numbers)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + position) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (x ^ (x >> 31)) >> 1
