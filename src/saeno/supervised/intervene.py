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
from os import PathLike
from typing import Any

import numpy as np
import torch
from torch import Tensor

from saeno.errors import SaenoError
from saeno.metrics import relative_l2 as rel_l2
from saeno.sae.supervised import LabelError, SupervisedSAE

Edit = Callable[[Tensor, np.ndarray], Tensor]


def set_label(
    codes: Mapping[str, np.ndarray], factors: Mapping[str, Sequence[str]], assignments: Mapping[str, str]
) -> dict[str, np.ndarray]:
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


def sae_edit(
    sae: SupervisedSAE,
    codes: Mapping[str, np.ndarray],
    new_codes: Mapping[str, np.ndarray],
    keep_error: bool = True,
) -> Edit:
    """The supervised SAE's edit for samples with ``codes`` switched to ``new_codes``."""
    factors = list(sae.factors)

    def edit(act: Tensor, rows: np.ndarray) -> Tensor:
        old = {f: _subset(codes, rows)[f] for f in factors}
        new = {f: _subset(new_codes, rows)[f] for f in factors}
        return sae.intervene(act, old, new, keep_error=keep_error).to(act.dtype)

    return edit


def array_edit(
    fn: Callable[[np.ndarray, dict, dict], np.ndarray],
    codes: Mapping[str, np.ndarray],
    new_codes: Mapping[str, np.ndarray],
) -> Edit:
    """Wrap a numpy baseline ``fn(a, codes, new_codes) -> a'`` as an edit."""

    def edit(act: Tensor, rows: np.ndarray) -> Tensor:
        out = fn(act.detach().cpu().numpy(), _subset(codes, rows), _subset(new_codes, rows))
        return torch.as_tensor(out, dtype=act.dtype, device=act.device)

    return edit


@torch.no_grad()
def run_edited(
    hooked: Any,
    x: Tensor | np.ndarray,
    hook: str,
    edit: Edit | None = None,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> Tensor:
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
        xb = x[start : rows[-1] + 1].to(device)
        if edit is None:
            outs.append(hooked(xb).cpu())
            continue

        def fn(act: Tensor, *, hook: Any, rows: np.ndarray = rows) -> Tensor:
            return edit(act, rows)

        outs.append(hooked.run_with_hooks(xb, fwd_hooks=[(hook, fn)]).cpu())
    return torch.cat(outs)


def score(
    preds: Mapping[str, Tensor | np.ndarray], y_cf: np.ndarray, fno_cf: Tensor | np.ndarray
) -> dict[str, dict[str, float]]:
    """Mean relative L2 of each method's prediction against the solver's counterfactual ``y_cf`` and
    against the FNO on the counterfactual input ``fno_cf``."""
    return {
        name: {"vs_solver": float(rel_l2(p, y_cf).mean()), "vs_fno_cf": float(rel_l2(p, fno_cf).mean())}
        for name, p in preds.items()
    }


def intervene(
    sae: Any,
    store: Any,
    model: Any,
    assign: Mapping[str, str] | Sequence[str],
    *,
    rows: np.ndarray | Sequence[int] | None = None,
    score_counterfactual: bool = False,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    trust: bool = False,
) -> dict[str, Any]:
    """Set labels of stored samples with a supervised SAE and run the edited FNO.

    For each row: encode the hook activation with the row's labels and nuisance, switch the labels in
    ``assign``, add the decoded change to the activation (:func:`sae_edit`) and run the rest of the FNO.

    Parameters
    ----------
    sae : SupervisedSAE or path
        The supervised SAE (or its folder).
    store : ActivationStore or path
        A store captured from a labelled dataset with the SAE's hook.
    model : module, HookedOperator, name or path
        The FNO that produced the store (checked against the SAE's fingerprint).
    assign : mapping or list of ``"factor=value"``
        The labels to set on every row.
    rows : array of int, optional
        Store rows to edit (default: all).
    score_counterfactual : bool
        Also solve the counterfactual (labelled Burgers benchmark stores) and score the edit.
    batch_size, device, trust
        FNO batch size, device, and whether a pickled neuraloperator checkpoint may be loaded.

    Returns
    -------
    dict
        ``arrays`` (``rows``, ``x``, ``y_pred``, ``y_edit``, ``labels/<f>``, ``new_labels/<f>``, and
        with scoring ``x_cf``, ``y_cf``, ``y_fno_cf``), ``scores`` (:func:`score`'s table or None),
        ``hook``, ``factors``, ``assign`` and ``changed`` (number of label changes).
    """
    from saeno.evaluation import as_hooked
    from saeno.store import ActivationStore
    from saeno.supervised.training import store_labels
    from saeno.train.checkpoint import load_sae

    if isinstance(sae, (str, PathLike)):
        sae = load_sae(sae, device=device)
    if not isinstance(sae, SupervisedSAE):
        raise SaenoError(
            f"the SAE is a {getattr(sae, 'architecture', type(sae).__name__)!r} one; "
            "an intervention needs a supervised SAE (saeno train --arch supervised)"
        )
    if isinstance(store, (str, PathLike)):
        store = ActivationStore.open(store)
    from saeno.errors import ModelMismatchError
    from saeno.hooking.fingerprint import fingerprint
    from saeno.store.checks import check_model, check_sae, resolve_hook

    hook = resolve_hook(store, sae.hook)
    hooked = as_hooked(model, trust=trust).to(device).eval()
    check_sae(store, sae)
    check_model(store, hooked)
    if sae.model_fingerprint and fingerprint(hooked.model) != sae.model_fingerprint:
        raise ModelMismatchError(
            "the model is not the one the SAE was trained on (fingerprints differ): "
            "pass the FNO that produced the store (model=..., CLI: --model)"
        )
    codes, factors = store_labels(store)
    codes = {f: codes[f] for f in sae.factors}
    factors = {f: factors[f] for f in sae.factors}
    rows = np.arange(store.n_rows) if rows is None else np.asarray(rows, dtype=np.int64)
    assign = parse_assignments(list(assign)) if not isinstance(assign, Mapping) else dict(assign)
    old = {f: c[rows] for f, c in codes.items()}
    new = set_label(old, factors, assign)
    x = torch.as_tensor(store.read("x", rows))
    clean = run_edited(hooked, x, hook, None, batch_size=batch_size, device=device)
    edited = run_edited(hooked, x, hook, sae_edit(sae, old, new), batch_size=batch_size, device=device)
    out: dict[str, Any] = {"rows": rows, "x": x.numpy(), "y_pred": clean.numpy(), "y_edit": edited.numpy()}
    out.update({f"labels/{f}": old[f] for f in factors})
    out.update({f"new_labels/{f}": new[f] for f in factors})
    scores = None
    if score_counterfactual:
        from saeno.supervised import benchmark_data as bd

        card = (store.attrs.get("dataset") or {}).get("card") or {}
        if card.get("name") != bd.CARD:
            raise SaenoError(
                f"scoring needs a store of the {bd.CARD} dataset; this one holds {card.get('name')!r}"
            )
        x_cf, y_cf = bd.counterfactual(
            store.read("index", rows),
            new,
            split=card.get("split", "train"),
            seed=card.get("seed"),
            resolution=int(x.shape[-1]),
            card=card,
        )
        fno_cf = run_edited(hooked, x_cf, hook, None, batch_size=batch_size, device=device)
        out.update({"x_cf": x_cf, "y_cf": y_cf, "y_fno_cf": fno_cf.numpy()})
        scores = score({"do nothing": clean, "supervised SAE": edited, "FNO(x_cf)": fno_cf}, y_cf, fno_cf)
    changed = int(sum((new[f] != old[f]).sum() for f in factors))
    return {
        "arrays": out,
        "scores": scores,
        "hook": hook,
        "factors": factors,
        "assign": assign,
        "changed": changed,
    }


def write_intervention(result: Mapping[str, Any], path: str | PathLike, **attrs: str) -> None:
    """Write :func:`intervene`'s arrays and settings to an HDF5 file (``attrs`` added as attributes)."""
    import json

    import h5py

    with h5py.File(path, "w") as f:
        for k, v in result["arrays"].items():
            f.create_dataset(k, data=np.asarray(v))
        f.attrs["set"] = ",".join(f"{k}={v}" for k, v in result["assign"].items())
        f.attrs["hook"] = result["hook"]
        f.attrs["factors"] = json.dumps(result["factors"])
        for k, v in attrs.items():
            f.attrs[k] = v


__all__ = [
    "Edit",
    "intervene",
    "write_intervention",
    "set_label",
    "parse_assignments",
    "sae_edit",
    "array_edit",
    "run_edited",
    "rel_l2",
    "score",
]
