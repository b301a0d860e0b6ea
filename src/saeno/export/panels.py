"""The drawing engine of the export's figures: panels laid out on a fixed point grid, colour scales,
one field drawn on matplotlib axes, and saving (Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.font_manager
import matplotlib.ticker

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

DEFAULT_DPI = 100
PANEL_IN = 2.8  # inches per panel


def as_2d(field: np.ndarray) -> np.ndarray:
    """Reduce a 2D or 3D field to a 2D image (3D: middle slice along the last axis)."""
    field = np.asarray(field)
    while field.ndim > 2:
        field = field[..., field.shape[-1] // 2]
    return field


def show_field(
    ax: Axes, field: np.ndarray, *, title: str = "", cmap: str = "viridis", symmetric: bool = False
) -> None:
    """Draw one field on ``ax``: a curve for 1D, an image for 2D, the middle slice for 3D.

    Images get a colour bar.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Target axes.
    field : numpy.ndarray
        Array of shape ``(*grid)`` with 1 to 3 dimensions (a 0-d array is drawn as one bar).
    title : str
        Axes title.
    cmap : str
        Colour map for images.
    symmetric : bool
        Centre the colour scale on zero (for signed fields such as atoms and differences).
    """
    field = np.asarray(field, dtype=np.float64)
    if field.ndim == 0:
        ax.bar([0], [float(field)])
        ax.set_xticks([])
        ax.tick_params(labelsize=FONT_TICK)
    elif field.ndim == 1:
        ax.plot(np.linspace(0.0, 1.0, field.shape[0]), field, lw=1.0)
        ax.set_xticks([])
        ax.tick_params(labelsize=FONT_TICK)
        if symmetric:
            ax.axhline(0.0, color="0.6", lw=0.5)
    else:
        img = as_2d(field)
        finite = img[np.isfinite(img)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if symmetric:
            vmax = max(abs(lo), abs(hi)) or 1.0
            kwargs = dict(vmin=-vmax, vmax=vmax, cmap="RdBu_r")
        else:
            kwargs = dict(vmin=lo, vmax=hi if hi > lo else lo + 1.0, cmap=cmap)
        im = ax.imshow(img.T, origin="lower", interpolation="nearest", **kwargs)
        ax.set_axis_off()
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=FONT_TICK)
    if title:
        ax.set_title(title, fontsize=FONT_LABEL, y=TITLE_Y)


def save_figure(fig: Figure, path: Path | str, dpi: int) -> Path:
    """Write ``fig`` as PNG and close it (no tight layout: it costs a second draw)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain_text(fig)
    fig.savefig(path, dpi=dpi, pil_kwargs={"compress_level": 1})
    plt.close(fig)
    return path


def plain_text(fig: Figure) -> None:
    """Render every title, label and note as plain text: user strings (labels, hook names) may hold
    ``$``, which matplotlib would parse as mathtext (and fail on, e.g. ``$\\frac{1}{$``). Tick
    labels, which matplotlib formats itself at draw time, keep their mathtext."""
    texts = list(fig.texts)
    if getattr(fig, "_suptitle", None) is not None:
        texts.append(fig._suptitle)
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        texts += [t for t in (getattr(ax, "_left_title", None), getattr(ax, "_right_title", None)) if t]
        legend = ax.get_legend()
        if legend is not None:
            texts += [*legend.get_texts(), legend.get_title()]
    for text in texts:
        if "$" in text.get_text():
            text.set_parse_math(False)


def adjust(fig: Figure, *, labelled: bool = False, suptitle: bool = False) -> None:
    """Fixed margins in inches (cheap, unlike tight_layout): room for titles and, if asked, labels."""
    w, h = fig.get_size_inches()
    top = 1.0 - (0.85 if suptitle else 0.5) / h
    if labelled:
        fig.subplots_adjust(
            left=0.75 / w, right=1.0 - 0.2 / w, bottom=0.6 / h, top=top, wspace=0.5, hspace=0.6
        )
    else:
        fig.subplots_adjust(
            left=0.05 / w, right=1.0 - 0.05 / w, bottom=0.05 / h, top=top, wspace=0.1, hspace=0.5
        )


# A panel: (field (*grid), title, style) with style "seq" (viridis), "codes" (magma) or "sym"
# (diverging, centred on zero).
Panel = tuple[np.ndarray, str, str]
CMAPS = {"seq": "viridis", "codes": "magma", "sym": "RdBu_r"}
#: layout of image mosaics, in points (1/72 inch; pixels are points * dpi / 72)
PANEL_PT = 120
TITLE_PT = 30
GAP_PT = 14
HEADER_PT = 26
CBAR_PT = 8  # colour bar strip beside each panel
CBAR_GAP_PT = 3
CBAR_TEXT_PT = 42  # room for the colour bar's tick labels
#: height of axes titles in axes coordinates: given explicitly, because matplotlib's automatic title
#: placement measures every axis's tick labels at each draw (a third of a small figure's time); the
#: figures have no tick labels above their axes, where it would move a title
TITLE_Y = 1.0
#: font sizes in points
FONT_TITLE = 11
FONT_LABEL = 9
FONT_TICK = 8


def fit_image(img: np.ndarray, px: int) -> np.ndarray:
    """Nearest-neighbour resample of a 2D image to fit a ``px`` box, keeping its aspect."""
    h, w = img.shape
    scale = px / max(h, w)
    rows = np.minimum((np.arange(max(1, round(h * scale))) / scale).astype(int), h - 1)
    cols = np.minimum((np.arange(max(1, round(w * scale))) / scale).astype(int), w - 1)
    return img[np.ix_(rows, cols)]


def colour_limits(img: np.ndarray, style: str) -> tuple[float, float]:
    finite = img[np.isfinite(img)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if style == "sym":
        vmax = max(abs(lo), abs(hi)) or 1.0
        return -vmax, vmax
    if style == "codes" and lo >= 0:  # codes are non-negative: the scale starts at zero
        lo = 0.0
    return lo, (hi if hi > lo else lo + 1.0)


def colour(
    img: np.ndarray, style: str, limits: tuple[float, float] | None = None
) -> tuple[np.ndarray, tuple[float, float]]:
    """RGBA uint8 image of a field drawn in ``style`` and the colour scale's ``(vmin, vmax)``."""
    vmin, vmax = limits if limits is not None else colour_limits(img, style)
    normed = np.clip((np.nan_to_num(img, nan=vmin) - vmin) / ((vmax - vmin) or 1.0), 0.0, 1.0)
    rgba = matplotlib.colormaps[CMAPS[style]](normed, bytes=True)
    rgba[~np.isfinite(img)] = 255
    return rgba, (vmin, vmax)


def tick(v: float) -> str:
    return "0" if v == 0 else f"{v:.3g}"


def mosaic(
    panels: Sequence[Sequence[Panel]],
    path: Path | str,
    *,
    title: str,
    dpi: int,
    colorbar: bool = True,
    panel_pt: int = PANEL_PT,
    shared: bool = False,
) -> Path:
    """Draw rows of 2D panels as one image on a single axes (far cheaper than one axes each).

    Each panel gets its own colour bar (``colorbar``) with its minimum, maximum (and zero for
    signed fields) written beside it; ``shared`` puts every panel of a row on one colour scale,
    drawn once at the end of the row. The canvas is built at the output resolution, so text and
    pixels stay sharp at any ``dpi``.
    """
    s = dpi / 72.0
    nrows = len(panels)
    ncols = max(len(r) for r in panels)
    bar_w = CBAR_GAP_PT + CBAR_PT + CBAR_TEXT_PT
    per_panel_bar = colorbar and not shared
    cell_w = panel_pt + GAP_PT + (bar_w if per_panel_bar else 0)
    cell_h = TITLE_PT + panel_pt + GAP_PT
    width = GAP_PT + ncols * cell_w + (bar_w if colorbar and shared else 0)
    height = (HEADER_PT if title else GAP_PT // 2) + nrows * cell_h
    head = HEADER_PT if title else GAP_PT // 2
    W, H = int(round(width * s)), int(round(height * s))
    canvas = np.full((H, W, 4), 255, dtype=np.uint8)
    ppx = int(round(panel_pt * s))
    texts: list[tuple[float, float, str, str, str, float]] = []  # x, y, text, ha, va, size

    def bar(style: str, lims: tuple[float, float], left_pt: float, top_pt: float) -> None:
        x0, y0 = int(round(left_pt * s)), int(round(top_pt * s))
        bw = max(1, int(round(CBAR_PT * s)))
        grad = np.linspace(1.0, 0.0, ppx)[:, None] * np.ones((1, bw))
        canvas[y0 : y0 + ppx, x0 : x0 + bw] = matplotlib.colormaps[CMAPS[style]](grad, bytes=True)
        canvas[y0 : y0 + ppx, [x0, x0 + bw - 1]] = (90, 90, 90, 255)
        canvas[[y0, y0 + ppx - 1], x0 : x0 + bw] = (90, 90, 90, 255)
        tx = left_pt + CBAR_PT + 2
        vmin, vmax = lims
        texts.append((tx, top_pt, tick(vmax), "left", "top", FONT_TICK))
        texts.append((tx, top_pt + panel_pt, tick(vmin), "left", "bottom", FONT_TICK))
        if vmin < 0 < vmax and 0.12 < vmax / (vmax - vmin) < 0.88:
            texts.append((tx, top_pt + panel_pt * vmax / (vmax - vmin), "0", "left", "center", FONT_TICK))

    for i, row in enumerate(panels):
        top = head + i * cell_h + TITLE_PT
        row_lims = None
        if shared and row:
            styles = {st for _, _, st in row}
            allv = np.concatenate([np.ravel(as_2d(f)) for f, _, _ in row])
            row_lims = colour_limits(allv, row[0][2] if len(styles) == 1 else "seq")
        for j, (field, label, style) in enumerate(row):
            img = fit_image(np.flipud(as_2d(np.asarray(field, dtype=np.float64)).T), ppx)
            rgba, lims = colour(img, style, row_lims)
            left = GAP_PT + j * cell_w
            h, w = rgba.shape[:2]
            oy = int(round(top * s)) + (ppx - h) // 2
            ox = int(round(left * s)) + (ppx - w) // 2
            canvas[oy : oy + h, ox : ox + w] = rgba
            if label:
                texts.append((left + panel_pt / 2, top - 3, label, "center", "bottom", FONT_LABEL))
            if per_panel_bar:
                bar(style, lims, left + panel_pt + CBAR_GAP_PT, top)
        if colorbar and shared and row:
            bar(row[-1][2], row_lims, GAP_PT + len(row) * cell_w, top)
    if title:
        texts.append((width / 2, 5, title, "center", "top", FONT_TITLE))
    return save_canvas(canvas, texts, path, dpi)


def _text_font(size_px: int) -> Any:
    """matplotlib's default font (``rcParams``; DejaVu Sans unless configured) at ``size_px`` pixels."""
    from PIL import ImageFont

    path = matplotlib.font_manager.findfont(matplotlib.font_manager.FontProperties())
    key = (path, size_px)
    if key not in _FONTS:
        _FONTS[key] = ImageFont.truetype(path, size_px)
    return _FONTS[key]


_FONTS: dict[tuple[str, int], Any] = {}
LINE_SPACING = 1.1  # line height over font size, as the figures' matplotlib text


def save_canvas(
    canvas: np.ndarray, texts: Sequence[tuple[float, float, str, str, str, float]], path: Path | str, dpi: int
) -> Path:
    """Write an RGBA canvas with its texts as PNG, drawn directly with PIL (no matplotlib figure).

    ``texts`` holds ``(x, y, text, ha, va, size)`` in points from the top left corner, aligned like
    matplotlib's ``ha`` (left, center) and ``va`` (top, center, bottom) on the text's box, ``size``
    in points; text is always drawn literally (no mathtext). Drawing text through a matplotlib
    figure cost about ten times as much as the rest of a mosaic.
    """
    from PIL import Image, ImageDraw

    s = dpi / 72.0
    img = Image.fromarray(np.ascontiguousarray(canvas[..., :3]), "RGB")  # the canvas is opaque
    draw = ImageDraw.Draw(img)
    for x, y, text, ha, va, size in texts:
        size_px = max(1, int(round(size * s)))
        font = _text_font(size_px)
        spacing = max(0, int(round((LINE_SPACING - 1.0) * size_px + 0.17 * size_px)))
        align = "center" if ha == "center" else "left"
        left, top, right, bottom = draw.multiline_textbbox(
            (0, 0), text, font=font, spacing=spacing, align=align
        )
        px, py = x * s, y * s
        dx = px - ((left + right) / 2 if ha == "center" else left)
        dy = py - {"top": top, "center": (top + bottom) / 2}.get(va, bottom)
        draw.multiline_text(
            (round(dx), round(dy)), text, fill=(0, 0, 0), font=font, spacing=spacing, align=align
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="png", compress_level=1, dpi=(dpi, dpi))
    return path


def draw_panels(panels: Sequence[Sequence[Panel]], path: Path | str, *, title: str, dpi: int) -> Path:
    """Rows of panels: a single-image mosaic for 2D/3D fields, matplotlib axes for 1D and scalars."""
    if all(np.ndim(f) >= 2 for row in panels for f, _, _ in row):
        return mosaic(panels, path, title=title, dpi=dpi)
    nrows, ncols = len(panels), max(len(r) for r in panels)
    fig, axes = plt.subplots(nrows, ncols, figsize=(PANEL_IN * ncols, PANEL_IN * nrows * 0.9), squeeze=False)
    for i, row in enumerate(panels):
        for j in range(ncols):
            if j < len(row):
                field, label, style = row[j]
                show_field(axes[i, j], field, title=label, cmap=CMAPS[style], symmetric=style == "sym")
            else:
                axes[i, j].set_axis_off()
    if title:
        fig.suptitle(title, fontsize=FONT_TITLE)
    adjust(fig, labelled=True, suptitle=bool(title))
    return save_figure(fig, path, dpi)


def grid_label(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def top_channels(atom: np.ndarray, n: int) -> list[int]:
    """The ``n`` channels of an atom ``(C, *grid)`` with the most energy, most first."""
    energy = (np.asarray(atom, dtype=np.float64) ** 2).reshape(atom.shape[0], -1).sum(axis=1)
    return [int(c) for c in np.argsort(-energy, kind="stable")[:n]]
