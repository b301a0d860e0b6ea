"""The zoo's entries: which dataset, resolution, FNO and training recipe each model uses.

``FAST`` overrides give a tiny variant that trains in seconds, for tests and smoke runs: select it with
``fast=True`` or the environment variable ``SAENO_ZOO_FAST=1``.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from saeno.errors import SaenoError


@dataclass(frozen=True)
class FNOShape:
    """The neuraloperator ``FNO`` of a recipe (channels come from the dataset)."""

    n_modes: tuple[int, ...]
    """Fourier modes kept per dimension."""
    hidden_channels: int
    """Width of the FNO blocks."""
    n_layers: int
    """Number of FNO blocks."""


@dataclass(frozen=True)
class FitRecipe:
    """How a zoo FNO is trained (:func:`saeno.zoo.training.fit_loop`)."""

    n_train: int
    """Training samples."""
    n_test: int
    """Held-out samples the test relative L2 is measured on."""
    epochs: int
    """Passes over the training samples."""
    batch_size: int
    """Samples per step."""
    lr: float
    """Peak learning rate of the one-cycle schedule."""
    weight_decay: float
    """Weight decay of the optimiser."""
    seed: int = 0
    """Seed of the initialisation and the batch order."""
    cpu_threads: int | None = None
    """Intra-op threads on CPU under passive OpenMP waiting (None: torch's count; see
    ``saeno.zoo.training.cpu_threads`` and, for the choice, ``benchmarks/results/busy_machine.md``)."""
    optimizer: str = "adamw"
    """``"adamw"`` or ``"adam"``."""
    pct_start: float = 0.2
    """Share of the steps spent warming the learning rate up."""


@dataclass(frozen=True)
class ZooRecipe:
    """One zoo entry: dataset, training resolution, FNO and training recipe."""

    dataset: str
    """saeno dataset name (``saeno.datasets.load``)."""
    resolution: int
    """Training grid (points per dimension)."""
    fno: FNOShape
    """The FNO's shape."""
    train: FitRecipe
    """The training recipe."""

    def as_spec(self) -> dict[str, Any]:
        """The recipe as the JSON-able dict that :func:`get_spec` returns and records store."""
        spec = asdict(self)
        spec["fno"]["n_modes"] = list(self.fno.n_modes)
        defaults = {f.name: f.default for f in fields(FitRecipe)}
        for key in ("optimizer", "pct_start"):  # recorded only when a recipe departs from them
            if spec["train"][key] == defaults[key]:
                del spec["train"][key]
        return spec


# darcy-fno: 8 modes, 8 epochs at batch 32; the recipes tried and their errors and times are in
# benchmarks/results/zoo.md
RECIPES: dict[str, ZooRecipe] = {
    "darcy-fno": ZooRecipe(
        dataset="darcy",
        resolution=32,
        fno=FNOShape((8, 8), 32, 4),
        train=FitRecipe(n_train=1000, n_test=200, epochs=8, batch_size=32, lr=1e-2, weight_decay=1e-4),
    ),
    "burgers-fno": ZooRecipe(
        dataset="burgers",
        resolution=128,
        fno=FNOShape((16,), 48, 4),
        train=FitRecipe(n_train=1000, n_test=200, epochs=40, batch_size=16, lr=5e-3, weight_decay=1e-4),
    ),
    "navier-stokes-fno": ZooRecipe(
        dataset="navier_stokes",
        resolution=32,
        fno=FNOShape((8, 8), 32, 4),
        train=FitRecipe(n_train=500, n_test=100, epochs=20, batch_size=32, lr=1e-2, weight_decay=1e-4),
    ),
}

#: the labelled Burgers benchmark's FNO (``burgers-labelled-fno``, a bare FNO without normaliser,
#: trained by :func:`saeno.zoo.training.fit` on every label combination; see :mod:`saeno.zoo.labelled`)
LABELLED_FNO = ZooRecipe(
    dataset="burgers_labelled",
    resolution=64,
    fno=FNOShape((16,), 32, 4),
    train=FitRecipe(
        n_train=810,
        n_test=270,
        epochs=40,
        batch_size=32,
        lr=3e-3,
        weight_decay=1e-5,
        optimizer="adam",
        pct_start=0.1,
    ),
)

#: the recipes as dicts (what :func:`get_spec` copies)
SPECS: dict[str, dict[str, Any]] = {name: r.as_spec() for name, r in RECIPES.items()}

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
