"""The eval library without the CLI: parameter checks (one message shape, mapped to the
flags by the CLI), the protocol registry, and `evaluate_file` writing what the CLI writes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.eval import Options, Outputs, evaluate, evaluate_file
from reidcli.eval.protocols import PROTOCOLS, Protocol, Trial
from reidcli.eval.report import to_json
from reidcli.utils.errors import ConfigError
from reidcli.utils.params import ParamError
from tests.test_eval_cli import make_file


def splits(seed=0, n_ids=5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, 8))
    qp, gp = np.arange(n_ids), np.repeat(np.arange(n_ids), 3)
    make = lambda p, cams: {"features": (centres[p] + 0.3 * rng.normal(size=(len(p), 8))).astype(np.float32),
                            "pids": p, "camids": cams, "modality": None, "paths": [f"{i}.jpg" for i in range(len(p))]}
    return make(qp, np.zeros(len(qp), np.int64)), make(gp, np.ones(len(gp), np.int64))


@pytest.mark.parametrize("kw,param,message", [
    ({"metric": "manhattan"}, "metric", "metric must be one of euclidean, cosine; got 'manhattan'"),
    ({"ap": "voc"}, "ap", "ap must be one of noninterp, devkit, sklearn; got 'voc'"),
    ({"ranks": (0, 5)}, "ranks", "ranks must be positive integers like 1,5,10,20; got (0, 5)"),
    ({"ranks": ()}, "ranks", "ranks must be positive integers like 1,5,10,20; got ()"),
    ({"lambda_value": 2.0}, "lambda_value", "lambda_value must be a float in [0, 1]; got 2.0"),
    ({"k1": 0}, "k1", "k1 must be an int >= 1; got 0"),
    ({"shot": "triple"}, "shot", "shot must be one of single, multi; got 'triple'"),
    ({"trials": 0}, "trials", "trials must be an int >= 1; got 0"),
    ({"chunk": 0}, "chunk", "chunk must be an int >= 1 (or None); got 0"),
    ({"cam_filter": "yes"}, "cam_filter", "cam_filter must be true or false; got 'yes'"),
])
def test_bad_options_name_the_parameter(kw, param, message):
    q, g = splits()
    with pytest.raises(ParamError) as exc:
        evaluate(q, g, Options(**kw))
    assert exc.value.param == param and str(exc.value) == message


@pytest.mark.parametrize("args,line", [
    (["--lambda", "2"], "reid evaluate: error: --lambda must be a float in [0, 1]; got 2.0"),
    (["--ranks", "0,5"], ("reid evaluate: error: --ranks must be comma-separated positive integers like "
                         "1,5,10,20; got '0,5'")),
    (["--metric", "manhattan"], "reid evaluate: error: --metric must be one of euclidean, cosine; got 'manhattan'"),
    (["--shot", "x", "--protocol", "sysu-all"], "reid evaluate: error: --shot must be one of single, multi; got 'x'"),
    (["--protocol", "sysu"], ("reid evaluate: error: unknown protocol 'sysu'; did you mean 'sysu-all'? "
                             "(choices: market, regdb-i2v, regdb-v2i, sysu-all, sysu-indoor)")),
])
def test_cli_shows_the_flags(tmp_path, args, line):
    res = CliRunner().invoke(app, ["evaluate", str(make_file(tmp_path, images=False)), *args])
    assert res.exit_code == 1 and res.stderr.strip().splitlines() == [line], res.stderr


def test_a_registered_protocol_is_used_by_name():
    class FirstHalf(Protocol):
        """The market rule on the first half of the queries only, with a note."""

        def trials(self, query, gallery, opts):
            n = len(query["pids"])
            return [Trial(np.arange(n // 2), np.arange(len(gallery["pids"])))]

        def notes(self, opts, n_trials):
            return ["first half"]

    PROTOCOLS.add("first-half", FirstHalf("first-half"))
    try:
        q, g = splits()
        res = evaluate(q, g, Options(protocol="first-half"))
        assert res.protocol == "first-half" and res.metrics.n_query == 2 and res.notes == ["first half"]
        assert list(res.q_rows) == [0, 1]
    finally:
        PROTOCOLS._items.pop("first-half")
    with pytest.raises(ConfigError, match="unknown protocol 'first-half'"):
        evaluate(q, g, Options(protocol="first-half"))


def test_evaluate_file_writes_what_the_cli_writes(tmp_path):
    f = make_file(tmp_path)
    for image in (tmp_path / "data" / "query").iterdir():  # damaged: drawn as grey boxes, with a note
        image.write_bytes(b"not an image")
    out = Outputs(per_query=tmp_path / "pq.csv", ranks_png=tmp_path / "r.png", cmc_png=tmp_path / "c.png",
                  top=3, n_queries=2)
    res = evaluate_file(f, Options(rerank=True, k1=4, k2=2), outputs=out)
    rows = list(csv.DictReader((tmp_path / "pq.csv").read_text().splitlines()))
    assert len(rows) == res.metrics.n_query
    assert np.mean([float(r["ap"]) for r in rows if r["ap"]]) == pytest.approx(res.mean["mAP"], abs=1e-6)
    assert (tmp_path / "r.png").stat().st_size > 0 and (tmp_path / "c.png").stat().st_size > 0
    assert len(res.output_notes) == 4 and "2 of 8 images under" in res.output_notes[1]
    assert "could not be decoded" in res.output_notes[1]
    assert res.output_notes[2].endswith("(2 seeded sample queries x top 3 gallery images by re-ranked distance)")
    assert res.messages[-4:] == res.output_notes
    assert [n.split(" (")[0] for n in res.output_notes if n.startswith("wrote ")] == [
        f"wrote {tmp_path / name}" for name in ("pq.csv", "r.png", "c.png")]
    assert "notes" in res.as_dict() and not any("decoded" in n for n in res.as_dict()["notes"])
    cli = CliRunner().invoke(app, ["evaluate", str(f), "--rerank", "--k1", "4", "--k2", "2", "--json"])
    assert cli.exit_code == 0 and json.loads(cli.stdout) == json.loads(to_json(res))


def test_outputs_are_checked_before_anything_is_read(tmp_path):
    with pytest.raises(ParamError, match=r"^top must be an int in \[1, 50\]; got 0"):
        evaluate_file(tmp_path / "missing.h5", outputs=Outputs(top=0))


def test_ranking_advances_a_progress_bar_over_every_query(monkeypatch):
    """`reid evaluate` shows a bar over the queries ranked (issue 16: progress at real scale);
    the bar sees every query once, chunk by chunk."""
    import contextlib

    import reidcli.utils.progress as progress

    seen = []

    class Bar:
        def advance(self, n=1):
            seen.append(n)

    @contextlib.contextmanager
    def fake(description, total=None):
        seen.append((description, total))
        yield Bar()

    monkeypatch.setattr(progress, "progress_bar", fake)
    q, g = splits()
    evaluate(q, g, Options(chunk=1))
    n = len(q["pids"])
    assert seen[0] == ("evaluate", n) and seen[1:] == [1] * n
