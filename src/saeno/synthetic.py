"""The sparse functional generative model of the SAE-NO paper (its metrics: :mod:`saeno.synthetic_metrics`).

``docs/method.md`` section 4: ``x = sum_k kappa_k * z_k`` (circular convolution on the periodic unit box
``[0, 1)^d``, d = 1 or 2) with ``p`` true atoms ``kappa_k: [0, 1)^d -> R^C``; each sample activates ``s``
concepts, each at ``n_locations`` random locations with random amplitudes. The Euclidean special case
(one location, no shift) is ``x = D c``.

Atoms are continuous objects, so that the same atoms and the same codes can be rendered on any grid:

- ``"fourier"`` (smooth): a random real Fourier series with frequencies ``0 < |f|_inf <= bandwidth``
  (band-limited, mean zero), stored as its coefficients and evaluated exactly on any grid;
- ``"bump"`` (smooth): a sum of ``n_bumps`` periodised Gaussian bumps with random centres, widths and
  channel amplitudes, evaluated in closed form;
- ``"noise"`` (non-smooth): i.i.d. Gaussian values on a fine base grid (``base`` cells per dimension), a
  piecewise-constant function; a coarser grid takes cell averages, a finer grid (a multiple of ``base``)
  repeats the values.

Every atom has unit norm in ``L2([0, 1)^d; R^C)``: the mean over the domain of the sum over channels of
``kappa^2`` is 1. Locations are integer cells of the base grid (the shift ``t = j / base``), so that a shifted
non-smooth atom is again a function of the same kind. Grid points are ``x_i = i / n``.

The recovery metrics (``match_atoms``, ``similarity``, ``coherence``, ...) live in
:mod:`saeno.synthetic_metrics` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from saeno.errors import SaenoError
from saeno.synthetic_metrics import (  # re-exported: saeno.synthetic.match_atoms, ...
    Recovery,
    coherence,
    match_atoms,
    similarity,
    unit_normalize,
)

__all__ = [
    "FAMILIES",
    "SMOOTH_FAMILIES",
    "Atoms",
    "Recovery",
    "SparseCodes",
    "SyntheticData",
    "SyntheticError",
    "coherence",
    "generate",
    "make_atoms",
    "match_atoms",
    "sample_codes",
    "similarity",
    "synthesize",
    "unit_normalize",
]

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


@dataclass(frozen=True)
class SparseCodes:
    """Sparse codes of ``n_samples`` samples as a list of ``M`` active (sample, concept, location) entries.

    ``sample`` (M,), ``concept`` (M,), ``shift`` (M, d) in base-grid cells, ``amplitude`` (M,).
    """

    n_samples: int
    p: int
    sample: np.ndarray
    concept: np.ndarray
    shift: np.ndarray
    amplitude: np.ndarray

    def dense(self) -> np.ndarray:
        """Code matrix ``c`` (n_samples, p): the summed amplitude of each concept in each sample."""
        c = np.zeros((self.n_samples, self.p))
        np.add.at(c, (self.sample, self.concept), self.amplitude)
        return c


def sample_codes(
    n_samples: int,
    p: int,
    *,
    s: int = 3,
    n_locations: int = 1,
    euclidean: bool = False,
    ndim: int = 1,
    base: int | None = None,
    amplitude: tuple[float, float] = (0.5, 1.5),
    signed: bool = False,
    seed: int = 0,
) -> SparseCodes:
    """Draw sparse codes: ``s`` distinct concepts per sample, each at ``n_locations`` locations.

    Parameters
    ----------
    n_samples, p : int
        Number of samples and of concepts.
    s : int
        Active concepts per sample (concept sparsity), ``1 <= s <= p``.
    n_locations : int
        Locations per active concept (domain sparsity); must be 1 when ``euclidean``.
    euclidean : bool
        One location at shift 0 for every active concept: ``x = D c``.
    ndim : {1, 2}
        Dimension of the domain.
    base : int, optional
        Base grid of locations (must match the atoms'); default as in :func:`make_atoms`.
    amplitude : (float, float)
        Range of the uniform amplitude draw.
    signed : bool
        Give each amplitude a random sign (default positive, what a ReLU code can represent).
    seed : int
        Seed.

    Returns
    -------
    SparseCodes
    """
    if not 1 <= s <= p:
        raise SyntheticError(f"need 1 <= s <= p, got s={s}, p={p}")
    if n_samples < 1 or n_locations < 1:
        raise SyntheticError(f"n_samples and n_locations must be positive, got {n_samples}, {n_locations}")
    if euclidean and n_locations != 1:
        raise SyntheticError(
            "the Euclidean case x = D c has exactly one location per concept (n_locations=1)"
        )
    if ndim not in (1, 2):
        raise SyntheticError(f"ndim must be 1 or 2, got {ndim}")
    base = DEFAULT_BASE[ndim] if base is None else int(base)
    rng = np.random.default_rng(seed)
    active = np.argsort(rng.random((n_samples, p)), axis=1)[:, :s]  # (N, s) distinct concepts
    concept = np.repeat(active.reshape(-1), n_locations)
    sample = np.repeat(np.arange(n_samples), s * n_locations)
    m = concept.size
    if euclidean:
        shift = np.zeros((m, ndim), dtype=np.int64)
    else:
        shift = rng.integers(0, base, size=(m, ndim))
    amp = rng.uniform(amplitude[0], amplitude[1], size=m)
    if signed:
        amp = amp * rng.choice([-1.0, 1.0], size=m)
    return SparseCodes(n_samples, p, sample, concept, shift.astype(np.int64), amp)


def synthesize(
    atoms: Atoms,
    codes: SparseCodes,
    resolution: int | Sequence[int],
    *,
    noise_std: float = 0.0,
    seed: int = 0,
    chunk: int = 4096,
) -> np.ndarray:
    """Render ``x = sum_k kappa_k * z_k`` (plus optional white noise) on a grid.

    Parameters
    ----------
    atoms : Atoms
    codes : SparseCodes
        Codes with ``codes.p == atoms.p``.
    resolution : int or sequence of int
        Grid size.
    noise_std : float
        Standard deviation of additive i.i.d. Gaussian noise per grid value (drawn per resolution).
    seed : int
        Seed of the noise.
    chunk : int
        Entries rendered at once (memory bound).

    Returns
    -------
    numpy.ndarray
        ``(n_samples, C, *grid)`` float64.
    """
    if codes.p != atoms.p:
        raise SyntheticError(f"codes are for {codes.p} concepts but there are {atoms.p} atoms")
    if codes.shift.shape[1] != atoms.ndim:
        raise SyntheticError(f"codes are {codes.shift.shape[1]}D but atoms are {atoms.ndim}D")
    res = atoms.check_resolution(resolution)
    x = np.zeros((codes.n_samples, atoms.channels) + res)
    for start in range(0, codes.concept.size, chunk):
        sl = slice(start, start + chunk)
        vals = atoms.render(res, codes.concept[sl], codes.shift[sl])
        vals *= codes.amplitude[sl].reshape((-1,) + (1,) * (atoms.ndim + 1))
        np.add.at(x, codes.sample[sl], vals)
    if noise_std > 0:
        x += noise_std * np.random.default_rng(seed).normal(size=x.shape)
    return x


@dataclass(frozen=True)
class SyntheticData:
    """Atoms plus codes: the same samples on any grid. Build with :func:`generate`."""

    atoms: Atoms
    codes: SparseCodes
    noise_std: float = 0.0
    seed: int = 0

    @property
    def n_samples(self) -> int:
        """Number of samples."""
        return self.codes.n_samples

    def fields(
        self,
        resolution: int | Sequence[int],
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """The samples on a grid, ``(N, C, *grid)`` tensor."""
        x = synthesize(self.atoms, self.codes, resolution, noise_std=self.noise_std, seed=self.seed + 1)
        return torch.as_tensor(x, dtype=dtype, device=device)

    def dictionary(
        self,
        resolution: int | Sequence[int],
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """The true atoms on a grid, ``(p, C, *grid)`` tensor."""
        return torch.as_tensor(self.atoms.render(resolution), dtype=dtype, device=device)


def generate(
    family: str,
    *,
    p: int,
    n_samples: int,
    ndim: int = 1,
    channels: int = 1,
    s: int = 3,
    n_locations: int = 1,
    euclidean: bool = False,
    amplitude: tuple[float, float] = (0.5, 1.5),
    signed: bool = False,
    noise_std: float = 0.0,
    seed: int = 0,
    **atom_kwargs: Any,
) -> SyntheticData:
    """Draw atoms and codes of the sparse generative model in one call.

    Parameters
    ----------
    family : {"fourier", "bump", "noise"}
        Atom family (see :func:`make_atoms`, which receives ``atom_kwargs``).
    p, n_samples, ndim, channels, s, n_locations, euclidean, amplitude, signed
        See :func:`make_atoms` and :func:`sample_codes`.
    noise_std : float
        Additive observation noise.
    seed : int
        Seeds the atoms (``seed``) and the codes (``seed + 1``).

    Returns
    -------
    SyntheticData
        ``.fields(resolution)`` and ``.dictionary(resolution)`` render it on any grid.

    Examples
    --------
    >>> data = generate("fourier", p=8, n_samples=256, s=2, n_locations=2)
    >>> data.fields(64).shape
    torch.Size([256, 1, 64])
    """
    atoms = make_atoms(family, p, ndim=ndim, channels=channels, seed=seed, **atom_kwargs)
    codes = sample_codes(
        n_samples,
        p,
        s=s,
        n_locations=n_locations,
        euclidean=euclidean,
        ndim=ndim,
        base=atoms.base,
        amplitude=amplitude,
        signed=signed,
        seed=seed + 1,
    )
    return SyntheticData(atoms, codes, noise_std=noise_std, seed=seed)
