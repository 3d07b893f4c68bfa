"""Typed method options: every registered method's Options dataclass round-trips and is
validated; options of another method are rejected; the flat settings of `reid pretrain`
build the same configs as the dataclasses; the --arch help lists the model registry."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from reidcli.train.methods import TRAINING_METHODS, get_method, method_options
from reidcli.train.methods.options import MethodOptions
from reidcli.utils.errors import ConfigError
from reidcli.utils.params import Interval, Options, ParamError

METHODS = TRAINING_METHODS.names()


def _bad_value(constraints: list):
    """A value outside every constraint of a field (None when none is easy to name)."""
    for c in constraints:
        if isinstance(c, Interval):
            if c.left is not None:
                return c.left - 1
            if c.right is not None:
                return c.right + 1
        if isinstance(c, Options):
            return "no-such-choice"
        if c == "boolean":
            return "yes"
    return None


def test_the_builtin_methods_are_registered():
    assert set(METHODS) >= {"supervised", "pseudo", "mmt", "kd", "joint"}


@pytest.mark.parametrize("name", METHODS)
def test_options_round_trip_and_defaults_validate(name):
    kind = TRAINING_METHODS.get(name).Options
    assert issubclass(kind, MethodOptions) and dataclasses.is_dataclass(kind)
    default = method_options(name)
    assert type(default) is kind and default == kind()
    assert kind(**default.to_dict()) == default
    assert method_options(name, default.to_dict()) == default
    assert set(kind.CONSTRAINTS) <= set(kind.field_names()), "a constraint names no field"
    assert set(kind.field_names()) <= set(kind.CONSTRAINTS), "a field without a constraint"


@pytest.mark.parametrize("name", METHODS)
def test_every_constrained_field_is_validated(name):
    kind = TRAINING_METHODS.get(name).Options
    checked = 0
    for field, constraints in kind.CONSTRAINTS.items():
        bad = _bad_value(constraints)
        if bad is None:
            continue
        with pytest.raises(ParamError, match=rf"^{field} must be ") as e:
            get_method(name, {field: bad})
        assert e.value.param == field
        checked += 1
    assert checked >= 1


@pytest.mark.parametrize("name", METHODS)
def test_unknown_option_names_the_method(name):
    with pytest.raises(ParamError, match=rf"^wings does not apply to --method {name} \(its options: "):
        get_method(name, {"wings": 1})


def test_option_of_another_method_is_an_error_with_a_suggestion():
    with pytest.raises(ParamError, match=r"^alpah does not apply to --method mmt; did you mean 'alpha'\?"):
        get_method("mmt", {"alpah": 0.9})
    with pytest.raises(ParamError, match="^alpha does not apply to --method pseudo"):
        get_method("pseudo", {"alpha": 0.9})
    other = TRAINING_METHODS.get("kd").Options()
    with pytest.raises(ConfigError, match="--method pseudo takes PseudoOptions, not KDOptions"):
        get_method("pseudo", other)


def test_cross_field_check_and_method_defaults():
    with pytest.raises(ConfigError, match="ce_weight and triplet_weight are both 0"):
        get_method("pseudo", {"ce_weight": 0.0, "triplet_weight": 0.0})
    assert get_method("joint").options.margin == 0.5 and get_method("pseudo").options.margin == 0.3
    assert get_method("kd").options.center_weight == 0.0035


def test_unknown_method_uses_the_registry_did_you_mean():
    with pytest.raises(ConfigError, match="unknown training method 'mmtt'; did you mean 'mmt'"):
        get_method("mmtt")


# -- reid pretrain: flat settings -> configs ------------------------------------------------
def test_pretrain_settings_build_the_dataclasses():
    from reidcli.data.transforms import AugmentConfig
    from reidcli.models import ModelConfig
    from reidcli.train.config import TrainConfig
    from reidcli.train.methods.options import SupervisedOptions
    from reidcli.train.pretrain import pretrain_arguments

    got = pretrain_arguments({"arch": "tiny", "epochs": 3, "milestones": "2,3", "height": 64,
                              "margin": 0.4, "device": "cpu", "rb_backbone": "resnet18_half"})
    assert got["model"] == ModelConfig(arch="tiny")  # rb_* only with --arch rbnet
    assert got["train"] == TrainConfig(epochs=3, milestones=[2, 3])
    assert got["augment"] == AugmentConfig(height=64)
    assert got["options"] == SupervisedOptions(margin=0.4) and got["device"] == "cpu"
    rb = pretrain_arguments({"arch": "rbnet", "rb_fuse": "conv1, layer2", "rb_shared": False})["model"]
    assert rb.rbnet == {"fuse": ["conv1", "layer2"], "shared": False}
    with pytest.raises(ParamError, match="^alpha does not apply to reid pretrain"):
        pretrain_arguments({"alpha": 0.9})
    with pytest.raises(ParamError, match="^milestones must be comma-separated epochs"):
        pretrain_arguments({"milestones": "40;70"})


def test_pretrain_cli_passes_only_given_flags(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import reidcli.train.pretrain as pt
    from reidcli.cli.app import app
    from reidcli.data.transforms import AugmentConfig
    from reidcli.models import ModelConfig
    from reidcli.train.config import TrainConfig
    from reidcli.train.methods.options import SupervisedOptions

    seen = {}
    monkeypatch.setattr(pt, "pretrain", lambda data, out, **kw: seen.update(kw) or out)
    (tmp_path / "d").mkdir()  # DATA beside -o (an output inside an input folder is refused)
    res = CliRunner().invoke(app, ["pretrain", str(tmp_path / "d"), "-o", str(tmp_path / "m.pt"),
                                   "--epochs", "5", "--no-amp", "--center-weight", "0.01"])
    assert res.exit_code == 0, res.output
    assert seen["model"] == ModelConfig(pretrained="imagenet")  # the CLI's own default; no rbnet
    # the default warm-up (10 of 80 epochs) and milestones (40, 70) scaled to the 5-epoch run
    assert seen["train"] == TrainConfig(epochs=5, amp=False, warmup_epochs=0.625, milestones=[2, 4])
    assert seen["augment"] == AugmentConfig() and seen["options"] == SupervisedOptions(center_weight=0.01)
    assert seen["resume"] is False and seen.get("format") is None and seen["device"] == "auto"
    assert not any(k.startswith("rb_") for k in seen)
    res = CliRunner().invoke(app, ["pretrain", str(tmp_path / "d"), "-o", str(tmp_path / "m.pt"), "--arch", "rbnet"])
    assert res.exit_code == 0, res.output
    assert seen["model"].rbnet == {}  # no --rb-* flag given: RBNetOptions' defaults, their one home
    res = CliRunner().invoke(app, ["pretrain", str(tmp_path / "d"), "-o", str(tmp_path / "m.pt"), "--arch", "rbnet",
                                   "--rb-fuse", "conv1,layer2", "--rb-separate"])
    assert res.exit_code == 0, res.output
    assert seen["model"].rbnet == {"fuse": ["conv1", "layer2"], "shared": False}


def test_pretrain_cli_bad_value_names_the_flag(tmp_path):
    from typer.testing import CliRunner

    from reidcli.cli.app import app

    (tmp_path / "d").mkdir()  # DATA beside -o (an output inside an input folder is refused)
    res = CliRunner().invoke(app, ["pretrain", str(tmp_path / "d"), "-o", str(tmp_path / "m.pt"), "-P", "1"])
    assert res.exit_code == 1
    err = res.stderr if hasattr(res, "stderr") else res.output
    assert "reid pretrain: error: --ids-per-batch must be an int >= 2; got 1" in err


# -- the model registry and --arch --------------------------------------------------------
def test_arch_help_lists_every_registered_model_and_alias():
    import typer

    from reidcli.cli.app import app
    from reidcli.models import MODELS

    cmd = typer.main.get_command(app).commands["pretrain"]
    arch = next(p for p in cmd.params if p.name == "arch").help
    for name in [*MODELS.names(), *MODELS.aliases()]:
        assert f"{name} (" in arch, name
    assert "tiny (= resnet18" in arch and "resnet18_half (ResNet-18 at half width" in arch


def test_tiny_is_resnet18_and_names_need_no_torch():
    from reidcli.models import MODELS

    assert MODELS.get("tiny") is MODELS.get("resnet18")
    code = ("import sys, reidcli.cli.app; from reidcli.models import MODELS; "
            "assert 'rbnet' in MODELS.names() and 'torch' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
