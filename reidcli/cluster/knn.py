"""Nearest-neighbour search for clustering and re-ranking.

`knn` is exact by default (`knn_exact`: a symmetric blocked torch GEMM, half the work of a
full faiss flat search), an inverted-file (IVF) faiss index past
``ivf_threshold`` points, and the GPU when the installed faiss has one. `knn_rowmax` is an
exact blocked search (one GEMM per block, torch ``topk``) that also returns every row's
largest distance, which the k-reciprocal re-ranking of Zhong et al. (CVPR 2017) needs to
normalise its original distance; it never holds more than a ``[block, N]`` slab.
Distances are squared Euclidean throughout; neighbour lists include the point itself.
"""

from __future__ import annotations

import logging
import math
from typing import Optional

import numpy as np

from reidcli.utils.errors import ConfigError

log = logging.getLogger(__name__)

IVF_THRESHOLD = 60_000  # exact search up to MSMT17-size training sets; IVF beyond


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32, C-contiguous); zero rows stay zero."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if len(x) and np.abs(norms - 1).max() < 1e-5:
        return x  # already unit rows: no copy of a possibly large array
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def faiss_gpus() -> int:
    """Number of GPUs the installed faiss can use (0 for faiss-cpu)."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None and hasattr(faiss, "StandardGpuResources") else 0


def _make_index(d: int, n: int, index: str, nlist: Optional[int], use_gpu: bool):
    import faiss

    if index == "flat":
        cpu = faiss.IndexFlatL2(d)
    else:
        nlist = nlist or max(1, int(4 * math.sqrt(n)))
        cpu = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist, faiss.METRIC_L2)
    if use_gpu:
        res = faiss.StandardGpuResources()
        return faiss.index_cpu_to_gpu(res, 0, cpu), res
    return cpu, None


def knn(x: np.ndarray, k: int, *, index: str = "auto", nlist: Optional[int] = None,
        nprobe: int = 64, gpu: str = "auto", ivf_threshold: int = IVF_THRESHOLD,
        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours of every row of ``x`` among the rows of ``x`` (faiss).

    Args:
        x: [N, D] features.
        k: neighbours per row, the row itself included (capped at N).
        index: ``flat`` (exact), ``ivf`` (approximate, IVF-Flat) or ``auto`` (flat up to
            ``ivf_threshold`` rows, IVF past it).
        nlist, nprobe: IVF cells (default 4 sqrt(N)) and cells visited per query.
        gpu: ``auto`` (use a GPU when faiss has one), ``yes`` or ``no``.
    Returns:
        (dist [N, k] float32 squared L2, idx [N, k] int64), nearest first.
    """
    if index not in ("auto", "flat", "ivf"):
        raise ConfigError(f"--knn-index must be one of auto, flat, ivf; got {index!r}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    k = min(k, n)
    kind = ("ivf" if n > ivf_threshold else "flat") if index == "auto" else index
    ngpu = faiss_gpus()
    if gpu == "yes" and ngpu == 0:
        raise ConfigError("--gpu yes but the installed faiss has no GPU; install faiss-gpu or use --gpu no")
    use_gpu = ngpu > 0 and gpu != "no"
    if kind == "flat" and not use_gpu:  # symmetric blocked GEMM: half the work of faiss.knn
        return knn_exact(x, k)
    idx, _res = _make_index(d, n, kind, nlist, use_gpu)
    if kind == "ivf":
        rng = np.random.default_rng(seed)
        ntrain = min(n, 256 * idx.nlist if hasattr(idx, "nlist") else n)
        idx.train(x[np.sort(rng.choice(n, ntrain, replace=False))])
        idx.nprobe = nprobe
    idx.add(x)
    log.debug("knn: %s index, n=%d d=%d k=%d gpu=%s", kind, n, d, k, use_gpu)
    dist, nbr = idx.search(x, k)
    return dist, nbr.astype(np.int64, copy=False)


def _merge_topk(best_d, best_i, a: int, b: int, d, i) -> None:
    """Rows a..b of the running k smallest (best_d, best_i) merged with candidates (d, i)."""
    import torch

    cd, ci = torch.cat([best_d[a:b], d], 1), torch.cat([best_i[a:b], i], 1)
    v, pos = torch.topk(cd, best_d.shape[1], dim=1, largest=False, sorted=True)
    best_d[a:b] = v
    best_i[a:b] = torch.gather(ci, 1, pos)


def knn_exact(x: np.ndarray, k: int, *, block: Optional[int] = None, device: str = "cpu",
              slab_bytes: int = 256 << 20) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN of the rows of ``x`` among themselves, squared L2 (as ``faiss.knn``).

    The distance matrix is symmetric, so it is computed once per block pair: row block
    ``[s, e)`` meets columns ``[s, N)`` in one float32 GEMM (``||a||^2 + ||b||^2 - 2 a.b``,
    faiss's formula); the slab's row top-k serves rows ``[s, e)`` and its column top-k is
    merged into the running lists of rows ``[e, N)``. That is about half the FLOPs of a
    full search, with no precision change, and memory stays at one ``[block, N]`` slab.

    Returns:
        (dist [N, k] float32, idx [N, k] int64), nearest first.
    """
    import torch

    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    n = xt.shape[0]
    k = min(k, n)
    block = block or int(np.clip(slab_bytes // (4 * max(n, 1)), 256, 2048))
    sq = (xt * xt).sum(1)
    best_d = torch.full((n, k), float("inf"), device=device)
    best_i = torch.full((n, k), -1, dtype=torch.int64, device=device)
    for s in range(0, n, block):
        e = min(s + block, n)
        d = torch.mm(xt[s:e], xt[s:].T)
        d.mul_(-2.0).add_(sq[s:e, None]).add_(sq[None, s:]).clamp_(min=0)
        v, i = torch.topk(d, min(k, n - s), dim=1, largest=False, sorted=False)
        _merge_topk(best_d, best_i, s, e, v, i + s)
        if e < n:  # the same products, read down the columns, for the rows after the block
            v, i = torch.topk(d[:, e - s:], min(k, e - s), dim=0, largest=False, sorted=False)
            _merge_topk(best_d, best_i, e, n, v.T, i.T + s)
        del d
    return best_d.cpu().numpy(), best_i.cpu().numpy()


def knn_rowmax(x: np.ndarray, k: int, *, block: int = 2048,
               device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact k-NN under squared Euclidean distance plus each row's largest distance.

    One pass of blocked ``x_b @ x.T`` products (torch, so a GPU is used when ``device``
    is one); memory stays at ``block * N`` floats.

    Returns:
        (dist [N, k] float32, idx [N, k] int64, rowmax [N] float32).
    """
    import torch

    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    n = xt.shape[0]
    k = min(k, n)
    sq = (xt * xt).sum(1)
    dist = np.empty((n, k), np.float32)
    idx = np.empty((n, k), np.int64)
    rowmax = np.empty(n, np.float32)
    for s in range(0, n, block):
        e = min(s + block, n)
        d = (sq[s:e, None] + sq[None, :]) - 2.0 * (xt[s:e] @ xt.T)
        d.clamp_(min=0)
        rowmax[s:e] = d.max(1).values.cpu().numpy()
        v, i = torch.topk(d, k, dim=1, largest=False, sorted=True)
        dist[s:e], idx[s:e] = v.cpu().numpy(), i.cpu().numpy()
    return dist, idx, rowmax
