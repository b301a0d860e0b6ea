"""The audit page: a self-contained HTML page (``audit.html`` + ``figures/audit_*.png``) of a
:class:`saeno.audit.AuditResult`, in the style of the concept report (same CSS, content-security
policy, escaping and sortable tables; nothing loaded from the network).

Sections: the score table (AUROC and error-Spearman of every score per shift), ROC curves, error maps
of the worst-predicted samples, the error attribution per store (ablation and active-vs-inactive bars
with their bootstrap intervals, worst-point shares) and the concepts each shift moves.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from saeno.export.html_parts import (
    esc,
    fmt_value,
    html_page,
    html_table,
    meta_table,
    num_cell,
    text_cell,
)

FIG_DIR = "figures"
SCORE_LABELS = {
    "sae_recon": "SAE reconstruction error",
    "sae_novelty": "SAE concept-usage novelty (kNN)",
    "sae_rare": "SAE rare-concept activity",
    "mahalanobis": "baseline: Mahalanobis (Ledoit-Wolf) of pooled activations",
    "act_norm": "baseline: activation norm (|log ratio to training median|)",
}


def _doc(result: Any) -> dict[str, Any]:
    return result if isinstance(result, dict) else result.to_dict()


def _slug(i: int) -> str:
    return f"s{i}"


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _roc_figure(shift: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    for score, d in shift["detection"].items():
        ax.plot(
            d["roc"]["fpr"],
            d["roc"]["tpr"],
            label=f"{score} ({fmt_value(d['auroc'], 2)})",
            ls="-" if score.startswith("sae") else "--",
        )
    ax.plot([0, 1], [0, 1], color="#bbb", lw=0.8)
    ax.set_xlabel("false-positive rate (test samples)")
    ax.set_ylabel("true-positive rate (shifted)")
    ax.set_title(f"ROC: {shift['name']}", fontsize=9)
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    _save(fig, path)


def _bars(ax: Any, labels: Sequence[str], inter: dict[str, list], title: str, ref: float) -> None:
    v = np.array([np.nan if x is None else x for x in inter["value"]], dtype=float)
    lo = np.array([np.nan if x is None else x for x in inter["low"]], dtype=float)
    hi = np.array([np.nan if x is None else x for x in inter["high"]], dtype=float)
    pos = np.arange(len(v))
    err = np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)])
    ax.bar(pos, np.nan_to_num(v), yerr=np.nan_to_num(err), capsize=2, color="#4c72b0")
    ax.axhline(ref, color="#999", lw=0.8)
    ax.set_xticks(pos, labels, rotation=60, fontsize=6)
    ax.set_title(title, fontsize=8)


def _attribution_figure(store: dict[str, Any], path: Path, n_show: int = 10) -> bool:
    att = store.get("attribution")
    if not att:
        return False
    panels = []
    if att.get("ablation"):
        abl = att["ablation"]
        panels.append(
            (
                [f"c{k}" for k in abl["concepts"]],
                abl["error_removed"],
                "error removed by ablating (rel. L2)",
                0.0,
            )
        )
    if att.get("worst"):
        share = np.array([np.nan if x is None else x for x in att["worst"]["share_active"]["value"]], float)
        order = [int(k) for k in np.argsort(-np.nan_to_num(share, nan=-1))[:n_show]]
        pick = {
            key: [att["worst"]["share_active"][key][k] for k in order] for key in ("value", "low", "high")
        }
        panels.append(([f"c{k}" for k in order], pick, "share of worst points where active", 0.0))
        ratio = att["active_vs_inactive"]["ratio"]
        pick = {key: [ratio[key][k] for k in order] for key in ("value", "low", "high")}
        panels.append(([f"c{k}" for k in order], pick, "error active / inactive", 1.0))
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 2.8), squeeze=False)
    for ax, (labels, inter, title, ref) in zip(axes[0], panels):
        _bars(ax, labels, inter, title, ref)
    fig.suptitle(
        f"{store['name']}: bars = estimate, whiskers = {att['level']:.0%} bootstrap interval", fontsize=8
    )
    fig.tight_layout()
    _save(fig, path)
    return True


def _error_maps(store_obj: Any, store: dict[str, Any], path: Path, n: int = 3) -> bool:
    err = store.get("error")
    if not err or store_obj is None or "y" not in store_obj:
        return False
    e = np.array([np.nan if v is None else v for v in err], float)
    worst = [int(r) for r in np.argsort(-np.nan_to_num(e, nan=-1))[:n]]
    fig, axes = plt.subplots(len(worst), 4, figsize=(8.0, 1.9 * len(worst)), squeeze=False)
    for i, r in enumerate(worst):
        x, y, yp = (np.asarray(store_obj.read(k, [r]))[0, 0] for k in ("x", "y", "y_pred"))
        fields = [("input", x), ("target", y), ("prediction", yp), ("|error|", np.abs(yp - y))]
        for ax, (title, f) in zip(axes[i], fields):
            if f.ndim == 1:
                ax.plot(f, lw=0.8)
            else:
                im = ax.imshow(f.T, origin="lower", cmap="magma" if title == "|error|" else "viridis")
                fig.colorbar(im, ax=ax, fraction=0.046)
                ax.set_xticks([])
                ax.set_yticks([])
            ax.set_title(
                f"row {r} {title}" + (f" (err {e[r]:.3f})" if title == "|error|" else ""), fontsize=7
            )
    fig.tight_layout()
    _save(fig, path)
    return True


def _score_table(doc: dict[str, Any]) -> str:
    scores = list(SCORE_LABELS)
    headers = [("shift", "text"), ("samples", "number"), ("mean FNO error", "number")]
    headers += [(f"AUROC {s}", "number") for s in scores]
    headers += [(f"Spearman {s}", "number") for s in scores]
    rows = []
    for s in doc["shifts"]:
        err = s.get("error")
        mean_err = None if not err else float(np.mean([v for v in err if v is not None]))
        det = s["detection"]
        rows.append(
            "<tr>"
            + text_cell(s["name"])
            + num_cell(s["n_samples"])
            + num_cell(mean_err)
            + "".join(num_cell(det[sc]["auroc"]) for sc in scores)
            + "".join(num_cell(det[sc]["spearman_pooled"]) for sc in scores)
            + "</tr>"
        )
    return html_table(headers, rows, table_id="scores")


def _moves_html(shift: dict[str, Any], limit: int = 10) -> str:
    m = shift.get("moves")
    if not m:
        return ""
    head = (
        f"<p>{m['n_significant']} concepts move significantly (q &lt; {esc(m['alpha'])}, {esc(m['test'])}); "
        f"switched on: {esc(', '.join(f'c{k}' for k in m['switched_on']) or 'none')}; switched off: "
        f"{esc(', '.join(f'c{k}' for k in m['switched_off']) or 'none')}.</p>"
    )
    if not m["most_moved"]:
        return head
    rows = [
        "<tr>"
        + num_cell(k)
        + num_cell(m["freq_train"][k])
        + num_cell(m["freq_shifted"][k])
        + num_cell(m["magnitude_ratio"][k])
        + num_cell(m["q"][k])
        + "</tr>"
        for k in m["most_moved"][:limit]
    ]
    return head + html_table(
        [
            ("concept", "number"),
            ("active share (train)", "number"),
            ("active share (shifted)", "number"),
            ("magnitude ratio", "number"),
            ("q", "number"),
        ],
        rows,
    )


def write_audit_page(
    result: Any, out: str | Path, *, stores: Sequence[Any] | None = None, sae: Any = None
) -> Path:
    """Write ``audit.html`` and its figures into ``out``; returns the page's path.

    Parameters
    ----------
    result
        An :class:`~saeno.audit.AuditResult` (or its ``to_dict()``).
    out
        Folder (created).
    stores
        The opened stores in the order in-distribution, then shifts, for the error maps (default:
        opened from the URLs in the result; maps are skipped for stores that cannot be opened).
    sae
        Unused; accepted so callers can pass what they have.
    """
    doc = _doc(result)
    out = Path(out)
    (out / FIG_DIR).mkdir(parents=True, exist_ok=True)
    all_stores = [doc["in_distribution"], *doc["shifts"]]
    if stores is None:
        from saeno.store import ActivationStore

        opened = []
        for s in all_stores:
            try:
                opened.append(ActivationStore.open(s["url"]))
            except Exception:  # noqa: BLE001 - a moved store only loses its error maps
                opened.append(None)
        stores = opened
    s = doc["settings"]
    meta = {
        "hook": doc["hook"],
        "SAE": f"{doc['sae']['architecture']}, {doc['sae']['n_concepts']} concepts",
        "training store (reference)": f"{doc['train_store']} ({doc['reference_rows']} rows)",
        "in-distribution set": f"{doc['in_distribution']['name']} ({doc['in_distribution']['n_samples']} samples)",
        "model fingerprint": (doc.get("model_fingerprint") or "")[:16],
        "bootstrap": f"{s['n_boot']} resamples over samples, {s['level']:.0%} percentile intervals",
        "worst points": f"top {1 - s['quantile']:.0%} of per-point errors",
        "Mahalanobis shrinkage": fmt_value(s["mahalanobis_shrinkage"]),
    }
    parts = [f"<h1>Audit of {esc(doc['hook'])}</h1>", meta_table(meta)]
    for note in doc.get("notes", []):
        parts.append(f'<p class="note">{esc(note)}</p>')
    parts.append(
        "<h2>Definitions</h2><ul>"
        + "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in SCORE_LABELS.items())
        + "<li><b>AUROC</b>: in-distribution samples vs the shifted store's samples, higher score = more "
        "unusual (0.5 = chance)</li><li><b>Spearman</b>: rank correlation of the score with the FNO's "
        "per-sample relative L2 error over the in-distribution and shifted samples together</li></ul>"
    )
    parts.append("<h2>Scores against baselines</h2><p>Click a column header to sort.</p>")
    parts.append(_score_table(doc))
    parts.append("<h2>ROC curves</h2>")
    for i, sh in enumerate(doc["shifts"]):
        rel = f"{FIG_DIR}/audit_roc_{_slug(i)}.png"
        _roc_figure(sh, out / rel)
        parts.append(f'<img src="{esc(rel)}" alt="ROC curves of {esc(sh["name"])}" width="380">')
    parts.append("<h2>Where the FNO fails</h2>")
    for i, (st, obj) in enumerate(zip(all_stores, stores)):
        parts.append(f"<h3>{esc(st['name'])}</h3>")
        for note in st.get("notes", []):
            parts.append(f'<p class="note">{esc(note)}</p>')
        rel = f"{FIG_DIR}/audit_errors_{_slug(i)}.png"
        if _error_maps(obj, st, out / rel):
            parts.append(f'<img src="{esc(rel)}" alt="worst-predicted samples of {esc(st["name"])}">')
        rel = f"{FIG_DIR}/audit_attribution_{_slug(i)}.png"
        if _attribution_figure(st, out / rel):
            parts.append(f'<img src="{esc(rel)}" alt="error attribution of {esc(st["name"])}">')
        if i > 0:
            parts.append(_moves_html(st))
    page = out / "audit.html"
    page.write_text(html_page(f"saeno audit: {doc['hook']}", "\n".join(parts)), encoding="utf-8")
    return page


__all__ = ["write_audit_page"]
