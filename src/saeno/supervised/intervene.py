"""Interventions: change a label, edit the activation at the hook, run the rest of the FNO.

An *edit* is a function ``edit(act, rows) -> act'`` on the hook's raw activation of a batch (``rows`` are
the batch's positions in the full request). :func:`run_edited` splices it into the FNO through
:class:`saeno.HookedOperator`, so the layers after the hook see the edited field. Edits provided:

- :func:`sae_edit`: the supervised SAE's ``a + D(m', n) - D(m, n)`` (labels switched, nuisance kept);
- :func:`array_edit`: any baseline ``(a, codes, new_codes) -> a'`` on numpy arrays (ridge decoder,
  mean-difference steering).

:func:`score` compares edited predictions with the solver's counterfactual solution and with the FNO run on
the counterfactual input (relative L2 per sample).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from saeno.errors import SaenoError
from saeno.sae.supervised import LabelError, SupervisedSAE

Edit = Callable[[Tensor, np.ndarray], Tensor]


def set_label(codes: Mapping[str, np.ndarray], factors: Mapping[str, Sequence[str]],
              assignments: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Copy of ``codes`` with ``factor = category`` set for every sample, for each assignment."""
    new = {f: np.array(c, dtype=np.int64, copy=True) for f, c in codes.items()}
    for f, cat in assignments.items():
        if f not in factors:
            raise LabelError(f"unknown factor {f!r}: the labels are {list(factors)}")
        if cat not in factors[f]:
            raise LabelError(f"unknown category {cat!r} of {f!r}: choose among {list(factors[f])}")
        new[f][:] = list(factors[f]).index(cat)
    return new


def parse_assignments(specs: Sequence[str]) -> dict[str, str]:
    """``["viscosity=high", "drift=left"]`` -> ``{"viscosity": "high", "drift": "left"}``."""
    out = {}
    for s in specs:
        if "=" not in s:
            raise LabelError(f"--set {s!r}: write factor=category")
        k, v = s.split("=", 1)
        out[k.strip()] = v.strip()
    if not out:
        raise LabelError("give at least one factor=category to set")
    return out


def _subset(codes: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {f: np.asarray(c)[rows] for f, c in codes.items()}


def sae_edit(sae: SupervisedSAE, codes: Mapping[str, np.ndarray],
             new_codes: Mapping[str, np.ndarray], keep_error: bool = True) -> Edit:
    """The supervised SAE's edit for samples with ``codes`` switched to ``new_codes``."""
    factors = list(sae.factors)

    def edit(act: Tensor, rows: np.ndarray) -> Tensor:
        old = {f: _subset(codes, rows)[f] for f in factors}
        new = {f: _subset(new_codes, rows)[f] for f in factors}
        return sae.intervene(act, old, new, keep_error=keep_error).to(act.dtype)

    return edit


def array_edit(fn: Callable[[np.ndarray, dict, dict], np.ndarray], codes: Mapping[str, np.ndarray],
               new_codes: Mapping[str, np.ndarray]) -> Edit:
    """Wrap a numpy baseline ``fn(a, codes, new_codes) -> a'`` as an edit."""

    def edit(act: Tensor, rows: np.ndarray) -> Tensor:
        out = fn(act.detach().cpu().numpy(), _subset(codes, rows), _subset(new_codes, rows))
        return torch.as_tensor(out, dtype=act.dtype, device=act.device)

    return edit


@torch.no_grad()
def run_edited(hooked: Any, x: Tensor | np.ndarray, hook: str, edit: Edit | None = None, *,
               batch_size: int = 64, device: str | torch.device | None = None) -> Tensor:
    """FNO predictions on ``x`` with ``edit`` applied at ``hook`` (None: the clean run).

    Parameters
    ----------
    hooked : HookedOperator
        The FNO (or any hooked operator).
    x : Tensor or ndarray
        Inputs ``(N, C, *grid)``.
    hook : str
        The hook to edit.
    edit : callable, optional
        ``edit(act, rows) -> act'``.
    batch_size : int
        Samples per forward pass.
    device : str or torch.device, optional
        Where to run (default: the model's device).

    Returns
    -------
    Tensor
        Predictions ``(N, C_out, *grid)`` on the CPU.
    """
    if hook not in hooked.hook_names:
        raise SaenoError(f"hook {hook!r} is not a hook of this model; it has {hooked.hook_names}")
    if device is None:
        device = next(hooked.parameters()).device
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x, dtype=torch.float32)
    outs = []
    for start in range(0, len(x), batch_size):
        rows = np.arange(start, min(len(x), start + batch_size))
        xb = x[start:rows[-1] + 1].to(device)
        if edit is None:
            outs.append(hooked(xb).cpu())
            continue

        def fn(act: Tensor, *, hook: Any, rows: np.ndarray = rows) -> Tensor:
            return edit(act, rows)

        outs.append(hooked.run_with_hooks(xb, fwd_hooks=[(hook, fn)]).cpu())
    return torch.cat(outs)


def rel_l2(pred: Tensor | np.ndarray, target: Tensor | np.ndarray) -> np.ndarray:
    """Per-sample relative L2 error ``||pred - target|| / ||target||``."""
    p = np.asarray(pred, dtype=np.float64).reshape(len(pred), -1)
    t = np.asarray(target, dtype=np.float64).reshape(len(target), -1)
    return np.linalg.norm(p - t, axis=1) / np.maximum(np.linalg.norm(t, axis=1), 1e-12)


def score(preds: Mapping[str, Tensor | np.ndarray], y_cf: np.ndarray,
          fno_cf: Tensor | np.ndarray) -> dict[str, dict[str, float]]:
    """Mean relative L2 of each method's prediction against the solver's counterfactual ``y_cf`` and
    against the FNO on the counterfactual input ``fno_cf``."""
    return {name: {"vs_solver": float(rel_l2(p, y_cf).mean()),
                   "vs_fno_cf": float(rel_l2(p, fno_cf).mean())} for name, p in preds.items()}


__all__ = ["Edit", "set_label", "parse_assignments", "sae_edit", "array_edit", "run_edited", "rel_l2",
           "score"]
