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

from saeno.export.panels import (
    CBAR_GAP_PT,
    CBAR_PT,
    DEFAULT_DPI,
    FONT_LABEL,
    FONT_TICK,
    GAP_PT,
    PANEL_PT,
    TITLE_PT,
    TITLE_Y,
    adjust,
    as_2d,
    colour,
    draw_panels,
    fit_image,
    mosaic,
    save_figure,
    show_field,
    top_channels,
)
from saeno.export.spectra import amplitude_spectrum, plot_spectrum, radial_spectrum


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
        ax.set_title(title, fontsize=FONT_LABEL, y=TITLE_Y)
    adjust(fig, labelled=True)
    return save_figure(fig, path, dpi)


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
        channels = top_channels(first, min(n_channels, first.shape[0]))
    panels = []
    for label in labels:
        atom = np.asarray(atoms[label], dtype=np.float64)
        if centre:
            atom = np.fft.fftshift(atom, axes=tuple(range(1, atom.ndim)))
        row = [(np.sqrt((atom**2).sum(axis=0)), f"{label}\n|atom| over channels", "seq")]
        row += [(atom[c], f"{label}\nchannel {c}", "sym") for c in channels]
        panels.append(row)
    return draw_panels(panels, path, title=title, dpi=dpi)


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
        return mosaic(panels, path, title=title, dpi=dpi, panel_pt=84, shared=True)
    return draw_panels(panels, path, title=title, dpi=dpi)


def write_thumbnail(field: np.ndarray, path: Path | str, *, px: int = 56, style: str = "codes") -> Path:
    """A small PNG of one field (no text), for the report's index."""
    img = np.flipud(as_2d(np.asarray(field, dtype=np.float64)).T)
    if img.ndim == 1:
        img = np.tile(img[None, :], (max(1, img.shape[0] // 4), 1))
    elif img.ndim == 0:
        img = np.full((2, 2), float(img))
    rgba, _ = colour(fit_image(img, px), style)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, rgba)
    return path


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
    return draw_panels(panels, path, title=title, dpi=dpi)


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
    ax.set_title((title + "\n" if title else "") + text, fontsize=FONT_LABEL, y=TITLE_Y)
    adjust(fig, labelled=True, suptitle=bool(title))
    return save_figure(fig, path, dpi)


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
        y=TITLE_Y,
    )
    adjust(fig, labelled=True)
    return save_figure(fig, path, dpi)


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
    return draw_panels(panels, path, title=title, dpi=dpi)


__all__ = [
    "CBAR_GAP_PT",
    "CBAR_PT",
    "DEFAULT_DPI",
    "FONT_LABEL",
    "FONT_TICK",
    "GAP_PT",
    "PANEL_PT",
    "TITLE_PT",
    "top_channels",
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
