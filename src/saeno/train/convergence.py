"""Is a run converged? The checks behind :class:`ConvergenceWarning` (``saeno.train_sae``'s warnings)."""

from __future__ import annotations

from typing import Any

__all__ = ["FALLING_FAST", "MIN_EV", "ConvergenceWarning", "convergence_warnings", "decay_start"]


class ConvergenceWarning(UserWarning):
    """The run ended far from a usable SAE (low explained variance or a loss still falling)."""


#: a run whose last logged explained variance is below this gets a :class:`ConvergenceWarning`
MIN_EV = 0.5
#: ... and so does one whose loss fell by more than this share over its last quarter of log rows
FALLING_FAST = 0.05


def convergence_warnings(history: list[dict[str, Any]], decay_start: int | None = None) -> list[str]:
    """Why the logged run looks unconverged (empty when it looks fine).

    Two checks: the last row's explained variance is below :data:`MIN_EV`; the mean loss of the last
    quarter of the rows logged at the full learning rate (steps up to ``decay_start``, where the final
    decay begins, which lowers the loss by itself) is more than :data:`FALLING_FAST` below that of the
    quarter before it.
    """
    found = []
    if history and history[-1].get("ev", 1.0) < MIN_EV:
        found.append(
            f"the final explained variance is {history[-1]['ev']:.3f} (< {MIN_EV}): the "
            "SAE reconstructs its input poorly; train longer (steps=/--steps) or use "
            "more concepts"
        )
    rows = [r for r in history if decay_start is None or r.get("step", 0) <= decay_start]
    q = len(rows) // 4
    if q >= 1:
        last = sum(r["loss"] for r in rows[-q:]) / q
        before = sum(r["loss"] for r in rows[-2 * q : -q]) / q
        if before > 0 and (before - last) / before > FALLING_FAST:
            found.append(
                f"the loss was still falling fast ({100 * (before - last) / before:.0f}% "
                "over the last quarter of training): train longer (steps=/--steps)"
            )
    return found


def decay_start(
    total: int | None, decay_frac: float, schedule: str = "linear", warmup: int = 0
) -> int | None:
    """The step where the learning rate starts its final decay (None: it does not decay).

    The linear schedule decays over the last ``decay_frac`` of the steps; the cosine one decays from
    the end of the warm-up on.
    """
    if not total:
        return None
    if schedule == "cosine":
        return warmup
    return total - max(1, int(round(decay_frac * total))) if decay_frac > 0 else None
