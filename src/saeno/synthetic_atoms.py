"""The atoms of the sparse functional generative model: continuous dictionaries on ``[0, 1)^d``.

``docs/method.md`` section 4. Atoms are continuous objects, so that the same atoms can be rendered on any
grid:

- ``"fourier"`` (smooth): a random real Fourier series with frequencies ``0 < |f|_inf <= bandwidth``
  (band-limited, mean zero), stored as its coefficients and evaluated exactly on any grid;
- ``"bump"`` (smooth): a sum of ``n_bumps`` periodised Gaussian bumps with random centres, widths and
  channel amplitudes, evaluated in closed form;
- ``"noise"`` (non-smooth): i.i.d. Gaussian values on a fine base grid (``base`` cells per dimension), a
  piecewise-constant function; a coarser grid takes cell averages, a finer grid (a multiple of ``base``)
  repeats the values.

Every atom has unit norm in ``L2([0, 1)^d; R^C)``: the mean over the domain of the sum over channels of
``kappa^2`` is 1. Shifts are integer cells of the base grid (``t = j / base``), so that a shifted
non-smooth atom is again a function of the same kind. Grid points are ``x_i = i / n``. The codes and the
rendered samples are in :mod:`saeno.synthetic`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from saeno.errors import SaenoError

__all__ = ["DEFAULT_BASE", "FAMILIES", "SMOOTH_FAMILIES", "Atoms", "SyntheticError", "make_atoms"]

FAMILIES: tuple[str, ...] = ("fourier", "bump", "noise")
SMOOTH_FAMILIES: frozenset[str] = frozenset({"fourier", "bump"})
DEFAULT_BASE: dict[int, int] = {1: 512, 2: 128}


class SyntheticError(SaenoError, ValueError):
    """An invalid option of the synthetic generative model (family, sizes, resolution)."""


def _as_resolution(resolution: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    """Return ``resolution`` as a tuple of ``ndim`` positive ints (an int means the same size per axis)."""
    if isinstance(resolution, (int, np.integer)):
        res = (int(resolution),) * ndim
    else:
        res = tuple(int(r) for r in resolution)
    if len(res) != ndim or any(r < 1 for r in res):
        raise SyntheticError(
            f"resolution {resolution!r} must be a positive int or {ndim} positive ints for {ndim}D atoms"
        )
    return res


def _grid_points(resolution: tuple[int, ...]) -> list[np.ndarray]:
    """Coordinates ``i / n`` of each axis."""
    return [np.arange(n) / n for n in resolution]


@dataclass(frozen=True)
class Atoms:
    """A set of ``p`` atoms ``kappa_k: [0, 1)^d -> R^C`` that can be rendered on any grid.

    Build with :func:`make_atoms`. ``params`` holds the family's continuous description:
    ``"freqs"`` (F, d) int and ``"coef"`` (p, C, F) complex for ``"fourier"``; ``"centres"`` (p, B, d),
    ``"widths"`` (p, B) and ``"amps"`` (p, B, C) for ``"bump"``; ``"values"`` (p, C, *[base] * d) for
    ``"noise"``. ``scale`` (p,) makes every atom unit-norm in ``L2``.
    """

    family: str
    ndim: int
    channels: int
    base: int
    params: dict[str, np.ndarray]
    scale: np.ndarray = field(repr=False)

    @property
    def p(self) -> int:
        """Number of atoms."""
        return int(self.scale.shape[0])

    @property
    def smooth(self) -> bool:
        """Whether the family is smooth (``"fourier"``, ``"bump"``)."""
        return self.family in SMOOTH_FAMILIES

    def check_resolution(self, resolution: int | Sequence[int]) -> tuple[int, ...]:
        """Validate a grid for this atom set and return it as a tuple.

        Raises
        ------
        SyntheticError
            If the grid has the wrong number of axes, or (non-smooth atoms) a size that neither divides
            nor is a multiple of the base grid.
        """
        res = _as_resolution(resolution, self.ndim)
        if self.family == "noise":
            for n in res:
                if self.base % n and n % self.base:
                    raise SyntheticError(
                        f"non-smooth atoms live on a base grid of {self.base} cells per axis: a grid of {n} "
                        f"must divide it or be a multiple of it (try {self.base // 2} or {self.base * 2})"
                    )
        return res

    def render(
        self,
        resolution: int | Sequence[int],
        index: np.ndarray | None = None,
        shifts: np.ndarray | None = None,
    ) -> np.ndarray:
        """Sample atoms, optionally shifted, on the grid ``x_i = i / n``.

        Parameters
        ----------
        resolution : int or sequence of int
            Grid size (per axis).
        index : numpy.ndarray of int, shape (M,), optional
            Which atoms to render (default: all ``p``, in order).
        shifts : numpy.ndarray of int, shape (M, d), optional
            Shift of each rendered atom in base-grid cells: the result is ``kappa(x - shift / base)``.

        Returns
        -------
        numpy.ndarray
            ``(M, C, *grid)`` float64.
        """
        res = self.check_resolution(resolution)
        idx = np.arange(self.p) if index is None else np.asarray(index, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.p):
            raise SyntheticError(f"atom index out of range 0..{self.p - 1}")
        if shifts is None:
            sh = np.zeros((idx.size, self.ndim), dtype=np.int64)
        else:
            sh = np.asarray(shifts, dtype=np.int64).reshape(idx.size, self.ndim)
        renderer = {"fourier": self._render_fourier, "bump": self._render_bump, "noise": self._render_noise}
        out = renderer[self.family](idx, sh, res)
        return out * self.scale[idx].reshape((-1,) + (1,) * (self.ndim + 1))

    # -- one renderer per family; each returns unscaled (M, C, *res) values --------------------------------
    def _render_fourier(self, idx: np.ndarray, sh: np.ndarray, res: tuple[int, ...]) -> np.ndarray:
        freqs = self.params["freqs"]  # (F, d)
        coef = self.params["coef"][idx]  # (M, C, F)
        t = sh / self.base  # (M, d)
        phase = np.exp(-2j * np.pi * (t @ freqs.T))  # (M, F)
        spec = np.zeros((idx.size, self.channels) + res, dtype=np.complex128)
        # scatter each frequency to its (aliased) FFT bin: exact point values on any grid
        bins = tuple(np.mod(freqs[:, a], res[a]) for a in range(self.ndim))
        vals = coef * phase[:, None, :]
        for f in range(freqs.shape[0]):
            spec[(slice(None), slice(None)) + tuple(b[f] for b in bins)] += vals[:, :, f]
        axes = tuple(range(2, 2 + self.ndim))
        return np.real(np.fft.ifftn(spec, axes=axes)) * float(np.prod(res))

    def _render_bump(self, idx: np.ndarray, sh: np.ndarray, res: tuple[int, ...]) -> np.ndarray:
        centres = self.params["centres"][idx] + (sh / self.base)[:, None, :]  # (M, B, d)
        widths = self.params["widths"][idx]  # (M, B)
        amps = self.params["amps"][idx]  # (M, B, C)
        out = np.zeros((idx.size, self.channels) + res)
        for b in range(centres.shape[1]):
            prof = None
            for a, x in enumerate(_grid_points(res)):
                d = x[None, :] - centres[:, b, a][:, None]
                d = d - np.round(d)  # nearest periodic image, in [-1/2, 1/2]
                g = np.exp(-0.5 * (d / widths[:, b][:, None]) ** 2)  # (M, n_a)
                shape = [idx.size] + [1] * self.ndim
                shape[1 + a] = res[a]
                g = g.reshape(shape)
                prof = g if prof is None else prof * g
            out += amps[:, b, :].reshape((idx.size, self.channels) + (1,) * self.ndim) * prof[:, None]
        return out

    def _render_noise(self, idx: np.ndarray, sh: np.ndarray, res: tuple[int, ...]) -> np.ndarray:
        vals = self.params["values"][idx]  # (M, C, *[base] * d)
        rolled = np.empty_like(vals)
        for m in range(idx.size):
            rolled[m] = np.roll(vals[m], shift=tuple(sh[m]), axis=tuple(range(1, 1 + self.ndim)))
        out = rolled
        for a, n in enumerate(res):
            axis = 2 + a
            if n <= self.base:  # cell averages
                f = self.base // n
                shape = out.shape[:axis] + (n, f) + out.shape[axis + 1 :]
                out = out.reshape(shape).mean(axis=axis + 1)
            else:  # piecewise constant: repeat
                out = np.repeat(out, n // self.base, axis=axis)
        return out


def make_atoms(
    family: str,
    p: int,
    *,
    ndim: int = 1,
    channels: int = 1,
    bandwidth: int = 4,
    n_bumps: int = 2,
    widths: tuple[float, float] = (0.03, 0.08),
    base: int | None = None,
    seed: int = 0,
) -> Atoms:
    """Draw ``p`` random unit-norm atoms of one family.

    Parameters
    ----------
    family : {"fourier", "bump", "noise"}
        Smooth band-limited Fourier series, smooth Gaussian bumps, or non-smooth i.i.d. noise.
    p : int
        Number of atoms.
    ndim : {1, 2}
        Dimension of the periodic domain.
    channels : int
        Channels ``C`` of each atom's values.
    bandwidth : int
        ``"fourier"``: highest frequency per axis (``|f|_inf <= bandwidth``, constant mode excluded).
    n_bumps : int
        ``"bump"``: Gaussian bumps per atom.
    widths : (float, float)
        ``"bump"``: range of the bumps' standard deviations, as fractions of the domain (at most 0.15,
        so that the nearest periodic image is the only one that matters).
    base : int, optional
        Base grid (cells per axis) of non-smooth atoms and of shift locations; default 512 in 1D, 128 in 2D.
    seed : int
        Seed of the random draw.

    Returns
    -------
    Atoms

    Raises
    ------
    SyntheticError
        On an unknown family or out-of-range sizes.
    """
    if family not in FAMILIES:
        raise SyntheticError(f"unknown atom family {family!r}; choose one of {', '.join(FAMILIES)}")
    if ndim not in (1, 2):
        raise SyntheticError(f"ndim must be 1 or 2, got {ndim}")
    if p < 1 or channels < 1:
        raise SyntheticError(f"p and channels must be positive, got p={p}, channels={channels}")
    base = DEFAULT_BASE[ndim] if base is None else int(base)
    if base < 2:
        raise SyntheticError(f"base grid must have at least 2 cells per axis, got {base}")
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    if family == "fourier":
        if bandwidth < 1:
            raise SyntheticError(f"bandwidth must be at least 1, got {bandwidth}")
        axis = np.arange(-bandwidth, bandwidth + 1)
        freqs = np.stack(np.meshgrid(*([axis] * ndim), indexing="ij"), axis=-1).reshape(-1, ndim)
        freqs = freqs[np.any(freqs != 0, axis=1)]
        coef = rng.normal(size=(p, channels, len(freqs))) + 1j * rng.normal(size=(p, channels, len(freqs)))
        params = {"freqs": freqs.astype(np.int64), "coef": coef}
    elif family == "bump":
        lo, hi = float(widths[0]), float(widths[1])
        if n_bumps < 1 or not 0 < lo <= hi <= 0.15:
            raise SyntheticError(
                f"need n_bumps >= 1 and 0 < widths[0] <= widths[1] <= 0.15, got {n_bumps}, {widths}"
            )
        amps = rng.uniform(0.5, 1.0, size=(p, n_bumps, channels)) * rng.choice(
            [-1.0, 1.0], size=(p, n_bumps, channels)
        )
        params = {
            "centres": rng.uniform(0.0, 1.0, size=(p, n_bumps, ndim)),
            "widths": rng.uniform(lo, hi, size=(p, n_bumps)),
            "amps": amps,
        }
    else:
        params = {"values": rng.normal(size=(p, channels) + (base,) * ndim)}
    raw = Atoms(family, ndim, channels, base, params, np.ones(p))
    # unit L2 norm, measured on a grid where the norm is exact (fourier, noise) or spectrally accurate (bump)
    ref = {"fourier": 2 * bandwidth + 2, "bump": 1024 if ndim == 1 else 256, "noise": base}[family]
    vals = raw.render(ref)
    norms = np.sqrt(np.mean(vals**2, axis=tuple(range(2, 2 + ndim))).sum(axis=1))
    return Atoms(family, ndim, channels, base, params, 1.0 / norms)
