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
    from reidcli.cluster.knn import faiss_gpus, faiss_on_gpu

    assert [faiss_on_gpu(d) for d in ("auto", "cpu")] == [faiss_gpus() > 0, False]

    class Report:
        quality = None

        def summary(self):
            return "ok"

    seen = []
    monkeypatch.setattr(cl, "run", lambda *a, **kw: seen.append(kw["device"]) or Report())
    base = ["cluster", str(tmp_path / "f.h5"), "-o", str(tmp_path / "l.h5")]
    for extra in ([], ["--device", "cpu"], ["--device", "cuda:0"], ["--gpu", "no"]):
        res = runner.invoke(app, [*base, *extra])
        assert res.exit_code == 0, res.output
    assert seen == ["auto", "cpu", "cuda:0", "cpu"]
    assert "--gpu is deprecated; use --device" in res.stderr
    for extra, words in ((["--device", "tpu"], "--device must be auto | cpu | cuda | cuda:N; got 'tpu'"),
                         (["--device", "cpu", "--gpu", "no"], "give --device only")):
        res = runner.invoke(app, [*base, *extra])
        assert res.exit_code == 1 and words in res.stderr, res.output
    if faiss_gpus() == 0:  # the library's own check: the device asked for
        from reidcli.cluster.knn import knn
        import numpy as np
        import pytest

        from reidcli.utils.errors import ConfigError

        with pytest.raises(ConfigError, match="device 'cuda' asks for faiss on the GPU"):
            knn(np.zeros((4, 2), np.float32), 2, device="cuda")


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


# --------------------------------------------------------------------------- flags that do nothing (issue 22)
GOLDEN = __import__("pathlib").Path(__file__).resolve().parent / "data" / "format" / "v1"


def _small_ckpt(path):
    """A checkpoint of an untrained resnet18_quarter (no domain BN), written without training."""
    from reidcli.io.ckpt import make_checkpoint, save_checkpoint
    from reidcli.models import ModelConfig, build_model

    cfg = ModelConfig(arch="resnet18_quarter", num_classes=2)
    net = build_model(cfg)
    save_checkpoint(path, make_checkpoint(model_config=cfg.to_dict(), model_state=net.state_dict(),
                                          input_size=(32, 16), method="supervised", epoch=1, feat_dim=net.feat_dim))
    return path


INAPPLICABLE = [
    # pretrain: settings of another architecture (flags and --config keys)
    (["pretrain", "D", "-o", "T/m.pt", "--rb-backbone", "resnet18"], "--rb-backbone does not apply to --arch resnet50"),
    (["pretrain", "D", "-o", "T/m.pt", "--rb-separate"], "--rb-shared does not apply to --arch resnet50"),
    (["pretrain", "D", "-o", "T/m.pt", "--mrda-backbone", "resnet18"], "--mrda-backbone does not apply to --arch resnet50"),
    (["pretrain", "D", "-o", "T/m.pt", "--attn-topk", "2"], "--attn-topk does not apply to --arch resnet50"),
    (["pretrain", "D", "-o", "T/m.pt", "--mse-weight", "1"], "--mse-weight does not apply to --arch resnet50"),
    (["pretrain", "D", "-o", "T/m.pt", "--arch", "rbnet", "--mrda-backbone", "resnet18"],
     "--mrda-backbone does not apply to --arch rbnet; it is an MRDA setting (--arch mrda)"),
    (["pretrain", "D", "-o", "T/m.pt", "--config", "T/topk.toml"], "--attn-topk does not apply to --arch resnet50"),
    (["pretrain", "D", "-o", "T/m.pt", "--config", "T/rb.toml"], "--rb-shared does not apply to --arch resnet50"),
    # finetune: the layout of a dataset not given
    (["finetune", "D", "--ckpt", "C", "--labels", "L", "-o", "T/n.pt", "--source-format", "market1501"],
     "--source-format does not apply without --source"),
    (["finetune", "D", "--ckpt", "C", "--labels", "L", "-o", "T/n.pt", "--reference-format", "market1501"],
     "--reference-format does not apply without --reference"),
    # evaluate
    (["evaluate", "F", "--k1", "5"], "--k1 does not apply without --rerank"),
    (["evaluate", "F", "--k2", "5"], "--k2 does not apply without --rerank"),
    (["evaluate", "F", "--lambda", "0.5"], "--lambda does not apply without --rerank"),
    (["evaluate", "F", "--top", "3"], "--top does not apply without --ranks-png"),
    (["evaluate", "F", "--n-queries", "3"], "--n-queries does not apply without --ranks-png"),
    (["evaluate", "F", "--ranks-queries", "worst"], "--ranks-queries does not apply without --ranks-png"),
    (["evaluate", "F", "--image-root", "T"], "--image-root does not apply without --ranks-png"),
    (["evaluate", "F", "--shot", "multi"], "--shot does not apply to the market protocol"),
    (["evaluate", "F", "--trials", "3"], "--trials does not apply to the market protocol"),
    # plot
    (["plot", "L", "-o", "T/p.png", "--perplexity", "5"], "--perplexity does not apply without --tsne"),
    (["plot", "L", "-o", "T/p.png", "--max-points", "50"], "--max-points does not apply without --tsne"),
    (["plot", "L", "-o", "T/p.png", "--split", "query"], "--split does not apply without --tsne"),
    # extract-pose: options of another backend
    *[(["extract-pose", "D", "-o", "T/p.h5", "--backend", "gt", flag, value], f"{flag} does not apply to --backend gt")
      for flag, value in (("--refine", "none"), ("--input-size", "64x32"), ("--box-padding", "1.5"),
                          ("--min-confidence", "0.2"), ("--mean", "1,2,3"))],
    (["extract-pose", "D", "-o", "T/p.h5", "--refine", "none"], "--refine does not apply to --backend mediapipe"),
    # export
    (["export", "--ckpt", "S", "-o", "T/s.pt", "--slim", "--opset", "13"], "--opset does not apply to --slim"),
    (["export", "--ckpt", "S", "-o", "T/s.ts", "--opset", "13"], "--opset does not apply to a TorchScript export"),
    (["export", "--ckpt", "S", "-o", "T/s.ts", "--bn-domain", "source"],
     "--bn-domain does not apply to S: it has no domain-specific BN"),
    # stylize fit: the other method's settings
    (["stylize", "fit", "D", "-o", "T/s.pt", "--image-size", "64x32"], "--image-size does not apply to --method color"),
    (["stylize", "fit", "D", "-o", "T/s.pt", "--method", "stargan", "--max-images", "5"],
     "--max-images does not apply to --method stargan"),
    (["stylize", "fit", "D", "-o", "T/s.pt", "--method", "stargan", "--max-pixels", "100"],
     "--max-pixels does not apply to --method stargan"),
]


@__import__("pytest").mark.parametrize("argv,words", INAPPLICABLE, ids=lambda v: " ".join(v[:2]) if isinstance(v, list) else None)
def test_a_flag_that_does_nothing_is_one_line(tmp_path, argv, words):
    """Issue 22: every flag given where it does nothing is refused with one line naming it
    (never silently ignored), before any output is written; bad usage, so exit 2 as for an
    unknown flag."""
    (tmp_path / "d").mkdir()
    (tmp_path / "topk.toml").write_text("attn-topk = 3\n")
    (tmp_path / "rb.toml").write_text("rb_shared = false\n")
    ckpt = _small_ckpt(tmp_path / "small.pt")
    subst = {"D": tmp_path / "d", "F": GOLDEN / "features.h5", "L": GOLDEN / "labels.h5",
             "C": GOLDEN / "checkpoint.pt", "S": ckpt}
    args = [str(subst.get(a, a)).replace("T/", f"{tmp_path}/") if a != "T" else str(tmp_path) for a in argv]
    res = runner.invoke(app, ["-q", *args])
    command = " ".join(argv[:2]) if argv[0] == "stylize" else argv[0]
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert lines[0].startswith(f"reid {command}: error: ") and words.replace("S:", f"{ckpt}:") in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "rb.toml", "small.pt", "topk.toml"]


def test_the_same_flags_where_they_apply_still_work(tmp_path):
    """The evaluate flags refused above run with their flag (ranks, re-ranking)."""
    from reidcli.io.h5 import read_features
    from tests.conftest import write_jpeg

    golden = read_features(GOLDEN / "features.h5")
    for rel in golden.split("query").paths + golden.split("gallery").paths:  # the images the grid draws
        write_jpeg(tmp_path / "data" / rel)
    png = tmp_path / "r.png"
    res = runner.invoke(app, ["-q", "evaluate", str(GOLDEN / "features.h5"), "--rerank", "--k1", "4", "--k2", "2",
                              "--lambda", "0.2", "--ranks-png", str(png), "--top", "3", "--n-queries", "2",
                              "--ranks-queries", "worst", "--image-root", str(tmp_path / "data"), "--json"])
    assert res.exit_code == 0, res.output
    import json

    out = json.loads(res.stdout)
    assert out["rerank_options"] == {"k1": 4, "k2": 2, "lambda": 0.2} and png.is_file()


def test_library_callers_get_the_same_refusals(tmp_path):
    import pytest

    from reidcli.eval.api import Options, evaluate_file
    from reidcli.plot.figures import plot
    from reidcli.utils.params import ParamError

    with pytest.raises(ParamError, match="^k1 does not apply without --rerank"):
        evaluate_file(GOLDEN / "features.h5", Options(k1=5))
    with pytest.raises(ParamError, match="^shot does not apply to the market protocol"):
        evaluate_file(GOLDEN / "features.h5", Options(shot="multi"))
    assert evaluate_file(GOLDEN / "features.h5", Options()).rerank_options is None
    with pytest.raises(ParamError, match="^perplexity does not apply without --tsne"):
        plot(GOLDEN / "labels.h5", tmp_path / "p.png", perplexity=5.0)


def test_stylize_apply_refuses_cuda_without_a_gpu(tmp_path):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    (tmp_path / "d").mkdir()
    res = runner.invoke(app, ["stylize", "apply", str(tmp_path / "d"), "--model", str(GOLDEN / "checkpoint.pt"),
                              "-o", str(tmp_path / "o"), "--device", "cuda"])
    assert res.exit_code == 1 and res.stderr.strip().splitlines() == [
        "reid stylize apply: error: --device cuda asked for CUDA but none is available; pass --device cpu"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
