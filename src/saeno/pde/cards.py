"""Dataset cards: one JSON file per generated benchmark in the top-level ``datasets/`` folder.

The schema is documented in ``datasets/README.md``. A card names the PDE (which solver generates it), the
physical and sampling parameters, the solve resolution, the stored resolutions, the default sizes and seed,
the per-sample parameters recorded beside each field and the categorical label factors (may be empty).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from saeno.errors import SaenoError
from saeno.resources import datasets_dir, read_json

REQUIRED_KEYS = (
    "name",
    "pde",
    "ndim",
    "x_channels",
    "y_channels",
    "parameters",
    "solve_resolution",
    "resolutions",
    "n_train",
    "n_test",
    "seed",
)

# the keys that change the generated numbers (a cached file is reused only when these agree)
GENERATION_KEYS = ("pde", "ndim", "parameters", "solve_resolution", "x_channels", "y_channels", "labels")


class CardError(SaenoError):
    """A dataset card that is missing or malformed."""


def card_names() -> list[str]:
    """Names of the dataset cards shipped with saeno (sorted)."""
    return sorted(p.stem for p in datasets_dir().glob("*.json"))


def validate_card(card: dict[str, Any], source: str = "card") -> dict[str, Any]:
    """Check that ``card`` has every required key with a sensible value; returns it unchanged.

    Raises
    ------
    CardError
        Naming the missing or wrong key.
    """
    missing = [k for k in REQUIRED_KEYS if k not in card]
    if missing:
        raise CardError(f"{source}: missing keys {missing}; see datasets/README.md for the card schema")
    res = card["resolutions"]
    if not res or any(int(r) <= 0 or int(card["solve_resolution"]) % int(r) for r in res):
        raise CardError(
            f"{source}: every resolution in {res} must divide solve_resolution {card['solve_resolution']} "
            "(coarse grids are subsamples of the solve grid)"
        )
    labels = card.get("labels", {})
    if not isinstance(labels, dict) or any(not isinstance(v, list) for v in labels.values()):
        raise CardError(f"{source}: 'labels' must map each factor to the list of its category names")
    return card


def load_card(name_or_path: str | Path) -> dict[str, Any]:
    """Read a dataset card by name (``darcy``) or from a JSON path.

    Raises
    ------
    CardError
        If no card has that name (the message lists the available ones) or the card is malformed.
    """
    path = Path(name_or_path)
    if path.suffix != ".json" or not path.is_file():
        path = datasets_dir() / f"{name_or_path}.json"
        if not path.is_file():
            raise CardError(
                f"no dataset card named {str(name_or_path)!r}; available: {', '.join(card_names())} "
                "(or pass a path to a data file)"
            )
    return validate_card(read_json(path), source=str(path))


def card_hash(card: dict[str, Any]) -> str:
    """Short hash of the fields of ``card`` that determine the generated numbers."""
    payload = json.dumps({k: card.get(k) for k in GENERATION_KEYS}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:10]
