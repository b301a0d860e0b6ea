"""Locate the data folders shipped with the package: hook presets (``hooks/``) and dataset cards (``datasets/``).

In an installed wheel they are the data packages ``saeno._hooks`` and ``saeno._datasets``; in a source
checkout that was not installed they are the folders at the repository root.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_REPO_ROOT = Path(__file__).resolve().parents[2]


def _folder(package_dir: str, repo_name: str) -> Path:
    """The installed data folder (``saeno/<package_dir>`` in a wheel) or the checkout's top-level one."""
    installed = Path(__file__).resolve().parent / package_dir
    if installed.is_dir():
        return installed
    return _REPO_ROOT / repo_name


def hooks_dir() -> Path:
    """Folder holding the hook-point presets (one JSON file per model family)."""
    return _folder("_hooks", "hooks")


def datasets_dir() -> Path:
    """Folder holding the dataset cards (one JSON file per dataset)."""
    return _folder("_datasets", "datasets")


def read_json(path: Path) -> Any:
    """Read a JSON file shipped with the package."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)
