"""Evaluate an SAE on captured activations: reconstruction, sparsity, operator loss recovered.

Metrics (``docs/method.md`` section 5), each computed over the store's rows at every resolution
given:

- reconstruction on raw activations: ``mse``, ``rel_l2`` (mean over samples of
  ``||a - a_hat|| / ||a||``), ``explained_variance`` ``1 - E||a - a_hat||^2 / E||a - mean(a)||^2``
  where ``mean(a)`` is the per-channel mean over the store's samples and grid points (its captured
  statistics), and ``explained_variance_mean_field``, the same against the mean *field* over the
  evaluated samples (a position-dependent baseline: the share of variance left once the mean field is
  known, which a model with a bias field gets for free); the same two on the SAE's normalised scale
  (``mse_normalized``, ``explained_variance_normalized``);
- sparsity of the codes: ``L0_concepts``, ``domain_fraction``, ``L0_per_point``, ``dead_fraction``
  and ``never_firing`` (never active in the ``density_window_samples`` evaluated samples),
  ``rare_concepts`` (active, in fewer than ``rare_density`` of them) and the log10 activation-density
  histogram;
- faithfulness to the FNO, when the FNO is given: splice ``a_hat`` in place of ``a`` at the hook and
  run the rest of the FNO. The headline is ``output_change``, the mean over samples of
  ``||f(a_hat) - f(a)|| / ||f(a)||`` against the FNO's own clean output (errors cannot cancel against
  the FNO's error on the solver's target). Against the dataset's target ``y``, with ``L`` the mean
  relative L2 error: ``loss_recovered = (L_ablate - L_sae) / (L_ablate - L_clean)`` where the
  ablation replaces ``a`` by its mean field over the evaluated samples, the absolute error added
  ``splice_added_abs = L_sae - L_clean`` and the relative ``splice_added_error = L_sae / L_clean - 1``
  (both can be negative when the splice's error happens to cancel part of the FNO's).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from saeno.errors import SaenoError, StoreError
from saeno.metrics import relative_l2
from saeno.sae.base import SparseAutoencoder
from saeno.sae.code_stats import CodeStats
from saeno.store.checks import check_sae, check_same_model, resolve_hook
from saeno.zoo.fast_forward import fast_forward

DENSITY_BINS = np.linspace(-6.0, 0.0, 25)


class ReferencePasses:
    """The FNO passes of an evaluation that do not depend on the SAE, kept for the next SAE.

    :func:`evaluate` given the same object for several SAEs of one FNO and hook (``reference=``)
    computes the clean output, its error and the mean-field ablation's error of each batch once,
    plus each store's mean field, and reuses them: one FNO pass per batch instead of three for every
    SAE after the first. The values are the ones a fresh evaluation computes (the same operations on
    the same batches). Entries are keyed by the FNO object, the store, the hook and the batch rows;
    the FNO must not change while the object is in use (make a new one after training it further).
    """

    def __init__(self) -> None:
        self.mean_fields: dict[tuple[Any, ...], torch.Tensor] = {}
        self.batches: dict[tuple[Any, ...], tuple[torch.Tensor, float, float]] = {}
        self._models: dict[int, Any] = {}  # held, so that no other model can take their ids

    def state(self) -> dict[str, dict[tuple[Any, ...], Any]]:
        """The entries without the FNO's identity (one FNO), for :meth:`from_state` in another process."""
        if len(self._models) > 1:
            raise SaenoError("ReferencePasses.state() holds the passes of one FNO; this object has several")
        return {
            "mean_fields": {k[1:]: v.cpu() for k, v in self.mean_fields.items()},
            "batches": {k[1:]: (v[0].cpu(), v[1], v[2]) for k, v in self.batches.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, dict[tuple[Any, ...], Any]], hooked: Any) -> ReferencePasses:
        """The passes of :meth:`state` for ``hooked``: the same FNO (same weights) loaded again, the
        stores named by the same URLs."""
        ref = cls()
        model = getattr(hooked, "model", hooked)
        ref._models[id(model)] = model
        ref.mean_fields = {(id(model), *k): v for k, v in state["mean_fields"].items()}
        ref.batches = {(id(model), *k): v for k, v in state["batches"].items()}
        return ref

    def key(self, hooked: Any, store: Any, hook: str, rows: np.ndarray | None) -> tuple[Any, ...]:
        """The key of one store's entries (``rows``: a batch's rows, or None for the mean field)."""
        model = getattr(hooked, "model", hooked)
        self._models[id(model)] = model
        return (
            id(model),
            str(getattr(store, "url", id(store))),
            hook,
            None if rows is None else rows.tobytes(),
        )


def _device_of(module: torch.nn.Module) -> torch.device:
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def _batches(n: int, batch_size: int, rows: np.ndarray | None) -> list[np.ndarray]:
    idx = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    return [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]


def _read(store: Any, name: str, rows: np.ndarray) -> np.ndarray:
    if len(rows) and np.all(np.diff(rows) == 1):
        return store.read(name, slice(int(rows[0]), int(rows[-1]) + 1))
    return store.read(name, rows)


def check_model_matches_store(hooked: Any, store: Any) -> None:
    """Raise ModelMismatchError (a StoreError) when the FNO given for splicing is not the one that
    produced ``store``."""
    from saeno.store.checks import check_model

    check_model(store, hooked)


def _hook_grid(store: Any, hook: str) -> tuple[int, ...]:
    """The grid of a hook's fields (a store without per-hook grids: the input grid)."""
    grid_of = getattr(store, "grid_of", None)
    if callable(grid_of) and hook in getattr(store, "hooks", [hook]):
        return tuple(grid_of(hook))
    return tuple(store.grid)


def _mean_field(store: Any, hook: str, batches: list[np.ndarray]) -> torch.Tensor:
    total: Any = None
    count = 0
    for rows in batches:
        a = _read(store, hook, rows)
        s = a.astype(np.complex128 if np.iscomplexobj(a) else np.float64).sum(0)
        total = s if total is None else total + s
        count += len(rows)
    return torch.from_numpy(total / max(count, 1))


@torch.no_grad()
def evaluate_store(
    sae: SparseAutoencoder,
    store: Any,
    hook: str,
    *,
    hooked: Any = None,
    rows: Sequence[int] | np.ndarray | None = None,
    batch_size: int = 16,
    progress: bool = True,
    rare_density: float = 0.01,
    reference: ReferencePasses | None = None,
) -> dict[str, Any]:
    """All metrics of ``sae`` on one store (one resolution).

    Parameters
    ----------
    sae
        A trained SAE (any architecture).
    store
        An :class:`saeno.ActivationStore` holding ``hook``.
    hook
        The hook the SAE reconstructs.
    hooked
        The FNO as a :class:`saeno.HookedOperator` for the operator metrics (None skips them); must be
        the model that produced the store.
    rows
        Store rows to evaluate (default all), e.g. a test split.
    batch_size
        Samples per batch.
    progress
        Show a progress bar.
    rare_density
        A concept active in fewer than this share of the evaluated samples (but in one at least)
        counts as rare.
    reference
        SAE-independent FNO passes shared with other evaluations (:class:`ReferencePasses`).

    Returns
    -------
    dict
        Metrics (floats), ``density`` (per-concept share of active samples), ``density_histogram``.
    """
    resolve_hook(store, hook)
    if hooked is not None:
        check_model_matches_store(hooked, store)
    device = _device_of(sae)
    rows_arr = None if rows is None else np.asarray(rows, dtype=np.int64)
    batches = _batches(store.n_rows, batch_size, rows_arr)
    if not batches:
        raise StoreError(f"no rows to evaluate in {store.url}")

    stats = CodeStats(sae.n_concepts)
    sums = {"se": 0.0, "se_norm": 0.0, "rel": 0.0, "n": 0, "values": 0}
    channel_mean, channel_var = store.stats(hook)
    ch_mean = torch.as_tensor(channel_mean)
    var_sum = 0.0
    norm_sum = norm_sq = torch.zeros((), dtype=torch.float64)  # per normalised channel, over rows
    norm_count = 0  # values per normalised channel
    ops = None
    field_key = None
    if reference is not None:
        field_key = reference.key(hooked, store, hook, None) + (
            None if rows_arr is None else rows_arr.tobytes(),
        )
    if reference is not None and field_key in reference.mean_fields:
        mean_field = reference.mean_fields[field_key]
    else:
        mean_field = _mean_field(store, hook, batches).to(device)
        if reference is not None and field_key is not None:
            reference.mean_fields[field_key] = mean_field
    var_field = 0.0
    if hooked is not None:
        if "y" not in store:
            raise StoreError(
                f"the store {store.url} has no dataset targets 'y': capture it from a "
                "dataset with targets to compute the operator loss"
            )
        ops = {"clean": 0.0, "sae": 0.0, "ablate": 0.0, "change": 0.0}

    hook_grid = _hook_grid(store, hook)
    bar = tqdm(
        batches, desc=f"eval {hook} @ {'x'.join(map(str, hook_grid))}", disable=not progress, unit="batch"
    )
    # the FNO's passes (clean, spliced, ablated) run its convolutions on the fast execution of
    # saeno.zoo.fast_forward: the same function up to the order of floating-point sums
    fast = fast_forward(getattr(hooked, "model", hooked)) if hooked is not None else contextlib.nullcontext()
    with fast:
        for idx in bar:
            a = torch.from_numpy(_read(store, hook, idx)).to(device)
            if not a.is_complex():
                a = a.float()
            z = sae.encode(a)
            a_hat = sae.decode(z)
            stats.update(z)
            err = (a - a_hat).abs().pow(2)
            sums["se"] += err.sum().item()
            sums["rel"] += relative_l2(a_hat, a).sum().item()
            sums["n"] += a.shape[0]
            sums["values"] += a.numel()
            centred = a - ch_mean.to(device=device, dtype=a.dtype).view(1, -1, *([1] * (a.dim() - 2)))
            var_sum += centred.abs().pow(2).sum().item()
            var_field += (a - mean_field.to(a.dtype)).abs().pow(2).sum().item()
            na, nh = sae.normalize(a), sae.normalize(a_hat)
            sums["se_norm"] += (na - nh).pow(2).sum().item()
            na64 = na.double().transpose(0, 1).reshape(na.shape[1], -1)
            norm_sum = norm_sum + na64.sum(1)
            norm_sq = norm_sq + na64.pow(2).sum(1)
            norm_count += na64.shape[1]
            if ops is not None:
                assert hooked is not None
                x = torch.from_numpy(_read(store, "x", idx)).to(device)
                y = torch.from_numpy(_read(store, "y", idx)).to(device)
                batch_key = None if reference is None else reference.key(hooked, store, hook, idx)
                known = None if reference is None or batch_key is None else reference.batches.get(batch_key)
                if known is None:

                    def ablate(act: torch.Tensor, *, hook: Any) -> torch.Tensor:
                        return mean_field.to(act.dtype).expand_as(act)

                    clean_out = hooked(x)
                    clean_err = relative_l2(clean_out, y).sum().item()
                    ablate_err = (
                        relative_l2(hooked.run_with_hooks(x, fwd_hooks=[(hook, ablate)]), y).sum().item()
                    )
                    if reference is not None and batch_key is not None:
                        reference.batches[batch_key] = (clean_out, clean_err, ablate_err)
                else:
                    clean_out, clean_err, ablate_err = known
                ops["clean"] += clean_err

                def splice(act: torch.Tensor, *, hook: Any) -> torch.Tensor:
                    return sae(act).to(act.dtype)

                spliced = hooked.run_with_hooks(x, fwd_hooks=[(hook, splice)])
                ops["sae"] += relative_l2(spliced, y).sum().item()
                ops["change"] += relative_l2(spliced, clean_out).sum().item()
                ops["ablate"] += ablate_err

    n = sums["n"]
    var_sum_norm = float((norm_sq - norm_sum.pow(2) / max(norm_count, 1)).sum())
    code = stats.compute()
    density = code.pop("density").numpy()
    log_density = np.log10(np.clip(density, 10.0 ** DENSITY_BINS[0], None))
    counts, _ = np.histogram(log_density[density > 0], bins=DENSITY_BINS)
    result: dict[str, Any] = {
        "grid": list(hook_grid),
        "input_grid": list(store.grid),
        "n_samples": n,
        "space": "raw activations (normalised metrics marked _normalized)",
        "mse": sums["se"] / sums["values"],
        "mse_normalized": sums["se_norm"] / sums["values"],
        "rel_l2": sums["rel"] / n,
        "explained_variance": 1.0 - sums["se"] / var_sum if var_sum > 0 else math.nan,
        "explained_variance_normalized": (
            1.0 - sums["se_norm"] / var_sum_norm if var_sum_norm > 0 else math.nan
        ),
        "explained_variance_mean_field": (1.0 - sums["se"] / var_field if var_field > 0 else math.nan),
        **{k: float(v) for k, v in code.items()},
        "dead_concepts": int((density == 0).sum()),
        "never_firing": int((density == 0).sum()),
        "rare_concepts": int(((density > 0) & (density < rare_density)).sum()),
        "rare_density": float(rare_density),
        "density_window_samples": int(n),
        "density": density.tolist(),
        "density_histogram": {
            "log10_edges": DENSITY_BINS.tolist(),
            "counts": counts.tolist(),
            "never_active": int((density == 0).sum()),
        },
    }
    if ops is not None:
        clean, with_sae, ablated = (ops[k] / n for k in ("clean", "sae", "ablate"))
        denom = ablated - clean
        result.update(
            {
                "output_change": ops["change"] / n,
                "splice_added_abs": with_sae - clean,
                "L_clean": clean,
                "L_sae": with_sae,
                "L_ablate": ablated,
                "loss_recovered": (ablated - with_sae) / denom if abs(denom) > 1e-12 else math.nan,
                "splice_added_error": with_sae / clean - 1.0 if clean > 0 else math.nan,
            }
        )
    return result


def as_sae(sae: Any) -> Any:
    """``sae`` itself, or the SAE in a folder written by :func:`saeno.save_sae` (a path)."""
    from os import PathLike, fspath

    if isinstance(sae, (str, PathLike)):
        from saeno.train.checkpoint import load_sae

        return load_sae(fspath(sae))
    return sae


def resolve_device(sae: Any, device: str | torch.device | None) -> torch.device:
    """The device a verb runs on: ``device`` when given, else the SAE's (CPU for a parameterless one)."""
    if device is not None:
        return torch.device(device)
    return _device_of(sae) if isinstance(sae, torch.nn.Module) else torch.device("cpu")


def as_hooked(model: Any, *, trust: bool = False) -> Any:
    """``model`` as a :class:`~saeno.hooking.HookedOperator`: a ``HookedOperator``, a torch module, a
    zoo or example name, or a path (see :func:`saeno.zoo.load_model`; pickles only with ``trust``).

    The one resolver of the FNO argument that ``evaluate``, ``explain_concepts``, ``export_concepts``
    and ``audit`` take as ``model``.
    """
    from pathlib import Path

    from saeno.hooking.hooked_operator import HookedOperator

    if model is None or isinstance(model, HookedOperator):
        return model
    if isinstance(model, (str, Path)):
        from saeno.hooking.examples import example_model, example_names
        from saeno.zoo import load_model

        name = str(model)
        model = example_model(name) if name in example_names() else load_model(name, trust=trust)
    if not isinstance(model, torch.nn.Module):
        raise SaenoError(
            f"model must be a HookedOperator, a torch module, a zoo name or a path, got {type(model).__name__}"
        )
    return HookedOperator(model)


def evaluate(
    sae: SparseAutoencoder,
    store: Any,
    hook: str | None = None,
    *,
    model: Any = None,
    hooked: Any = None,
    other_stores: Sequence[Any] = (),
    rows: Sequence[int] | np.ndarray | None = None,
    n_rows: int | None = None,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    progress: bool = True,
    reference: ReferencePasses | None = None,
) -> dict[str, Any]:
    """Evaluate an SAE at its training resolution and at other resolutions.

    Parameters
    ----------
    sae
        A trained SAE or its folder (:func:`saeno.save_sae`); ``sae.hook`` is used when ``hook`` is None.
    store
        The store at the training resolution (an :class:`saeno.ActivationStore` or its path).
    hook
        Hook name (default: the one the SAE was trained on).
    model
        The FNO for the operator metrics (see :func:`as_hooked`); None skips them.
    hooked
        Older name of ``model``.
    other_stores
        Stores of the same FNO and hook captured at other resolutions (objects or paths).
    rows
        Rows of ``store`` to evaluate (e.g. a held-out split); other stores are evaluated whole.
    n_rows
        Evaluate only the first ``n_rows`` rows of ``store`` (instead of ``rows``; default: all).
    batch_size
        Samples per batch.
    device
        Where the SAE and the FNO run (default: the SAE's device); both are moved there.
    progress
        Show progress bars.
    reference
        A :class:`ReferencePasses` shared by the evaluations of several SAEs of one FNO: the FNO's
        SAE-independent passes (clean output, mean-field ablation) run once per batch for all of them.

    Returns
    -------
    dict
        ``{"hook", "architecture", "results": [one dict per resolution]}``; a resolution the SAE
        cannot run at (a FlatSAE off its training grid) has ``"skipped"`` with the reason.
    """
    from saeno.store import ActivationStore

    def _open(s: Any) -> Any:
        return ActivationStore.open(s) if not hasattr(s, "hooks") else s

    if model is not None and hooked is not None:
        raise SaenoError("give the FNO once: model= (hooked= is its older name)")
    if rows is not None and n_rows is not None:
        raise SaenoError("give rows= or n_rows=, not both")
    sae = as_sae(sae)
    hooked = as_hooked(model if model is not None else hooked)
    store = _open(store)
    if n_rows is not None:
        rows = np.arange(min(int(n_rows), store.n_rows))
    dev = resolve_device(sae, device)
    sae.to(dev)
    if hooked is not None:
        getattr(hooked, "model", hooked).to(dev)
    hook = hook or sae.hook
    if hook is None:
        raise SaenoError("this SAE does not record its hook: pass hook=NAME (CLI: --hook NAME)")
    check_sae(store, sae)
    if hooked is not None and not hasattr(hooked, "run_with_hooks"):
        from saeno.hooking import HookedOperator

        hooked = HookedOperator(hooked)
    sae.eval()
    trained_on = sae.metadata.get("train_grids")

    def _trained(res: dict[str, Any], first: bool) -> bool:
        # the grids the trainer recorded; for an SAE without the record, the first store's
        if trained_on is None:
            return first
        return list(res.get("grid", [])) in [list(g) for g in trained_on]

    results = [
        evaluate_store(
            sae,
            store,
            hook,
            hooked=hooked,
            rows=rows,
            batch_size=batch_size,
            progress=progress,
            reference=reference,
        )
    ]
    results[0]["training_resolution"] = _trained(results[0], True)
    for other in other_stores:
        other = _open(other)
        check_same_model(store, other)
        resolve_hook(other, hook)  # a missing hook is an error, not a resolution the SAE skips
        try:
            res = evaluate_store(
                sae, other, hook, hooked=hooked, batch_size=batch_size, progress=progress, reference=reference
            )
        except SaenoError as exc:
            if isinstance(exc, StoreError):
                raise
            res = {"grid": list(_hook_grid(other, hook)), "input_grid": list(other.grid), "skipped": str(exc)}
        results.append(res | {"training_resolution": _trained(res, False)})
    return {"hook": hook, "architecture": sae.config()["architecture"], "results": results}


SUMMARY_KEYS = (
    "output_change",
    "explained_variance",
    "explained_variance_mean_field",
    "rel_l2",
    "L0_concepts",
    "L0_per_point",
    "domain_fraction",
    "dead_fraction",
    "rare_concepts",
    "loss_recovered",
    "splice_added_abs",
    "splice_added_error",
    "density_window_samples",
)


def summary_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per resolution with the headline metrics (for tables and CSV)."""
    rows = []
    for res in report["results"]:
        row: dict[str, Any] = {
            "architecture": report["architecture"],
            "hook": report["hook"],
            "grid": "x".join(map(str, res["grid"])),
        }
        if "skipped" in res:
            row["skipped"] = res["skipped"]
        else:
            row.update({k: res.get(k, math.nan) for k in SUMMARY_KEYS})
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`summary_rows` rows (what ``saeno eval`` prints)."""
    cols = ["architecture", "grid", *SUMMARY_KEYS]
    header = [
        "model",
        "grid",
        "out_chg",
        "EV",
        "EV_field",
        "relL2",
        "L0_c",
        "L0_pt",
        "domain",
        "dead",
        "rare",
        "loss_rec",
        "splice+abs",
        "splice+",
        "window",
    ]
    lines = [header]
    for r in rows:
        if "skipped" in r:
            lines.append([r["architecture"], r["grid"], f"n/a: {r['skipped']}"])
            continue
        cells = [
            str(r[c])
            if c in ("architecture", "grid")
            else (str(r[c]) if c in ("rare_concepts", "density_window_samples") else _fmt(r[c]))
            for c in cols
        ]
        lines.append(cells)
    widths = [
        max(len(line[i]) for line in lines if i < len(line) and len(line) == len(header))
        for i in range(len(header))
    ]
    out = []
    for line in lines:
        if len(line) != len(header):
            out.append("  ".join(line))
        else:
            out.append("  ".join(c.ljust(w) for c, w in zip(line, widths)))
    return "\n".join(out)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.4f}" if abs(v) < 0.1 else f"{v:.3f}"
