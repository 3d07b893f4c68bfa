"""One flag, one name, one meaning across commands: steps per epoch (`--iters-per-epoch`,
alias `--iters`), the device (`--device auto|cpu|cuda|cuda:N`; cluster's old `--gpu` a
hidden, deprecated alias) and worker processes (`--workers`, default auto)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from reidcli.cli.app import app

runner = CliRunner()


def _commands() -> dict[str, object]:
    """``"stylize fit" -> click command`` for every command and subcommand."""
    out = {}

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
        else:
            out[" ".join(path)] = cmd

    walk(typer.main.get_command(app), [])
    return out


def _options(cmd) -> dict[str, object]:
    return {o: p for p in cmd.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])}


def test_steps_per_epoch_is_one_flag_with_one_alias_everywhere():
    having = []
    for name, cmd in _commands().items():
        opts = _options(cmd)
        if "--iters" in opts or "--iters-per-epoch" in opts:
            having.append(name)
            assert opts.get("--iters") is opts.get("--iters-per-epoch"), f"reid {name}: one option, both names"
            assert opts["--iters"].name == "iters_per_epoch" and not opts["--iters"].hidden
    assert {"pretrain", "finetune", "stylize fit"} <= set(having)


def test_device_is_the_same_flag_everywhere_and_gpu_is_hidden():
    having = []
    for name, cmd in _commands().items():
        opts = _options(cmd)
        if "--gpu" in opts:
            assert name == "cluster" and opts["--gpu"].hidden, f"reid {name} shows --gpu"
        if "--device" in opts:
            having.append(name)
            assert opts["--device"].help.startswith("auto | cpu | cuda | cuda:N"), name
            assert opts["--device"].default in ("auto", "cpu"), name
    assert {"pretrain", "features", "finetune", "cluster", "evaluate", "stylize fit", "stylize apply",
            "extract-pose"} <= set(having)


def test_workers_default_to_auto_everywhere():
    having = []
    for name, cmd in _commands().items():
        p = _options(cmd).get("--workers")
        if p is not None:
            having.append(name)
            assert p.default is None and "default: auto" in p.help, f"reid {name} --workers: {p.default} {p.help}"
    assert {"synth", "extract-pose", "pretrain", "features", "finetune", "stylize fit"} <= set(having)


def test_both_step_names_reach_the_library(tmp_path, monkeypatch):
    import reidcli.train.pretrain as pt

    seen = []
    monkeypatch.setattr(pt, "pretrain", lambda data, out, **kw: seen.append(kw["train"].iters_per_epoch) or out)
    (tmp_path / "d").mkdir()  # DATA beside -o (an output inside an input folder is refused)
    for flag in ("--iters", "--iters-per-epoch"):
        res = runner.invoke(app, ["pretrain", str(tmp_path / "d"), "-o", str(tmp_path / "m.pt"), flag, "7"])
        assert res.exit_code == 0, res.output
    assert seen == [7, 7]


def test_cluster_device_maps_to_faiss_and_gpu_still_works(tmp_path, monkeypatch):
    import reidcli.cluster as cl
    from reidcli.cluster.knn import faiss_gpus, gpu_from_device

    assert [gpu_from_device(d) for d in ("auto", "cpu", "cuda", "cuda:1")] == ["auto", "no", "yes", "yes"]

    class Report:
        quality = None

        def summary(self):
            return "ok"

    seen = []
    monkeypatch.setattr(cl, "run", lambda *a, **kw: seen.append(kw["gpu"]) or Report())
    base = ["cluster", str(tmp_path / "f.h5"), "-o", str(tmp_path / "l.h5")]
    for extra in ([], ["--device", "cpu"], ["--device", "cuda:0"], ["--gpu", "no"]):
        res = runner.invoke(app, [*base, *extra])
        assert res.exit_code == 0, res.output
    assert seen == ["auto", "no", "yes", "no"]
    assert "--gpu is deprecated; use --device" in res.stderr
    for extra, words in ((["--device", "tpu"], "--device must be auto | cpu | cuda | cuda:N; got 'tpu'"),
                         (["--device", "cpu", "--gpu", "no"], "give --device only")):
        res = runner.invoke(app, [*base, *extra])
        assert res.exit_code == 1 and words in res.stderr, res.output
    if faiss_gpus() == 0:  # the library's own check names the new flag
        from reidcli.cluster.knn import knn
        import numpy as np
        import pytest

        from reidcli.utils.errors import ConfigError

        with pytest.raises(ConfigError, match="--device cuda asks for faiss on the GPU"):
            knn(np.zeros((4, 2), np.float32), 2, gpu="yes")


def test_process_workers_auto_follows_the_cores(monkeypatch):
    from reidcli.utils import resources as R

    for cores, want in ((2, 0), (8, 1), (64, 4)):
        monkeypatch.setattr(R, "available_cores", lambda c=cores: (c, "test"))
        assert R.process_workers(None) == want == R.auto_workers(cores)
    assert R.process_workers(3) == 3


def test_synth_with_auto_workers_is_byte_identical(tmp_path, monkeypatch):
    """--workers auto (None) on any core count writes the same bytes as one process."""
    from reidcli.data.synth import synthesize
    from reidcli.utils import resources as R

    kw = dict(domain="market", ids=3, test_ids=2, images_per_id=2, height=32, width=16, seed=1)
    synthesize(tmp_path / "one", workers=1, **kw)
    monkeypatch.setattr(R, "available_cores", lambda: (16, "test"))  # auto: 2 processes
    synthesize(tmp_path / "auto", **kw)
    one = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.jpg"))
    auto = sorted(p.relative_to(tmp_path / "auto") for p in (tmp_path / "auto").rglob("*.jpg"))
    assert one == auto and one
    assert all((tmp_path / "one" / p).read_bytes() == (tmp_path / "auto" / p).read_bytes() for p in one)
