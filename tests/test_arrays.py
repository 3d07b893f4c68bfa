"""The numpy (CPU) and torch (GPU) sides of `reidcli.utils.arrays` agree, op by op and
through the code written once over them (rank metrics, exact k-NN); the numpy row norms
round as torch's CPU sum does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reidcli.utils import arrays
from reidcli.utils.arrays import NUMPY, TorchOps
from reidcli.utils.cascade_sum import row_sqnorms

TORCH = TorchOps("cpu")


def both(x):
    return x, torch.from_numpy(np.ascontiguousarray(x))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_ops_pick_the_backend_by_array_and_device():
    assert arrays.ops(np.zeros(2)) is NUMPY and isinstance(arrays.ops(torch.zeros(2)), TorchOps)
    assert arrays.ops_for("cpu") is NUMPY and arrays.is_cpu(torch.device("cpu"))
    assert not arrays.is_cpu("cuda:1")


@pytest.mark.parametrize("k", [1, 3, 20])
def test_topk_values_and_order_agree(rng, k):
    x = rng.integers(0, 6, size=(7, 20)).astype(np.float32)  # many ties
    xn, xt = both(x)
    vn, ino = NUMPY.topk_smallest(xn, k)
    vt, _ = TORCH.topk_smallest(xt, k)
    assert np.array_equal(vn, vt.numpy())
    assert np.array_equal(np.take_along_axis(x, ino, 1), vn)
    for row, idx in zip(vn, ino):  # ties come out in index order
        for a in range(1, k):
            assert row[a - 1] < row[a] or idx[a - 1] < idx[a]
    v0, i0 = NUMPY.topk_smallest(xn, min(k, 7), axis=0, sorted=False)
    assert np.array_equal(np.sort(v0, 0), np.sort(TORCH.topk_smallest(xt, min(k, 7), axis=0)[0].numpy(), 0))
    assert np.array_equal(np.take_along_axis(x, i0, 0), v0)


def test_threaded_row_blocks_equal_one_thread(rng, monkeypatch):
    x = rng.normal(size=(50, 300)).astype(np.float32)
    pv = np.sort(rng.normal(size=(50, 7)).astype(np.float32), 1)
    one = NUMPY.topk_smallest(x, 9), NUMPY.searchsorted(pv, x)
    monkeypatch.setattr(arrays, "PARALLEL_ELEMENTS", 100)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    many = NUMPY.topk_smallest(x, 9), NUMPY.searchsorted(pv, x)
    assert all(np.array_equal(a, b) for a, b in zip(one[0], many[0])) and np.array_equal(one[1], many[1])


def test_row_ops_agree(rng):
    sorted_rows = np.sort(rng.integers(0, 10, size=(6, 5)).astype(np.float32), 1)
    x = rng.integers(0, 11, size=(6, 30)).astype(np.float32)
    (sn, st), (xn, xt) = both(sorted_rows), both(x)
    left = NUMPY.searchsorted(sn, xn)
    assert np.array_equal(left, TORCH.searchsorted(st, xt).numpy())
    mask = rng.random((6, 30)) < 0.5
    assert np.array_equal(NUMPY.scatter_add(6, left, mask), TORCH.scatter_add(6, torch.from_numpy(left),
                                                                              torch.from_numpy(mask)).numpy())
    assert np.array_equal(NUMPY.scatter_add(6, left), TORCH.scatter_add(6, torch.from_numpy(left)).numpy())
    ids = rng.integers(0, 4, size=30)
    keys = rng.integers(-5, 100, size=(6, 30))
    got = NUMPY.scatter_amax(4, ids[None, :], keys, -1)
    want = TORCH.scatter_amax(4, torch.from_numpy(ids)[None, :], torch.from_numpy(keys), -1).numpy()
    assert np.array_equal(got, want)
    assert np.array_equal(NUMPY.masked_fill(xn, mask, np.inf), TORCH.masked_fill(xt, torch.from_numpy(mask),
                                                                                 np.inf).numpy())


def test_rank_metrics_equal_on_both_backends(rng, monkeypatch):
    from reidcli.eval import ranking
    from reidcli.eval.distance import distance_chunks

    qp, gp = rng.integers(-1, 12, 40), rng.integers(-1, 12, 300)
    qc, gc = rng.integers(0, 3, 40), rng.integers(0, 3, 300)
    qf, gf = rng.normal(size=(40, 6)).astype(np.float32), rng.normal(size=(300, 6)).astype(np.float32)
    gf[::5] = gf[1]  # ties between matches and negatives: the stable-sort path
    for opts in (ranking.RankOptions(ap="sklearn"), ranking.RankOptions(cmc="single-gallery", repeats=3),
                 ranking.RankOptions(cmc="unique-id", skip_cams=[(0, 1)])):
        ref = ranking.rank_queries(distance_chunks(qf, gf, chunk=7), qp, qc, gp, gc, opts)
        monkeypatch.setattr(ranking, "ops_for", lambda device: TORCH)
        got = ranking.rank_queries(distance_chunks(qf, gf, chunk=7), qp, qc, gp, gc, opts)
        monkeypatch.undo()
        for name in ("npos", "first", "last", "ap", "cmc_rank"):
            assert np.array_equal(getattr(ref, name), getattr(got, name), equal_nan=True), (opts, name)


def test_exact_knn_agrees_on_both_backends(rng, monkeypatch):
    from reidcli.cluster import knn

    x = rng.normal(size=(900, 12)).astype(np.float32)
    dn, inn = knn.knn_exact(x, 7, block=256)
    monkeypatch.setattr(knn, "ops_for", lambda device: TORCH)
    dt, it = knn.knn_exact(x, 7, block=256)
    rt = knn.knn_rowmax(x, 7, block=256)
    monkeypatch.undo()
    # the GEMMs differ (OpenBLAS vs torch's), so distances agree to float32 rounding
    assert np.allclose(dn, dt, rtol=0, atol=1e-5) and np.array_equal(inn, it)
    rn = knn.knn_rowmax(x, 7, block=256)
    assert np.allclose(rn[0], rt[0], rtol=0, atol=1e-5) and np.array_equal(rn[1], rt[1])
    assert np.allclose(rn[2], rt[2], rtol=0, atol=1e-5)


SQNORM_DIMS = [1, 3, 7, 8, 13, 64, 256, 513, 2048, 2051, 8192]
_TORCH_AVX2_SUMS = """
import sys, numpy as np, torch
rng = np.random.default_rng(0)
xs = {str(d): rng.normal(size=(64, d)).astype(np.float32) for d in %r}
sums = {d: (torch.from_numpy(x) ** 2).sum(1).numpy() for d, x in xs.items()}
np.savez(sys.argv[1], capability=torch.backends.cpu.get_cpu_capability(),
         **{"x" + d: x for d, x in xs.items()}, **{"s" + d: v for d, v in sums.items()})
"""


@pytest.fixture(scope="module")
def torch_avx2_sums(tmp_path_factory):
    """Torch's ``(x * x).sum(1)`` under its AVX2 kernels, on any x86 CPU: a child process
    with ``ATEN_CPU_CAPABILITY=avx2`` (an AVX-512 CPU would otherwise dispatch 16 lanes)."""
    import os
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("sums") / "sums.npz"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2"}
    subprocess.run([sys.executable, "-c", _TORCH_AVX2_SUMS % SQNORM_DIMS, str(out)], env=env, check=True)
    ref = np.load(out)
    if str(ref["capability"]) != "AVX2":
        pytest.skip(f"this CPU has no AVX2 (torch dispatches {ref['capability']}): no reference order")
    return ref


@pytest.mark.parametrize("d", SQNORM_DIMS)
def test_row_sqnorms_round_as_torch(torch_avx2_sums, d):
    x, ref = torch_avx2_sums[f"x{d}"], torch_avx2_sums[f"s{d}"]
    assert np.array_equal(row_sqnorms(x), ref)
    assert not np.array_equal(row_sqnorms(x), np.einsum("ij,ij->i", x, x)) or d < 64  # the order matters


@pytest.mark.parametrize("shape", [(7, 5), (3000, 2000)])  # the second is split over threads
def test_nonzero_at_most_equals_numpy_nonzero(shape):
    from reidcli.utils.arrays import nonzero_at_most

    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    for bound in (np.full((shape[0], 1), -1.5, np.float32), rng.uniform(-2, -1, (1, shape[1])).astype(np.float32)):
        want = np.nonzero(x <= bound)
        got = nonzero_at_most(x, bound, x.size)
        assert got is not None and all(np.array_equal(g, w) for g, w in zip(got, want))
        assert nonzero_at_most(x, bound, len(want[0]) - 1) is None  # one more than allowed
        assert nonzero_at_most(x, bound, len(want[0])) is not None
