"""Dataset cards: one JSON file per generated benchmark in the top-level ``datasets/`` folder.

The schema is documented in ``datasets/README.md``. A card names the PDE (which solver generates it), the
physical and sampling parameters, the solve resolution, the stored resolutions, the default sizes and seed,
the per-sample parameters recorded beside each field and the categorical label factors (may be empty).

A card may declare named *variants* (``"variants": {name: {...}}``): shifted versions of the benchmark from
the same solver, each overriding some ``parameters`` (and optionally ``default_resolution``,
``resolutions``, ``solve_resolution``). :func:`apply_variant` turns a card into its variant's card, named
``<base>@<variant>``, so its cached files never collide with the base dataset's. The parameter
``input_noise`` (relative standard deviation of additive Gaussian noise on the inputs) is understood by
every solver (see :mod:`saeno.pde.generate`).
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
VARIANT_SEPARATOR = "@"


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
    variants = card.get("variants", {})
    if not isinstance(variants, dict) or any(not isinstance(v, dict) for v in variants.values()):
        raise CardError(f"{source}: 'variants' must map each variant name to a dict of overrides")
    if any(VARIANT_SEPARATOR in str(v) for v in variants):
        raise CardError(f"{source}: variant names must not contain {VARIANT_SEPARATOR!r}")
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
        base, variant = split_variant(str(name_or_path))
        if variant is not None:
            return apply_variant(load_card(base), variant)
        path = datasets_dir() / f"{name_or_path}.json"
        if not path.is_file():
            raise CardError(
                f"no dataset card named {str(name_or_path)!r}; available: {', '.join(card_names())} "
                "(or pass a path to a data file)"
            )
    return validate_card(read_json(path), source=str(path))


# top-level card keys a variant may override besides "parameters"
VARIANT_KEYS = ("default_resolution", "resolutions", "solve_resolution")


def variant_names(card: dict[str, Any]) -> list[str]:
    """Names of the variants a card declares (in card order; empty when none)."""
    return list(card.get("variants", {}) or {})


def apply_variant(card: dict[str, Any], variant: str | None) -> dict[str, Any]:
    """The card of one of ``card``'s variants (``variant=None`` returns ``card`` unchanged).

    The result is named ``<base>@<variant>``, records ``variant`` and ``base``, merges the variant's
    ``parameters`` over the base ones and takes its other overrides; it declares no variants itself.

    Raises
    ------
    CardError
        If the card has no variant of that name (the message lists the ones it has) or the variant
        sets a key a variant cannot change.
    """
    if variant is None:
        return card
    variants = card.get("variants", {}) or {}
    if variant not in variants:
        have = ", ".join(variants) or "none"
        raise CardError(
            f"dataset {card['name']!r} has no variant {variant!r}; its variants: {have} "
            "(saeno data list shows them)"
        )
    spec = variants[variant]
    unknown = sorted(set(spec) - {"description", "parameters", *VARIANT_KEYS})
    if unknown:
        raise CardError(
            f"variant {variant!r} of {card['name']!r} sets {unknown}; a variant may set "
            f"'parameters', 'description' and {list(VARIANT_KEYS)}"
        )
    out = {k: v for k, v in card.items() if k != "variants"}
    out["name"] = f"{card['name']}{VARIANT_SEPARATOR}{variant}"
    out["base"] = card["name"]
    out["variant"] = variant
    out["variant_description"] = spec.get("description", "")
    out["parameters"] = {**card["parameters"], **spec.get("parameters", {})}
    for key in VARIANT_KEYS:
        if key in spec:
            out[key] = spec[key]
    return validate_card(out, source=f"variant {variant!r} of {card['name']!r}")


def split_variant(name: str) -> tuple[str, str | None]:
    """``"darcy@contrast"`` -> ``("darcy", "contrast")``; a plain name -> ``(name, None)``."""
    base, sep, variant = str(name).partition(VARIANT_SEPARATOR)
    return (base, variant) if sep else (base, None)


def card_hash(card: dict[str, Any]) -> str:
    """Short hash of the fields of ``card`` that determine the generated numbers."""
    payload = json.dumps({k: card.get(k) for k in GENERATION_KEYS}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:10]
