"""The labelled parametric benchmark: 1D viscous Burgers with three categorical factors and a nuisance.

Card ``datasets/burgers_labelled.json``. Each sample has

- labels: ``viscosity`` in {low, mid, high} (``nu`` = 0.01, 0.03, 0.1), ``drift`` in {left, none,
  right} (a constant mean velocity -0.6, 0, 0.6, which carries the solution along), ``ic`` in {waves,
  bump, step} (the family of the initial profile);
- a nuisance drawn inside every family: a circular shift ``s`` in [0, 1), an amplitude ``A`` and six
  shape coefficients ``xi``. The same ``(s, A, xi)`` gives a profile in every family, so a sample's
  *counterfactual* (the same nuisance under other labels) is well defined.

``u0(x) = drift + A g_ic(x - s; xi)`` with ``g`` zero-mean and ``max |g| = 1``; ``x = (u0, log10 nu)``
(the viscosity as a constant input channel, so that the FNO can know it), ``y = u(T)`` from the project's
pseudo-spectral ETDRK4 solver (:func:`saeno.pde.burgers.solve_burgers`).

Randomness follows :mod:`saeno.pde.generate`: sample ``i`` of split ``s`` draws from
``default_rng([seed, s, i])``, nuisance first, then the three label codes (uniform). Importing this module
registers the sampler in ``saeno.pde.generate.SAMPLERS`` under ``"burgers_labelled"`` so that
``saeno.pde.generate.generate("burgers_labelled")`` writes the usual HDF5 layout with ``/labels/{factor}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from saeno.errors import SaenoError
from saeno.pde import generate as _generate
from saeno.pde.burgers import solve_burgers
from saeno.pde.cards import load_card
from saeno.pde.generate import SPLITS, restrict

CARD = "burgers_labelled"
N_SHAPE = 6


@dataclass
class Nuisance:
    """Per-sample nuisance: shift ``(B,)``, amplitude ``(B,)``, shape coefficients ``(B, 6)``."""

    shift: np.ndarray
    amplitude: np.ndarray
    xi: np.ndarray


def draw(card: dict[str, Any], rngs: Sequence[np.random.Generator]) -> tuple[Nuisance, dict[str, np.ndarray]]:
    """Draw each sample's nuisance, then its label codes, from its own generator."""
    lo, hi = card["parameters"]["amplitude"]
    shift, amp, xi, codes = [], [], [], {f: [] for f in card["labels"]}
    for r in rngs:
        shift.append(r.uniform(0.0, 1.0))
        amp.append(r.uniform(lo, hi))
        xi.append(r.standard_normal(N_SHAPE))
        for f, cats in card["labels"].items():
            codes[f].append(int(r.integers(len(cats))))
    return (
        Nuisance(np.array(shift), np.array(amp), np.array(xi).reshape(-1, N_SHAPE)),
        {f: np.array(v, dtype=np.int64) for f, v in codes.items()},
    )


def profile(family: str, xi: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Zero-mean profile of an initial-condition family with ``max |g| = 1``.

    Parameters
    ----------
    family : {"waves", "bump", "step"}
        ``waves``: three Fourier modes with coefficients ``xi / k``; ``bump``: a periodic Gaussian of
        width ``0.04 + 0.03 |xi_0|`` plus a weaker one at a distance ``0.3 + 0.1 tanh xi_1``;
        ``step``: a smoothed square wave with duty cycle ``0.5 + 0.15 tanh xi_2`` and edge width
        ``0.02 + 0.01 |xi_3|``.
    xi : numpy.ndarray
        Six shape coefficients.
    x : numpy.ndarray
        Points in [0, 1) (already shifted).
    """
    if family == "waves":
        g = sum(
            (xi[2 * k - 2] * np.sin(2 * np.pi * k * x) + xi[2 * k - 1] * np.cos(2 * np.pi * k * x)) / k
            for k in (1, 2, 3)
        )
    elif family == "bump":
        d = (x - 0.5 + 0.5) % 1.0 - 0.5
        w = 0.04 + 0.03 * abs(xi[0])
        d2 = (x - (0.3 + 0.1 * np.tanh(xi[1])) + 0.5) % 1.0 - 0.5
        g = np.exp(-0.5 * (d / w) ** 2) + 0.5 * np.tanh(xi[4]) * np.exp(-0.5 * (d2 / w) ** 2)
    elif family == "step":
        duty = 0.5 + 0.15 * np.tanh(xi[2])
        eps = 0.02 + 0.01 * abs(xi[3])
        d = x % 1.0
        g = np.tanh(d / eps) * np.tanh((duty - d) / eps) * np.tanh((1.0 - d) / eps)
        g = np.where(d < duty, np.abs(g), -np.abs(g))
    else:
        raise SaenoError(f"unknown initial-condition family {family!r}: use waves, bump or step")
    g = g - g.mean()
    return g / max(float(np.abs(g).max()), 1e-12)


def initial_conditions(
    card: dict[str, Any], nuisance: Nuisance, codes: dict[str, np.ndarray], n: int
) -> np.ndarray:
    """``u0`` ``(B, n)`` for the given nuisance and label codes on the grid ``i / n``."""
    p, labels = card["parameters"], card["labels"]
    x = np.arange(n) / n
    out = np.empty((len(nuisance.shift), n))
    for b in range(len(out)):
        fam = labels["ic"][codes["ic"][b]]
        drift = p["drift"][labels["drift"][codes["drift"][b]]]
        out[b] = drift + nuisance.amplitude[b] * profile(fam, nuisance.xi[b], x - nuisance.shift[b])
    return out


def solve(
    card: dict[str, Any], nuisance: Nuisance, codes: dict[str, np.ndarray], n: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``x (B, 2, n)`` and solutions ``y (B, 1, n)`` on the solve grid (default the card's)."""
    p, labels = card["parameters"], card["labels"]
    n = int(n or card["solve_resolution"])
    u0 = initial_conditions(card, nuisance, codes, n)
    nus = np.array([p["viscosity"][labels["viscosity"][c]] for c in codes["viscosity"]])
    uT = np.empty_like(u0)
    for nu in np.unique(nus):
        sel = nus == nu
        uT[sel] = solve_burgers(u0[sel], p["t_final"], float(nu), cfl=p.get("cfl", 0.4))
    x = np.stack([u0, np.broadcast_to(np.log10(nus)[:, None], u0.shape)], axis=1)
    return x, uT[:, None]


def sample(card: dict[str, Any], rngs: list[np.random.Generator]) -> tuple[np.ndarray, np.ndarray, dict]:
    """The ``generate`` sampler: ``(x, y, params)`` with ``params["_labels"]`` the label codes."""
    nuisance, codes = draw(card, rngs)
    x, y = solve(card, nuisance, codes)
    p, labels = card["parameters"], card["labels"]
    params: dict[str, Any] = {
        "viscosity": np.array([p["viscosity"][labels["viscosity"][c]] for c in codes["viscosity"]]),
        "drift": np.array([p["drift"][labels["drift"][c]] for c in codes["drift"]]),
        "shift": nuisance.shift,
        "amplitude": nuisance.amplitude,
    }
    params.update({f"label_{f}": c.astype(np.float64) for f, c in codes.items()})
    params["_labels"] = codes
    return x, y, params


_generate.SAMPLERS.setdefault("burgers_labelled", sample)


def counterfactual(
    indices: Sequence[int],
    codes: dict[str, Sequence[int]],
    *,
    split: str = "test",
    seed: int | None = None,
    resolution: int = 64,
    card: dict[str, Any] | str = CARD,
) -> tuple[np.ndarray, np.ndarray]:
    """The solver's counterfactual of samples: their own nuisance under other labels.

    Parameters
    ----------
    indices : sequence of int
        Sample indices in the split.
    codes : dict
        ``{factor: (B,) category codes}`` to give the samples (every factor).
    split : {"train", "test"}
        The split the indices refer to.
    seed : int, optional
        The dataset's base seed (default: the card's).
    resolution : int
        Output grid (a divisor of the solve resolution).
    card : dict or str
        The card (or its name).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``x (B, 2, resolution)`` and ``y (B, 1, resolution)``, float32.
    """
    card = load_card(card) if isinstance(card, (str, Path)) else card
    if split not in SPLITS:
        raise SaenoError(f"split must be one of {list(SPLITS)}, got {split!r}")
    seed = int(card["seed"] if seed is None else seed)
    fine = int(card["solve_resolution"])
    if resolution <= 0 or fine % resolution:
        raise SaenoError(f"resolution {resolution} must divide the solve resolution {fine}")
    missing = [f for f in card["labels"] if f not in codes]
    if missing:
        raise SaenoError(f"counterfactual needs a code for every factor; missing {missing}")
    rngs = [np.random.default_rng([seed, SPLITS[split], int(i)]) for i in indices]
    nuisance, _ = draw(card, rngs)
    cf = {f: np.asarray(codes[f], dtype=np.int64).reshape(-1) for f in card["labels"]}
    for f, c in cf.items():
        if len(c) != len(rngs) or c.min(initial=0) < 0 or c.max(initial=0) >= len(card["labels"][f]):
            raise SaenoError(
                f"codes of factor {f!r} must be {len(rngs)} values in [0, {len(card['labels'][f])})"
            )
    x, y = solve(card, nuisance, cf)
    return (
        restrict(x, fine // resolution, 1).astype(np.float32),
        restrict(y, fine // resolution, 1).astype(np.float32),
    )


@dataclass
class LabelledSplit:
    """One split of the benchmark in memory.

    Attributes
    ----------
    x, y : numpy.ndarray
        ``(N, 2, r)`` inputs and ``(N, 1, r)`` solutions.
    codes : dict of str to numpy.ndarray
        ``(N,)`` category codes per factor.
    factors : dict of str to list of str
        Category names per factor.
    params : dict of str to numpy.ndarray
        Per-sample parameters.
    card : dict
        The dataset card (with ``split``, ``resolution``, ``file``).
    """

    x: np.ndarray
    y: np.ndarray
    codes: dict[str, np.ndarray]
    factors: dict[str, list[str]]
    params: dict[str, np.ndarray]
    card: dict[str, Any]

    def dataset(self) -> Any:
        """A :class:`saeno.pde.dataset.FieldDataset` (for ``saeno.capture``); labels as names."""
        from saeno.pde.dataset import FieldDataset

        names = {f: [self.factors[f][c] for c in self.codes[f]] for f in self.factors}
        return FieldDataset(self.x, self.y, CARD, self.card, self.params, names)


def load(
    split: str = "train",
    n: int | None = None,
    resolution: int = 64,
    seed: int | None = None,
    progress: bool = False,
) -> LabelledSplit:
    """Generate (cached under ``saeno.paths.data_dir()``) and read one split of the benchmark.

    Parameters
    ----------
    split : {"train", "test"}
        Which split.
    n : int, optional
        Training samples to generate (default the card's); the test split gets ``n / 3``.
    resolution : int
        Grid (64, 128 or 256).
    seed : int, optional
        Base seed (default the card's).
    progress : bool
        Show the generation progress bar.
    """
    from saeno.pde.readers.saeno_h5 import read_saeno

    path = _generate.generate(CARD, n=n, seed=seed, progress=progress)
    d = read_saeno(path, split=split, resolution=resolution)
    card = d["card"]
    factors = {f: list(v) for f, v in card["labels"].items()}
    codes = {f: np.array([factors[f].index(s) for s in d["labels"][f]], dtype=np.int64) for f in factors}
    return LabelledSplit(d["x"], d["y"], codes, factors, d["params"], card)


def combination_ids(codes: dict[str, np.ndarray], factors: dict[str, list[str]]) -> np.ndarray:
    """One integer per sample for its label combination (mixed radix over ``factors`` order)."""
    ids = np.zeros(len(next(iter(codes.values()))), dtype=np.int64)
    for f, cats in factors.items():
        ids = ids * len(cats) + np.asarray(codes[f], dtype=np.int64)
    return ids


__all__ = [
    "Nuisance",
    "draw",
    "profile",
    "initial_conditions",
    "solve",
    "sample",
    "counterfactual",
    "LabelledSplit",
    "load",
    "combination_ids",
]
