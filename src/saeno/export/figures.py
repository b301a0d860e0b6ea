"""PNG figures of one concept, drawn with matplotlib's Agg backend from plain numpy arrays.

Every function takes arrays (no SAE, store or model), writes one PNG and returns its path. Fields
are ``(*grid)`` arrays of 1 to 3 dimensions: 1D fields are drawn as curves, 2D fields as images
and 3D fields as their middle slice along the last axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

DEFAULT_DPI = 100
_PANEL = 2.8  # inches per panel


def _as_2d(field: np.ndarray) -> np.ndarray:
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
        img = _as_2d(field)
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
        ax.set_title(title, fontsize=FONT_LABEL)


def _save(fig: Figure, path: Path | str, dpi: int) -> Path:
    """Write ``fig`` as PNG and close it (no tight layout: it costs a second draw)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _plain_text(fig)
    fig.savefig(path, dpi=dpi, pil_kwargs={"compress_level": 1})
    plt.close(fig)
    return path


def _plain_text(fig: Figure) -> None:
    """Render every title, label and note as plain text: user strings (labels, hook names) may hold
    ``$``, which matplotlib would parse as mathtext (and fail on, e.g. ``$\\frac{1}{$``). Tick
    labels, which matplotlib formats itself at draw time, keep their mathtext."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        if "$" in text.get_text():
            text.set_parse_math(False)


def _adjust(fig: Figure, *, labelled: bool = False, suptitle: bool = False) -> None:
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
_CMAPS = {"seq": "viridis", "codes": "magma", "sym": "RdBu_r"}
#: layout of image mosaics, in points (1/72 inch; pixels are points * dpi / 72)
PANEL_PT = 120
TITLE_PT = 30
GAP_PT = 14
HEADER_PT = 26
CBAR_PT = 8  # colour bar strip beside each panel
CBAR_GAP_PT = 3
CBAR_TEXT_PT = 42  # room for the colour bar's tick labels
#: font sizes in points
FONT_TITLE = 11
FONT_LABEL = 9
FONT_TICK = 8


def _fit(img: np.ndarray, px: int) -> np.ndarray:
    """Nearest-neighbour resample of a 2D image to fit a ``px`` box, keeping its aspect."""
    h, w = img.shape
    scale = px / max(h, w)
    rows = np.minimum((np.arange(max(1, round(h * scale))) / scale).astype(int), h - 1)
    cols = np.minimum((np.arange(max(1, round(w * scale))) / scale).astype(int), w - 1)
    return img[np.ix_(rows, cols)]


def _limits(img: np.ndarray, style: str) -> tuple[float, float]:
    finite = img[np.isfinite(img)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if style == "sym":
        vmax = max(abs(lo), abs(hi)) or 1.0
        return -vmax, vmax
    if style == "codes" and lo >= 0:  # codes are non-negative: the scale starts at zero
        lo = 0.0
    return lo, (hi if hi > lo else lo + 1.0)


def _colour(
    img: np.ndarray, style: str, limits: tuple[float, float] | None = None
) -> tuple[np.ndarray, tuple[float, float]]:
    """RGBA uint8 image of a field drawn in ``style`` and the colour scale's ``(vmin, vmax)``."""
    vmin, vmax = limits if limits is not None else _limits(img, style)
    normed = np.clip((np.nan_to_num(img, nan=vmin) - vmin) / ((vmax - vmin) or 1.0), 0.0, 1.0)
    rgba = matplotlib.colormaps[_CMAPS[style]](normed, bytes=True)
    rgba[~np.isfinite(img)] = 255
    return rgba, (vmin, vmax)


def _tick(v: float) -> str:
    return "0" if v == 0 else f"{v:.3g}"


def _mosaic(
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
        canvas[y0 : y0 + ppx, x0 : x0 + bw] = matplotlib.colormaps[_CMAPS[style]](grad, bytes=True)
        canvas[y0 : y0 + ppx, [x0, x0 + bw - 1]] = (90, 90, 90, 255)
        canvas[[y0, y0 + ppx - 1], x0 : x0 + bw] = (90, 90, 90, 255)
        tx = left_pt + CBAR_PT + 2
        vmin, vmax = lims
        texts.append((tx, top_pt, _tick(vmax), "left", "top", FONT_TICK))
        texts.append((tx, top_pt + panel_pt, _tick(vmin), "left", "bottom", FONT_TICK))
        if vmin < 0 < vmax and 0.12 < vmax / (vmax - vmin) < 0.88:
            texts.append((tx, top_pt + panel_pt * vmax / (vmax - vmin), "0", "left", "center", FONT_TICK))

    for i, row in enumerate(panels):
        top = head + i * cell_h + TITLE_PT
        row_lims = None
        if shared and row:
            styles = {st for _, _, st in row}
            allv = np.concatenate([np.ravel(_as_2d(f)) for f, _, _ in row])
            row_lims = _limits(allv, row[0][2] if len(styles) == 1 else "seq")
        for j, (field, label, style) in enumerate(row):
            img = _fit(np.flipud(_as_2d(np.asarray(field, dtype=np.float64)).T), ppx)
            rgba, lims = _colour(img, style, row_lims)
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
    fig = plt.figure(figsize=(W / dpi, H / dpi), dpi=dpi)
    fig.figimage(canvas, xo=0, yo=0, origin="upper")  # pixels as they are: no resampling
    for x, y, text, ha, va, size in texts:
        fig.text(x / width, 1.0 - y / height, text, ha=ha, va=va, fontsize=size, linespacing=1.1)
    if title:
        fig.text(0.5, 1.0 - 5 / height, title, ha="center", va="top", fontsize=FONT_TITLE)
    return _save(fig, path, dpi)


def _draw_panels(panels: Sequence[Sequence[Panel]], path: Path | str, *, title: str, dpi: int) -> Path:
    """Rows of panels: a single-image mosaic for 2D/3D fields, matplotlib axes for 1D and scalars."""
    if all(np.ndim(f) >= 2 for row in panels for f, _, _ in row):
        return _mosaic(panels, path, title=title, dpi=dpi)
    nrows, ncols = len(panels), max(len(r) for r in panels)
    fig, axes = plt.subplots(nrows, ncols, figsize=(_PANEL * ncols, _PANEL * nrows * 0.9), squeeze=False)
    for i, row in enumerate(panels):
        for j in range(ncols):
            if j < len(row):
                field, label, style = row[j]
                show_field(axes[i, j], field, title=label, cmap=_CMAPS[style], symmetric=style == "sym")
            else:
                axes[i, j].set_axis_off()
    if title:
        fig.suptitle(title, fontsize=FONT_TITLE)
    _adjust(fig, labelled=True, suptitle=bool(title))
    return _save(fig, path, dpi)


def _grid_label(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def _top_channels(atom: np.ndarray, n: int) -> list[int]:
    energy = (np.asarray(atom, dtype=np.float64) ** 2).reshape(atom.shape[0], -1).sum(axis=1)
    return [int(c) for c in np.argsort(-energy, kind="stable")[:n]]


def is_spatially_constant(atom: np.ndarray, rtol: float = 1e-5) -> bool:
    """Whether an atom ``(C, *grid)`` is the same vector at every grid point (a pointwise concept)."""
    atom = np.asarray(atom, dtype=np.float64)
    if atom.ndim < 2:
        return True
    flat = atom.reshape(atom.shape[0], -1)
    spread = np.abs(flat - flat.mean(axis=1, keepdims=True)).max()
    return bool(spread <= rtol * max(np.abs(flat).max(), 1e-30))


def plot_channel_vector(
    vec: np.ndarray, path: Path | str, *, title: str = "", ylabel: str = "value", dpi: int = DEFAULT_DPI
) -> Path:
    """Draw a channel vector ``(C,)`` as bars (red positive, blue negative), channels on the x axis."""
    vec = np.asarray(vec, dtype=np.float64).reshape(-1)
    fig, ax = plt.subplots(figsize=(min(9.0, max(4.0, 0.13 * vec.size + 1.6)), 2.8))
    ax.bar(np.arange(vec.size), vec, color=np.where(vec >= 0, "tab:red", "tab:blue"))
    ax.axhline(0.0, color="0.5", lw=0.6)
    ax.set_xlabel("channel", fontsize=FONT_LABEL)
    ax.set_ylabel(ylabel, fontsize=FONT_LABEL)
    ax.tick_params(labelsize=FONT_TICK)
    ax.set_xlim(-0.7, vec.size - 0.3)
    if title:
        ax.set_title(title, fontsize=FONT_LABEL)
    _adjust(fig, labelled=True)
    return _save(fig, path, dpi)


def top_channels(atom: np.ndarray, n: int) -> list[int]:
    """The ``n`` channels of an atom ``(C, *grid)`` with the most energy, most first."""
    return _top_channels(atom, n)


def plot_atom(
    atoms: Mapping[str, np.ndarray],
    path: Path | str,
    *,
    title: str = "",
    n_channels: int = 2,
    centre: bool = False,
    channels: Sequence[int] | None = None,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Draw one concept's atom rendered at several resolutions.

    One row per resolution: the channel norm ``|atom(x)|`` and the ``n_channels`` channels with the
    most energy (chosen at the first resolution, or given as ``channels``; signed colour scale),
    each with its colour bar. A spatially constant atom (pointwise SAE) is drawn as a bar chart of
    its channel weights instead.

    Parameters
    ----------
    atoms : mapping of str to numpy.ndarray
        Resolution label (e.g. ``"16x16"``) to the atom rendered there, shape ``(C, *grid)``.
    path : path-like
        PNG file to write.
    title : str
        Figure title.
    n_channels : int
        How many individual channels to show beside the norm.
    centre : bool
        Roll the origin to the middle of the grid before drawing (for convolution kernels, whose
        mass sits around the origin and would otherwise be split over the corners).
    channels : sequence of int, optional
        The channels to draw (default: the ``n_channels`` with the most energy).
    dpi : int
        Resolution of the PNG.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    if not atoms:
        raise ValueError("plot_atom needs at least one rendered atom")
    labels = list(atoms)
    first = np.asarray(atoms[labels[0]], dtype=np.float64)
    if all(is_spatially_constant(a) for a in atoms.values()):
        vec = first.reshape(first.shape[0], -1).mean(axis=1)
        return plot_channel_vector(
            vec,
            path,
            dpi=dpi,
            ylabel="change of the activation per unit code",
            title=(title + ": " if title else "") + "channel vector, the same at every grid point",
        )
    if channels is None:
        channels = _top_channels(first, min(n_channels, first.shape[0]))
    panels = []
    for label in labels:
        atom = np.asarray(atoms[label], dtype=np.float64)
        if centre:
            atom = np.fft.fftshift(atom, axes=tuple(range(1, atom.ndim)))
        row = [(np.sqrt((atom**2).sum(axis=0)), f"{label}\n|atom| over channels", "seq")]
        row += [(atom[c], f"{label}\nchannel {c}", "sym") for c in channels]
        panels.append(row)
    return _draw_panels(panels, path, title=title, dpi=dpi)


def plot_examples(
    x: np.ndarray | None,
    code_maps: np.ndarray,
    path: Path | str,
    *,
    rows: Sequence[int],
    activations: Sequence[float],
    title: str = "",
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Thumbnails of a concept's top examples: the input (first channel) above its code map.

    Parameters
    ----------
    x : numpy.ndarray or None
        ``(n, C, *grid)`` model inputs of the samples (None: code maps only).
    code_maps : numpy.ndarray
        ``(n, *code_grid)`` code maps of the concept on the same samples.
    rows, activations : sequence
        Store row and the concept's activation of each sample (the labels).
    title : str
        Figure title.
    dpi : int
        Resolution of the PNG.
    """
    code_maps = np.asarray(code_maps, dtype=np.float64)
    labels = [f"row {int(r)}\nz = {float(a):.3g}" for r, a in zip(rows, activations)]
    panels = []
    if x is not None:
        panels.append([(_channel_field(x[i]), labels[i], "seq") for i in range(len(labels))])
        code_row = [(code_maps[i], "code map", "codes") for i in range(len(labels))]
    else:
        code_row = [(code_maps[i], labels[i], "codes") for i in range(len(labels))]
    panels.append(code_row)
    if not labels:
        panels = [[(np.zeros((2, 2)), "no active sample", "seq")]]
    if all(np.ndim(f) >= 2 for row in panels for f, _, _ in row):
        return _mosaic(panels, path, title=title, dpi=dpi, panel_pt=84, shared=True)
    return _draw_panels(panels, path, title=title, dpi=dpi)


def write_thumbnail(field: np.ndarray, path: Path | str, *, px: int = 56, style: str = "codes") -> Path:
    """A small PNG of one field (no text), for the report's index."""
    img = np.flipud(_as_2d(np.asarray(field, dtype=np.float64)).T)
    if img.ndim == 1:
        img = np.tile(img[None, :], (max(1, img.shape[0] // 4), 1))
    elif img.ndim == 0:
        img = np.full((2, 2), float(img))
    rgba, _ = _colour(_fit(img, px), style)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, rgba)
    return path


def amplitude_spectrum(atom: np.ndarray) -> np.ndarray:
    """Fourier amplitude spectrum of an atom ``(C, *grid)``, summed in energy over channels.

    Returns ``sqrt(sum_c |FFT(atom_c)|^2)`` with the zero frequency shifted to the centre
    (``numpy.fft.fftshift``), shape ``(*grid)``, normalised by the number of grid points so that
    renderings of the same function at different resolutions are comparable.
    """
    atom = np.asarray(atom, dtype=np.float64)
    axes = tuple(range(1, atom.ndim))
    if not axes:
        return np.abs(atom)
    spec = np.fft.fftn(atom, axes=axes) / np.prod([atom.shape[a] for a in axes])
    amp = np.sqrt((np.abs(spec) ** 2).sum(axis=0))
    return np.fft.fftshift(amp)


def radial_spectrum(spectrum: np.ndarray) -> np.ndarray:
    """Average a centred amplitude spectrum ``(*grid)`` over shells of integer frequency ``|w|``.

    Returns an array whose entry ``r`` is the root-mean-square amplitude of the modes with
    ``round(|w|) == r``, for ``r = 0 .. min(grid) // 2``.
    """
    spectrum = np.asarray(spectrum, dtype=np.float64)
    freqs = [np.fft.fftshift(np.fft.fftfreq(n, d=1.0 / n)) for n in spectrum.shape]
    mesh = np.meshgrid(*freqs, indexing="ij")
    radius = np.rint(np.sqrt(sum(m**2 for m in mesh))).astype(int)
    n_bins = min(spectrum.shape) // 2 + 1
    out = np.zeros(n_bins)
    for r in range(n_bins):
        sel = radius == r
        if sel.any():
            out[r] = np.sqrt(np.mean(spectrum[sel] ** 2))
    return out


def plot_spectrum(spectrum: np.ndarray, path: Path | str, *, title: str = "", dpi: int = DEFAULT_DPI) -> Path:
    """Draw a centred amplitude spectrum and its radial average, both as log10 values.

    Parameters
    ----------
    spectrum : numpy.ndarray
        Output of :func:`amplitude_spectrum`, shape ``(*grid)``.
    path : path-like
        PNG file to write.
    title : str
        Figure title.
    dpi : int
        Resolution of the PNG.
    """
    spectrum = np.asarray(spectrum, dtype=np.float64)
    radial = radial_spectrum(spectrum)
    fig, axes = plt.subplots(1, 2, figsize=(2 * _PANEL + 1.6, _PANEL + 0.4))
    floor = max(float(spectrum.max()) * 1e-6, 1e-30)
    # log10 values on linear axes: matplotlib's log-scale tick machinery is slow
    if spectrum.ndim == 1:
        freqs = np.fft.fftshift(np.fft.fftfreq(spectrum.shape[0], d=1.0 / spectrum.shape[0]))
        axes[0].plot(freqs, np.log10(np.maximum(spectrum, floor)), lw=1.0)
        axes[0].set_xlabel("frequency", fontsize=FONT_LABEL)
        axes[0].tick_params(labelsize=FONT_TICK)
        axes[0].set_title("log10 amplitude", fontsize=FONT_LABEL)
    else:
        img = np.log10(np.maximum(_as_2d(spectrum), floor))
        half = [s // 2 for s in img.shape]
        # zoom to the band that holds the energy (a band-limited atom fills only |k| < K)
        strong = np.argwhere(img > np.log10(floor) + 1.0)
        reach = int(np.abs(strong - np.array(half)).max()) + 2 if strong.size else max(half)
        reach = min(reach, min(half))
        img = img[half[0] - reach : half[0] + reach, half[1] - reach : half[1] + reach]
        im = axes[0].imshow(
            img.T,
            origin="lower",
            interpolation="nearest",
            extent=(-reach - 0.5, reach - 0.5, -reach - 0.5, reach - 0.5),
        )
        axes[0].set_xticks([-reach, 0, reach - 1])
        axes[0].set_yticks([-reach, 0, reach - 1])
        axes[0].set_xlabel("frequency k_x", fontsize=FONT_LABEL)
        axes[0].set_ylabel("frequency k_y", fontsize=FONT_LABEL)
        axes[0].tick_params(labelsize=FONT_TICK)
        cb = fig.colorbar(im, ax=axes[0], fraction=0.046, pad=0.04)
        cb.ax.tick_params(labelsize=FONT_TICK)
        cb.set_label("log10 amplitude", fontsize=FONT_TICK)
        axes[0].set_title("amplitude spectrum", fontsize=FONT_LABEL)
    axes[1].plot(np.arange(radial.size), np.log10(np.maximum(radial, floor)), marker=".", lw=1.0)
    axes[1].set_xlabel("|frequency| (cycles per domain)", fontsize=FONT_LABEL)
    axes[1].set_ylabel("log10 RMS amplitude", fontsize=FONT_LABEL)
    axes[1].set_title("radial average", fontsize=FONT_LABEL)
    axes[1].tick_params(labelsize=FONT_TICK)
    if title:
        fig.suptitle(title, fontsize=FONT_TITLE)
    _adjust(fig, labelled=True, suptitle=bool(title))
    return _save(fig, path, dpi)


def _channel_field(field: np.ndarray) -> np.ndarray:
    """First channel of a ``(C, *grid)`` sample (the usual single-channel PDE field)."""
    field = np.asarray(field, dtype=np.float64)
    return field[0] if field.ndim >= 2 else field


def plot_code_maps(
    code_maps: np.ndarray,
    path: Path | str,
    *,
    rows: Sequence[int],
    activations: Sequence[float],
    x: np.ndarray | None = None,
    y_pred: np.ndarray | None = None,
    y: np.ndarray | None = None,
    title: str = "",
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Draw a concept's code maps ``z_k(x)`` on its top samples beside the FNO's input and output.

    One row per sample: the code map, then (when given) the input field ``x``, the FNO output
    ``y_pred`` and the target ``y`` (first channel of each).

    Parameters
    ----------
    code_maps : numpy.ndarray
        ``(n, *grid)`` code maps, or ``(n,)`` scalar codes for a flat SAE.
    path : path-like
        PNG file to write.
    rows : sequence of int
        Store row of each sample (for the titles).
    activations : sequence of float
        The concept's activation on each sample (for the titles).
    x, y_pred, y : numpy.ndarray, optional
        ``(n, C, *grid)`` fields of the same samples.
    title : str
        Figure title.
    dpi : int
        Resolution of the PNG.
    """
    code_maps = np.asarray(code_maps, dtype=np.float64)
    extra = [
        (name, arr)
        for name, arr in (("input x", x), ("FNO output", y_pred), ("target y", y))
        if arr is not None
    ]
    panels = []
    for i in range(code_maps.shape[0]):
        row = [
            (code_maps[i], f"row {int(rows[i])}, z = {float(activations[i]):.3g}\ncode map z_k(x)", "codes")
        ]
        row += [(_channel_field(arr[i]), f"{name}\n(channel 0)", "seq") for name, arr in extra]
        panels.append(row)
    if not panels:
        panels = [[(np.zeros((2, 2)), "no active sample", "seq")]]
    return _draw_panels(panels, path, title=title, dpi=dpi)


def plot_density(
    counts: np.ndarray,
    edges: np.ndarray,
    path: Path | str,
    *,
    sample_density: float,
    point_density: float | None = None,
    quantiles: Sequence[float] = (),
    title: str = "",
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Draw a concept's activation histogram over the samples where it is active.

    Parameters
    ----------
    counts, edges : numpy.ndarray
        Histogram counts ``(n_bins,)`` and bin edges ``(n_bins + 1,)``.
    path : path-like
        PNG file to write.
    sample_density : float
        Fraction of samples where the concept is active.
    point_density : float, optional
        Fraction of grid points (over all samples) where its code is non-zero.
    quantiles : sequence of float
        Activation values to mark with vertical lines (the quantile examples).
    title : str
        Figure title.
    dpi : int
        Resolution of the PNG.
    """
    counts = np.asarray(counts, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    if counts.sum() > 0:
        ax.stairs(counts, edges, fill=True, alpha=0.7)
        for q in quantiles:
            ax.axvline(float(q), color="tab:red", lw=0.7, ls="--")
    else:
        ax.text(0.5, 0.5, "never active", ha="center", va="center", transform=ax.transAxes)
    text = f"active on {100 * sample_density:.1f}% of samples"
    if point_density is not None:
        text += f", {100 * point_density:.2f}% of points"
    ax.set_xlabel("activation (per sample, when active)", fontsize=FONT_LABEL)
    ax.set_ylabel("samples", fontsize=FONT_LABEL)
    ax.tick_params(labelsize=FONT_TICK)
    ax.set_title((title + "\n" if title else "") + text, fontsize=FONT_LABEL)
    _adjust(fig, labelled=True, suptitle=bool(title))
    return _save(fig, path, dpi)


def plot_density_overview(
    densities: np.ndarray, path: Path | str, *, title: str = "", dpi: int = DEFAULT_DPI
) -> Path:
    """Draw the log10 activation-density histogram over all concepts (dead concepts counted apart).

    Parameters
    ----------
    densities : numpy.ndarray
        ``(p,)`` fraction of samples where each concept is active.
    path : path-like
        PNG file to write.
    title : str
        Figure title.
    dpi : int
        Resolution of the PNG.
    """
    densities = np.asarray(densities, dtype=np.float64)
    alive = densities[densities > 0]
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    if alive.size:
        ax.hist(np.log10(alive), bins=min(30, max(5, alive.size)), alpha=0.8)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
    ax.set_xlabel("log10 activation density (fraction of samples)", fontsize=FONT_LABEL)
    ax.set_ylabel("concepts", fontsize=FONT_LABEL)
    ax.tick_params(labelsize=FONT_TICK)
    dead = int((densities <= 0).sum())
    ax.set_title(
        (title + ": " if title else "") + f"{dead} of {densities.size} concepts never active",
        fontsize=FONT_LABEL,
    )
    _adjust(fig, labelled=True)
    return _save(fig, path, dpi)


def plot_effect(
    y_clean: np.ndarray,
    y_ablated: np.ndarray,
    path: Path | str,
    *,
    rows: Sequence[int],
    err_clean: Sequence[float] | None = None,
    err_ablated: Sequence[float] | None = None,
    title: str = "",
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Draw the effect of ablating a concept on the FNO's prediction.

    One row per sample: the clean output, the output with the concept ablated, and their difference
    (signed colour scale); titles give the relative L2 errors against the target when known.

    Parameters
    ----------
    y_clean, y_ablated : numpy.ndarray
        ``(n, C, *grid)`` FNO outputs without and with the ablation.
    path : path-like
        PNG file to write.
    rows : sequence of int
        Store row of each sample.
    err_clean, err_ablated : sequence of float, optional
        Relative L2 error of each output against the stored target.
    title : str
        Figure title.
    dpi : int
        Resolution of the PNG.
    """
    y_clean = np.asarray(y_clean, dtype=np.float64)
    y_ablated = np.asarray(y_ablated, dtype=np.float64)
    panels = []
    for i in range(y_clean.shape[0]):
        clean_t = f"row {int(rows[i])}: clean"
        abl_t = "ablated"
        if err_clean is not None and err_ablated is not None:
            clean_t += f" (err {float(err_clean[i]):.3g})"
            abl_t += f" (err {float(err_ablated[i]):.3g})"
        clean_t, abl_t = clean_t.replace(" (err", "\n(err"), abl_t.replace(" (err", "\n(err")
        panels.append(
            [
                (_channel_field(y_clean[i]), clean_t, "seq"),
                (_channel_field(y_ablated[i]), abl_t, "seq"),
                (_channel_field(y_ablated[i] - y_clean[i]), "ablated - clean\n(channel 0)", "sym"),
            ]
        )
    return _draw_panels(panels, path, title=title, dpi=dpi)


__all__ = [
    "DEFAULT_DPI",
    "PANEL_PT",
    "plot_channel_vector",
    "plot_examples",
    "write_thumbnail",
    "amplitude_spectrum",
    "is_spatially_constant",
    "plot_atom",
    "plot_code_maps",
    "plot_density",
    "plot_density_overview",
    "plot_effect",
    "plot_spectrum",
    "radial_spectrum",
    "show_field",
]
