"""`--config recipe.toml` on pretrain and finetune: any flag as a key, the command line
wins, and the resolved settings are written beside the checkpoint and in its provenance."""

from __future__ import annotations

import pytest
from fixtures_contracts import reid, reid_ok

from reidcli.io.ckpt import load_checkpoint
from reidcli.train.settings import read_config, toml_text

BASE = ["--pretrained", "none", "--height", "32", "--width", "16", "--warmup-epochs", "0", "-j", "0",
        "--device", "cpu", "--epochs", "1"]


def test_read_config_keys_tables_and_aliases(tmp_path):
    f = tmp_path / "r.toml"
    f.write_text('lr = 0.1\n"--ids-per-batch" = 4\n[pretrain]\nlr = 0.2\nmilestones = [3, 5]\n'
                 '[finetune]\nlr = 0.3\niters = 7\n')
    assert read_config(f, "pretrain", {"ids_per_batch": "p"}) == {"lr": 0.2, "p": 4, "milestones": [3, 5]}
    assert read_config(f, "finetune", {"iters": "iters_per_epoch"}) == {
        "lr": 0.3, "ids_per_batch": 4, "iters_per_epoch": 7}
    settings = {"arch": "resnet50", "lr": 3.5e-4, "amp": True, "milestones": [40, 70], "gem_p": float("inf"),
                "pretrained": None}
    f.write_text(toml_text(settings, "pretrain", "header"))
    back = read_config(f, "pretrain")
    assert back == {k: v for k, v in settings.items() if v is not None}


@pytest.mark.parametrize("text,words", [
    ("lr = ", "is not valid TOML"),
    ("[cluster]\neps = 0.5\n", "unknown table [cluster]"),
    ("lr = 0.1\n\"--lr\" = 0.2\n", "set the same setting"),
])
def test_bad_config_is_one_line(tmp_path, text, words):
    f = tmp_path / "r.toml"
    f.write_text(text)
    (tmp_path / "d").mkdir()  # DATA beside -o: an output inside an input folder is refused first
    res = reid("pretrain", tmp_path / "d", "-o", tmp_path / "m.pt", "--config", f)
    assert res.exit_code == 1 and words in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "m.pt").exists()


def test_unknown_key_is_an_error(synth_market, tmp_path):
    f = tmp_path / "r.toml"
    f.write_text('arch = "resnet18_half"\nlearning_rate = 0.1\n')
    res = reid("pretrain", synth_market, "-o", tmp_path / "m.pt", "--config", f, *BASE)
    assert res.exit_code != 0 and "learning_rate" in res.stderr and "Traceback" not in res.output


def test_config_sets_flags_the_command_line_wins_and_the_resolved_config_repeats_the_run(synth_market, tmp_path):
    f = tmp_path / "recipe.toml"
    f.write_text('[pretrain]\narch = "resnet18_quarter"\nids-per-batch = 4\nK = 2\nlr = 0.01\nmax-iters = 1\n'
                 'seed = 5\ndevice = "cpu"\n')
    out = tmp_path / "m.pt"
    reid_ok("pretrain", synth_market, "-o", out, "--config", f, *BASE, "--seed", "7")
    ck = load_checkpoint(out)
    ts = ck["train_state"]["config"]
    assert (ts["p"], ts["k"], ts["lr"], ts["max_iters"]) == (4, 2, 0.01, 1)  # from the file
    assert ts["seed"] == 7  # the command line wins
    assert ck["model_config"]["arch"] == "resnet18_quarter"
    resolved = out.with_name("m.config.toml")
    again = read_config(resolved, "pretrain")
    assert again["seed"] == 7 and again["arch"] == "resnet18_quarter" and again["p"] == 4
    assert again["device"] == "cpu" and again["height"] == 32 and "erasing" in again  # every field
    record = ck["provenance"][-1]
    in_provenance = {k: list(v) if isinstance(v, tuple) else v for k, v in record["params"]["config"].items()
                     if v is not None}
    assert in_provenance == again
    assert any(i["path"] == str(f) for i in record["inputs"])
    # the resolved file alone repeats the run: same settings, same weights
    out2 = tmp_path / "m2.pt"
    reid_ok("pretrain", synth_market, "-o", out2, "--config", resolved, "-j", "0")
    assert read_config(out2.with_name("m2.config.toml"), "pretrain") == again
    ck2 = load_checkpoint(out2)
    assert all((ck2["model"][k] == v).all() for k, v in ck["model"].items())
