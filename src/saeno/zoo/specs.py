"""The zoo's entries: which dataset, resolution, FNO and training recipe each model uses.

``FAST`` overrides give a tiny variant that trains in seconds, for tests and smoke runs: select it with
``fast=True`` or the environment variable ``SAENO_ZOO_FAST=1``.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from saeno.errors import SaenoError

SPECS: dict[str, dict[str, Any]] = {
    "darcy-fno": {
        "dataset": "darcy",
        "resolution": 32,
        # 8 modes, 8 epochs at batch 32: test relative L2 0.036 at 32x32 and 0.052 at 64x64 in about
        # 100 s on 2 cores (cpu_threads: see saeno.zoo.training.cpu_threads). 12 modes x 12 epochs gave 0.026 / 0.044 in 230 s, too slow for the demo's
        # 5-minute budget (the FNO's complex spectral products dominate a CPU step); the
        # recipes tried are in benchmarks/results/zoo.md
        "fno": {"n_modes": [8, 8], "hidden_channels": 32, "n_layers": 4},
        "train": {"n_train": 1000, "n_test": 200, "epochs": 8, "batch_size": 32, "lr": 1e-2,
                  "weight_decay": 1e-4, "seed": 0, "cpu_threads": 1},
    },
    "burgers-fno": {
        "dataset": "burgers",
        "resolution": 128,
        "fno": {"n_modes": [16], "hidden_channels": 48, "n_layers": 4},
        "train": {"n_train": 1000, "n_test": 200, "epochs": 40, "batch_size": 16, "lr": 5e-3,
                  "weight_decay": 1e-4, "seed": 0, "cpu_threads": 1},
    },
    "navier-stokes-fno": {
        "dataset": "navier_stokes",
        "resolution": 32,
        "fno": {"n_modes": [8, 8], "hidden_channels": 32, "n_layers": 4},
        "train": {"n_train": 500, "n_test": 100, "epochs": 20, "batch_size": 32, "lr": 1e-2,
                  "weight_decay": 1e-4, "seed": 0, "cpu_threads": 1},
    },
}

FAST: dict[str, Any] = {
    "fno": {"hidden_channels": 8, "n_layers": 2},
    "modes": 4,
    "train": {"n_train": 32, "n_test": 8, "epochs": 2, "batch_size": 8},
}


def fast_default() -> bool:
    """Whether ``SAENO_ZOO_FAST`` asks for the fast variants (``1``, ``true``, ``yes``)."""
    return os.environ.get("SAENO_ZOO_FAST", "").strip().lower() in ("1", "true", "yes")


def get_spec(name: str, fast: bool = False) -> dict[str, Any]:
    """The recipe of a zoo model (a deep copy), fast variant if asked.

    Raises
    ------
    SaenoError
        If ``name`` is not in the zoo (the message lists the names).
    """
    if name not in SPECS:
        raise SaenoError(f"no zoo model named {name!r}; available: {', '.join(sorted(SPECS))}")
    spec = copy.deepcopy(SPECS[name])
    spec["name"] = name
    spec["fast"] = bool(fast)
    if fast:
        spec["fno"].update(FAST["fno"])
        spec["fno"]["n_modes"] = [min(m, FAST["modes"]) for m in spec["fno"]["n_modes"]]
        spec["train"].update(FAST["train"])
    return spec
