"""`--cam-regex` on the commands that read a dataset (issue 16, "Docs that match"): the
folder / unlabelled layouts read each image's camera from a regex group matched against its
relative path; before, only `load_dataset(root, cam_regex=...)` from Python could."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from conftest import write_jpeg
from fixtures_contracts import reid, reid_ok

from reidcli.cli.app import app

H, W = 32, 16
REGEX = r"c(\d+)"
# split -> pid -> cameras in the file names (c2, c5, c7: ids 0, 1, 2 by rank)
TREE = {"train": {1: (2, 5), 2: (2, 5), 3: (5, 2), 4: (2, 5)},
        "query": {5: (2,), 6: (2,)},
        "gallery": {5: (5, 7), 6: (7, 5)}}
FLAGS = ["info", "features", "pretrain", "finetune", "extract-pose", "stylize fit", "stylize apply"]


def build_pid_folders(root: Path, tree=TREE) -> Path:
    """The labelled folder layout, split folders of ``<pid>/c<cam>_s1_<n>.jpg``, 32x16 JPEGs."""
    n = 0
    for split, pids in tree.items():
        for pid, cams in pids.items():
            for cam in cams:
                write_jpeg(root / split / f"{pid:04d}" / f"c{cam}_s1_{n:04d}.jpg", h=H, w=W, seed=n)
                n += 1
    return root


def expected_camids(paths) -> list[int]:
    """Camera ids as the README states them: the group's values ranked over the whole tree."""
    ranks = {c: i for i, c in enumerate(sorted({c for pids in TREE.values() for cams in pids.values() for c in cams}))}
    return [ranks[int(re.search(r"/c(\d+)_", p).group(1))] for p in paths]


def _ckpt(path: Path) -> Path:
    import torch

    from reidcli.io.ckpt import make_checkpoint, save_checkpoint
    from reidcli.models import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig(arch="resnet18_quarter", num_classes=4)
    net = build_model(cfg)
    ck = make_checkpoint(model_config=cfg.to_dict(), model_state=net.state_dict(), input_size=(H, W),
                         method="supervised", epoch=1, feat_dim=net.feat_dim)
    return save_checkpoint(path, ck)


def _option_names(argv: list[str]) -> set[str]:
    import typer

    cmd = typer.main.get_command(app)
    for name in argv:
        cmd = cmd.commands[name]
    return {o for p in cmd.params for o in getattr(p, "opts", [])}


@pytest.mark.parametrize("command", FLAGS)
def test_every_command_that_takes_format_takes_cam_regex(command):
    names = _option_names(command.split())
    assert "--format" in names and "--cam-regex" in names


def test_info_counts_the_cameras_of_the_regex(tmp_path):
    data = build_pid_folders(tmp_path / "pids")
    plain = json.loads(reid_ok("info", data, "--json").stdout)
    assert {s: v["cameras"] for s, v in plain["splits"].items()} == {"train": 1, "query": 1, "gallery": 1}
    info = json.loads(reid_ok("info", data, "--json", "--cam-regex", REGEX).stdout)
    assert {s: v["cameras"] for s, v in info["splits"].items()} == {"train": 2, "query": 1, "gallery": 2}
    assert info["meta"]["cameras"] == {"2": 0, "5": 1, "7": 2}


def test_features_records_the_cameras_of_the_regex(tmp_path):
    from reidcli.io.h5 import read_features

    data = build_pid_folders(tmp_path / "pids")
    out = tmp_path / "f.h5"
    reid_ok("features", data, "--ckpt", _ckpt(tmp_path / "m.pt"), "-o", out, "--cam-regex", REGEX,
            "--device", "cpu", "-j", "0", "-b", "8")
    ff = read_features(out)
    for split in ("train", "query", "gallery"):
        s = ff.splits[split]
        assert list(s.camids) == expected_camids(s.paths), split
    assert sorted(set(ff.splits["gallery"].camids.tolist())) == [1, 2]


@pytest.mark.parametrize("regex,words", [
    (r"c(\d+", "is not a valid regular expression"),
    (r"c\d+", "needs a group that captures the camera"),
])
def test_a_bad_regex_is_one_line_and_writes_nothing(tmp_path, regex, words):
    data = build_pid_folders(tmp_path / "pids")
    for argv, out in ((["info", data], None),
                      (["features", data, "--ckpt", _ckpt(tmp_path / "m.pt"), "-o", tmp_path / "f.h5"], tmp_path / "f.h5"),
                      (["pretrain", data, "-o", tmp_path / "p.pt", "--pretrained", "none"], tmp_path / "p.pt")):
        res = reid(*argv, "--cam-regex", regex)
        lines = res.stderr.strip().splitlines()
        assert res.exit_code == 1 and len(lines) == 1, res.output
        assert lines[0].startswith(f"reid {argv[0]}: error: --cam-regex '{regex}' {words}"), lines[0]
        assert "Traceback" not in res.output
        if out is not None:
            assert not out.exists() and not list(tmp_path.glob(f".{out.name}*"))


def test_cam_regex_on_a_file_is_refused(tmp_path):
    f = _ckpt(tmp_path / "m.pt")
    res = reid("info", f, "--cam-regex", REGEX)
    assert res.exit_code == 1 and "--cam-regex applies to a dataset folder or .csv list" in res.stderr


def _spy(monkeypatch) -> list[tuple[str, dict]]:
    import reidcli.data.layouts as layouts

    calls, real = [], layouts.load_dataset

    def spy(root, format=None, **kw):
        calls.append((Path(root).name, kw))
        return real(root, format, **kw)

    monkeypatch.setattr(layouts, "load_dataset", spy)
    return calls


STEP = ["--arch", "resnet18_quarter", "--pretrained", "none", "--height", str(H), "--width", str(W),
        "--ids-per-batch", "2", "--images-per-id", "2", "--max-iters", "1", "--epochs", "1", "--warmup-epochs", "0",
        "-j", "0", "--device", "cpu"]


def test_pretrain_passes_it_to_data_and_target_without_warning_noise(tmp_path, market_tree, monkeypatch):
    """One step on the folder tree with a Market-1501 --target: the regex reaches both reads,
    the market layout ignores it at debug level (no warning), the resolved config keeps it."""
    from reidcli.io.ckpt import load_checkpoint
    from reidcli.train.settings import read_config

    data = build_pid_folders(tmp_path / "pids")
    calls = _spy(monkeypatch)
    out = tmp_path / "m.pt"
    res = reid_ok("pretrain", data, "-o", out, "--target", market_tree, "--cam-regex", REGEX, *STEP)
    assert calls == [("pids", {"quiet_unused": True, "cam_regex": REGEX}),
                     (market_tree.name, {"quiet_unused": True, "cam_regex": REGEX})]
    assert "does not apply" not in res.stderr
    assert read_config(out.with_suffix(".config.toml"), "pretrain")["cam_regex"] == REGEX
    assert load_checkpoint(out)["provenance"][-1]["params"]["config"]["cam_regex"] == REGEX


def test_a_config_file_key_sets_it_and_a_lone_dataset_that_cannot_use_it_warns(tmp_path, market_tree, monkeypatch):
    calls = _spy(monkeypatch)
    cfg = tmp_path / "r.toml"
    cfg.write_text("[pretrain]\ncam-regex = 'c(\\d+)'\n")
    res = reid_ok("pretrain", market_tree, "-o", tmp_path / "m.pt", "--config", cfg, *STEP)
    assert calls == [(market_tree.name, {"quiet_unused": False, "cam_regex": REGEX})]
    assert "option cam_regex does not apply to the market1501 layout" in " ".join(res.stderr.split())


def test_finetune_passes_it_to_target_and_source(tmp_path, market_tree, monkeypatch):
    """joint reads the target and a --source: the regex reaches both (spy), quietly ignored by
    the market source; the round runs one step."""
    from reidcli.features import extract
    from reidcli.io.h5 import LabelsFile, read_features, write_labels

    data = build_pid_folders(tmp_path / "pids")
    ck = _ckpt(tmp_path / "m.pt")
    ff = read_features(extract(ck, data, tmp_path / "f.h5", splits=["train"], cam_regex=REGEX, device="cpu",
                               workers=0))
    lab = write_labels(tmp_path / "l.h5", LabelsFile(labels=ff.splits["train"].pids - 1,
                                                    paths=list(ff.splits["train"].paths), attrs={"method": "test"}))
    calls = _spy(monkeypatch)
    res = reid_ok("finetune", data, "--ckpt", ck, "--labels", lab, "-o", tmp_path / "m2.pt", "--method", "joint",
                  "--source", market_tree, "--cam-regex", REGEX, "--epochs", "1", "--iters", "1", "--ids-per-batch", "2",
                  "--images-per-id", "2", "-j", "0", "--device", "cpu")
    assert [c[0] for c in calls] == ["pids", market_tree.name]
    assert all(kw == {"quiet_unused": True, "cam_regex": REGEX} for _, kw in calls)
    assert "does not apply" not in res.stderr


def test_load_datasets_warns_once_only_when_no_dataset_takes_it(tmp_path, market_tree, caplog):
    from reidcli.data.layouts import load_dataset, load_datasets

    data = build_pid_folders(tmp_path / "pids")
    with caplog.at_level(logging.DEBUG, logger="reidcli.data.layouts"):
        folder, market = load_datasets([(data, None), (market_tree, None)], cam_regex=REGEX)
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not warned and "does not apply to the market1501 layout" in caplog.text
    assert {r.camid for r in folder.split("train")} == {0, 1}
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="reidcli.data.layouts"):
        load_datasets([(market_tree, None), (market_tree, "market")], cam_regex=REGEX)
        load_datasets([(market_tree, None), (None, None), (folder, None)], cam_regex=REGEX)  # one read: its own warning
        load_dataset(data, cam_regex=REGEX)
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    line = "option cam_regex does not apply to the market1501 layout (only folder and unlabelled take it); ignored"
    assert warned == [line, line]  # one per call that read no dataset taking it, none for the folder
