"""Every verb's ``--help`` prints: help texts (some generated from docstrings) are argparse templates."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from saeno.cli.main import build_parser


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


PARSERS = list(_parsers(build_parser()))


def test_the_parser_tree_holds_the_verbs():
    verbs = {path[0] for path, _ in PARSERS if len(path) == 1}
    assert {"demo", "capture", "train", "eval", "export"} <= verbs


@pytest.mark.parametrize("path", [p for p, _ in PARSERS], ids=lambda p: " ".join(p) or "saeno")
def test_help_formats(path):
    parser = dict(PARSERS)[path]
    text = parser.format_help()
    assert text.startswith("usage: ")


def test_train_help_from_the_command_line_names_the_schedule():
    proc = subprocess.run(
        [sys.executable, "-m", "saeno", "train", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "5%" in proc.stdout  # the literal percent sign of the --lr-schedule help
