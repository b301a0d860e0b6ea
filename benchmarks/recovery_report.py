"""Markdown tables (and plots) of the claims protocol's JSONL rows (``python benchmarks/recovery.py report``).

Every figure is mean ± std over the scored seeds (0, 1, 2) unless a column says "per seed".
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np

from saeno import synthetic as S
from saeno.recovery import steps_to
from saeno.recovery.settings import get_setting

SCORED = (0, 1, 2)
GRIDS = ("32", "64", "128", "256")


def _pm(values: list[float], digits: int = 3) -> str:
    a = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if a.size == 0:
        return "-"
    return f"{a.mean():.{digits}f} ± {a.std():.{digits}f}" + ("" if a.size == 3 else f" (n={a.size})")


def select(
    rows: list[dict[str, Any]], setting: str, label: str, *, long: bool = False, **build: Any
) -> list[dict[str, Any]]:
    """Scored rows of one (setting, model, build options); options not given must be absent.

    ``long`` picks the 1500-step runs of ``modes-long`` instead of the others.
    """
    out = []
    for r in rows:
        j = r["job"]
        if j["claim"] == "rates" or j["seed"] not in SCORED or j["setting"] != setting or j["label"] != label:
            continue
        if (j["steps"] == 1500) != long:
            continue
        b = {k: v for k, v in j["build"].items() if k not in ("modes", "kernel") and v is not None}
        if b == {k: v for k, v in build.items() if v is not None}:
            out.append(r)
    return sorted(out, key=lambda r: r["job"]["seed"])


def chance(setting: str) -> list[float]:
    """Shift-invariant recovery of fresh atoms of the same family (another seed), per scored seed."""
    st = get_setting(setting)
    out = []
    for seed in SCORED:
        true = st.atoms(seed).render(st.n)
        other = st.atoms(seed + 500).render(st.n)
        out.append(S.match_atoms(other, true, shift_invariant=not st.euclidean).mean_cos)
    return out


def _at_step(r: dict[str, Any], step: int) -> float:
    c = r["curve"]
    return c["mean_cos"][c["step"].index(step)] if step in c["step"] else float("nan")


def lift_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | lr | recovery at step 0 (null) | at step 100 | final (step 300) | AUC of the curve | "
        "steps to 0.9 (per seed) | s per 100 steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    best: dict[str, tuple[float, float]] = {}
    for lift, name in ((None, "SAE"), (256, "L-SAE (L = 256)")):
        for lr in sorted({r["job"]["lr"] for r in rows if r["job"]["claim"] == "lift"}):
            rs = [r for r in select(rows, "euclid-noise", "SAE", lifting=lift) if r["job"]["lr"] == lr]
            if not rs:
                continue
            auc = [float(np.mean(r["curve"]["mean_cos"])) for r in rs]
            st = [steps_to(r["curve"], 0.9) for r in rs]
            st_txt = ", ".join("never" if math.isinf(v) else str(int(v)) for v in st)
            lines.append(
                f"| {name} | {lr:g} | {_pm([_at_step(r, 0) for r in rs])} | {_pm([_at_step(r, 100) for r in rs])} | "
                f"{_pm([r['final']['mean_cos'] for r in rs])} | {_pm(auc)} | {st_txt} | "
                f"{np.mean([r['train_s'] for r in rs]) / 3:.1f} |"
            )
            if name not in best or np.mean(auc) > best[name][0]:
                best[name] = (float(np.mean(auc)), lr)
    lines.append("")
    lines.append(
        "Best rate per model (highest mean AUC): " + ", ".join(f"{k} {v[1]:g}" for k, v in best.items())
    )
    return "\n".join(lines)


def rates_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| setting | model | lr: final recovery on the validation seed 9 |", "|---|---|---|"]
    seen: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        j = r["job"]
        if j["claim"] == "rates":
            seen.setdefault((j["setting"], j["label"]), []).append(
                f"{j['lr']:g}: {r['final']['mean_cos']:.3f}"
            )
    for (s, m), v in seen.items():
        lines.append(f"| {s} | {m} | {', '.join(v)} |")
    return "\n".join(lines)


def modes_table(rows: list[dict[str, Any]], models: tuple[str, ...], long: bool = False) -> str:
    lines = [
        "| setting | model | lr | recovery (final) | untrained (null) | chance, fresh atoms | coherence (true) | "
        "test rel. error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for setting in ("conv-smooth", "conv-noise", "conv-smooth-c4"):
        ch = _pm(chance(setting))
        for m in models:
            rs = select(rows, setting, m, long=long)
            if not rs:
                continue
            lines.append(
                f"| {setting} | {m} | {rs[0]['job']['lr']:g} | {_pm([r['final']['mean_cos'] for r in rs])} | "
                f"{_pm([r['null']['mean_cos'] for r in rs])} | {ch} | {_pm([r['coherence'] for r in rs])} "
                f"({np.mean([r['true_coherence'] for r in rs]):.3f}) | {_pm([r['eval']['rel_error'] for r in rs])} |"
            )
    return "\n".join(lines)


def _grid_cell(rs: list[dict[str, Any]], key: str, g: str, field: str) -> str:
    vals = [r["eval"][key][g] for r in rs]
    if any(v["rel_error"] == "n/a" for v in vals):
        return "n/a"
    return _pm([v.get(field, float("nan")) for v in vals])


def grid_table(rows: list[dict[str, Any]], setting: str, models: tuple[str, ...]) -> str:
    lines = [
        "| model | "
        + " | ".join(f"error @ {g}" for g in GRIDS)
        + " | error ratio 256/64 | "
        + " | ".join(f"abs(cos) @ {g}" for g in GRIDS)
        + " | resampled: error @ 32 / 256 |",
        "|---|" + "---|" * (2 * len(GRIDS) + 2),
    ]
    for m in models:
        rs = select(rows, setting, m)
        if not rs:
            continue
        errs = [_grid_cell(rs, "resolution", g, "rel_error") for g in GRIDS]
        cos = [_grid_cell(rs, "resolution", g, "mean_cos") for g in GRIDS]
        res = rs[0]["eval"]["resolution"]
        if res["256"]["rel_error"] == "n/a":
            ratio = "n/a"
        else:
            ratio = _pm(
                [
                    r["eval"]["resolution"]["256"]["rel_error"] / r["eval"]["resolution"]["64"]["rel_error"]
                    for r in rs
                ],
                2,
            )
        rsm = " / ".join(_grid_cell(rs, "resolution_resampled", g, "rel_error") for g in ("32", "256"))
        lines.append(f"| {m} | " + " | ".join(errs) + f" | {ratio} | " + " | ".join(cos) + f" | {rsm} |")
    return "\n".join(lines)


def sparsity_table(rows: list[dict[str, Any]], models: tuple[str, ...], setting: str = "conv-smooth") -> str:
    lines = [
        "| model | recovery k=1 | k=2 (planted) | k=4 | spread max-min (per seed) | error k=1 | k=2 | k=4 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in models:
        by_k = {k: select(rows, setting, m, k=None if k == 2 else k) for k in (1, 2, 4)}
        if not all(by_k.values()):
            continue
        seeds = sorted(set.intersection(*[{r["job"]["seed"] for r in v} for v in by_k.values()]))
        spread = []
        for s in seeds:
            vals = [next(r for r in by_k[k] if r["job"]["seed"] == s)["final"]["mean_cos"] for k in (1, 2, 4)]
            spread.append(max(vals) - min(vals))
        rec = [_pm([r["final"]["mean_cos"] for r in by_k[k]]) for k in (1, 2, 4)]
        err = [_pm([r["eval"]["rel_error"] for r in by_k[k]]) for k in (1, 2, 4)]
        lines.append(
            f"| {m} | "
            + " | ".join(rec)
            + f" | {_pm(spread)} ({', '.join(f'{v:.3f}' for v in spread)}) | "
            + " | ".join(err)
            + " |"
        )
    return "\n".join(lines)


def shift_usage_tables(rows: list[dict[str, Any]], cases: list[tuple[str, str]]) -> str:
    lines = [
        "| setting | model | error in distribution | amplitude shift: error | ratio | noise shift: error vs clean | "
        "ratio | noise floor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    use = [
        "| setting | model | evenness (null: untrained) | never firing | largest share | evenness under the amplitude shift |",
        "|---|---|---|---|---|---|",
    ]
    for setting, m in cases:
        rs = select(rows, setting, m)
        if not rs:
            continue
        e = [r["eval"] for r in rs]
        lines.append(
            f"| {setting} | {m} | {_pm([v['rel_error'] for v in e])} | {_pm([v['shift']['amplitude'] for v in e])} | "
            f"{_pm([v['shift']['amplitude'] / v['rel_error'] for v in e], 2)} | {_pm([v['shift']['noise'] for v in e])} | "
            f"{_pm([v['shift']['noise'] / v['rel_error'] for v in e], 2)} | {np.mean([v['shift']['noise_floor'] for v in e]):.3f} |"
        )
        use.append(
            f"| {setting} | {m} | {_pm([v['usage']['evenness'] for v in e])} "
            f"({_pm([r['null']['usage']['evenness'] for r in rs])}) | {_pm([v['usage']['never'] for v in e])} | "
            f"{_pm([v['usage']['max_share'] for v in e])} | {_pm([v['usage_shift']['evenness'] for v in e])} |"
        )
    return "\n".join(lines) + "\n\n" + "\n".join(use)


def local_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| setting | model | peak picking | F1 | recall | precision | untrained F1 (null) | recovery |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for setting in ("conv-smooth", "conv-smooth-c4"):
        for m, peaks in itertools.product(("SAE-FNO", "SAE-CNN"), (None, 1)):
            rs = select(rows, setting, m, peaks=peaks)
            if not rs:
                continue
            loc = [r["eval"]["local"] for r in rs]
            lines.append(
                f"| {setting} | {m} | {'r = 1' if peaks else 'off'} | {_pm([v['f1'] for v in loc])} | "
                f"{_pm([v['recall'] for v in loc])} | {_pm([v['precision'] for v in loc])} | "
                f"{_pm([r['null']['local']['f1'] for r in rs])} | {_pm([r['final']['mean_cos'] for r in rs])} |"
            )
    return "\n".join(lines)


def plot_lift(rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, (lift, name) in zip(axes, ((None, "SAE"), (256, "L-SAE"))):
        for lr in sorted({r["job"]["lr"] for r in rows if r["job"]["claim"] == "lift"}):
            rs = [r for r in select(rows, "euclid-noise", "SAE", lifting=lift) if r["job"]["lr"] == lr]
            if rs:
                c = np.array([r["curve"]["mean_cos"] for r in rs])
                ax.plot(rs[0]["curve"]["step"], c.mean(0), label=f"lr {lr:g}")
                ax.fill_between(rs[0]["curve"]["step"], c.mean(0) - c.std(0), c.mean(0) + c.std(0), alpha=0.2)
        ax.set_title(f"{name} (euclid-noise)")
        ax.set_xlabel("training step")
        ax.axhline(0.9, ls=":", c="k")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("mean matched |cos|")
    fig.tight_layout()
    fig.savefig(out / "recovery_lift.png", dpi=110)
    plt.close(fig)


def report(rows: list[dict[str, Any]], plots: Path | None = None) -> str:
    """All tables as one Markdown string (sections follow benchmarks/results/recovery.md)."""
    fields = ("SAE-FNO", "SAE-FNO all modes", "SAE-CNN")
    parts = [
        "### lift\n\n" + lift_table(rows),
        "### rates (field models)\n\n" + rates_table(rows),
        "### modes\n\n" + modes_table(rows, fields),
        "### modes, 1500 steps\n\n" + modes_table(rows, fields, long=True),
        "### grid (conv-smooth-c4)\n\n"
        + grid_table(rows, "conv-smooth-c4", ("SAE-FNO", "SAE-CNN", "SAE", "FlatSAE")),
        "### grid (conv-smooth, one channel)\n\n" + grid_table(rows, "conv-smooth", fields),
        "### sparsity\n\n" + sparsity_table(rows, fields),
        "### sparsity (conv-smooth-c4)\n\n" + sparsity_table(rows, ("SAE-FNO", "SAE-CNN"), "conv-smooth-c4"),
        "### shift and usage\n\n"
        + shift_usage_tables(
            rows,
            [("conv-smooth", m) for m in fields]
            + [("conv-smooth-c4", m) for m in ("SAE-FNO", "SAE-CNN", "SAE", "FlatSAE")],
        ),
        "### local\n\n" + local_table(rows),
    ]
    if plots is not None:
        plot_lift(rows, plots)
    return "\n\n".join(parts) + "\n"
