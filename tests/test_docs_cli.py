"""docs/cli.md is the `--help` of every command, as bin/gen-cli-docs renders it."""

from __future__ import annotations

import difflib
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader

from fixtures_contracts import ROOT

REGENERATE = "PYTHONPATH=$PWD .venv/bin/python bin/gen-cli-docs"


def _generator():
    loader = SourceFileLoader("gen_cli_docs", str(ROOT / "bin" / "gen-cli-docs"))
    module = module_from_spec(spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def test_cli_md_is_current():
    gen = _generator()
    want = gen.render()
    have = gen.DOC.read_text(encoding="utf-8") if gen.DOC.exists() else ""
    if have != want:
        diff = "".join(list(difflib.unified_diff(have.splitlines(True), want.splitlines(True),
                                                 "docs/cli.md", "--help now", n=1))[:60])
        raise AssertionError(f"docs/cli.md is stale; regenerate it with '{REGENERATE}'\n{diff}")


def test_cli_md_covers_every_command():
    gen = _generator()
    text = gen.DOC.read_text(encoding="utf-8")
    paths = gen.command_paths()
    assert len(paths) > 10  # reid, its commands and the stylize subcommands
    for path in paths:
        assert f"## `{' '.join(['reid', *path])}`" in text
