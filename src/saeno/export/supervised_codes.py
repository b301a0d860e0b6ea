"""A supervised SAE's codes in the export: label masks from the store's labels, contribution maps as
code maps (:func:`saeno.supervised.report.contribution_maps`), and the per-sample parameters and labels
of the enrichment tables."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from saeno.export.inputs import (
    ExportError,
)

LabelCodes = tuple[dict[str, np.ndarray], dict[str, list[str]]]


def params_and_labels(
    store: Any, n: int, coded: LabelCodes | None
) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Per-sample numeric parameters and categorical labels of the first ``n`` rows.

    ``coded`` is :func:`store_label_codes` of the store. Labelled benchmarks store integer codes as ``params/label_<factor>`` with the category names in
    the dataset card (:func:`saeno.supervised.training.store_labels` reads both); these become
    labels, not numeric parameters. Otherwise ``store.labels`` maps a factor to its category names
    and the per-sample category is the integer code stored as the parameter of the same name
    (``params[factor][i]`` indexes the names); a factor whose ``labels`` entry already lists one
    value per sample is taken as is.
    """
    params = {str(k): np.asarray(v)[:n] for k, v in dict(getattr(store, "params", None) or {}).items()}
    labels: dict[str, list[str]] = {}
    if coded is not None:  # a labelled benchmark: codes in params/label_<factor>, names in the card
        label_codes, factors = coded
        for factor, cats in factors.items():
            labels[factor] = [cats[int(c)] for c in label_codes[factor][:n]]
            params.pop(f"label_{factor}", None)
        names: dict = {}
    else:
        names = dict(getattr(store, "labels", None) or {})
    for factor, cats in names.items():
        cats = [str(c) for c in cats] if not isinstance(cats, str) else []
        codes = params.get(str(factor))
        if codes is not None and codes.shape == (n,) and np.all(np.mod(codes, 1) == 0):
            ints = codes.astype(np.int64)
            if cats and ints.min() >= 0 and ints.max() < len(cats):
                labels[str(factor)] = [cats[i] for i in ints]
                params.pop(str(factor))
                continue
        if len(cats) >= n and n > len(set(cats)):
            labels[str(factor)] = cats[:n]
    numeric = {
        k: v.astype(np.float64)
        for k, v in params.items()
        if v.shape == (n,) and np.issubdtype(v.dtype, np.number)
    }
    return numeric, labels


def store_label_codes(store: Any) -> LabelCodes | None:
    """Per-row label codes and category names of a labelled store, or None if it has none."""
    from saeno.errors import LabelError
    from saeno.store.checks import label_codes

    try:
        return label_codes(store)
    except (LabelError, AttributeError, KeyError, ValueError):
        return None


def supervised_mask(sae: Any, coded: LabelCodes | None, n: int) -> torch.Tensor:
    """The ``(n, p)`` label mask of the first ``n`` rows, in the supervised SAE's concept order."""
    if coded is None:
        raise ExportError(
            "this is a supervised SAE, whose concepts are labels, but the store has "
            "no per-sample labels: export it with the labelled store it was trained on "
            "(captured from a labelled dataset such as burgers_labelled)"
        )
    codes, factors = coded
    missing = [f for f in sae.factors if f not in factors]
    if missing:
        raise ExportError(
            f"the SAE's label factors {missing} are not in the store (it has "
            f"{sorted(factors)}): export with the store the SAE was trained on"
        )
    mapped = {}
    for f, cats in sae.factors.items():
        names = [factors[f][int(c)] for c in codes[f][:n]]
        unknown = sorted(set(names) - set(cats))
        if unknown:
            raise ExportError(
                f"the store's rows carry {f} = {unknown}, which the SAE does not know "
                f"(its categories: {cats}): export with the store the SAE was "
                "trained on"
            )
        mapped[f] = np.array([cats.index(name) for name in names], dtype=np.int64)
    return sae.label_mask(mapped).cpu()


Encoder = Callable[[torch.Tensor, Sequence[int]], torch.Tensor]


def make_encoder(sae: torch.nn.Module, mask: torch.Tensor | None) -> Encoder:
    """``encode(a, rows) -> (B, p, *grid)`` codes; contribution maps for a supervised SAE."""
    if mask is None:
        return lambda a, rows: sae.encode(a)
    from saeno.supervised.report import contribution_maps

    return lambda a, rows: contribution_maps(sae, a, mask[torch.as_tensor(list(rows))])
