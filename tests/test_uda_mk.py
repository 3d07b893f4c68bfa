"""bin/uda.mk: runs from any folder, `make -n` lists exactly what `make` runs, runs with
different parameters get their own folders, and the oracle / evaluation follow the labels
the target has.

The make logic is tested with a stand-in `reid` (REID=...) that records each call and
writes the file it is asked for, so the pipeline's 15 stages take a second; `reid info` (the
label check at parse time) is the real one. `test_tiny_real_run` (slow) runs the real
programs on a tiny synthetic pair.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MK = ROOT / "bin" / "uda.mk"
FAKE = r'''
import json, os, subprocess, sys
from pathlib import Path
args = sys.argv[1:]
cmd = next(a for a in args if not a.startswith("-"))
if cmd == "info":  # the real one: the makefile asks which splits have labels
    sys.exit(subprocess.call([sys.executable, os.environ["REAL_REID"], *args]))
with open(os.environ["FAKE_LOG"], "a") as fh:
    fh.write(" ".join(args) + "\n")
if cmd == "synth":
    out = Path(args[args.index("synth") + 1]); out.mkdir(parents=True, exist_ok=True)
    (out / "synth.json").write_text("{}")
if "-o" in args:
    out = Path(args[args.index("-o") + 1]); out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(" ".join(args))
if cmd == "evaluate":
    src = args[args.index("evaluate") + 1]
    m = 0.8 if "oracle" in src else 0.3 if "direct" in src else 0.6
    print(json.dumps({"mAP": m, "rank1": m + 0.1}))
elif cmd == "cluster":
    print("{}")
'''


def _make(cwd: Path, *args: str, log: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FAKE_LOG": str(log or cwd / "calls.log"),
           "REAL_REID": str(ROOT / "bin" / "reid"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MAKEFLAGS", None)
    cmd = ["make", "--no-print-directory", "-f", str(MK), *args, f"PYTHON={sys.executable}",
           f"REID={sys.executable} {cwd / 'fake_reid.py'}"]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _calls(cwd: Path) -> list[str]:
    log = cwd / "calls.log"
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return lines


def _programs(dry_run: str) -> list[str]:
    """The reid programs a `make -n` would run (stand-in calls mention fake_reid.py)."""
    return [line.split("fake_reid.py ", 1)[1].split()[0] for line in dry_run.splitlines() if "fake_reid.py " in line]


@pytest.fixture
def work(tmp_path) -> Path:
    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    (tmp_path / "fake_reid.py").write_text(FAKE)
    return tmp_path


def test_from_any_folder_make_n_is_truthful_and_runs_stay_apart(work):
    small = ["ROUNDS=2", "OUT=out", "METHOD=pseudo"]
    res = _make(work, "demo", *small)
    assert res.returncode == 0, res.stderr[-2000:]
    # the table helper was found beside the makefile, not in the current folder
    assert "pseudo round 2" in res.stdout and "oracle (target labels)" in res.stdout and "gap closed" in res.stdout
    calls = _calls(work)
    assert sum(c.startswith("pretrain") for c in calls) == 2 and sum(c.startswith("finetune") for c in calls) == 2
    assert (work / "out" / "pseudo" / "table.txt").exists()

    # nothing changed: the dry run lists no program, and the real run runs none
    dry = _make(work, "-n", "demo", *small)
    assert dry.returncode == 0 and _programs(dry.stdout) == [], dry.stdout
    assert _make(work, "demo", *small).returncode == 0 and _calls(work) == []

    # a changed clustering parameter: a new run folder; the dry run names exactly its stages
    dry = _make(work, "-n", "demo", *small, "EPS=0.4")
    assert sorted(_programs(dry.stdout)) == sorted(["cluster", "finetune", "features", "evaluate"] * 2), dry.stdout
    paths = _make(work, "paths", *small, "EPS=0.4").stdout
    run = paths.split("RUN=")[1].split()[0]
    assert run.startswith("pseudo-") and run != "pseudo"
    res = _make(work, "demo", *small, "EPS=0.4")
    assert res.returncode == 0, res.stderr[-2000:]
    ran = _calls(work)
    assert sorted(c.split()[0] for c in ran) == sorted(_programs(dry.stdout))  # the dry run told the truth (-j2: any order)
    assert all("--eps 0.4" in c for c in ran if c.startswith("cluster"))
    assert (work / "out" / run / "table.txt").exists() and (work / "out" / "pseudo" / "table.txt").exists()
    # the same parameters again find their folder: nothing to do
    assert _programs(_make(work, "-n", "demo", *small, "EPS=0.4").stdout) == []

    # a thread count is no experiment: same folder, rerun in place (stamped)
    dry = _make(work, "-n", "demo", *small, "THREADS=3")
    assert "out/pseudo/" in dry.stdout and "pretrain" in _programs(dry.stdout)
    # a pre-training parameter without OUT: a separate folder for the whole chain
    paths = _make(work, "paths", "PRE_EPOCHS=3", "METHOD=pseudo").stdout
    assert paths.startswith("OUT=demo-") and "RUN=pseudo " in paths


def _unlabelled(folder: Path) -> Path:
    (folder / "cam").mkdir(parents=True)
    import cv2
    import numpy as np

    for i in range(3):
        cv2.imwrite(str(folder / "cam" / f"{i}.jpg"), np.full((16, 8, 3), 40 * i, np.uint8))
    return folder


def _csv_target(folder: Path) -> Path:
    """Train without identities, query and gallery with them (a csv list)."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True)
    rows = ["path,pid,camid,split"]
    for i, (pid, cam, split) in enumerate([(-1, 0, "train"), (-1, 1, "train"), (1, 0, "query"), (1, 1, "gallery"),
                                           (2, 1, "gallery")]):
        cv2.imwrite(str(folder / f"{i}.jpg"), np.full((16, 8, 3), 30 * i, np.uint8))
        rows.append(f"{i}.jpg,{pid},{cam},{split}")
    (folder / "list.csv").write_text("\n".join(rows) + "\n")
    return folder / "list.csv"


def test_oracle_and_evaluation_follow_the_targets_labels(work):
    target = _unlabelled(work / "unlabelled")
    paths = _make(work, "paths", f"TARGET={target}").stdout
    assert "oracle 0, evaluate 0 (target labels: none)" in paths, paths
    dry = _make(work, "-n", "demo", f"TARGET={target}", "ROUNDS=1", "OUT=u", "METHOD=pseudo")
    assert _programs(dry.stdout).count("pretrain") == 1 and "evaluate" not in _programs(dry.stdout), dry.stdout
    assert "oracle.pt" not in dry.stdout and "nothing to evaluate" in dry.stdout
    res = _make(work, "demo", f"TARGET={target}", "ROUNDS=1", "OUT=u", "METHOD=pseudo")
    assert res.returncode == 0 and "nothing to evaluate; adapted model: u/pseudo/r1.pt" in res.stdout, res.stderr

    csv = _csv_target(work / "csvdata")
    paths = _make(work, "paths", f"TARGET={csv}").stdout
    assert "oracle 0, evaluate 1 (target labels: query gallery)" in paths, paths
    res = _make(work, "demo", f"TARGET={csv}", "ROUNDS=1", "OUT=c", "METHOD=pseudo")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "oracle" not in [c.split()[0] for c in _calls(work)]
    assert "no oracle row" in res.stdout and "pseudo round 1" in res.stdout
    # ORACLE=1 forces it (and a synthetic target always has one)
    assert "oracle 1" in _make(work, "paths", f"TARGET={csv}", "ORACLE=1").stdout
    assert "oracle 1, evaluate 1" in _make(work, "paths").stdout


def test_demo_table_without_oracle(tmp_path):
    files = []
    for name, m in (("direct", 0.30), ("r1", 0.42)):
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps({"mAP": m, "rank1": m + 0.1}))
    out = subprocess.run([sys.executable, str(ROOT / "bin" / "demo_table.py"), "--method", "pseudo", "--no-oracle",
                          *map(str, files)], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[2:4] == ["direct transfer    30.0    40.0", "pseudo round 1     42.0    52.0"]
    assert "changed mAP by +12.0 points" in out and "oracle" not in out.split("no oracle row")[0]
    assert "no oracle row: the target's training split has no identity labels;" in out
    off = subprocess.run([sys.executable, str(ROOT / "bin" / "demo_table.py"), "--method", "pseudo", "--no-oracle",
                          "--oracle-off", *map(str, files)], capture_output=True, text=True, check=True).stdout
    assert "no oracle row (ORACLE=0); the last round changed mAP by +12.0 points" in off


@pytest.mark.slow
def test_tiny_real_run(tmp_path):
    """The real programs on 6 identities at 32x16, one round of 2 steps (about half a minute):
    the table comes out, and afterwards `make -n` lists no program."""
    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MAKEFLAGS", None)
    args = ["make", "-s", "-f", str(MK), "demo", "OUT=t", "IDS=6", "IMAGES_PER_ID=4", "HEIGHT=32", "WIDTH=16",
            "PRE_EPOCHS=1", "ROUNDS=1", "ITERS=2", "P=3", "K=2", "K1=4", "K2=2", f"PYTHON={sys.executable}",
            f"REID={sys.executable} {ROOT / 'bin' / 'reid'}"]
    res = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "mar round 1" in res.stdout and "oracle (target labels)" in res.stdout
    dry = subprocess.run([args[0], "-n", *args[2:]], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert dry.returncode == 0 and "bin/reid " not in dry.stdout, dry.stdout


def test_the_default_demo_is_mar_on_a_small_test_bed(work):
    """`make demo` without settings runs the best method of `make compare` on a small version
    of its bed: synthetic Market -> Duke with the bed's mild camera shift, MobileNetV2 from the
    offline ImageNet file, and MAR rounds (no clustering) against the source as reference set,
    its discrepancy loss on from the first round."""
    from reidcli.models.offline_weights import offline_weights

    dry = _make(work, "-n", "demo")
    assert dry.returncode == 0, dry.stderr[-2000:]
    calls = [line.split("fake_reid.py ", 1)[1] for line in dry.stdout.splitlines() if "fake_reid.py " in line]
    synth = [c for c in calls if c.startswith("synth")]
    assert len(synth) == 2 and all("--ids 100 " in c and "--camera-shift 0.5" in c for c in synth), synth
    pre = [c for c in calls if c.startswith("pretrain")]
    assert len(pre) == 2 and all(f"--arch mobilenet_v2 --pretrained {offline_weights('mobilenet_v2')} " in c
                                 and "--lr 3.5e-4 " in c for c in pre), pre
    rounds = [c for c in calls if c.startswith("finetune")]
    assert len(rounds) == 2 and not any(c.startswith("cluster") for c in calls), calls
    assert all("--method mar " in c and "--reference demo/data/market" in c and c.endswith("--mdl-warmup-epochs 0")
               for c in rounds), rounds
    # another arch without offline weights trains from scratch at the from-scratch rate
    scratch = _make(work, "-n", "demo", "ARCH=resnet18_half", "OUT=s").stdout
    assert "--arch resnet18_half --pretrained none " in scratch and "--lr 1e-3 " in scratch


def test_mmt_rounds_cluster_the_average_of_both_mean_nets(work):
    """MMT's pseudo-labels come from both mean nets' averaged embeddings (the public MMT
    code): every adapted round's features are `reid features --net mean`; direct transfer
    (one network) and other methods are not, and EXTRA_FEATURES_ARGS' --net wins."""
    def features(*args):
        dry = _make(work, "-n", "demo", "ROUNDS=2", "OUT=out", "ORACLE=0", *args)
        assert dry.returncode == 0, dry.stderr[-2000:]
        return [line for line in dry.stdout.splitlines() if "fake_reid.py features" in line]

    lines = features("METHOD=mmt")
    rounds = [line for line in lines if "/r1.pt" in line or "/r2.pt" in line]
    assert len(rounds) == 2 and all(line.split()[-2:] == ["--net", "mean"] for line in rounds), lines
    assert not any("--net" in line for line in lines if "source.pt" in line)
    assert not any("--net" in line for line in features("METHOD=pseudo"))
    given = [line for line in features("METHOD=mmt", "EXTRA_FEATURES_ARGS=--net mean1") if "/r1.pt" in line]
    assert len(given) == 1 and given[0].split()[-4:] == ["--net", "mean", "--net", "mean1"]  # the last wins


def test_compare_mar_row_adapts_against_the_source_as_reference_without_clustering(work):
    """bin/compare.mk's mar row (Zhang et al. 2020): each round is `finetune --method mar --reference
    <the demo's source>` with no clustering and no --labels, and the table prints the row."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FAKE_LOG": str(work / "calls.log"),
           "REAL_REID": str(ROOT / "bin" / "reid"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MAKEFLAGS", None)
    out = work / "out"
    res = subprocess.run(["make", "--no-print-directory", "-f", str(ROOT / "bin" / "compare.mk"), "ROWS=mar",
                          f"OUT={out}", "ROUNDS=2", "ITERS=4", "CROSS_MODAL=0", "PRETRAINED=none", f"PYTHON={sys.executable}",
                          f"REID={sys.executable} {work / 'fake_reid.py'}"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    calls = _calls(work)
    rounds = [c for c in calls if c.startswith("finetune")]
    assert len(rounds) == 2 and not any(c.startswith("cluster") for c in calls)
    for c in rounds:
        assert "--method mar" in c and f"--reference {out}/data/market" in c and "--labels" not in c
    row = next(line for line in (out / "table.txt").read_text().splitlines() if line.startswith("mar "))
    assert row.split()[1:3] == ["60.0", "70.0"]  # the stand-in's round result, read from mar/r2.json
    table = (out / "table.txt").read_text()
    assert table.startswith("calibration") and "direct / oracle target mAP" in table
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # every row's mAP by step


def _bare_env(**extra: str) -> dict:
    """The environment of a new shell: no virtual environment active, no reid on the PATH."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES",
                        "OMP_NUM_THREADS", "FAKE_LOG", "REAL_REID")}
    return {**env, "PATH": "/usr/bin:/bin", **extra}


def test_runs_from_any_folder_with_the_checkouts_venv_without_activating_it(tmp_path):
    """From a folder outside the checkout, with no venv active and no PYTHON or REID given,
    the makefile runs the checkout's .venv (`reid info` answers: the target's labels are
    known) and THREADS follows OMP_NUM_THREADS unless given."""
    if shutil.which("make") is None or not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("needs GNU make and the checkout's .venv (make install)")
    csv = _csv_target(tmp_path / "csvdata")

    def make(*args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(["make", "--no-print-directory", "-f", str(MK), *args], cwd=tmp_path,
                              env=_bare_env(**env), capture_output=True, text=True, timeout=120)

    paths = make("paths", f"TARGET={csv}")
    assert paths.returncode == 0 and "(target labels: query gallery)" in paths.stdout, paths.stdout + paths.stderr
    dry = make("-n", "demo", "OUT=o", "ROUNDS=1")
    assert dry.returncode == 0, dry.stderr
    assert f"{ROOT}/.venv/bin/reid pretrain" in dry.stdout, dry.stdout
    assert f"{ROOT}/.venv/bin/python {ROOT}/bin/demo_table.py" in dry.stdout, dry.stdout
    assert "--threads 3 " in make("-n", "demo", "OUT=o", "ROUNDS=1", OMP_NUM_THREADS="3").stdout
    given = make("-n", "demo", "OUT=o", "ROUNDS=1", "THREADS=2", OMP_NUM_THREADS="3").stdout
    assert "--threads 2 " in given and "--threads 3" not in given
    assert not (tmp_path / "o").exists()  # -n wrote nothing


def test_a_python_without_reidcli_is_one_error_line(tmp_path):
    """A checkout without .venv and no reid on the PATH: the makefile runs bin/reid with
    PYTHON; when that python cannot import reidcli it stops with one line saying how to fix
    it (rather than failing in each stage and calling the target's labels "unknown")."""
    if shutil.which("make") is None or shutil.which("reid", path="/usr/bin:/bin"):
        pytest.skip("needs GNU make and no reid in /usr/bin:/bin")
    checkout = tmp_path / "checkout"
    (checkout / "bin").mkdir(parents=True)
    for name in ("uda.mk", "reid", "demo_table.py"):
        shutil.copy2(ROOT / "bin" / name, checkout / "bin" / name)
    mk = checkout / "bin" / "uda.mk"
    res = subprocess.run(["make", "-f", str(mk), "paths"], cwd=tmp_path, env=_bare_env(), capture_output=True,
                         text=True, timeout=60)
    assert res.returncode != 0 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot run reidcli" in lines[0] and f"make install` in {checkout}" in lines[0], lines
    # a python that has reidcli works (here the test's own)
    ok = subprocess.run(["make", "-f", str(mk), "paths", f"PYTHON={sys.executable}"], cwd=tmp_path, env=_bare_env(),
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "oracle 1, evaluate 1" in ok.stdout, ok.stderr


def _tree(folder: Path) -> dict:
    """Every path under ``folder`` with its size and modification time."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            st = os.stat(Path(dirpath) / name)
            out[str(Path(dirpath, name).relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return out


def test_make_n_changes_no_file(work):
    """A dry run has no side effects: with a changed pre-training, clustering or run parameter
    the parameter stamps under OUT/.args are neither rewritten nor created (so the next real
    run with the old parameters has nothing to do), while the dry run still lists the stages
    the change would rerun."""
    small = ["ROUNDS=1", "OUT=out", "METHOD=pseudo"]
    assert _make(work, "demo", *small).returncode == 0
    _calls(work)
    before = _tree(work)
    dry = _make(work, "-n", "demo", *small, "PRE_EPOCHS=3")
    assert dry.returncode == 0 and sorted(_programs(dry.stdout)) == sorted(
        ["pretrain", "features", "evaluate"] * 2 + ["cluster", "finetune", "features", "evaluate"]), dry.stdout
    dry = _make(work, "-n", "demo", *small, "EPS=0.4")
    assert sorted(_programs(dry.stdout)) == ["cluster", "evaluate", "features", "finetune"], dry.stdout
    dry = _make(work, "-n", "demo", *small, "RUN=other", "PRE_EPOCHS=3", "EPS=0.4")
    assert dry.returncode == 0 and "pretrain" in _programs(dry.stdout)
    assert _tree(work) == before
    assert _make(work, "demo", *small).returncode == 0 and _calls(work) == []  # nothing to redo


def test_the_table_says_when_the_oracle_was_turned_off(work):
    """ORACLE=0 on a target that has training labels: the table says the row was turned off
    (not that the labels are missing), also when the run's table existed with the row."""
    small = ["ROUNDS=1", "OUT=out"]
    assert "oracle (target labels)" in _make(work, "demo", *small).stdout
    res = _make(work, "demo", *small, "ORACLE=0")
    assert res.returncode == 0 and "no oracle row (ORACLE=0); the last round changed mAP" in res.stdout, res.stdout
    assert "oracle (target labels)" not in res.stdout and "identity labels" not in res.stdout
