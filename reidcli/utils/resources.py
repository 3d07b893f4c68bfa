"""The cores this process may use, and how a command splits them between intra-op threads
and DataLoader worker processes so that threads x processes never oversubscribe them.

Cores: the CPUs of the process's affinity mask (``os.sched_getaffinity``, what ``taskset``
and ``docker --cpuset-cpus`` set), capped by the CPU quota of its cgroup (v2 ``cpu.max``,
v1 ``cpu.cfs_quota_us / cpu.cfs_period_us``, what ``docker --cpus`` and Kubernetes limits
set), rounded up, as Go and the JVM do. ``os.cpu_count()`` sees neither.

The rule (`plan`), for C cores:

- a command that only computes (cluster, evaluate): C intra-op threads, no workers;
- a command that decodes images on the CPU device (pretrain, finetune, features on CPU):
  the network's kernels dominate (decoding + augmenting a 256x128 JPEG costs about 1% of a
  ResNet-50 forward/backward on a CPU), so images are decoded in the main process below 8
  cores and by C // 8 workers (at most 4) above, and the threads take the rest: C - workers;
- the same on a GPU: the CPU only feeds the GPU, so min(8, C - 1) workers and the rest,
  at least one, as threads (2 cores: 1 worker + 1 thread);
- ``--threads`` / ``--workers`` override; when only one is given, the other is chosen so
  that the sum stays <= C (``OMP_NUM_THREADS`` in the environment counts as ``--threads``).

So the threads of one process plus its workers never exceed C. Processes that split the
cores between them divide C first: the ``share`` of `plan` (the engine passes torchrun's
LOCAL_WORLD_SIZE); programs that make runs side by side (``make -j2``) are told theirs:
bin/uda.mk passes ``--threads`` = cores / JOBS.
Worker processes count one core each (PyTorch runs one intra-op thread in each, and
`reidcli.data.loader` sets OpenCV to one thread before they fork).
"""

from __future__ import annotations

import logging
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from reidcli.utils.params import Interval, check_params

log = logging.getLogger(__name__)

CONSTRAINTS = {"threads": [None, Interval(int, 1, None)], "workers": [None, Interval(int, 0, None)]}
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Plan:
    """How many intra-op threads and loader workers a command uses, and why."""

    cores: int
    threads: int
    workers: int
    cores_from: str  # how ``cores`` was found, e.g. "affinity 64, cgroup quota 2"

    def as_dict(self) -> dict:
        return {"cores": self.cores, "threads": self.threads, "workers": self.workers,
                "cores_from": self.cores_from}

    def __str__(self) -> str:
        return (f"{self.threads} intra-op thread(s), {self.workers} loader worker(s) "
                f"on {self.cores} core(s) ({self.cores_from})")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _v2_limit(text: str | None) -> float | None:
    """``cpu.max`` ("QUOTA PERIOD" or "max PERIOD") as cores, None when unlimited."""
    parts = (text or "").split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_limit(folder: Path) -> float | None:
    """``cpu.cfs_quota_us / cpu.cfs_period_us`` as cores, None when unlimited (-1)."""
    try:
        quota, period = int(_read(folder / "cpu.cfs_quota_us") or -1), int(_read(folder / "cpu.cfs_period_us") or 0)
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _walk_up(mount: Path, rel: str):
    """The cgroup folder of ``rel`` under ``mount`` and every ancestor up to the mount (the
    tightest quota on the way applies). Inside a container the process's path may name a
    host folder that is not mounted: then the mount itself is the process's cgroup."""
    here = mount / rel.lstrip("/")
    if not here.is_dir():
        here = mount
    while True:
        yield here
        if here == mount or mount not in here.parents:
            return
        here = here.parent


def cgroup_cpu_limit(proc_cgroup: Path = Path("/proc/self/cgroup"),
                     root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in cores (e.g. 1.5), None when there is none.

    Reads cgroup v2 (``0::/path`` and ``cpu.max``) or v1 (a ``cpu`` controller line and
    ``cpu.cfs_quota_us``); the smallest quota from the process's cgroup up to the root wins.
    """
    limits = []
    for line in (_read(proc_cgroup) or "").splitlines():
        hier, controllers, rel = (line.split(":", 2) + ["", ""])[:3]
        if hier == "0" and controllers == "":
            limits += [_v2_limit(_read(d / "cpu.max")) for d in _walk_up(root, rel)]
        elif "cpu" in controllers.split(","):
            for name in (controllers, "cpu", "cpu,cpuacct", "cpuacct,cpu"):
                if (root / name).is_dir():
                    limits += [_v1_limit(d) for d in _walk_up(root / name, rel)]
                    break
    found = [x for x in limits if x is not None]
    return min(found) if found else None


def affinity_cores() -> int:
    """CPUs in this process's affinity mask (``os.cpu_count()`` where there is no mask)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def available_cores() -> tuple[int, str]:
    """(cores this process may use, how they were found)."""
    aff = affinity_cores()
    quota = cgroup_cpu_limit()
    if quota is None:
        return aff, f"affinity {aff}"
    return max(1, min(aff, math.ceil(quota))), f"affinity {aff}, cgroup quota {quota:g}"


def env_threads(environ=None) -> int | None:
    """``OMP_NUM_THREADS`` when it holds a positive integer (the user's thread count)."""
    text = (os.environ if environ is None else environ).get("OMP_NUM_THREADS", "")
    return int(text) if text.strip().isdigit() and int(text) > 0 else None


def _is_cuda(device) -> bool:
    return str(getattr(device, "type", device)).startswith("cuda")


def auto_workers(cores: int, device="cpu") -> int:
    """Loader workers for ``cores`` cores (see the module docstring for the rule)."""
    if _is_cuda(device):
        return max(0, min(8, cores - 1))
    return min(4, cores // 8)


def process_workers(workers: int | None) -> int:
    """``workers`` for a pool of worker processes (``reid synth``, ``reid extract-pose``):
    None (auto) is `auto_workers` of the cores this process may use (0 = in this process)."""
    return auto_workers(available_cores()[0]) if workers is None else workers


def plan(threads: int | None = None, workers: int | None = None, *, device="cpu", loads_data: bool = False,
         share: int = 1, cores: tuple[int, str] | None = None, environ=None) -> Plan:
    """Threads and workers for a command (None = auto).

    Args:
        threads, workers: the user's ``--threads`` / ``--workers``, None when not given.
        device: where the network runs (``cpu``, ``cuda``, a ``torch.device``).
        loads_data: the command decodes images through a DataLoader (else workers = 0).
        share: processes on this machine that split the cores evenly (DDP's local world size).
        cores: (count, how found) instead of `available_cores` (tests).
        environ: the environment to read ``OMP_NUM_THREADS`` from (default ``os.environ``).
    """
    check_params({"threads": threads, "workers": workers}, CONSTRAINTS)
    n, how = cores or available_cores()
    if share > 1:
        n, how = max(1, n // share), f"{how}, split over {share} processes"
    threads = threads if threads is not None else env_threads(environ)
    if workers is None:
        workers = auto_workers(n, device) if loads_data else 0
        if threads is not None:
            workers = min(workers, max(0, n - threads))
    if threads is None:
        threads = max(1, n - workers)
    elif threads + workers > n:
        log.warning("%d threads + %d loader workers oversubscribe %d core(s) (%s); expect a slowdown",
                    threads, workers, n, how)
    return Plan(cores=n, threads=threads, workers=workers, cores_from=how)


def apply(p: Plan) -> Plan:
    """Use ``p.threads`` intra-op threads in this process: the environment for libraries not
    loaded yet, threadpoolctl for the BLAS / OpenMP runtimes already loaded, and torch and
    faiss when they are imported (neither is imported here)."""
    for name in THREAD_ENV:
        os.environ[name] = str(p.threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency; the environment still applies
        threadpool_limits = None
    if threadpool_limits is not None:
        threadpool_limits(limits=p.threads)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != p.threads:
        torch.set_num_threads(p.threads)
    faiss = sys.modules.get("faiss")
    if faiss is not None:
        faiss.omp_set_num_threads(p.threads)
    return p


def configure(threads: int | None = None, workers: int | None = None, *, device="cpu",
              loads_data: bool = False, share: int = 1) -> Plan:
    """`plan` then `apply`; the choice is logged at debug level (``reid -v``)."""
    p = apply(plan(threads, workers, device=device, loads_data=loads_data, share=share))
    log.debug("resources: %s", p)
    return p


def _meminfo_available(path: Path = Path("/proc/meminfo")) -> int | None:
    for line in (_read(path) or "").splitlines():
        if line.startswith("MemAvailable:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024
    return None


def _cgroup_memory_headroom(proc_cgroup: Path = Path("/proc/self/cgroup"),
                            root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Bytes this process's cgroup may still allocate (limit - usage, the tightest from its
    cgroup up to the root), None without a limit. cgroup v2 ``memory.max`` /
    ``memory.current``, v1 ``memory.limit_in_bytes`` / ``memory.usage_in_bytes``."""
    room = []
    for line in (_read(proc_cgroup) or "").splitlines():
        hier, controllers, rel = (line.split(":", 2) + ["", ""])[:3]
        if hier == "0" and controllers == "":
            dirs, files = list(_walk_up(root, rel)), ("memory.max", "memory.current")
        elif "memory" in controllers.split(","):
            dirs, files = list(_walk_up(root / "memory", rel)), ("memory.limit_in_bytes", "memory.usage_in_bytes")
        else:
            continue
        for d in dirs:
            limit, used = _read(d / files[0]), _read(d / files[1])
            if limit and used and limit.isdigit() and used.isdigit() and int(limit) < 1 << 60:
                room.append(max(0, int(limit) - int(used)))
    return min(room) if room else None


def available_memory() -> int:
    """Bytes of memory this process can still use without swapping: the kernel's
    ``MemAvailable`` capped by the room left under its cgroup's memory limit (0 when
    neither can be read and ``os.sysconf`` does not know either)."""
    found = [x for x in (_meminfo_available(), _cgroup_memory_headroom()) if x is not None]
    if not found:
        try:
            found = [os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
        except (AttributeError, ValueError, OSError):
            return 0
    return min(found)


if __name__ == "__main__":  # bin/uda.mk: the cores this process may use
    print(available_cores()[0])
