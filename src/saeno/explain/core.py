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
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from saeno.errors import ShapeError, StoreError
from saeno.explain import scores as SC
from saeno.explain.effects import ablation_effects
from saeno.explain.inputs import (
    code_maps,
    has_array,
    open_store,
    pick_hook,
    read_rows,
    resample,
    resolve_hooked,
    resolve_sae,
    split_halves,
    store_card,
    store_params,
)
from saeno.explain.nulls import random_init_like
from saeno.explain.probes import (
    ExplainError,
    compute_probe_fields,
    dataset_key,
    select_probes,
)
from saeno.explain.result import ConceptExplanation, ExplainSummary, Explanations
from saeno.explain.scoring import (
    ACTIVE_FRACTION,
    NULL_QUANTILE,
    RankCache,
    Scored,
    score_concept,
)

log = logging.getLogger(__name__)

DEFAULT_ROWS = 100
DEFAULT_FLOOR = 0.5
DEFAULT_NULL_DRAWS = 200
EFFECT_FLOOR = 0.01  # "matters": ablation changes the output by at least 1% (relative L2)


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
) -> list[Scored]:
    from tqdm.auto import tqdm

    cache = RankCache(fields.reshape(fields.shape[0], fields.shape[1], -1))
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
    sae, sae_path = resolve_sae(sae)
    store, store_path = open_store(store)
    hook = pick_hook(store, sae, hook)
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
        name: (read_rows(store, name, rows_sorted) if has_array(store, name) else None)
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
        params=store_params(store, rows_sorted),
    )
    for name, why in skipped.items():
        log.info("probe %s skipped: %s", name, why)
    if not fields_by_name:
        raise ExplainError(
            f"no probe could be computed ({'; '.join(f'{k}: {v}' for k, v in skipped.items())})"
        )
    acts = read_rows(store, hook, rows_sorted)
    maps = code_maps(sae, acts, batch_size, dev)
    grid = tuple(int(g) for g in maps.shape[2:])
    names = list(fields_by_name)
    fields = np.stack([resample(fields_by_name[n], grid) for n in names], axis=1)  # (N, J, *grid)
    invariant = [SC.is_sample_invariant(fields[:, j]) for j in range(len(names))]

    def score(m: np.ndarray, **how: Any) -> list:
        """``_score_all`` of code maps ``m`` on this run's halves and probe fields."""
        return _score_all(
            m,
            sel,
            held,
            fields,
            names,
            invariant,
            grid,
            min_samples=min_samples,
            null_draws=null_draws,
            progress=progress,
            **how,
        )

    scored = score(maps, conjunctions=conjunctions, seed=seed, with_null=True, desc="explain")

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
            desc = f"random-init null {i + 1}/{len(null_models)}"
            null_scored = score(null_maps, conjunctions=False, seed=seed + i, with_null=False, desc=desc)
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
            hooked = resolve_hooked(model, trust, store)
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
