"""What users run as files: a plain script without a ``__main__`` guard, and ``saeno ... | head``."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import pytest


@pytest.mark.slow
def test_unguarded_script_generates_with_worker_processes(tmp_path):
    script = tmp_path / "user_script.py"
    script.write_text(
        textwrap.dedent("""
        import saeno
        path = saeno.datasets.generate("darcy", n=100, n_test=10, resolutions=[16], workers=2, progress=False)
        print("generated", path.name)
    """)
    )
    env = dict(os.environ, SAENO_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    res = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("generated") == 1  # the script ran once: not again in each worker
    assert "BrokenProcessPool" not in res.stderr


def test_main_module_is_hidden_from_workers_and_restored():
    from saeno.pde.generate import _main_module_hidden

    main = sys.modules["__main__"]
    before = (main.__dict__.get("__file__"), main.__dict__.get("__spec__"))
    with _main_module_hidden():
        from multiprocessing import spawn

        data = spawn.get_preparation_data("w")
        assert "init_main_from_path" not in data and "init_main_from_name" not in data
    assert (main.__dict__.get("__file__"), main.__dict__.get("__spec__")) == before


class _ClosedPipe(io.TextIOBase):
    def write(self, s):
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self):
        raise io.UnsupportedOperation("no file descriptor")


def test_broken_pipe_ends_quietly(monkeypatch, capsys):
    from saeno.cli.main import main

    monkeypatch.setattr(sys, "stdout", _ClosedPipe())  # `saeno data list | head -0`
    assert main(["data", "list"]) == 141  # no BrokenPipeError raised out of main
