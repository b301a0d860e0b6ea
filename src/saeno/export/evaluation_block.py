"""The report's ``evaluation`` block: :func:`saeno.evaluate`'s result, given or computed here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from saeno.errors import SaenoError
from saeno.export.inputs import (
    ExportError,
)
from saeno.export.schema import clean_number

#: metrics of :func:`saeno.evaluate` shown at the top of the report, in order
EVALUATION_KEYS = (
    "output_change",
    "explained_variance",
    "explained_variance_mean_field",
    "rel_l2",
    "loss_recovered",
    "splice_added_error",
    "splice_added_abs",
    "dead_fraction",
    "L0_concepts",
    "L0_per_point",
    "domain_fraction",
)


def evaluation_block(
    evaluation: Mapping[str, Any] | bool | None,
    sae: torch.nn.Module,
    store: Any,
    hook: str,
    hooked: Any,
    n: int,
    batch_size: int,
    progress: bool,
) -> dict | None:
    """The report's ``evaluation`` block from :func:`saeno.evaluate`'s result (or computed here).

    ``{"source": "given" | "computed", "results": [{"grid", "samples", metrics..., "skipped"}],
    "note": str | None}``; None when ``evaluation`` is False.
    """
    if evaluation is False:
        return None
    source = "given"
    note = None
    if evaluation is None or evaluation is True:
        from saeno.evaluation import evaluate

        source = "computed"
        try:
            evaluation = evaluate(
                sae,
                store,
                hook,
                hooked=hooked,
                rows=np.arange(n),
                batch_size=min(batch_size, 16),
                progress=progress,
            )
        except (SaenoError, AttributeError, TypeError, KeyError) as exc:
            # a store or SAE that evaluate cannot read: the report says so instead of failing
            return {"source": source, "results": [], "note": f"not evaluated: {exc}"}
        if hooked is None:
            note = "no model was given, so loss recovered and error added are not computed"
    if not isinstance(evaluation, Mapping) or "results" not in evaluation:
        raise ExportError(
            "evaluation must be the dict saeno.evaluate returns (with 'results'), "
            "True/None to evaluate here, or False"
        )
    rows = []
    for res in evaluation["results"]:
        row: dict[str, Any] = {
            "grid": [int(g) for g in res.get("grid", [])],
            "training_resolution": bool(res.get("training_resolution", False)),
        }
        if "skipped" in res:
            row["skipped"] = str(res["skipped"])
        else:
            for key in EVALUATION_KEYS:
                v = res.get(key)
                row[key] = None if v is None else clean_number(v)
            samples = res.get("n_samples", res.get("samples"))
            row["samples"] = None if samples is None else int(samples)
        rows.append(row)
    return {"source": source, "results": rows, "note": note}
