"""The wheel ships the hook presets and dataset cards, and an installed saeno finds them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_installed_package_finds_presets_and_cards(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    code = (
        "import saeno, saeno.resources as r; "
        "print(saeno.__file__); print(r.hooks_dir()); "
        "print(sorted(p.name for p in r.hooks_dir().glob('*.json'))); "
        "print(sorted(p.stem for p in r.datasets_dir().glob('*.json')))"
    )
    env = dict(os.environ, PYTHONPATH=str(target))
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.splitlines()
    assert out[0].startswith(str(target))
    assert out[1].startswith(str(target))  # the installed copy, not the checkout's folder
    shipped_presets = sorted(p.name for p in (ROOT / "hooks").glob("*.json"))
    assert set(shipped_presets) <= set(eval(out[2]))
    assert "darcy" in eval(out[3])


@pytest.mark.parametrize(
    "verb, expected", [("capture", "PASSIVE"), ("demo", "PASSIVE"), ("train", "PASSIVE")]
)
def test_cli_chooses_openmp_wait_policy_by_verb(verb, expected):
    """Every verb switches OpenMP to passive waiting (saeno.threads, before torch loads); a user's value wins."""
    code = (
        "import os, sys; sys.argv = ['saeno', %r]; import saeno.cli.main; "
        "print(os.environ.get('OMP_WAIT_POLICY'))" % verb
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    assert out == str(expected)
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    assert out == "ACTIVE"
    env.pop("OMP_WAIT_POLICY")
    env["SAENO_THREADS"] = "spin"  # the opt-out keeps OpenMP's default
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    assert out == "None"
