"""Where saeno caches what it generates: datasets and trained FNOs."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """Cache root: ``$SAENO_HOME`` if set, else ``~/.cache/saeno``."""
    root = os.environ.get("SAENO_HOME")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "saeno"
    return path


def data_dir() -> Path:
    """Folder for generated datasets (HDF5)."""
    return home() / "data"


def zoo_dir() -> Path:
    """Folder for trained zoo FNOs (safetensors + JSON)."""
    return home() / "zoo"
