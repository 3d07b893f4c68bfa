"""MRDA end to end on synthetic SYSU-MM01 data at 32x16 (CPU): a tiny `--method mrda` run
learns, its checkpoint embeds each image by its modality, `sysu-all` evaluates it; bad input."""

from __future__ import annotations

import json

import pytest

MRDA = {"method": "mrda", "arch": "mrda", "mrda_backbone": "resnet18_half", "pretrained": "none",
            "height": 32, "width": 16, "last_stride": 1, "p": 2, "k": 2, "warmup_epochs": 0, "workers": 0,
            "device": "cpu", "optimizer": "adam", "lr": 1e-3, "schedule": "constant", "flip": 0.0, "erasing": 0.0}


@pytest.fixture(scope="module")
def mrda_run(synth_sysu, tmp_path_factory):
    from reidcli.train.pretrain import pretrain_from_settings

    out = tmp_path_factory.mktemp("mrda") / "m.pt"
    pretrain_from_settings(synth_sysu, out, epochs=3, iters_per_epoch=4, log_every=1, **MRDA)
    rows = [json.loads(ln) for ln in out.with_name("m.log.jsonl").read_text().splitlines()]
    return out, rows


def test_tiny_mrda_run_trains_every_layer(mrda_run):
    """12 steps of 4 images cannot show learning on every CPU (at seeds 0-4 the total loss
    of the last epoch ranged from 0.83x to 1.30x the first's), so this asserts what does not
    depend on rounding: every term of eq. 23 is logged, finite, at every step, and every
    BatchNorm layer of the network moved off its initial (1, 0): gradients reached them all."""
    import math

    import torch

    from reidcli.io.ckpt import load_checkpoint

    ckpt, rows = mrda_run
    steps = [r for r in rows if r["type"] == "step"]
    epochs = [r for r in rows if r["type"] == "epoch"]
    assert len(steps) == 12 and len(epochs) == 3
    for row in steps:
        for key in ("loss", "id", "hc_tri", "mc", "ac"):  # every term of eq. 23 is on by default
            assert math.isfinite(row[key]), (key, row)
    state = load_checkpoint(ckpt)["model"]
    bn = [k[: -len(".running_mean")] for k in state if k.endswith(".running_mean") and k[:-13] + ".weight" in state]
    assert len(bn) > 10
    frozen = [k for k in bn if torch.equal(state[k + ".weight"], torch.ones_like(state[k + ".weight"]))
              and torch.equal(state[k + ".bias"], torch.zeros_like(state[k + ".bias"]))]
    assert not frozen, frozen


def test_features_record_modality_and_sysu_all_evaluates(mrda_run, synth_sysu, tmp_path):
    """`reid features` then `reid evaluate --protocol sysu-all`, through the CLI."""
    import numpy as np
    from typer.testing import CliRunner

    from reidcli.cli.app import app
    from reidcli.io.h5 import read_features

    ckpt, _ = mrda_run
    f = tmp_path / "f.h5"
    res = CliRunner().invoke(app, ["-q", "features", "--ckpt", str(ckpt), str(synth_sysu), "-o", str(f),
                                   "-j", "0", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    ff = read_features(f)
    for name, s in ff.splits.items():  # every split says each image's modality, the visible gallery too
        assert s.modality is not None, name
    q, g = ff.split("query"), ff.split("gallery")
    assert (q.modality == 1).all() and np.isin(q.camids, (2, 5)).all()  # infrared queries: SYSU cams 3, 6
    assert (g.modality == 0).all() and not np.isin(g.camids, (2, 5)).any()
    res = CliRunner().invoke(app, ["evaluate", str(f), "--protocol", "sysu-all", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["protocol"] == "sysu-all" and out["n_trials"] == 10 and 0 < out["mAP"] <= 1


def test_sysu_protocol_on_a_file_without_modality_fails(mrda_run, synth_sysu, tmp_path):
    from reidcli.features.extract import extract
    from reidcli.io.h5 import read_features, write_features

    ckpt, _ = mrda_run
    f = extract(ckpt, synth_sysu, tmp_path / "f.h5", workers=0, device="cpu", splits=["query", "gallery"])
    ff = read_features(f)
    for s in ff.splits.values():
        s.modality = None
    write_features(tmp_path / "old.h5", ff)
    _fails(["evaluate", tmp_path / "old.h5", "--protocol", "sysu-all", "--per-query", tmp_path / "pq.csv"],
           "the sysu-all protocol needs each image's modality", "--protocol market")
    assert not (tmp_path / "pq.csv").exists()


CLI = ["--method", "mrda", "--arch", "mrda", "--mrda-backbone", "resnet18_quarter", "--pretrained", "none",
       "--height", "32", "--width", "16", "--last-stride", "1", "--warmup-epochs", "0", "--workers", "0",
       "--device", "cpu", "--epochs", "1", "--iters-per-epoch", "1"]


def _fails(args, *words):
    from typer.testing import CliRunner

    from reidcli.cli.app import app

    res = CliRunner().invoke(app, ["-q", *map(str, args)])
    assert res.exit_code == 1, res.output
    err = res.stderr if hasattr(res, "stderr") else res.output
    errors = [ln for ln in err.splitlines() if ln.startswith("reid ") and ": error: " in ln]
    assert "Traceback" not in err and len(errors) == 1, err
    for w in words:
        assert w in errors[0], err


def test_mrda_on_one_modality_fails(tmp_path):
    from reidcli.data.synth import synthesize

    synthesize(tmp_path / "market", domain="market", ids=4, test_ids=2, images_per_id=4,
               height=32, width=16, seed=0)
    _fails(["pretrain", tmp_path / "market", "-o", tmp_path / "m.pt",
            *CLI, "-P", "2", "-K", "2"], "--method mrda needs visible and infrared")
    assert not list(tmp_path.glob("m.*"))  # no checkpoint, log or config.toml


def test_mrda_k_too_large_names_identities_and_suggests_k(synth_sysu, tmp_path):
    _fails(["pretrain", synth_sysu, "-o", tmp_path / "m.pt", *CLI, "-P", "2", "-K", "40"],
           "fewer than --images-per-id 40", "use -K")
    assert not list(tmp_path.glob("m.*"))  # no checkpoint, log or config.toml


def test_mrda_method_needs_mrda_arch(synth_sysu, tmp_path):
    args = [a if a != "mrda" or i != 3 else "resnet18_half" for i, a in enumerate(CLI)]
    args = args[:4] + args[6:]  # no --mrda-backbone (refused on its own without --arch mrda)
    _fails(["pretrain", synth_sysu, "-o", tmp_path / "m.pt", *args, "-P", "2", "-K", "2"], "use --arch mrda")
    assert not list(tmp_path.glob("m.*"))  # no checkpoint, log or config.toml


def test_regdb_trials_end_to_end(tmp_path):
    """`reid synth --domain regdb` -> a tiny MRDA run on trial 1 -> features of trials 1 and 2
    (`--format regdb-trialN`) -> `reid evaluate trial*.h5 --protocol regdb-v2i`."""
    from typer.testing import CliRunner

    from reidcli.cli.app import app
    from reidcli.data.synth import synthesize

    def ok(*args):
        res = CliRunner().invoke(app, ["-q", *map(str, args)])
        assert res.exit_code == 0, res.output
        return res.stdout

    data = tmp_path / "regdb"
    synthesize(data, domain="regdb", ids=3, test_ids=2, images_per_id=8, height=32, width=16, seed=0)
    ok("pretrain", data, "--format", "regdb-trial1", "-o", tmp_path / "m.pt", *CLI, "-P", "2", "-K", "2")
    for t in (1, 2):
        ok("features", "--ckpt", tmp_path / "m.pt", data, "--format", f"regdb-trial{t}", "-o",
           tmp_path / f"trial{t}.h5", "--split", "query", "--split", "gallery", "-j", "0", "--device", "cpu")
    out = json.loads(ok("evaluate", tmp_path / "trial1.h5", tmp_path / "trial2.h5", "--protocol", "regdb-v2i",
                        "--json"))
    assert out["n_files"] == 2 and all(f["n_query"] == 2 * 4 for f in out["files"])  # 2 ids x 4 visible
    import numpy as np

    assert out["mAP"] == pytest.approx(np.mean([f["mAP"] for f in out["files"]]))
