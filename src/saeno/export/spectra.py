"""Fourier amplitude spectra of concept atoms and their figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from saeno.export.panels import (
    DEFAULT_DPI,
    FONT_LABEL,
    FONT_TICK,
    FONT_TITLE,
    PANEL_IN,
    TITLE_Y,
    adjust,
    as_2d,
    save_figure,
)


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
    fig, axes = plt.subplots(1, 2, figsize=(2 * PANEL_IN + 1.6, PANEL_IN + 0.4))
    floor = max(float(spectrum.max()) * 1e-6, 1e-30)
    # log10 values on linear axes: matplotlib's log-scale tick machinery is slow
    if spectrum.ndim == 1:
        freqs = np.fft.fftshift(np.fft.fftfreq(spectrum.shape[0], d=1.0 / spectrum.shape[0]))
        axes[0].plot(freqs, np.log10(np.maximum(spectrum, floor)), lw=1.0)
        axes[0].set_xlabel("frequency", fontsize=FONT_LABEL)
        axes[0].tick_params(labelsize=FONT_TICK)
        axes[0].set_title("log10 amplitude", fontsize=FONT_LABEL, y=TITLE_Y)
    else:
        img = np.log10(np.maximum(as_2d(spectrum), floor))
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
        axes[0].set_title("amplitude spectrum", fontsize=FONT_LABEL, y=TITLE_Y)
    axes[1].plot(np.arange(radial.size), np.log10(np.maximum(radial, floor)), marker=".", lw=1.0)
    axes[1].set_xlabel("|frequency| (cycles per domain)", fontsize=FONT_LABEL)
    axes[1].set_ylabel("log10 RMS amplitude", fontsize=FONT_LABEL)
    axes[1].set_title("radial average", fontsize=FONT_LABEL, y=TITLE_Y)
    axes[1].tick_params(labelsize=FONT_TICK)
    if title:
        fig.suptitle(title, fontsize=FONT_TITLE)
    adjust(fig, labelled=True, suptitle=bool(title))
    return save_figure(fig, path, dpi)


__all__ = ["amplitude_spectrum", "plot_spectrum", "radial_spectrum"]
