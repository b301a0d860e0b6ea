"""``explain_concepts``: explain each concept of an SAE by a probe field, scored on held-out samples.

Protocol (``docs/explain.md`` has the rationale):

1. The scored rows (default the store's first 100) are split by a seeded permutation into a
   *selection* half and a *held-out* half; no sample is in both.
2. A concept's code map is ``|z_k(x)|`` for function-valued codes (SAE-FNO) and the code ``z_k(x)``
   at each point for a pointwise SAE. Only the samples where the concept is active (its map is not
   zero everywhere) are scored; a concept active on fewer than ``min_samples`` samples of either half
   is *rare* and not counted as live.
3. On the selection half, for every probe: Spearman correlation over the points of those samples;
   the explanation is the probe with the largest ``|rho|`` and its sign. Its quantile ``q`` is the
   level whose upper set (signed probe above its ``q``-quantile) best matches (IoU) where the concept
   is active (code above a tenth of its 99th percentile on the selection half). A conjunction of two
   of the three best probes (pointwise minimum of their normalised ranks) replaces the single probe
   only if it beats it on the selection half *and* on the held-out half.
4. On the held-out half: Spearman ``rho`` of the chosen (signed) probe, AUROC of "concept active"
   against it, IoU at ``q``.
5. Nulls: the shuffled-sample null (the same statistic against the probe of other held-out samples,
   a random derangement per draw; a probe identical on every sample is shifted circularly by at
   least a quarter of every axis instead), and the random-init null (an SAE of the same architecture
   and shape, freshly initialised, with the same normalisation, explained by the same procedure:
   the held-out ``rho`` of each of its live concepts, after its own choice of probe, pooled over
   ``null_seeds`` initialisations). A concept is *explained* when its held-out ``rho`` is at least
   ``floor`` and above the 99th percentile of both nulls. The random-init null is the same statistic
   as the concept's, choice of probe included, so it also absorbs the choice among many probes
   (single probes only: conjunctions are not tried for the null's concepts, which keeps it 2-3x
   cheaper); the per-probe percentiles are kept in the result for reference (``q99_by_probe``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saeno.errors import ShapeError, StoreError
from saeno.explain import scores as SC
from saeno.explain.probes import (
    ExplainError,
    compute_probe_fields,
    dataset_key,
    select_probes,
)
from saeno.explain.result import ConceptExplanation, ExplainSummary, Explanations

log = logging.getLogger(__name__)

DEFAULT_ROWS = 100
DEFAULT_FLOOR = 0.5
DEFAULT_NULL_DRAWS = 200
NULL_QUANTILE = 0.99
ACTIVE_FRACTION = 0.1  # "active" point: code above this fraction of its 99th percentile
CONJUNCTION_CANDIDATES = 4  # conjunctions pair the best distinct probes on the selection half
EFFECT_FLOOR = 0.01  # "matters": ablation changes the output by at least 1% (relative L2)


# ---------------------------------------------------------------------------------------------
# inputs


def _load_sae(sae: Any) -> tuple[Any, str | None]:
    if isinstance(sae, (str, PathLike)):
        from saeno.train.checkpoint import load_sae

        return load_sae(Path(sae)), str(sae)
    if not hasattr(sae, "encode"):
        raise ExplainError(
            f"sae must be an SAE (with encode) or a folder written by saeno.save_sae, "
            f"got {type(sae).__name__}"
        )
    return sae, None


def _open_store(store: Any) -> tuple[Any, str | None]:
    if isinstance(store, (str, Path)):
        from saeno.store.activation_store import ActivationStore

        return ActivationStore.open(store), str(store)
    return store, getattr(store, "url", None)


def _pick_hook(store: Any, sae: Any, hook: str | None) -> str:
    hooks = list(store.hooks)
    if hook is None:
        hook = getattr(sae, "hook", None) or (getattr(sae, "metadata", None) or {}).get("hook")
        if hook is None and len(hooks) == 1:
            hook = hooks[0]
    if hook is None:
        raise ExplainError(
            f"the store holds several hooks ({', '.join(hooks)}) and the SAE does not "
            "record its hook: pass hook= (--hook)"
        )
    if hook not in hooks:
        raise ExplainError(
            f"hook {hook!r} is not in the store (it has {', '.join(hooks)}): pass one "
            "of these with hook= (--hook)"
        )
    return hook


def _has(store: Any, name: str) -> bool:
    try:
        return name in store
    except TypeError:
        return False


def store_card(store: Any) -> dict[str, Any]:
    attrs = getattr(store, "attrs", None) or {}
    ds = attrs.get("dataset") or {}
    card = ds.get("card") if isinstance(ds, Mapping) else None
    return dict(card or {})


def _read(store: Any, name: str, rows: np.ndarray) -> np.ndarray:
    value = store.read(name, rows)
    return np.asarray(value.numpy() if isinstance(value, torch.Tensor) else value)


def _params(store: Any, rows: np.ndarray) -> dict[str, np.ndarray]:
    try:
        params = store.params
    except (AttributeError, KeyError):
        return {}
    out = {}
    for k, v in dict(params or {}).items():
        v = np.asarray(v)
        if v.ndim == 1 and v.shape[0] > int(rows.max()):
            out[k] = v[rows].astype(np.float64)
    return out


def split_halves(rows: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(selection, held_out)`` rows: a seeded permutation cut in two (sorted, disjoint)."""
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    if rows.size < 2:
        raise ExplainError(f"explaining needs at least 2 samples (got {rows.size}): pass more rows")
    perm = np.random.default_rng(seed).permutation(rows)
    half = rows.size // 2
    return np.sort(perm[:half]), np.sort(perm[half:])


# ---------------------------------------------------------------------------------------------
# code maps


def code_maps(sae: Any, a: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """``(N, p, *grid)`` code maps: ``|z|`` for function-valued codes, ``z`` for a pointwise SAE."""
    pointwise = getattr(sae, "view", "field") == "points"
    out = []
    with torch.no_grad():
        for start in range(0, a.shape[0], batch_size):
            x = torch.as_tensor(a[start : start + batch_size]).to(device)
            if not x.is_complex():
                x = x.float()
            z = sae.encode(x)
            if z.ndim < 3:
                raise ExplainError(
                    "the SAE's codes are one number per sample (a flat SAE): they have "
                    "no map to compare with probe fields; explain a pointwise SAE or an "
                    "SAE-FNO"
                )
            z = z.float()
            out.append((z if pointwise else z.abs()).cpu().numpy())
    return np.concatenate(out, axis=0)


def _resample(fields: np.ndarray, grid: tuple[int, ...]) -> np.ndarray:
    """``(N, *g)`` probe fields onto the code grid (linear interpolation)."""
    if tuple(fields.shape[1:]) == grid:
        return fields
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(grid)]
    t = torch.as_tensor(fields, dtype=torch.float32)[:, None]
    return torch.nn.functional.interpolate(t, size=grid, mode=mode, align_corners=False)[:, 0].numpy()


# ---------------------------------------------------------------------------------------------
# scoring one concept


@dataclass
class _Half:
    """One half's points for one concept: the code and every probe, with their ranks."""

    samples: np.ndarray  # indices into the scored rows
    code: np.ndarray  # (M,) code values
    zc: np.ndarray  # (M,) standardised code ranks
    probes: np.ndarray  # (J, M) probe values
    r: np.ndarray  # (J, M) probe ranks
    zp: np.ndarray  # (J, M) standardised probe ranks

    def signed_ranks(self, j: int, sign: int) -> np.ndarray:
        """Ranks of ``sign * probe_j`` (reversing the order keeps averaged ties averaged)."""
        return self.r[j] if sign > 0 else self.code.size + 1 - self.r[j]


class _RankCache:
    """Probe ranks per sample subset (pointwise-SAE concepts share subsets)."""

    def __init__(self, fields: np.ndarray) -> None:
        self.fields = fields  # (N, J, P)
        self._cache: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def get(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = samples.tobytes()
        if key not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            vals = self.fields[samples].transpose(1, 0, 2).reshape(self.fields.shape[1], -1)
            r = SC.ranks(vals)
            self._cache[key] = (vals, r, SC.standardize(r))
        return self._cache[key]


def _half(flat: np.ndarray, samples: np.ndarray, cache: _RankCache) -> _Half:
    code = flat[samples].ravel().astype(np.float64)
    vals, r, zp = cache.get(samples)
    return _Half(samples, code, SC.standardize(SC.ranks(code)), vals, r, zp)


def _corr(z: np.ndarray, zc: np.ndarray) -> float:
    return float(np.clip(z @ zc / zc.size, -1.0, 1.0))


def _distinct(order: np.ndarray, zp: np.ndarray, n: int, same: float = 0.99) -> list[int]:
    """The first ``n`` probes of ``order`` that are not the same ranking as an earlier one (|rho| > same).

    Probes that order the points identically (the input and its phase indicator on a two-phase
    medium) are one candidate, so conjunctions pair genuinely different fields.
    """
    out: list[int] = []
    for i in order:
        if all(abs(float(zp[i] @ zp[c]) / zp.shape[1]) <= same for c in out):
            out.append(int(i))
            if len(out) == n:
                break
    return out


@dataclass
class _Scored:
    explanation: ConceptExplanation
    rho_all: np.ndarray | None  # (J,) held-out rho of every probe with its selection sign


def score_concept(
    k: int,
    maps_k: np.ndarray,
    sel: np.ndarray,
    held: np.ndarray,
    cache: _RankCache,
    names: Sequence[str],
    invariant: Sequence[bool],
    grid: tuple[int, ...],
    *,
    min_samples: int,
    null_draws: int,
    conjunctions: bool,
    rng: np.random.Generator,
    with_null: bool = True,
) -> _Scored:
    """Choose the explanation of one concept on ``sel`` and score it on ``held`` (see the module doc)."""
    flat = maps_k.reshape(maps_k.shape[0], -1)
    active = np.any(flat != 0, axis=1)
    s_sel, s_held = sel[active[sel]], held[active[held]]
    if len(s_sel) < min_samples or len(s_held) < min_samples:
        return _Scored(
            ConceptExplanation(index=k, status="rare", n_select=len(s_sel), n_heldout=len(s_held)), None
        )
    A, B = _half(flat, s_sel, cache), _half(flat, s_held, cache)
    rho_a = np.clip(A.zp @ A.zc / A.code.size, -1.0, 1.0)
    signs = np.where(rho_a >= 0, 1, -1)
    rho_b = np.clip(signs * (B.zp @ B.zc / B.code.size), -1.0, 1.0)
    order = np.argsort(-np.abs(rho_a), kind="stable")
    j = int(order[0])
    top = _distinct(order, A.zp, CONJUNCTION_CANDIDATES)
    alternatives = [
        {"probe": names[i], "sign": int(signs[i]), "rho_select": float(abs(rho_a[i])), "rho": float(rho_b[i])}
        for i in top
    ]

    # the score on each half: ranks of the signed probe, or of a conjunction of two
    parts = [j]
    rank_a, rank_b = A.signed_ranks(j, signs[j]), B.signed_ranks(j, signs[j])
    rho_sel, rho_held = float(abs(rho_a[j])), float(rho_b[j])
    tried = None
    if conjunctions and len(top) >= 2:
        best = None
        for x in range(len(top)):
            for y in range(x + 1, len(top)):
                a, b = top[x], top[y]
                g = SC.ranks(SC.conjunction(A.signed_ranks(a, signs[a]), A.signed_ranks(b, signs[b])))
                r = _corr(SC.standardize(g), A.zc)
                if best is None or r > best[0]:
                    best = (r, a, b, g)
        if best is not None and best[0] > rho_sel:
            r_sel, a, b, g_a = best
            tried = " & ".join(sorted([names[a], names[b]]))
            g_b = SC.ranks(SC.conjunction(B.signed_ranks(a, signs[a]), B.signed_ranks(b, signs[b])))
            r_b = _corr(SC.standardize(g_b), B.zc)
            alternatives.append({"probe": tried, "sign": 1, "rho_select": r_sel, "rho": r_b})
            if r_b > rho_held:
                parts, rank_a, rank_b = sorted([a, b], key=lambda i: names[i]), g_a, g_b
                rho_sel, rho_held = r_sel, r_b

    # where the concept is active, and the probe quantile that matches it best
    positive = A.code[A.code > 0]
    tau = ACTIVE_FRACTION * float(np.quantile(positive, 0.99)) if positive.size else 0.0
    act_a, act_b = A.code > tau, B.code > tau
    q, _ = SC.best_quantile(act_a, rank_a)
    iou_b = SC.iou(act_b, SC.above_quantile(rank_b, q))
    auc_b = SC.auroc_from_ranks(act_b, rank_b)

    null_q = None
    if with_null:
        zs = SC.standardize(rank_b).reshape(len(s_held), -1)
        zc = B.zc.reshape(len(s_held), -1)
        if all(invariant[i] for i in parts):
            null = SC.shifted_null(zc, zs, grid)
        else:
            null = SC.shuffled_sample_null(zc, zs, null_draws, rng)
        null_q = float(np.quantile(null, NULL_QUANTILE))
    expl = ConceptExplanation(
        index=k,
        status="unexplained",
        probe=" & ".join(names[i] for i in parts),
        probes=[names[i] for i in parts],
        signs=[int(signs[i]) for i in parts],
        quantile=q,
        rho=rho_held,
        rho_select=rho_sel,
        auroc=auc_b,
        iou=iou_b,
        null_shuffle=null_q,
        conjunction_tried=tried,
        n_select=len(s_sel),
        n_heldout=len(s_held),
        alternatives=alternatives,
    )
    return _Scored(expl, rho_b)


# ---------------------------------------------------------------------------------------------
# the random-init null


def random_init_like(sae: Any, seed: int) -> Any:
    """A freshly initialised SAE of the same architecture and shape, with the same normalisation."""
    if not hasattr(sae, "config") or not hasattr(type(sae), "from_config"):
        raise ExplainError(
            f"cannot build a random-init copy of {type(sae).__name__} (it has no "
            "config()/from_config): pass null_sae= or random_null=False"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = type(sae).from_config(sae.config())
    if hasattr(fresh, "set_normalization") and hasattr(sae, "norm_mean"):
        fresh.set_normalization(sae.norm_mean.detach().cpu(), sae.norm_scale.detach().cpu())
    return fresh.eval()


# ---------------------------------------------------------------------------------------------
# ablation effects


def _ablate_hook(sae: Any, k: int):
    def fn(act: torch.Tensor, *, hook: Any = None) -> torch.Tensor:
        z = sae.encode(act)
        z_off = z.clone()
        z_off[:, k] = 0
        return act - (sae.decode(z) - sae.decode(z_off)).to(act.dtype)

    return fn


@torch.no_grad()
def ablation_effects(
    hooked: Any,
    sae: Any,
    hook: str,
    x: np.ndarray,
    activity: np.ndarray,
    concepts: Sequence[int],
    n_top: int,
    device: torch.device,
) -> dict[int, float]:
    """Mean relative L2 change of the FNO's output when concept k is ablated, on its top samples.

    Ablation keeps the SAE's reconstruction error: ``a -> a - (decode(z) - decode(z with z_k = 0))``.
    """
    out: dict[int, float] = {}
    for k in concepts:
        top = np.argsort(-activity[:, k], kind="stable")[:n_top]
        top = top[activity[top, k] > 0]
        if top.size == 0:
            continue
        xs = torch.as_tensor(x[top], dtype=torch.float32, device=device)
        clean = hooked(xs)
        with hooked.hooks(fwd_hooks=[(hook, _ablate_hook(sae, k))]):
            ablated = hooked(xs)
        diff = (ablated - clean).flatten(1).norm(dim=1)
        ref = clean.flatten(1).norm(dim=1).clamp_min(1e-12)
        out[int(k)] = float((diff / ref).mean())
    return out


# ---------------------------------------------------------------------------------------------
# the entry point


def _score_all(
    maps: np.ndarray,
    sel: np.ndarray,
    held: np.ndarray,
    fields: np.ndarray,
    names: list[str],
    invariant: list[bool],
    grid: tuple[int, ...],
    *,
    min_samples: int,
    null_draws: int,
    conjunctions: bool,
    seed: int,
    with_null: bool,
    progress: bool,
    desc: str,
) -> list[_Scored]:
    from tqdm.auto import tqdm

    cache = _RankCache(fields.reshape(fields.shape[0], fields.shape[1], -1))
    rng = np.random.default_rng(seed + 1)
    return [
        score_concept(
            k,
            maps[:, k],
            sel,
            held,
            cache,
            names,
            invariant,
            grid,
            min_samples=min_samples,
            null_draws=null_draws,
            conjunctions=conjunctions,
            rng=rng,
            with_null=with_null,
        )
        for k in tqdm(range(maps.shape[1]), desc=desc, disable=not progress, unit="concept")
    ]


def explain_concepts(
    sae: Any,
    store: Any,
    *,
    hook: str | None = None,
    probes: Sequence[str] | None = None,
    rows: Sequence[int] | None = None,
    n_rows: int = DEFAULT_ROWS,
    seed: int = 0,
    floor: float = DEFAULT_FLOOR,
    null_draws: int = DEFAULT_NULL_DRAWS,
    random_null: bool = True,
    null_seeds: int = 3,
    null_sae: Any = None,
    conjunctions: bool = True,
    min_samples: int = 3,
    model: Any = None,
    effect_floor: float = EFFECT_FLOOR,
    n_effect: int = 8,
    trust: bool = False,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Explanations:
    """Explain every concept of an SAE by a probe field, with held-out scores and null controls.

    Parameters
    ----------
    sae : SparseAutoencoder or path-like
        The SAE (pointwise or SAE-FNO; anything with ``encode`` returning ``(B, p, *grid)``), or a
        folder written by ``saeno.save_sae``.
    store : ActivationStore or path-like
        The store to score on; its ``x``, ``y``, ``y_pred`` and dataset card feed the probes.
    hook : str, optional
        Hook of the SAE (default: the SAE's, or the store's only hook).
    probes : sequence of str, optional
        Probe names (default: every registered probe for the store's dataset).
    rows, n_rows : optional
        The store rows to score (default the first ``n_rows``).
    seed : int
        Seed of the split into halves, the null draws and the random-init SAE.
    floor : float
        Absolute floor on the held-out Spearman correlation for "explained".
    null_draws : int
        Draws of the shuffled-sample null per concept.
    random_null : bool
        Also score random-init SAEs of the same shape and require explanations to beat them.
    null_seeds : int
        How many random-init SAEs make the random-init null (their live concepts are pooled).
    null_sae : SAE or list of SAEs, optional
        The dictionaries to use as the random-init null (default: ``null_seeds`` fresh copies built
        from ``sae``'s config).
    conjunctions : bool
        Try conjunctions of two probes.
    min_samples : int
        A concept must be active on this many samples of each half to be scored.
    model : nn.Module, HookedOperator, str or path-like, optional
        The FNO the store was captured from: with it, each live concept's ablation effect is measured
        and the summary lists the unexplained concepts that change the output by ``effect_floor``.
    effect_floor, n_effect : float, int
        Threshold of "matters" and the top samples the ablation runs on.
    trust : bool
        Allow unpickling when ``model`` is a neuraloperator checkpoint.
    batch_size : int
        Samples per encoder batch.
    device : optional
        Device of the SAE and model (default: the SAE's).
    progress : bool
        Show progress bars.

    Returns
    -------
    Explanations

    Raises
    ------
    ProbeError
        An unknown probe name (the message lists the available ones), or a probe that failed on a
        sample (the message names the probe and the store row).
    ExplainError, ShapeError, StoreError
        The store, hook or SAE do not fit together, or too few rows.
    """
    t0 = time.perf_counter()
    if not 0 <= floor < 1:
        raise ExplainError(f"floor must be in [0, 1), got {floor}")
    if null_draws < 10:
        raise ExplainError(f"null_draws must be at least 10 for a 99th percentile, got {null_draws}")
    sae, sae_path = _load_sae(sae)
    store, store_path = _open_store(store)
    hook = _pick_hook(store, sae, hook)
    total = int(getattr(store, "n_rows", store[hook].shape[0]))
    row_ids = np.unique(
        np.asarray(np.arange(min(int(n_rows), total)) if rows is None else rows, dtype=np.int64)
    )
    if row_ids.size and (row_ids.min() < 0 or row_ids.max() >= total):
        raise StoreError(f"rows must lie in 0..{total - 1} (the store's rows)")
    channels = int(store[hook].shape[1])
    if int(getattr(sae, "in_channels", channels)) != channels:
        raise ShapeError(
            f"the SAE reads {sae.in_channels} channels but hook {hook!r} has {channels}: "
            "pass the store and hook the SAE was trained on"
        )
    dev = (
        torch.device(device)
        if device is not None
        else next((p.device for p in sae.parameters()), torch.device("cpu"))
        if hasattr(sae, "parameters")
        else torch.device("cpu")
    )
    if hasattr(sae, "to"):
        sae = sae.to(dev).eval()

    # the halves, the probes and the code maps
    card = store_card(store)
    dataset = dataset_key(card)
    chosen = select_probes(probes, dataset)
    sel_rows, held_rows = split_halves(row_ids, seed)
    all_rows = np.concatenate([sel_rows, held_rows])
    order = np.argsort(all_rows)
    rows_sorted = all_rows[order]  # == row_ids
    pos = {int(r): i for i, r in enumerate(rows_sorted)}
    sel = np.array([pos[int(r)] for r in sel_rows], dtype=np.int64)
    held = np.array([pos[int(r)] for r in held_rows], dtype=np.int64)

    arrays = {
        name: (_read(store, name, rows_sorted) if _has(store, name) else None)
        for name in ("x", "y", "y_pred")
    }
    if all(v is None for v in arrays.values()):
        raise StoreError(
            "the store has none of x, y, y_pred: probes need at least the model inputs; "
            "capture with the dataset"
        )
    fields_by_name, skipped = compute_probe_fields(
        chosen,
        rows=[int(r) for r in rows_sorted],
        x=arrays["x"],
        y=arrays["y"],
        y_pred=arrays["y_pred"],
        card=card,
        params=_params(store, rows_sorted),
    )
    for name, why in skipped.items():
        log.info("probe %s skipped: %s", name, why)
    if not fields_by_name:
        raise ExplainError(
            f"no probe could be computed ({'; '.join(f'{k}: {v}' for k, v in skipped.items())})"
        )
    acts = _read(store, hook, rows_sorted)
    maps = code_maps(sae, acts, batch_size, dev)
    grid = tuple(int(g) for g in maps.shape[2:])
    names = list(fields_by_name)
    fields = np.stack([_resample(fields_by_name[n], grid) for n in names], axis=1)  # (N, J, *grid)
    invariant = [SC.is_sample_invariant(fields[:, j]) for j in range(len(names))]

    scored = _score_all(
        maps,
        sel,
        held,
        fields,
        names,
        invariant,
        grid,
        min_samples=min_samples,
        null_draws=null_draws,
        conjunctions=conjunctions,
        seed=seed,
        with_null=True,
        progress=progress,
        desc="explain",
    )

    # the random-init null: per probe, the 99th percentile of fresh SAEs' held-out rho
    random_info = None
    if random_null or null_sae is not None:
        if null_sae is not None:
            null_models = list(null_sae) if isinstance(null_sae, (list, tuple)) else [null_sae]
            null_seed_list: list[int] | None = None
        else:
            null_seed_list = [seed + 1000 + i for i in range(int(null_seeds))]
            null_models = [random_init_like(sae, s_) for s_ in null_seed_list]
        per_probe_rows, chosen_rho = [], []
        for i, null_model in enumerate(null_models):
            if hasattr(null_model, "to"):
                null_model = null_model.to(dev).eval()
            null_maps = code_maps(null_model, acts, batch_size, dev)
            null_scored = _score_all(
                null_maps,
                sel,
                held,
                fields,
                names,
                invariant,
                grid,
                min_samples=min_samples,
                null_draws=null_draws,
                conjunctions=False,
                seed=seed + i,
                with_null=False,
                progress=progress,
                desc=f"random-init null {i + 1}/{len(null_models)}",
            )
            per_probe_rows += [s_.rho_all for s_ in null_scored if s_.rho_all is not None]
            chosen_rho += [s_.explanation.rho for s_ in null_scored if s_.explanation.live]
        per_probe = np.array(per_probe_rows)
        q99 = (
            {n: float(np.quantile(per_probe[:, j], NULL_QUANTILE)) for j, n in enumerate(names)}
            if per_probe.size
            else {}
        )
        random_info = {
            "source": "given" if null_sae is not None else "random-init copies",
            "seeds": null_seed_list,
            "n_models": len(null_models),
            "n_live": int(per_probe.shape[0]) if per_probe.size else 0,
            "q99": float(np.quantile(chosen_rho, NULL_QUANTILE)) if chosen_rho else None,
            "q99_by_probe": q99,
        }

    concepts = [s.explanation for s in scored]
    for c in concepts:
        if not c.live:
            continue
        if random_info is not None:
            c.null_random = random_info["q99"]
        beats = [v for v in (c.null_shuffle, c.null_random) if v is not None]
        c.explained = bool(c.rho is not None and c.rho >= floor and all(c.rho > v for v in beats))
        c.status = "explained" if c.explained else "unexplained"

    # ablation effects
    effects_note = None
    if model is not None:
        if arrays["x"] is None:
            effects_note = "the store has no model inputs 'x'"
        else:
            hooked = _hooked(model, trust, store)
            hooked.model.to(dev).eval()
            activity = np.sqrt(np.mean(maps.reshape(*maps.shape[:2], -1) ** 2, axis=2))
            live = [c.index for c in concepts if c.live]
            eff = ablation_effects(hooked, sae, hook, arrays["x"], activity, live, n_effect, dev)
            for k, v in eff.items():
                concepts[k].effect = v
    summary = _summary(concepts, effect_floor)
    arch = (sae.config().get("architecture") if hasattr(sae, "config") else None) or type(sae).__name__
    return Explanations(
        sae={
            "architecture": str(arch),
            "n_concepts": int(maps.shape[1]),
            "path": sae_path,
            "pointwise": getattr(sae, "view", "field") == "points",
        },
        store={
            "path": store_path,
            "hook": hook,
            "dataset": dataset,
            "grid": list(grid),
            "fingerprint": getattr(store, "fingerprint", None),
        },
        protocol={
            "rows_select": [int(r) for r in sel_rows],
            "rows_heldout": [int(r) for r in held_rows],
            "seed": int(seed),
            "floor": float(floor),
            "null_quantile": NULL_QUANTILE,
            "null_draws": int(null_draws),
            "min_samples": int(min_samples),
            "active_fraction": ACTIVE_FRACTION,
            "conjunctions": bool(conjunctions),
            "effect_floor": float(effect_floor),
            "n_effect": int(n_effect),
            "effects": model is not None and effects_note is None,
            "effects_note": effects_note,
            "invariant_probes": [n for n, inv in zip(names, invariant) if inv],
        },
        probes={p.name: p.description for p in chosen if p.name in fields_by_name},
        skipped=skipped,
        concepts=concepts,
        summary=summary,
        random_null=random_info,
        seconds=time.perf_counter() - t0,
    )


def _hooked(model: Any, trust: bool, store: Any) -> Any:
    from saeno.evaluation import as_hooked, check_model_matches_store

    hooked = as_hooked(model, trust=trust)
    if getattr(store, "fingerprint", None) not in (None, "", "None"):
        check_model_matches_store(hooked, store)
    return hooked


def _summary(concepts: list[ConceptExplanation], effect_floor: float) -> ExplainSummary:
    live = [c for c in concepts if c.live]
    explained = [c for c in live if c.explained]
    counts: dict[str, int] = {}
    for c in explained:
        name = str(c.probe)
        counts[name] = counts.get(name, 0) + 1
    counts = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    important = sorted(
        (c for c in live if not c.explained and c.effect is not None and c.effect >= effect_floor),
        key=lambda c: -float(c.effect or 0.0),
    )
    return ExplainSummary(
        n_concepts=len(concepts),
        n_live=len(live),
        n_explained=len(explained),
        share_explained=len(explained) / len(live) if live else None,
        mean_score=float(np.mean([float(c.rho or 0.0) for c in live])) if live else None,
        probe_counts=counts,
        unexplained_important=[c.index for c in important],
    )


__all__ = [
    "DEFAULT_FLOOR",
    "DEFAULT_ROWS",
    "ablation_effects",
    "code_maps",
    "explain_concepts",
    "random_init_like",
    "score_concept",
    "split_halves",
    "store_card",
]
