"""``saeno.audit``: where an FNO fails, which concepts are involved, and which inputs it was not
trained for, from a trained SAE, the training store and one or more shifted stores.

The training store fits the reference statistics of the off-distribution scores (``scores.py``). The
in-distribution comparison set is either a separate store from the training distribution
(``id_store``, e.g. the test split) or a held-out share of the training store's rows. For each
shifted store the audit reports the AUROC of in-distribution vs shifted samples for every score, the
Spearman correlation of every score with the FNO's per-sample error, the concepts that move
(``moves.py``) and the error attribution (``attribution.py``); stores without targets get the
scores only, with a note.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saeno.audit.attribution import attribute_errors
from saeno.audit.features import StoreFeatures, store_features
from saeno.audit.moves import concept_moves
from saeno.audit.scores import (
    ALL_SCORES,
    BASELINE_SCORES,
    SAE_SCORES,
    OffDistributionScorer,
)
from saeno.audit.stats import auroc, roc_curve, spearman
from saeno.deprecation import UNSET, renamed
from saeno.errors import SaenoError

log = logging.getLogger(__name__)

AUDIT_FORMAT = "saeno-audit"
AUDIT_VERSION = 1


class AuditError(SaenoError):
    """Inputs the audit cannot use together (another model, another hook, missing data)."""


def _floats(v: np.ndarray | None) -> list[float | None] | None:
    if v is None:
        return None
    return [None if not np.isfinite(x) else float(x) for x in np.asarray(v, dtype=np.float64)]


@dataclass
class StoreAudit:
    """The audit of one store (the in-distribution set or a shifted store)."""

    name: str
    url: str
    n_samples: int
    has_targets: bool
    scores: dict[str, list[float | None]]
    error: list[float | None] | None = None
    detection: dict[str, dict[str, Any]] | None = None  # score -> auroc, spearman, roc
    attribution: dict[str, Any] | None = None
    moves: dict[str, Any] | None = None
    variant: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def mean_error(self) -> float | None:
        """The FNO's mean relative L2 error on the store (None without targets)."""
        if not self.error:
            return None
        vals = [v for v in self.error if v is not None]
        return float(np.mean(vals)) if vals else None


@dataclass
class AuditResult:
    """Everything ``saeno.audit`` found; :meth:`save` writes it as a versioned ``audit.json``."""

    hook: str
    sae: dict[str, Any]
    model_fingerprint: str | None
    train_store: str
    reference_rows: int
    in_distribution: StoreAudit
    shifts: list[StoreAudit]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def table(self) -> list[dict[str, Any]]:
        """One row per shift and score: AUROC and error-Spearman (pooled and within the shift)."""
        rows = []
        for s in self.shifts:
            for score in ALL_SCORES:
                d = (s.detection or {}).get(score, {})
                rows.append(
                    {
                        "shift": s.name,
                        "score": score,
                        "kind": "sae" if score in SAE_SCORES else "baseline",
                        "auroc": d.get("auroc"),
                        "spearman_pooled": d.get("spearman_pooled"),
                        "spearman_within": d.get("spearman_within"),
                    }
                )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict with ``format`` and ``version``."""
        return {"format": AUDIT_FORMAT, "version": AUDIT_VERSION, **asdict(self)}

    def save(self, path: str | Path) -> Path:
        """Write ``audit.json`` (``path`` a file or a folder)."""
        path = Path(path)
        if path.suffix != ".json":
            path.mkdir(parents=True, exist_ok=True)
            path = path / "audit.json"
        path.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False))
        return path


def load_audit(path: str | Path) -> dict[str, Any]:
    """Read an ``audit.json`` (file or folder), checking its format and version."""
    path = Path(path)
    if path.is_dir():
        path = path / "audit.json"
    doc = json.loads(path.read_text())
    if doc.get("format") != AUDIT_FORMAT or int(doc.get("version", 0)) > AUDIT_VERSION:
        raise AuditError(f"{path} is not a saeno audit of version <= {AUDIT_VERSION}")
    return doc


def _open(store: Any) -> Any:
    from saeno.store import ActivationStore

    return store if hasattr(store, "read") else ActivationStore.open(store)


def _name(store: Any) -> tuple[str, str | None]:
    data = (getattr(store, "attrs", {}) or {}).get("dataset") or {}
    card = data.get("card") or {}
    name = data.get("name") or str(getattr(store, "url", "store")).rstrip("/").rsplit("/", 1)[-1]
    return str(name), card.get("variant")


def _check_compatible(train: Any, others: list[Any], hook: str, sae: Any, hooked: Any) -> None:
    for s in [train, *others]:
        if hook not in s.hooks:
            raise AuditError(
                f"the store {s.url} has no hook {hook!r} (it holds {s.hooks}): capture it at "
                f"the SAE's hook {hook!r}"
            )
    want = train.fingerprint
    for s in others:
        if s.fingerprint != want:
            raise AuditError(
                f"the store {s.url} was captured from another model (fingerprint "
                f"{str(s.fingerprint)[:12]}) than the training store {train.url} "
                f"({str(want)[:12]}): capture every store with the same FNO"
            )
        if next(iter(s.hook_info(hook)["shape"])) != next(iter(train.hook_info(hook)["shape"])):
            raise AuditError(
                f"hook {hook!r} has {s.hook_info(hook)['shape'][0]} channels in {s.url} and "
                f"{train.hook_info(hook)['shape'][0]} in the training store"
            )
    if getattr(sae, "model_fingerprint", None) and want and sae.model_fingerprint != want:
        raise AuditError(
            f"the SAE was trained on activations of another model (fingerprint "
            f"{sae.model_fingerprint[:12]}) than the training store {train.url} "
            f"({str(want)[:12]}): pass the store the SAE was trained on"
        )
    if hooked is not None:
        from saeno.evaluation import check_model_matches_store

        check_model_matches_store(hooked, train)


def _detection(
    id_scores: dict[str, np.ndarray],
    shift_scores: dict[str, np.ndarray],
    id_err: np.ndarray | None,
    shift_err: np.ndarray | None,
) -> dict[str, dict[str, Any]]:
    out = {}
    for score in ALL_SCORES:
        a, b = id_scores[score], shift_scores[score]
        fpr, tpr = roc_curve(a, b)
        d: dict[str, Any] = {
            "auroc": auroc(a, b),
            "roc": {"fpr": _floats(fpr), "tpr": _floats(tpr)},
            "spearman_pooled": None,
            "spearman_within": None,
        }
        if shift_err is not None:
            d["spearman_within"] = spearman(b, shift_err)
            if id_err is not None:
                d["spearman_pooled"] = spearman(np.r_[a, b], np.r_[id_err, shift_err])
        out[score] = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.items()}
    return out


def audit(
    sae: Any,
    train_store: Any,
    stores: Any,
    *,
    model: Any = None,
    hook: str | None = None,
    id_store: Any = None,
    holdout: float = 0.3,
    n_rows: int | None = None,
    max_ablate: int = 8,
    quantile: float = 0.95,
    n_boot: int = 1000,
    level: float = 0.9,
    knn: int = 5,
    seed: int = 0,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    progress: bool = True,
    max_rows: Any = UNSET,
) -> AuditResult:
    """Audit an FNO through an SAE on shifted stores.

    Parameters
    ----------
    sae
        A trained SAE (``saeno.load_sae(folder)``; its ``hook`` is the audited hook).
    train_store
        The store the SAE was trained on (path or :class:`~saeno.ActivationStore`): the reference.
    stores
        One shifted store or a list of them, captured by the same FNO at the same hook; a store
        without targets gets the off-distribution scores only.
    model
        The FNO (``nn.Module`` or :class:`~saeno.HookedOperator`) for the ablation part of the error
        attribution; None skips it.
    hook
        The hook (default: the SAE's).
    id_store
        A store from the training distribution not used to fit the SAE (e.g. the test split) as the
        in-distribution comparison set; default: a random ``holdout`` share of the training rows, the
        rest being the reference.
    holdout
        Share of training rows held out when ``id_store`` is None.
    n_rows
        Use at most this many rows of each store (the first ones; None: all). ``max_rows`` is its
        deprecated old name.
    max_ablate
        Concepts ablated per store in the error attribution.
    quantile
        Per-point error quantile above which points count as worst-predicted.
    n_boot, level
        Bootstrap resamples and confidence level of the intervals.
    knn
        Neighbours of the concept-usage novelty score.
    seed
        Seed of the held-out split and the bootstrap.
    batch_size
        Samples per batch.
    device
        Where the SAE and the FNO run (default: the SAE's device); both are moved there.
    progress
        Show progress bars.

    Returns
    -------
    AuditResult

    Raises
    ------
    AuditError
        A store from another model or without the hook, an SAE of another model, a supervised SAE.
    """
    from saeno.evaluation import as_hooked, as_sae, resolve_device

    n_rows = renamed(n_rows, max_rows, new="n_rows", old="max_rows")
    sae = as_sae(sae)
    if getattr(sae, "architecture", None) == "supervised":
        raise AuditError(
            "a supervised SAE needs labels for its codes: audit an unsupervised SAE (sae, sae-fno, flat)"
        )
    hook = hook or getattr(sae, "hook", None)
    if not hook:
        raise AuditError("the SAE does not record its hook: pass hook=")
    if not 0.0 < holdout < 1.0:
        raise AuditError(f"holdout must be between 0 and 1, got {holdout}")
    train = _open(train_store)
    shifted = [_open(s) for s in (stores if isinstance(stores, (list, tuple)) else [stores])]
    if not shifted:
        raise AuditError("give at least one shifted store")
    id_st = _open(id_store) if id_store is not None else None
    hooked = None
    if model is not None:
        hooked = model if hasattr(model, "run_with_hooks") else as_hooked(model)
    _check_compatible(train, shifted + ([id_st] if id_st is not None else []), hook, sae, hooked)
    dev = resolve_device(sae, device)
    sae.to(dev).eval()
    if hooked is not None:
        getattr(hooked, "model", hooked).to(dev)

    def rows_of(s: Any) -> np.ndarray:
        n = s.n_rows if n_rows is None else min(s.n_rows, int(n_rows))
        return np.arange(n)

    train_rows = rows_of(train)
    if id_st is None:
        perm = np.random.default_rng(seed).permutation(train_rows)
        n_id = max(2, round(holdout * len(perm)))
        if len(perm) - n_id < 2:
            raise AuditError(f"the training store has too few rows ({len(perm)}) to hold out {holdout:.0%}")
        id_rows, ref_rows = np.sort(perm[:n_id]), np.sort(perm[n_id:])
        id_source = train
    else:
        id_rows, ref_rows, id_source = rows_of(id_st), train_rows, id_st
    feats = lambda s, r: store_features(sae, s, hook, r, batch_size=batch_size, progress=progress)
    with torch.no_grad():
        ref = feats(train, ref_rows)
        scorer = OffDistributionScorer.fit(ref, k=knn)
        id_f = feats(id_source, id_rows)
        id_scores = scorer.score(id_f)
        settings = {
            "holdout": None if id_st is not None else holdout,
            "max_rows": n_rows,
            "max_ablate": max_ablate,
            "quantile": quantile,
            "n_boot": n_boot,
            "level": level,
            "knn": knn,
            "seed": seed,
            "mahalanobis_shrinkage": scorer.shrinkage,
            "sae_scores": list(SAE_SCORES),
            "baseline_scores": list(BASELINE_SCORES),
        }

        def audit_store(s: Any, f: StoreFeatures, scores: dict[str, np.ndarray], is_id: bool) -> StoreAudit:
            name, variant = _name(s)
            has_y = f.error is not None
            sa = StoreAudit(
                name=name + (" (held out)" if is_id and id_st is None else ""),
                url=s.url,
                n_samples=len(f.rows),
                has_targets=has_y,
                scores={k: _floats(v) or [] for k, v in scores.items()},
                error=_floats(f.error),
                variant=variant,
            )
            if not has_y:
                sa.notes.append(
                    "this store has no targets (y): the error attribution and the "
                    "error-Spearman were skipped; the off-distribution scores are complete"
                )
            else:
                sa.attribution = attribute_errors(
                    sae,
                    s,
                    hook,
                    f.rows,
                    hooked=hooked,
                    max_ablate=max_ablate,
                    quantile=quantile,
                    n_boot=n_boot,
                    level=level,
                    seed=seed,
                    batch_size=batch_size,
                )
                sa.notes.extend(sa.attribution.pop("notes", []))
            if not is_id:
                sa.detection = _detection(id_scores, scores, id_f.error, f.error)
                sa.moves = concept_moves(ref.magnitude, f.magnitude)
            return sa

        id_audit = audit_store(id_source, id_f, id_scores, True)
        shift_audits = []
        for s in shifted:
            f = feats(s, rows_of(s))
            shift_audits.append(audit_store(s, f, scorer.score(f), False))
    notes = []
    if hooked is None:
        notes.append("no model given: the ablation part of the error attribution was skipped")
    sae_info = {
        "architecture": getattr(sae, "architecture", type(sae).__name__),
        "n_concepts": int(sae.n_concepts),
        "metadata": getattr(sae, "metadata", {}) or {},
    }
    return AuditResult(
        hook=hook,
        sae=json.loads(json.dumps(sae_info, default=str)),
        model_fingerprint=train.fingerprint,
        train_store=train.url,
        reference_rows=len(ref_rows),
        in_distribution=id_audit,
        shifts=shift_audits,
        settings=settings,
        notes=notes,
    )
