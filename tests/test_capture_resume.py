"""Kill a capture with SIGKILL mid-way, resume it, and compare with an uninterrupted run byte for byte."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from saeno.hooking import HookedOperator
from saeno.store import ActivationStore, capture

HOOKS = ["lifting.hook_out", "blocks.0.spectral.hook_out", "blocks.2.hook_out", "projection.hook_in"]
N, BATCH, CHUNK = 24, 3, 4

# builds the same model and data in the child and here
SETUP = textwrap.dedent(
    """
    import torch
    from neuralop.models import FNO
    torch.set_num_threads(1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = FNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=8, n_layers=4).eval()
    x = torch.randn(N, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    """
)

CHILD = textwrap.dedent(
    """
    import sys, time
    from saeno.hooking import HookedOperator
    from saeno.store import capture, writer
    writer.COMMIT_BYTES = 0  # a commit after every chunk, so that the kill leaves a partial store
    hooked = HookedOperator(model)
    hooked.add_hook("hook_out", lambda act, *, hook: time.sleep(0.15))  # slow, so the kill lands mid-run
    capture(hooked, x, HOOKS, sys.argv[1], batch_size=BATCH, chunk_size=CHUNK, progress=False)
    """
)


def _build() -> tuple[HookedOperator, torch.Tensor]:
    scope: dict = {"N": N}
    exec(SETUP, scope)  # noqa: S102 - our own constant source
    return HookedOperator(scope["model"]), scope["x"]


def _rows_written(path: Path) -> int:
    try:
        return int(json.loads((path / "zarr.json").read_text())["attributes"].get("rows_written", 0))
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".partial")
    }


def _kill_mid_capture(path: Path, kill_at_rows: int) -> None:
    script = f"N, BATCH, CHUNK, HOOKS = {N}, {BATCH}, {CHUNK}, {HOOKS!r}\n" + SETUP + CHILD
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    try:
        while _rows_written(path) < kill_at_rows:
            if proc.poll() is not None:
                pytest.fail(f"the capture ended before the kill: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the capture made no progress in 240 s")
            time.sleep(0.02)
        time.sleep(0.07)  # land somewhere inside the next chunk's forward or write
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_sigkill_then_resume_equals_uninterrupted_byte_for_byte(tmp_path: Path) -> None:
    killed = tmp_path / "killed.zarr"
    _kill_mid_capture(killed, kill_at_rows=8)

    # the killed store is consistent: its committed rows are readable and their stats are exact
    partial = ActivationStore.open(killed)
    assert 8 <= partial.n_rows < N and not partial.complete
    a = partial.read(HOOKS[2]).astype(np.float64)
    np.testing.assert_allclose(partial.stats(HOOKS[2])[1], a.var(axis=(0, 2, 3)), rtol=1e-10)

    hooked, x = _build()
    resumed = capture(hooked, x, HOOKS, killed, batch_size=BATCH, resume=True, progress=False)
    clean_path = tmp_path / "clean.zarr"
    clean = capture(hooked, x, HOOKS, clean_path, batch_size=BATCH, chunk_size=CHUNK, progress=False)

    assert resumed.n_rows == clean.n_rows == N and resumed.complete
    assert resumed.attrs == clean.attrs  # stats, rows_written, everything
    for name in clean.array_names():
        assert resumed.read(name).tobytes() == clean.read(name).tobytes(), name
    killed_files, clean_files = _files(killed), _files(clean_path)
    assert sorted(killed_files) == sorted(clean_files)
    for key, value in clean_files.items():
        assert killed_files[key] == value, key
