"""The self-contained HTML report of an export: an index with a sortable table and a page per concept.

Pages reference the PNG figures by relative paths (``figures/...``), carry their CSS and the table's
sorting script inline, and load nothing from the network, so the export folder can be zipped,
moved and opened offline. Every string that comes from the data (concept names, labels, parameter
and hook names) is HTML-escaped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from saeno.export import explanations as X
from saeno.export.html_parts import (
    Links,
    esc,
    fmt_value,
    html_page,
    html_table,
    meta_table,
    num_cell,
    text_cell,
)
from saeno.export.schema import validate_concepts

PAGES_DIR = "concepts"


def concept_title(concept: Mapping[str, Any]) -> str:
    """``name`` or ``name: label``, unescaped."""
    label = concept.get("label")
    return f"{concept['name']}: {label}" if label else str(concept["name"])


def _enrichment_summary(concept: Mapping[str, Any]) -> str:
    parts = []
    for name, p in concept.get("params", {}).items():
        if p.get("correlation") is not None:
            parts.append(f"{name} r={p['correlation']:+.2f}")
    for factor, lab in concept.get("labels", {}).items():
        if lab.get("enriched"):
            parts.append(f"{factor}={lab['enriched']}")
    return ", ".join(parts)


_EVAL_COLUMNS = (
    ("output_change", "output change (splice)"),
    ("explained_variance", "explained variance"),
    ("explained_variance_mean_field", "EV vs mean field"),
    ("rel_l2", "relative L2 error"),
    ("loss_recovered", "loss recovered"),
    ("splice_added_error", "error added by splicing"),
    ("splice_added_abs", "error added (abs.)"),
    ("dead_fraction", "dead share"),
    ("L0_concepts", "active concepts per sample"),
    ("L0_per_point", "active concepts per point"),
)
_EVAL_HELP = (
    "Output change ||f(a_hat) - f(a)|| / ||f(a)||: how much splicing the reconstruction in at the hook "
    "changes the FNO's prediction, against its own clean prediction (faithfulness). "
    "Explained variance 1 - E|a - a_hat|^2 / E|a - mean a|^2 of the raw activations; loss "
    "recovered (L_mean - L_sae) / (L_mean - L_clean) of the FNO's relative L2 error against the "
    "target when the reconstruction (or the mean activation) is spliced in at the hook; error added "
    "L_sae / L_clean - 1 (abs.: L_sae - L_clean); EV vs mean field: against the mean across samples at "
    "each point instead of the channel mean; dead share: concepts never active on the evaluated samples."
)


def _evaluation_html(evaluation: Mapping[str, Any] | None) -> str:
    """The SAE's evaluation at each resolution, for the top of the index."""
    if not evaluation:
        return ""
    rows = []
    for res in evaluation.get("results", []):
        grid = "x".join(map(str, res.get("grid", [])))
        if res.get("training_resolution"):
            grid += " (training)"
        if "skipped" in res:
            rows.append(
                f'<tr>{text_cell(grid)}<td colspan="{len(_EVAL_COLUMNS) + 1}" '
                f'class="text">not evaluated: {esc(res["skipped"])}</td></tr>'
            )
            continue
        rows.append(
            "<tr>"
            + text_cell(grid)
            + num_cell(res.get("samples"))
            + "".join(num_cell(res.get(key)) for key, _ in _EVAL_COLUMNS)
            + "</tr>"
        )
    head = [("grid", "text"), ("samples", "number")] + [(t, "number") for _, t in _EVAL_COLUMNS]
    parts = ["<h2>How well the SAE reconstructs</h2>"]
    if rows:
        where = (
            "evaluated here on the exported samples"
            if evaluation.get("source") == "computed"
            else "from saeno.evaluate"
        )
        parts.append(
            html_table(head, rows, sortable=False).replace('<table class=""', '<table class="eval"', 1)
        )
        parts.append(f'<p class="caption">{esc(_EVAL_HELP)} ({esc(where)}; empty: not computed)</p>')
    if evaluation.get("note"):
        parts.append(f'<p class="note">{esc(evaluation["note"])}</p>')
    return "\n".join(parts)


def _dead_summary(dead: list[Mapping[str, Any]], n_total: int, n_rows: int) -> str:
    if not dead:
        return f'<p class="dead-summary">Every one of the {n_total} concepts is active.</p>'
    idx = sorted(c["index"] for c in dead)
    shown = ", ".join(map(str, idx[:60])) + (", ..." if len(idx) > 60 else "")
    return (
        f'<p class="dead-summary"><b>{len(idx)} of {n_total} concepts '
        f"({100 * len(idx) / max(n_total, 1):.0f}%) are dead</b>: never active on the "
        f"{n_rows} samples (not listed below): {esc(shown)}</p>"
    )


def _index_html(doc: Mapping[str, Any], links: Links | None = None) -> str:
    links = links or Links()
    sae, store = doc["sae"], doc["store"]
    abl = doc["ablation"]
    model_name = doc["model"]["name"] if doc.get("model") else None
    meta = {
        "SAE": f"{sae['architecture']}, {sae['n_concepts']} concepts, {sae['in_channels']} channels, "
        f"{sae['ndim']}D" + (f" ({sae['path']})" if sae.get("path") else ""),
        "model": model_name or "(none given)",
        "store": f"{store.get('path') or '(in memory)'}, hook {store['hook']}, grid "
        + "x".join(map(str, store["grid"]))
        + f", {store['n_rows']} samples",
        "resolutions": ", ".join("x".join(map(str, r)) for r in doc["resolutions"]),
        "exported": doc["created"] + f" by saeno {doc['saeno_version']}",
    }
    on = f" of {model_name}" if model_name else ""
    parts = [
        f'<h1 id="top">{esc(sae["architecture"])} concepts on {esc(store["hook"])}{esc(on)}</h1>',
        meta_table(meta),
    ]
    parts.append(_evaluation_html(doc.get("evaluation")))
    if not abl["done"]:
        parts.append(f'<p class="note">No ablation effects: {esc(abl.get("reason") or "")}</p>')
    headers = [
        ("concept", "number"),
        ("code map", "text"),
        ("name", "text"),
        ("rank", "number"),
        ("sample density", "number"),
        ("point density", "number"),
        ("mean activation", "number"),
        ("max activation", "number"),
        ("output change (ablated)", "number"),
        ("error ablated / clean", "number"),
        ("parameters and labels", "text"),
    ]
    headers += X.index_headers(doc)
    rows = []
    live = [c for c in doc["concepts"] if not c["stats"]["dead"]]
    dead = [c for c in doc["concepts"] if c["stats"]["dead"]]
    for c in sorted(live, key=lambda c: c["rank"]):  # most active first
        st, eff = c["stats"], c.get("effect")
        name_html = esc(concept_title(c))
        if c.get("page"):
            name_html = f'<a href="{esc(links.page(c["page"], False))}">{name_html}</a>'
        ratio = None
        if eff and eff.get("err_clean") and eff.get("err_ablated") is not None:
            ratio = eff["err_ablated"] / eff["err_clean"]
        thumb = (c.get("figures") or {}).get("thumbnail")
        thumb_html = (
            f'<img src="{esc(links.img(thumb))}" alt="code map of concept {c["index"]}">' if thumb else ""
        )
        rows.append(
            "<tr>"
            + num_cell(c["index"])
            + f'<td class="thumb">{thumb_html}</td>'
            + text_cell(None, name_html)
            + num_cell(c["rank"])
            + num_cell(st["sample_density"])
            + num_cell(st["point_density"])
            + num_cell(st["mean_activation"])
            + num_cell(st["max_activation"])
            + num_cell(eff["rel_change"] if eff else None)
            + num_cell(ratio)
            + text_cell(_enrichment_summary(c))
            + X.index_cells(doc, c)
            + "</tr>"
        )
    parts.append(
        f"<h2>Concepts</h2><p>{len(doc['figures_for'])} of {len(live)} live concepts have "
        "a page (the most active ones; the code map is the concept's on its top sample). "
        "Rows are in order of activity; click a column header to sort.</p>"
    )
    parts.append(_dead_summary(dead, len(doc["concepts"]), store["n_rows"]))
    parts.append(html_table(headers, rows, table_id="concepts"))
    overview = doc.get("overview", {}).get("density_figure")
    if overview:
        parts.append(
            "<h2>Activation density of all concepts</h2>"
            f'<img src="{esc(links.img(overview))}" alt="activation density of all concepts">'
        )
    if abl["done"]:
        parts.append(f'<p class="caption">Ablation: {esc(abl["method"])}</p>')
    parts.append(
        "<details><summary>Definitions</summary><ul>"
        + "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in doc["definitions"].items())
        + "</ul></details>"
    )
    return html_page(f"saeno concepts: {sae['architecture']} on {store['hook']}", "\n".join(parts))


def _examples_table(concept: Mapping[str, Any]) -> str:
    rows = [
        f"<tr>{text_cell('top')}{num_cell(e['row'])}{num_cell(e['activation'])}</tr>"
        for e in concept["top_examples"]
    ]
    rows += [
        f"<tr>{text_cell('quantile ' + fmt_value(q['quantile'], 2))}{num_cell(q['row'])}"
        f"{num_cell(q['activation'])}</tr>"
        for q in concept["quantile_examples"]
    ]
    return html_table([("kind", "text"), ("store row", "number"), ("activation", "number")], rows)


def _concept_html(
    doc: Mapping[str, Any],
    concept: Mapping[str, Any],
    prev_page: str | None,
    next_page: str | None,
    links: Links | None = None,
) -> str:
    links = links or Links("../")
    by_index = {c["index"]: c for c in doc["concepts"]}
    st = concept["stats"]
    title = concept_title(concept)
    nav = [f'<a href="{esc(links.index())}">index</a>']
    if prev_page:
        nav.append(f'<a href="{esc(links.page(prev_page, True))}">previous</a>')
    if next_page:
        nav.append(f'<a href="{esc(links.page(next_page, True))}">next</a>')
    parts = [
        f"<nav>{''.join(nav)}</nav>",
        f"<h1>{esc(title)}</h1>",
        meta_table(
            {
                "index": concept["index"],
                "rank by activity": concept["rank"],
                "hook": doc["store"]["hook"],
                "sample density": st["sample_density"],
                "point density": st["point_density"],
                "mean activation (active samples)": st["mean_activation"],
                "max activation": st["max_activation"],
            }
        ),
    ]
    parts.append(X.page_section(doc, concept))
    figs = concept.get("figures", {})
    notes = concept.get("figure_notes") or {}

    def fig(key: str, heading: str, alt: str) -> None:
        if figs.get(key):
            head = f"<h2>{esc(heading)}</h2>" if heading else ""
            parts.append(f'{head}<img src="{esc(links.img(figs[key]))}" alt="{esc(alt)}">')
            if notes.get(key):
                parts.append(f'<p class="caption">{esc(notes[key])}</p>')

    fig("examples", "Top examples", f"top examples of {title}")
    fig(
        "code_maps",
        "Code maps on the top samples, beside the FNO's input and output",
        f"code maps of {title}",
    )
    fig(
        "atom",
        "Atom: what the decoder adds for a unit code at one point"
        + (" (smooth part)" if figs.get("atom_pointwise") else ""),
        f"atom of {title}",
    )
    fig("atom_pointwise", "", f"pointwise part of the atom of {title}")
    fig(
        "spectrum",
        "Fourier amplitude spectrum of the atom" + (" (smooth part)" if figs.get("atom_pointwise") else ""),
        f"spectrum of {title}",
    )
    fig("density", "Activation density and histogram", f"histogram of {title}")
    parts.append("<h2>Top and quantile examples (store rows)</h2>" + _examples_table(concept))
    parts.append("<h2>Effect on the prediction</h2>")
    eff = concept.get("effect")
    if eff:
        parts.append(f"<p>{esc(doc['ablation']['method'])}</p>")
        parts.append(
            meta_table(
                {
                    "samples": eff["n_samples"],
                    "relative change of the output": eff["rel_change"],
                    "relative L2 error, clean": eff["err_clean"],
                    "relative L2 error, ablated": eff["err_ablated"],
                }
            )
        )
        fig("effect", "", f"ablation effect of {title}")
    else:
        reason = doc["ablation"].get("reason") or "no ablation for this concept"
        parts.append(f'<p class="note">Not computed: {esc(reason)}</p>')
    corr_rows = []
    for item in concept["correlated"]:
        other = by_index.get(item["index"])
        name_html = esc(concept_title(other) if other else item["index"])
        if other and other.get("page"):
            name_html = f'<a href="{esc(links.page(other["page"], True))}">{name_html}</a>'
        corr_rows.append(
            f"<tr>{num_cell(item['index'])}{text_cell(None, name_html)}{num_cell(item['correlation'])}</tr>"
        )
    parts.append(
        "<h2>Correlated concepts</h2>"
        + html_table([("concept", "number"), ("name", "text"), ("correlation", "number")], corr_rows)
    )
    if concept["params"]:
        rows = [
            f"<tr>{text_cell(name)}{num_cell(p['top_mean'])}{num_cell(p['overall_mean'])}"
            f"{num_cell(p['overall_std'])}{num_cell(p['correlation'])}</tr>"
            for name, p in concept["params"].items()
        ]
        parts.append(
            "<h2>PDE parameters</h2>"
            + html_table(
                [
                    ("parameter", "text"),
                    ("mean on top samples", "number"),
                    ("mean overall", "number"),
                    ("std overall", "number"),
                    ("correlation with activation", "number"),
                ],
                rows,
            )
        )
    if concept["labels"]:
        rows = []
        for factor, lab in concept["labels"].items():
            for value in sorted(set(lab["overall"]) | set(lab["top"])):
                rows.append(
                    f"<tr>{text_cell(factor)}{text_cell(value)}"
                    f"{num_cell(lab['top'].get(value, 0.0))}"
                    f"{num_cell(lab['overall'].get(value, 0.0))}</tr>"
                )
        parts.append(
            "<h2>Labels</h2>"
            + html_table(
                [
                    ("factor", "text"),
                    ("value", "text"),
                    ("share on top samples", "number"),
                    ("share overall", "number"),
                ],
                rows,
            )
        )
    return html_page(f"saeno: {title}", "\n".join(parts))


def _body(page: str) -> str:
    """The content between ``<body>`` and the sorting script of a page from :func:`html_page`."""
    start = page.index("<body>\n") + len("<body>\n")
    return page[start : page.rindex("\n<script>")]


def write_report(doc: Mapping[str, Any], out: str | Path, *, inline: bool = False) -> Path:
    """Write ``report.html`` and one page per concept that has ``page`` set.

    Parameters
    ----------
    doc : mapping
        A valid ``concepts.json`` document (see :mod:`saeno.export.schema`); figure and page paths
        in it are relative to ``out``.
    out : path-like
        The export folder.
    inline : bool
        Write one self-contained ``report.html`` instead: the index followed by every concept
        page as a section, figures inline as ``data:`` URIs (it can be mailed or attached on its
        own; the ``concepts/`` pages are written as well, for ``concepts.json``'s links).

    Returns
    -------
    pathlib.Path
        Path of ``report.html``.
    """
    validate_concepts(json.loads(json.dumps(doc)))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with_pages = [c for c in doc["concepts"] if c.get("page")]
    with_pages.sort(key=lambda c: c["rank"])
    for i, concept in enumerate(with_pages):
        prev_page = with_pages[i - 1]["page"] if i > 0 else None
        next_page = with_pages[i + 1]["page"] if i + 1 < len(with_pages) else None
        path = out / concept["page"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_concept_html(doc, concept, prev_page, next_page), encoding="utf-8")
    index = out / "report.html"
    if not inline:
        index.write_text(_index_html(doc), encoding="utf-8")
        return index
    links = Links("", root=out)
    sections = []
    for i, concept in enumerate(with_pages):
        prev_page = with_pages[i - 1]["page"] if i > 0 else None
        next_page = with_pages[i + 1]["page"] if i + 1 < len(with_pages) else None
        body = _body(_concept_html(doc, concept, prev_page, next_page, links))
        sections.append(
            f'<section class="concept" id="{esc(Path(concept["page"]).stem)}">\n{body}\n</section>'
        )
    page = _index_html(doc, links)
    page = page.replace("\n<script>", "\n" + "\n".join(sections) + "\n<script>", 1)
    index.write_text(page, encoding="utf-8")
    return index


def page_path(index: int) -> str:
    """Relative path (from the export folder) of concept ``index``'s page."""
    return f"{PAGES_DIR}/concept_{index:05d}.html"


__all__ = ["PAGES_DIR", "concept_title", "esc", "page_path", "write_report"]
