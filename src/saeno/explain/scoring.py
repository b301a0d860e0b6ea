"""Scoring one concept against the probes: the probe, its sign and quantile chosen on the selection half,
scored on the held-out half against the shuffled-sample null (see ``docs/explain.md``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from saeno.explain import scores as SC
from saeno.explain.result import ConceptExplanation

NULL_QUANTILE = 0.99  # a score is beyond the null above this quantile of its draws
ACTIVE_FRACTION = 0.1  # "active" point: code above this fraction of its 99th percentile
CONJUNCTION_CANDIDATES = 4  # conjunctions pair the best distinct probes on the selection half


# ---------------------------------------------------------------------------------------------
# scoring one concept


@dataclass
class Half:
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


class RankCache:
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


def half_of(flat: np.ndarray, samples: np.ndarray, cache: RankCache) -> Half:
    code = flat[samples].ravel().astype(np.float64)
    vals, r, zp = cache.get(samples)
    return Half(samples, code, SC.standardize(SC.ranks(code)), vals, r, zp)


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
class Scored:
    explanation: ConceptExplanation
    rho_all: np.ndarray | None  # (J,) held-out rho of every probe with its selection sign


def score_concept(
    k: int,
    maps_k: np.ndarray,
    sel: np.ndarray,
    held: np.ndarray,
    cache: RankCache,
    names: Sequence[str],
    invariant: Sequence[bool],
    grid: tuple[int, ...],
    *,
    min_samples: int,
    null_draws: int,
    conjunctions: bool,
    rng: np.random.Generator,
    with_null: bool = True,
) -> Scored:
    """Choose the explanation of one concept on ``sel`` and score it on ``held`` (see the module doc)."""
    flat = maps_k.reshape(maps_k.shape[0], -1)
    active = np.any(flat != 0, axis=1)
    s_sel, s_held = sel[active[sel]], held[active[held]]
    if len(s_sel) < min_samples or len(s_held) < min_samples:
        return Scored(
            ConceptExplanation(index=k, status="rare", n_select=len(s_sel), n_heldout=len(s_held)), None
        )
    A, B = half_of(flat, s_sel, cache), half_of(flat, s_held, cache)
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
    return Scored(expl, rho_b)
