"""Attribute the FNO's error to the SAE's concepts, per concept with bootstrap intervals over samples.

Three views, all on the stored prediction ``y_pred`` against the stored target ``y``:

- **ablation**: run the FNO with concept ``k`` removed at the hook, keeping the SAE's reconstruction
  error (``a -> a - (decode(z) - decode(z with z_k = 0))``, as the report's ablation), and report
  ``error_removed = E[err_clean - err_ablated]`` (relative L2 per sample): positive when the concept
  *adds* error, negative when the FNO needs it;
- **active vs inactive**: the mean per-point error where the concept's code is non-zero divided by
  the mean where it is zero (per-point error ``|y_pred - y| / RMS(y)`` of the sample);
- **worst points**: with the worst points the top ``1 - quantile`` of per-point errors over the
  store, the share of them where the concept is active, and its lift (that share over the concept's
  share of all points).

Intervals are percentile bootstrap intervals over samples (whole samples are resampled, so the
spatial correlation within a sample is kept).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from saeno.audit.features import point_error_field
from saeno.audit.stats import bootstrap_ratio_of_sums, bootstrap_weights
from saeno.metrics import relative_l2


def _interval(est: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> dict[str, list[float | None]]:
    def clean(v: np.ndarray) -> list[float | None]:
        return [None if not np.isfinite(x) else float(x) for x in np.atleast_1d(v)]

    return {"value": clean(est), "low": clean(lo), "high": clean(hi)}


def ablation_hook(sae: Any, concept: int) -> Any:
    """Hook function removing concept ``concept``'s contribution from the activation, keeping the SAE's
    reconstruction error: ``a -> a - (decode(z) - decode(z with z_k = 0))``."""

    def fn(act: torch.Tensor, *, hook: Any = None) -> torch.Tensor:
        z = sae.encode(act)
        z_off = z.clone()
        z_off[:, concept] = 0
        return act - (sae.decode(z) - sae.decode(z_off)).to(act.dtype)

    return fn


@torch.no_grad()
def _codes(sae: Any, a: np.ndarray, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(np.asarray(a)).to(device)
    return sae.encode(t if t.is_complex() else t.float())


@torch.no_grad()
def attribute_errors(
    sae: Any,
    store: Any,
    hook: str,
    rows: np.ndarray,
    *,
    hooked: Any = None,
    max_ablate: int = 8,
    quantile: float = 0.95,
    n_boot: int = 1000,
    level: float = 0.9,
    seed: int = 0,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Error attribution of one store (needs ``y`` and ``y_pred`` in the store).

    Parameters
    ----------
    sae, store, hook
        The SAE, an :class:`~saeno.ActivationStore` with ``hook``, ``y`` and ``y_pred``, the hook.
    rows
        Store rows to use.
    hooked
        The FNO as a :class:`~saeno.HookedOperator` for the ablation view (None skips it).
    max_ablate
        Concepts ablated: those active on the largest share of the worst points.
    quantile
        Per-point error quantile above which a point counts as worst-predicted.
    n_boot, level, seed
        Bootstrap resamples, interval level and seed.

    Returns
    -------
    dict
        ``active_vs_inactive``, ``worst`` (per concept, all ``p``) and ``ablation`` (the ablated
        concepts), each with ``value``/``low``/``high`` lists, plus ``notes``.
    """
    device = next(iter(sae.buffers())).device
    rows = np.asarray(rows, dtype=np.int64)
    n, p = len(rows), int(sae.n_concepts)
    notes: list[str] = []
    errs = []
    for lo in range(0, n, batch_size):
        idx = rows[lo : lo + batch_size]
        errs.append(
            point_error_field(
                np.asarray(store.read("y_pred", idx), dtype=np.float64),
                np.asarray(store.read("y", idx), dtype=np.float64),
            )
        )
    err = np.concatenate(errs)  # (n, *grid)
    threshold = float(np.quantile(err, quantile))
    n_points = int(np.prod(err.shape[1:]))
    ea = np.zeros((n, p))
    na = np.zeros((n, p))
    wa = np.zeros((n, p))
    e_tot = err.reshape(n, -1).sum(1)
    worst = (err > threshold).reshape(n, -1)
    w_tot = worst.sum(1).astype(np.float64)
    point_ok = True
    for lo in range(0, n, batch_size):
        idx = rows[lo : lo + batch_size]
        z = _codes(sae, store.read(hook, idx), device)
        if z.dim() < 3 or tuple(z.shape[2:]) != tuple(err.shape[1:]):
            point_ok = False
            notes.append(
                f"the codes' grid {tuple(z.shape[2:])} differs from the output grid "
                f"{tuple(err.shape[1:])}: the per-point views were skipped"
            )
            break
        act = (z != 0).flatten(2).cpu().numpy().astype(np.float64)  # (B, p, P)
        e = err[lo : lo + len(idx)].reshape(len(idx), 1, -1)
        ea[lo : lo + len(idx)] = (act * e).sum(2)
        na[lo : lo + len(idx)] = act.sum(2)
        wa[lo : lo + len(idx)] = (act * worst[lo : lo + len(idx), None, :]).sum(2)
    weights = bootstrap_weights(n, n_boot, seed)
    out: dict[str, Any] = {
        "n_samples": n,
        "quantile": quantile,
        "threshold": threshold,
        "level": level,
        "n_boot": n_boot,
        "notes": notes,
    }
    if point_ok:
        ei, ni = e_tot[:, None] - ea, n_points - na
        with np.errstate(divide="ignore", invalid="ignore"):
            num_b = (weights @ ea) / (weights @ na)
            den_b = (weights @ ei) / (weights @ ni)
            est = (ea.sum(0) / na.sum(0)) / (ei.sum(0) / ni.sum(0))
        from saeno.audit.stats import percentile_interval

        lo_, hi_ = percentile_interval(num_b / den_b, level)
        out["active_vs_inactive"] = {
            "ratio": _interval(est, lo_, hi_),
            "point_density": [float(v) for v in na.sum(0) / (n * n_points)],
        }
        share = bootstrap_ratio_of_sums(wa, np.repeat(w_tot[:, None], p, 1), weights, level)
        with np.errstate(divide="ignore", invalid="ignore"):
            base = na.sum(0) / (n * n_points)
            lift_b = ((weights @ wa) / (weights @ w_tot)[:, None]) / (
                (weights @ na) / (weights.sum(1) * n_points)[:, None]
            )
            lift = share[0] / base
        llo, lhi = percentile_interval(lift_b, level)
        out["worst"] = {"share_active": _interval(*share), "lift": _interval(lift, llo, lhi)}
        order = np.argsort(-np.nan_to_num(share[0], nan=-1.0), kind="stable")
        candidates = [int(k) for k in order if na[:, k].sum() > 0][:max_ablate]
    else:
        candidates = [int(k) for k in np.argsort(-na.sum(0), kind="stable")[:max_ablate]]
    if hooked is None:
        notes.append("no model given: the ablation view was skipped (pass the FNO to ablate concepts)")
        return out
    removed = np.zeros((n, len(candidates)))
    clean_err = np.zeros(n)
    for lo in range(0, n, batch_size):
        idx = rows[lo : lo + batch_size]
        x = torch.from_numpy(np.asarray(store.read("x", idx))).float().to(device)
        y = torch.from_numpy(np.asarray(store.read("y", idx))).float().to(device)
        e_clean = relative_l2(hooked(x), y)
        clean_err[lo : lo + len(idx)] = e_clean.cpu().numpy()
        for j, k in enumerate(candidates):
            with hooked.hooks(fwd_hooks=[(hook, ablation_hook(sae, k))]):
                e_abl = relative_l2(hooked(x), y)
            removed[lo : lo + len(idx), j] = (e_clean - e_abl).cpu().numpy()
    est, lo_, hi_ = bootstrap_ratio_of_sums(removed, np.ones_like(removed), weights, level)
    out["ablation"] = {
        "concepts": candidates,
        "error_removed": _interval(est, lo_, hi_),
        "error_clean": float(clean_err.mean()),
        "per_sample_error_removed": removed.tolist() if n * len(candidates) <= 20000 else None,
    }
    return out
