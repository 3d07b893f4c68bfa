"""The declarative parameter checker (reidcli.utils.params) and its CLI flag mapping."""

import dataclasses
import math

import pytest

from reidcli.utils.params import Interval, Options, ParamError, check_params, check_value, reject_unknown


@pytest.mark.parametrize("value,ok", [(1, True), (0, False), (2.5, False), (True, False), ("3", False)])
def test_int_interval(value, ok):
    if ok:
        check_value("epochs", value, [Interval(int, 1, None)])
    else:
        with pytest.raises(ParamError, match=r"^epochs must be an int >= 1; got "):
            check_value("epochs", value, [Interval(int, 1, None)])


def test_float_interval_bounds_and_nan():
    c = [Interval(float, 0, 1, closed="right")]
    check_value("mu", 1, c)
    check_value("mu", 0.5, c)
    for bad in (0.0, 1.5, math.nan, -0.1):
        with pytest.raises(ParamError, match=r"mu must be a float in \(0, 1\]; got"):
            check_value("mu", bad, c)


def test_infinities_are_in_no_interval():
    """``--lr inf`` is refused like ``--lr nan`` (an unbounded interval is of finite numbers)."""
    import numpy as np

    for value in (math.inf, -math.inf, np.float32("inf"), np.float64("nan")):
        with pytest.raises(ParamError, match=r"^lr must be a float > 0; got "):
            check_value("lr", value, [Interval(float, 0, None, closed="neither")])
    check_value("lr", np.float32(1e30), [Interval(float, 0, None, closed="neither")])


def test_none_and_options():
    check_value("margin", None, [None, Interval(float, 0, None)])
    with pytest.raises(ParamError, match=r"margin must be a float >= 0 \(or None\); got -1"):
        check_value("margin", -1, [None, Interval(float, 0, None)])
    with pytest.raises(ParamError, match=r"optimizer must be one of adam, sgd; got 'rmsprop'"):
        check_value("optimizer", "rmsprop", [Options(("adam", "sgd"))])


def test_check_params_on_dataclass_names_the_field():
    @dataclasses.dataclass
    class Cfg:
        lr: float = 0.1
        p: int = 1

    with pytest.raises(ParamError) as e:
        check_params(Cfg(), {"lr": [Interval(float, 0, None, closed="neither")], "p": [Interval(int, 2, None)]})
    assert e.value.param == "p"


def test_reject_unknown_suggests():
    with pytest.raises(ParamError, match=r"alpah does not apply to --method mmt; did you mean 'alpha'\?"):
        reject_unknown(["alpah"], ["alpha", "mu"], what="--method mmt")


def test_cli_shows_the_flag_not_the_python_name():
    import typer
    from typer.testing import CliRunner

    from reidcli.cli.common import reid_command

    app = typer.Typer()

    @app.command()
    @reid_command("demo")
    def command(p: int = typer.Option(16, "--ids-per-batch", "-P")) -> None:
        check_value("p", p, [Interval(int, 2, None)])

    res = CliRunner().invoke(app, ["--ids-per-batch", "1"])
    assert res.exit_code == 1
    assert "reid demo: error: --ids-per-batch must be an int >= 2; got 1" in res.output
