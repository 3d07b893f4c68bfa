"""`--recipe NAME`: every value of every paper recipe reaches the configs of its stage,
explicit settings win, and the CLI passes the recipe through (docs/recipes.md)."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pytest

from reidcli.recipes import RECIPES, stage_settings, with_recipe
from reidcli.utils.params import ParamError


def _values(stage: str):
    return [(name, key, value) for name in RECIPES.names()
            for key, value in RECIPES.get(name).stages.get(stage, {}).items()]


def _pretrain_resolved(settings: dict) -> dict:
    """Every field value of the configs `pretrain` would get from flat ``settings``."""
    from reidcli.train.pretrain import pretrain_arguments

    args = pretrain_arguments(settings)
    out = {}
    for part in ("model", "train", "augment", "options"):
        out.update(dataclasses.asdict(args[part]))
    out.update({f"rb_{k}": v for k, v in (args["model"].rbnet or {}).items()})
    out.update({f"mrda_{k}": v for k, v in (args["model"].mrda or {}).items()})
    out.update({k: v for k, v in args.items() if k not in ("model", "train", "augment", "options")})  # method
    return out


@pytest.mark.parametrize("name,key,value", _values("pretrain"))
def test_recipe_sets_pretrain_value(name, key, value):
    assert _pretrain_resolved(with_recipe(name, "pretrain", {}))[key] == value


@pytest.mark.parametrize("name,key,value", _values("finetune"))
def test_recipe_sets_finetune_value(name, key, value):
    from reidcli.train.finetune import finetune_arguments
    from reidcli.train.methods import method_options

    args = finetune_arguments(with_recipe(name, "finetune", {}))
    got = {"method": args["method"], **dataclasses.asdict(args["train"]), **dict(args["augment"]),
           **method_options(args["method"], args["options"]).to_dict()}
    assert got[key] == value


@pytest.fixture(scope="module")
def features_file(tmp_path_factory) -> Path:
    """Four tight identities of 20 images each: enough rows for k1 = 30."""
    from reidcli.io.h5 import FeaturesFile, SplitFeatures, write_features

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 32))
    x = np.concatenate([c + 0.05 * rng.normal(size=(20, 32)) for c in centres]).astype(np.float32)
    split = SplitFeatures(features=x, paths=[f"{i}.jpg" for i in range(80)], pids=np.repeat(np.arange(4), 20),
                          camids=np.tile(np.arange(2), 40))
    out = tmp_path_factory.mktemp("recipes") / "f.h5"
    write_features(out, FeaturesFile(splits={"train": split}, root="/data", attrs={"normalized": False}))
    return out


@pytest.mark.parametrize("name,key,value", _values("cluster"))
def test_recipe_sets_cluster_value(features_file, tmp_path, name, key, value):
    from reidcli.cluster import run
    from reidcli.io.h5 import read_labels

    run(features_file, tmp_path / "l.h5", recipe=name)
    assert read_labels(tmp_path / "l.h5").attrs[key] == value


def test_explicit_settings_win_and_none_means_not_given():
    got = with_recipe("rbnet", "cluster", {"eps": 0.5, "k1": None})
    assert got["eps"] == 0.5 and got["k1"] == 30 and got["method"] == "dbscan-jaccard"
    assert _pretrain_resolved(with_recipe("rbnet", "pretrain", {"epochs": 3}))["epochs"] == 3
    assert with_recipe(None, "pretrain", {"lr": 1.0}) == {"lr": 1.0}


def test_a_recipe_returns_copies():
    stage_settings("rbnet", "pretrain")["milestones"].append(99)
    assert stage_settings("rbnet", "pretrain")["milestones"] == [20, 40]


def test_method_other_than_the_recipes_is_an_error():
    with pytest.raises(ParamError, match="differs from recipe rbnet's finetune method 'mmt'"):
        with_recipe("rbnet", "finetune", {"method": "pseudo"})


def test_unknown_recipe_suggests_the_closest():
    from reidcli.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="did you mean 'rbnet'"):
        with_recipe("rbnt", "cluster", {})


@pytest.mark.parametrize("command,entry", [("pretrain", "reidcli.train.pretrain.pretrain_from_settings"),
                                           ("finetune", "reidcli.train.finetune.finetune_from_settings")])
def test_cli_passes_the_recipe_and_only_given_flags(command, entry, tmp_path, monkeypatch):
    import importlib

    from typer.testing import CliRunner

    from reidcli.cli.app import app

    seen = {}
    module, name = entry.rsplit(".", 1)

    def fake(*args, **kwargs):
        seen.update(kwargs)
        return tmp_path / "m.pt"

    monkeypatch.setattr(importlib.import_module(module), name, fake)
    data = tmp_path / "d"
    data.mkdir()
    (tmp_path / "c.pt").write_bytes(b"x")
    (tmp_path / "l.h5").write_bytes(b"x")
    args = [command, str(data), "-o", str(tmp_path / "m.pt"), "--recipe", "rbnet", "--lr", "0.01"]
    if command == "finetune":
        args += ["--ckpt", str(tmp_path / "c.pt"), "--labels", str(tmp_path / "l.h5")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert seen["recipe"] == "rbnet" and seen["lr"] == 0.01
    assert "epochs" not in seen and "method" not in seen


def test_finetune_trains_with_the_checkpoints_augmentation():
    from reidcli.data.transforms import AugmentConfig
    from reidcli.train.finetune import finetune_augment

    trained = dataclasses.asdict(AugmentConfig(height=64, width=32, resized_crop=True, jitter=0.3, pad=0))
    ck = {"input_size": [64, 32], "augment": trained}
    aug = finetune_augment(ck)
    assert aug.resized_crop and aug.jitter == 0.3 and aug.crop_scale == (0.64, 1.0)
    assert finetune_augment(ck, {"erasing": 0.0}).jitter == 0.3  # a change keeps the rest
    old = finetune_augment({"input_size": [256, 128]})  # written before augment was recorded
    assert old.pad == 10 and not old.resized_crop and old.jitter == 0.0


def test_mrda_recipe_is_the_papers_schedule_and_batch():
    """Zhang et al. 2023 sec. 3.2: lr 0.1 after warm-up, x0.1 at epochs 20 and 50 (0.01, then
    0.001); batches of 3 identities x (6 visible + 6 infrared) = 36 images."""
    from reidcli.data.sampler import CrossModalPKSampler
    from reidcli.train.optim import lr_factor
    from reidcli.train.pretrain import pretrain_arguments

    args = pretrain_arguments(with_recipe("mrda", "pretrain", {}))
    cfg, n = args["train"], 10  # 10 steps per epoch
    assert args["method"] == "mrda" and args["model"].arch == "mrda" and args["model"].gem_p == 3.0
    assert cfg.optimizer == "sgd" and cfg.momentum == 0.9 and cfg.warmup_epochs > 0
    o = args["options"]  # eq. 23: every term weighted 1; xi = 0.1 (eq. 18)
    assert (o.id_weight, o.hc_weight, o.mc_weight, o.ac_weight, o.label_smooth, o.mask) == (1, 1, 1, 1, 0.1, True)
    lr = {e: cfg.lr * lr_factor(e * n, n, cfg) for e in (0, 5, 10, 19, 20, 49, 50, 79)}
    assert lr[0] == pytest.approx(0.1 * cfg.warmup_factor) and lr[0] < lr[5] < lr[10]
    assert lr[10] == pytest.approx(0.1) and lr[19] == pytest.approx(0.1)
    assert lr[20] == pytest.approx(0.01) and lr[49] == pytest.approx(0.01)
    assert lr[50] == pytest.approx(0.001) and lr[79] == pytest.approx(0.001)
    labels = np.repeat(np.arange(5), 16)
    modality = np.tile(np.repeat([0, 1], 8), 5)
    batch = [i for i, _ in next(iter(CrossModalPKSampler(labels, modality, cfg.p, cfg.k, seed=0)))]
    assert len(batch) == 36 and len(set(labels[batch])) == 3
    assert (modality[batch] == 0).sum() == 18 and (modality[batch] == 1).sum() == 18


@pytest.mark.parametrize("name,stage", [(n, s) for n in RECIPES.names() for s in ("pretrain", "finetune", "cluster")
                                        if s not in RECIPES.get(n).stages])
def test_a_recipe_is_refused_on_a_stage_it_does_not_set(name, stage):
    with pytest.raises(ParamError, match=f"recipe {name} has no {stage} settings"):
        with_recipe(name, stage, {})


def test_cluster_cli_takes_the_recipe_and_its_explicit_flags_win(features_file, tmp_path):
    from typer.testing import CliRunner

    from reidcli.cli.app import app
    from reidcli.io.h5 import read_labels

    out = tmp_path / "l.h5"
    res = CliRunner().invoke(app, ["cluster", str(features_file), "-o", str(out), "--recipe", "csam-kd",
                                   "--eps", "0.3", "--keep-clusters", "2"])
    assert res.exit_code == 0, res.output
    attrs = read_labels(out).attrs
    assert attrs["eps"] == 0.3 and attrs["keep_clusters"] == 2  # given
    assert attrs["method"] == "dbscan-euclidean" and attrs["expand_threshold"] == 0.8  # the recipe's
    res = CliRunner().invoke(app, ["cluster", str(features_file), "-o", str(tmp_path / "x.h5"),
                                   "--recipe", "mar"])
    assert res.exit_code == 1 and "recipe mar has no cluster settings" in res.output
    assert not (tmp_path / "x.h5").exists()


# -- docs/recipes.md: a row per recipe value (flag or library name, and the value) --------

@functools.cache
def _doc_sections() -> dict[str, str]:
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / "recipes.md").read_text()
    return {m.group(1): body for m, body in ((re.match(r"`([a-z-]+)`", s), s)
                                            for s in re.split(r"^## ", text, flags=re.M)) if m}


@functools.cache
def _stage_flags() -> dict[str, dict[str, list[str]]]:
    """Per stage command: Python parameter name -> its option strings."""
    import typer.main

    from reidcli.cli.app import app

    group = typer.main.get_command(app)
    return {st: {p.name: list(p.opts) for p in group.commands[st].params if p.param_type_name == "option"}
            for st in ("pretrain", "finetune", "cluster")}


def _renderings(value) -> list[str]:
    if isinstance(value, bool):
        return ["on"] if value else ["off"]
    if isinstance(value, list):
        return [",".join(map(str, value)), ", ".join(map(str, value))]
    out = [str(value)]
    if isinstance(value, float):
        mantissa, exp = f"{value:e}".split("e")
        out += [f"{value:g}", f"{mantissa.rstrip('0').rstrip('.')}e{int(exp)}"]
        out += [str(int(value))] if value == int(value) else []
    return out


@pytest.mark.parametrize("name,stage,key,value", [(n, s, k, v) for s in ("pretrain", "finetune", "cluster")
                                                  for n, k, v in _values(s)])
def test_docs_recipes_md_has_a_row_with_every_recipe_value(name, stage, key, value):
    """Each value a recipe sets is in docs/recipes.md: a row of its stage in the recipe's
    table naming the flag (`--flag`) or, for a library-only setting, `key`, with the value in
    its recipe column."""
    section = _doc_sections()[name]
    opts = _stage_flags()[stage].get(key, [])
    rows = [line for line in section.splitlines() if line.startswith(f"| {stage} |")
            and (any(f"`{o}`" in line or f"`{o} " in line for o in opts) or f"`{key}`" in line)]
    assert rows, f"docs/recipes.md, `{name}`: no {stage} row names {opts or key}"
    recipe_column = [line.split("|")[4] for line in rows]  # | stage | setting | paper | recipe | note |
    assert any(r in cell for cell in recipe_column for r in _renderings(value)), \
        f"docs/recipes.md, `{name}`: the recipe column of the {stage} row of {opts or key} lacks {value!r}"


def test_docs_recipes_md_names_only_flags_its_stage_has():
    import re

    flags = {st: {o for opts in d.values() for o in opts} for st, d in _stage_flags().items()}
    wrong = [(name, m.group(1), f) for name, section in _doc_sections().items() for line in section.splitlines()
             if (m := re.match(r"\| (pretrain|finetune|cluster) \| ([^|]*)\|", line))
             for f in re.findall(r"`(--[a-z0-9-]+|-[A-Z])\b", m.group(2)) if f not in flags[m.group(1)]]
    assert not wrong, f"docs/recipes.md names flags its stage lacks (mark library settings '(library)'): {wrong}"


def test_a_round_trains_with_the_pretrain_runs_crop_and_jitter(tmp_path, monkeypatch):
    """Chen et al. 2022 and LSTM-UDA 2021 fine-tune with their pre-training augmentation:
    `pretrain` records it in the checkpoint, `finetune` builds its training transform from
    that record (and records it again for the next round) unless told otherwise."""
    import reidcli.data.transforms as T
    from reidcli.data.layouts import load_dataset
    from reidcli.data.synth import synthesize
    from reidcli.io.ckpt import load_checkpoint
    from reidcli.io.h5 import LabelsFile, write_labels
    from reidcli.models import ModelConfig
    from reidcli.train.config import FinetuneConfig, TrainConfig
    from reidcli.train.finetune import finetune
    from reidcli.train.pretrain import pretrain

    data = tmp_path / "d"
    synthesize(data, domain="market", ids=4, test_ids=2, images_per_id=4, height=32, width=16, seed=0)
    aug = T.AugmentConfig(height=32, width=16, resized_crop=True, crop_scale=(0.7, 1.0), jitter=0.3, erasing=0.0)
    src = pretrain(data, tmp_path / "m.pt", model=ModelConfig(arch="resnet18_quarter"), augment=aug, device="cpu",
                   train=TrainConfig(epochs=1, iters_per_epoch=1, p=2, k=2, workers=0, warmup_epochs=0,
                                     images_per_bn=0))
    assert load_checkpoint(src)["augment"] == dataclasses.asdict(aug)
    recs = load_dataset(data).split("train")
    write_labels(tmp_path / "l.h5", LabelsFile(labels=np.arange(len(recs)) % 2, paths=[r.path for r in recs]))
    used, real = [], T.build_train_transform
    monkeypatch.setattr(T, "build_train_transform", lambda a, *rest: used.append(a) or real(a, *rest))
    train = FinetuneConfig(iters_per_epoch=1, p=2, k=2, images_per_bn=0, workers=0)
    out = finetune(src, tmp_path / "l.h5", data, tmp_path / "r1.pt", method="pseudo", device="cpu", train=train)
    assert used == [aug]
    assert load_checkpoint(out)["augment"] == dataclasses.asdict(aug)  # round 2 inherits it too
    finetune(out, tmp_path / "l.h5", data, tmp_path / "r2.pt", method="pseudo", device="cpu", train=train,
             augment={"jitter": 0.0})
    assert used[-1] == dataclasses.replace(aug, jitter=0.0)  # a change keeps the rest
