"""Float32 row sums in the order of PyTorch's CPU kernel, in numpy.

Clustering moved from torch to numpy on the CPU (so ``reid cluster`` never imports torch),
but its squared distances ``|a|^2 + |b|^2 - 2 a.b`` must stay bit-identical: a Jaccard
distance can equal ``--eps`` exactly in real arithmetic (with k2 = 6, two points that share 4
of their 6 expansion neighbours have J = 1/2, and the demo clusters at eps 0.5), so the last
bit of a norm decides whether such a pair links. numpy's pairwise summation rounds
differently, so `row_sqnorms` adds in the order of ATen's ``cascade_sum``
(``aten/src/ATen/native/cpu/SumKernel.cpp``, PyTorch 2.x) on an AVX2 CPU: 8-lane vectors,
4 interleaved accumulators (``row_sum``, ilp 4), a 4-level cascade (``multi_row_sum``) once
there are more than 16 groups, the scalar tail, then the lanes left to right. On a CPU where
PyTorch dispatches AVX-512 (16 lanes) PyTorch itself rounds differently; this order is fixed.
"""

from __future__ import annotations

import numpy as np

LANES = 8  # Vectorized<float>::size() under AVX2
ILP = 4
LEVELS = 4
BLOCK_ROWS = 4096  # rows squared at a time (bounds the temporary)


def _ceil_log2(v: int) -> int:
    return 0 if v <= 1 else (v - 1).bit_length()


def _row_sum(v: np.ndarray) -> np.ndarray:
    """ATen ``row_sum`` over ``v`` [n, count, width] (count "elements" of width lanes,
    summed per lane): returns [n, width] float32."""
    n, count, width = v.shape
    size = count // ILP
    power = max(4, _ceil_log2(size) // LEVELS)
    step, mask = 1 << power, (1 << power) - 1
    acc = np.zeros((LEVELS, ILP, n, width), np.float32)
    i = 0
    while i + step <= size:
        for j in range(i, i + step):
            for k in range(ILP):
                acc[0, k] += v[:, j * ILP + k]
        i += step
        for lvl in range(1, LEVELS):
            acc[lvl] += acc[lvl - 1]
            acc[lvl - 1] = 0
            if i & (mask << (lvl * power)):
                break
    for j in range(i, size):
        for k in range(ILP):
            acc[0, k] += v[:, j * ILP + k]
    for lvl in range(1, LEVELS):
        acc[0] += acc[lvl]
    partial = acc[0]
    for j in range(size * ILP, count):
        partial[0] += v[:, j]
    for k in range(1, ILP):
        partial[0] += partial[k]
    return partial[0]


def _inner_sum(y: np.ndarray) -> np.ndarray:
    """ATen's sum over the contiguous last axis of float32 ``y`` [n, d]."""
    n, d = y.shape
    if d < LANES:  # scalar_inner_sum: row_sum over single elements
        return _row_sum(y[:, :, None])[:, 0]
    vecs = d // LANES
    lanes = _row_sum(y[:, : vecs * LANES].reshape(n, vecs, LANES))
    out = np.zeros(n, np.float32)
    for j in range(vecs * LANES, d):
        out += y[:, j]
    for k in range(LANES):
        out += lanes[:, k]
    return out


def row_sqnorms(x: np.ndarray) -> np.ndarray:
    """``(x * x).sum(1)`` of float32 [N, D] rows, rounded as PyTorch's CPU kernel rounds it."""
    x = np.asarray(x, dtype=np.float32)
    out = np.empty(len(x), np.float32)
    for s in range(0, len(x), BLOCK_ROWS):
        out[s : s + BLOCK_ROWS] = _inner_sum(x[s : s + BLOCK_ROWS] * x[s : s + BLOCK_ROWS])
    return out
