"""``saeno.evaluate`` and ``saeno.store.capture`` stay functions after every submodule is imported."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import subprocess
import sys

import saeno


def _has_lens() -> bool:
    """Whether the optional transformer-lens extra (needed by ``saeno.lens``) is installed."""
    return importlib.util.find_spec("transformer_lens") is not None


def _every_module() -> list[str]:
    """Every submodule, discovered with pkgutil (``__main__`` runs the CLI; ``saeno.lens`` needs its extra)."""
    names = ["saeno"]
    for info in pkgutil.walk_packages(saeno.__path__, prefix="saeno."):
        if info.name.endswith("__main__") or (info.name.startswith("saeno.lens") and not _has_lens()):
            continue
        names.append(info.name)
    return names


def test_public_verbs_stay_callable_after_importing_every_submodule():
    code = (
        "import importlib, sys\n"
        f"for name in {_every_module()!r}:\n"
        "    importlib.import_module(name)\n"
        "import saeno, saeno.store\n"
        "assert callable(saeno.evaluate) and saeno.evaluate.__module__ == 'saeno.evaluation'\n"
        "assert callable(saeno.capture) and callable(saeno.store.capture)\n"
        "assert saeno.store.capture is saeno.capture\n"
        "for name in saeno.__all__:\n"
        "    getattr(saeno, name)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]


def test_lazy_names_match_their_modules():
    for name, module in saeno._LAZY.items():
        assert getattr(saeno, name) is getattr(importlib.import_module(module), name)
