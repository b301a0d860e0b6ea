"""The README's snippets, as a user would run them: Python blocks written to files and checked (they compile
and use no undefined name), every ``saeno ...`` command line accepted by the CLI's parser, and every
``saeno.<name>`` it mentions importable. The slow variant runs the Python blocks as scripts."""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def command_lines() -> list[str]:
    """``saeno VERB ...`` from bash blocks and inline code spans (placeholders like ``...`` skipped)."""
    found = []
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", README, flags=re.DOTALL):
        for part in re.split(r"&&|\n|;|\|", block):
            found.append(part.strip())
    # the pipeline table's CLI column holds whole command lines (prose also names bare verbs and flags)
    for row in (ln for ln in README.splitlines() if ln.startswith("|")):
        found += [c for c in re.findall(r"`(saeno [^`]+)`", row) if " --" in c or c.count(" ") >= 3]
    return [c for c in found if c.startswith("saeno ") and "..." not in c and "<" not in c]


def test_python_blocks_compile_and_define_every_name(tmp_path):
    blocks = python_blocks()
    assert blocks, "the README has Python snippets"
    for i, code in enumerate(blocks):
        path = tmp_path / f"readme_{i}.py"
        path.write_text(code, encoding="utf-8")
        compile(code, str(path), "exec")
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "ruff",
                "check",
                "--no-cache",
                "--isolated",
                "--select",
                "F821",
                str(path),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert res.returncode == 0, f"README Python block {i} uses undefined names:\n{res.stdout}"


def test_every_command_line_parses():
    from saeno.cli.main import build_parser

    lines = command_lines()
    assert lines, "the README shows saeno commands"
    parser = build_parser()
    for line in lines:
        argv = shlex.split(line)[1:]
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            if exc.code:
                pytest.fail(f"README command does not parse: {line}")


def test_every_saeno_name_exists():
    import saeno

    for dotted in sorted(set(re.findall(r"\bsaeno(?:\.[A-Za-z_]\w*)+", README))):
        obj = saeno
        for part in dotted.split(".")[1:]:
            if not hasattr(obj, part):
                try:
                    obj = importlib.import_module(f"{obj.__name__}.{part}")
                    continue
                except (ImportError, AttributeError):
                    pytest.fail(f"README names {dotted}, which does not exist")
            obj = getattr(obj, part)


@pytest.mark.slow
def test_python_blocks_run_as_scripts(tmp_path):
    env = dict(os.environ, SAENO_HOME=str(tmp_path / "home"), SAENO_ZOO_FAST="1", MPLBACKEND="Agg")
    for i, code in enumerate(python_blocks()):
        path = tmp_path / f"readme_{i}.py"
        path.write_text(code, encoding="utf-8")
        res = subprocess.run(
            [sys.executable, str(path)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        assert res.returncode == 0, f"README Python block {i} failed:\n{res.stderr[-3000:]}"
