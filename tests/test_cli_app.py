"""The `reid` app: help, version, entry points, error mapping, README coverage."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from reidcli import __version__
from reidcli.cli.app import COMMANDS, app
from reidcli.io import h5

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_command_with_purpose():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for name, _, purpose in COMMANDS:
        assert name in res.output
    for name, _, _ in COMMANDS:
        sub = runner.invoke(app, [*name.split(), "--help"])
        assert sub.exit_code == 0, name


def test_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"reidcli {__version__}"


def test_every_command_has_a_standalone_entry_point():
    text = (ROOT / "pyproject.toml").read_text()
    for name, module, _ in COMMANDS:
        assert f'reid-{name} = "reidcli.cli.app:{module}_main"' in text
        import reidcli.cli.app as mod

        assert callable(getattr(mod, f"{module}_main"))


def test_every_command_is_documented_in_readme():
    readme = (ROOT / "README.md").read_text()
    for name, _, _ in COMMANDS:
        assert re.search(rf"reid {name}\b", readme), f"README does not mention 'reid {name}'"


def test_info_on_features_file(tmp_path):
    s = h5.SplitFeatures(np.ones((2, 3), np.float32), ["a", "b"], np.array([1, 2]), np.array([0, 1]))
    h5.write_features(tmp_path / "f.h5", h5.FeaturesFile({"query": s}))
    res = runner.invoke(app, ["info", str(tmp_path / "f.h5")])
    assert res.exit_code == 0, res.output
    assert "features" in res.output and "query" in res.output
    res = runner.invoke(app, ["info", "--json", str(tmp_path / "f.h5")])
    assert '"format": "features"' in res.output


def test_info_errors_are_one_line_exit_1(tmp_path):
    (tmp_path / "x.h5").write_bytes(b"")
    for target in (tmp_path / "x.h5", tmp_path / "missing.h5"):
        res = runner.invoke(app, ["info", str(target)])
        assert res.exit_code == 1
        assert res.stderr.startswith("reid info: error: ")
        assert len(res.stderr.strip().splitlines()) == 1
        assert "Traceback" not in res.output + res.stderr


def test_bad_usage_exits_2():
    res = runner.invoke(app, ["info"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["no-such-command"])
    assert res.exit_code == 2


def test_installed_console_script_runs():
    exe = Path(sys.executable).parent / "reid-info"
    if not exe.exists():
        import pytest

        pytest.skip("reidcli is not installed as a package in this environment")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "reid info" in out.stdout


def test_log_records_are_one_line_each_when_stderr_is_a_file(synth_market, tmp_path):
    """stderr redirected to a file: each record is one unwrapped line (grep finds it whole),
    not rich's layout wrapped at 80 columns with indented continuation lines."""
    code = "import sys; from reidcli.cli.app import main; sys.argv = ['reid'] + sys.argv[1:]; main()"
    err = tmp_path / "err.txt"
    with open(err, "w") as fh:
        out = subprocess.run([sys.executable, "-c", code, "-v", "info", str(synth_market)], stdout=subprocess.PIPE,
                             stderr=fh, text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                                                        "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, err.read_text()
    summary = out.stdout.splitlines()[0]
    assert len(summary) > 100  # long enough to have been wrapped
    lines = err.read_text().splitlines()
    assert f"DEBUG    {summary}" in lines, lines
    assert not [ln for ln in lines if ln.startswith(" ")], lines


def test_global_flags_are_accepted_after_the_command(tmp_path):
    """`reid synth OUT -q` is `reid -q synth OUT`: no progress or messages on stderr."""
    from reidcli.cli.app import hoist_globals

    assert hoist_globals(["synth", "d", "-q", "--ids", "2"]) == ["-q", "synth", "d", "--ids", "2"]
    assert hoist_globals(["-v", "info", "x", "--", "-q"]) == ["-v", "info", "x", "--", "-q"]
    code = ("import sys; from reidcli.cli.app import main; sys.argv = ['reid'] + sys.argv[1:]; main()")
    args = ["synth", str(tmp_path / "d"), "--ids", "2", "--test-ids", "2", "--images-per-id", "2",
            "--height", "32", "--width", "16", "--force"]
    loud = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "COLUMNS": "100"})
    quiet = subprocess.run([sys.executable, "-c", code, *args[:2], "-q", *args[2:]], capture_output=True,
                           text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "COLUMNS": "100"})
    assert loud.returncode == quiet.returncode == 0, quiet.stderr
    assert loud.stderr.strip() and not quiet.stderr.strip()


def test_batch_size_and_num_instances_aliases(tmp_path, monkeypatch):
    """--num-instances is -K; --batch-size is P x K (torchreid / fast-reid), so P = B / K."""
    import reidcli.train.pretrain as pt

    seen = {}
    monkeypatch.setattr(pt, "pretrain", lambda data, out, **kw: seen.update(kw) or out)
    (tmp_path / "d").mkdir()  # DATA beside -o (an output inside an input folder is refused)
    base = ["pretrain", str(tmp_path / "d"), "-o", str(tmp_path / "m.pt")]
    res = runner.invoke(app, [*base, "--batch-size", "64", "--num-instances", "4"])
    assert res.exit_code == 0, res.output
    assert (seen["train"].p, seen["train"].k) == (16, 4)
    res = runner.invoke(app, [*base, "--batch-size", "64"])  # K keeps its default
    assert seen["train"].p * seen["train"].k == 64
    res = runner.invoke(app, [*base, "--batch-size", "32", "-P", "8", "-K", "4"])  # they agree: fine
    assert res.exit_code == 0 and (seen["train"].p, seen["train"].k) == (8, 4), res.output
    for bad, words in ((["--batch-size", "30", "-K", "4"], "--batch-size must be a multiple of k"),
                       (["--batch-size", "64", "-P", "8", "-K", "4"],
                        "--batch-size 64 contradicts p (identities per batch) 8 x k 4 = 32 images; give one")):
        res = runner.invoke(app, [*base, *bad])
        assert res.exit_code == 1 and words in res.stderr, res.output


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_batch_size_on_the_command_line_wins_over_a_config_files_or_recipes_p(tmp_path, monkeypatch, command):
    """Issue 16: flags on the command line win, --batch-size included: a --config file's (or
    a --recipe's) P yields to it (P = batch size / K, K from wherever it was set), and a file's
    batch size yields to a -P given."""
    import reidcli.train.finetune as ft
    import reidcli.train.pretrain as pt

    seen = {}
    (tmp_path / "d").mkdir()  # DATA beside -o (an output inside an input folder is refused)
    if command == "pretrain":
        monkeypatch.setattr(pt, "pretrain", lambda data, out, **kw: seen.update(kw) or out)
        base = ["pretrain", str(tmp_path / "d"), "-o", str(tmp_path / "m.pt")]
        recipe = ["--recipe", "csam-kd"]  # P 16 x K 4
    else:
        monkeypatch.setattr(ft, "finetune", lambda ckpt, labels, root, out, **kw: seen.update(kw) or out)
        (tmp_path / "m.pt").write_bytes(b"x")
        (tmp_path / "l.h5").write_bytes(b"x")
        base = ["finetune", "--ckpt", str(tmp_path / "m.pt"), "--labels", str(tmp_path / "l.h5"),
                str(tmp_path / "d"), "-o", str(tmp_path / "m2.pt")]
        recipe = ["--recipe", "mar"]  # P 92 x K 4
    cfg = tmp_path / "r.toml"
    cfg.write_text("ids-per-batch = 16\nK = 8\n")
    for extra, want in ((["--config", str(cfg), "--batch-size", "32"], (4, 8)),  # K 8 from the file
                        (["--config", str(cfg), "--batch-size", "32", "-K", "2"], (16, 2)),
                        ([*recipe, "--batch-size", "32"], (8, 4))):
        res = runner.invoke(app, [*base, *extra])
        assert res.exit_code == 0, res.output
        assert (seen["train"].p, seen["train"].k) == want, extra
    cfg.write_text("batch-size = 64\n")
    res = runner.invoke(app, [*base, "--config", str(cfg), "-P", "4"])
    assert res.exit_code == 0 and (seen["train"].p, seen["train"].k) == (4, 4), res.output
    cfg.write_text("batch-size = 64\nids-per-batch = 8\n")  # one file that contradicts itself
    res = runner.invoke(app, [*base, "--config", str(cfg)])
    assert res.exit_code == 1 and "contradicts p (identities per batch) 8 x k 4" in res.stderr, res.output


def test_every_flag_the_readme_names_exists():
    """A `--flag` in the README is an option of some command (docs/cli.md is every --help),
    and the README does not promise an offline run while the default pretrained weights
    download."""
    readme, cli = (ROOT / "README.md").read_text(), (ROOT / "docs" / "cli.md").read_text()
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", readme))
    pip = {"--no-deps"}  # bin/install-mediapipe's pip flag, not a reid option
    missing = sorted(f for f in flags - pip if not re.search(rf"{re.escape(f)}(?![\w-])", cli))
    assert not missing, f"README names flags no command has: {missing}"
    assert "Nothing is downloaded" not in readme and "--pretrained imagenet" in readme


def test_help_wraps_paragraphs_as_prose(monkeypatch):
    """A docstring's source line breaks do not reach --help: a paragraph is one run of text
    the terminal wraps (issue 16: finetune's help broke lines mid-sentence); indented and
    bulleted lines keep their breaks."""
    from reidcli.cli.common import prose

    assert prose("""One line
        and its continuation.

        Example:
          reid x a
          reid x b
        """) == "One line and its continuation.\n\nExample:\n  reid x a\n  reid x b"
    from typer.testing import CliRunner

    from reidcli.cli.app import app

    import typer.rich_utils

    # typer reads TERMINAL_WIDTH once, at import: bin/gen-cli-docs (tests/test_docs_cli.py) may
    # have imported it at 100 columns
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", None)
    out = CliRunner().invoke(app, ["finetune", "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": None}).output
    assert "two nets and their mean nets; the checkpoint carries all four" in out


def test_no_help_text_loses_brackets_to_rich_markup():
    """--help is rendered as rich markup, where ``[word]`` is a style tag and vanishes: the
    config help's ``[pretrain] / [finetune]`` tables and ``--method``'s ``[default: supervised]``
    were shown as ``in a  /  table`` and not at all. Every help text renders to itself (a
    literal bracket written ``\\[``), and the two texts read as written in the real --help."""
    import typer
    from rich.markup import render
    from typer.testing import CliRunner

    from reidcli.cli.app import app

    def walk(c, path):
        yield path, c
        for name, sub in getattr(c, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    eaten = []
    for path, c in walk(typer.main.get_command(app), "reid"):
        for name, text in [("(command)", c.help or "")] + [(p.name, getattr(p, "help", None) or "") for p in c.params]:
            if render(text).plain != text.replace("\\[", "["):
                eaten.append(f"{path} {name}")
    assert not eaten, eaten
    out = " ".join(re.sub(r"[│╭╮╰╯─]", " ", CliRunner().invoke(app, ["pretrain", "--help"], terminal_width=200).output).split())
    assert "at the top level or in a [pretrain] / [finetune] table" in out
    assert "supervised (ID + triplet loss on ground-truth labels). [default: supervised]" in out


def test_dataset_options_the_readme_names_are_reachable_from_the_command_line():
    """Issue 16: the README named dataset options (CUHK03 variant, RegDB trial, camera regex)
    no --help had. On the command line the first two are --format names; the --format help
    names them, every ``--format NAME`` of the README resolves to the option it implies;
    cam_regex is the flag --cam-regex, in the --help the README's layouts table points to."""
    from reidcli.data.layouts import OPTIONS, resolve_format

    readme = (ROOT / "README.md").read_text()
    out = " ".join(re.sub(r"[│╭╮╰╯─]", " ", CliRunner().invoke(app, ["features", "--help"], terminal_width=200).output).split())
    assert "cuhk03-labeled / cuhk03-detected: a CUHK03 variant; regdb-trial1 .. regdb-trial10: a RegDB trial" in out
    assert resolve_format("cuhk03-labeled") == ("cuhk03", {"cuhk03_variant": "labeled"})
    assert resolve_format("regdb-trial10") == ("regdb", {"regdb_trial": 10})
    named = set(re.findall(r"--format ([a-z0-9][a-z0-9-]*)", readme))
    assert {"cuhk03-labeled", "regdb-trial3"} <= named
    for name in named:
        resolve_format(name)  # raises on a name the command line would refuse
    for option in OPTIONS:  # no README flag for a dataset option but --cam-regex: --format names
        assert (f"--{option.replace('_', '-')}" in readme) == (option == "cam_regex")
    assert "--cam-regex" in out and "folder / unlabelled layouts: the camera id is the first group" in out
    assert "camera 0 from the command line" not in readme
    assert re.search(r"\| `folder` \|[^\n]*`--cam-regex 'c\(\\d\+\)'`", readme)
