"""The sparse functional generative model of the SAE-NO paper: codes and samples.

``docs/method.md`` section 4: ``x = sum_k kappa_k * z_k`` (circular convolution on the periodic unit box
``[0, 1)^d``, d = 1 or 2) with ``p`` true atoms ``kappa_k: [0, 1)^d -> R^C``; each sample activates ``s``
concepts, each at ``n_locations`` random locations with random amplitudes. The Euclidean special case
(one location, no shift) is ``x = D c``.

The atoms (families ``"fourier"``, ``"bump"``, ``"noise"``, rendered on any grid) are in
:mod:`saeno.synthetic_atoms`, the recovery metrics (``match_atoms``, ``similarity``, ``coherence``,
``usage_evenness``, ``localisation_scores``, ...) in :mod:`saeno.synthetic_metrics`; both are re-exported
here, so ``saeno.synthetic`` is the one name to import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from saeno.synthetic_atoms import (  # re-exported: saeno.synthetic.make_atoms, ...
    DEFAULT_BASE,
    FAMILIES,
    SMOOTH_FAMILIES,
    Atoms,
    SyntheticError,
    make_atoms,
)
from saeno.synthetic_metrics import (  # re-exported: saeno.synthetic.match_atoms, ...
    Recovery,
    best_lags,
    coherence,
    localisation_scores,
    match_atoms,
    similarity,
    unit_normalize,
    usage_evenness,
)

__all__ = [
    "DEFAULT_BASE",
    "FAMILIES",
    "SMOOTH_FAMILIES",
    "Atoms",
    "Recovery",
    "SparseCodes",
    "SyntheticData",
    "SyntheticError",
    "best_lags",
    "coherence",
    "generate",
    "localisation_scores",
    "make_atoms",
    "match_atoms",
    "sample_codes",
    "similarity",
    "synthesize",
    "unit_normalize",
    "usage_evenness",
]


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
