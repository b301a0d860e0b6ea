"""The synthetic settings of the recovery experiments and the models compared on them.

Settings (all 1D, periodic, ``n = 64`` training grid points):

- ``euclid-noise``: ``x = D c`` with random non-smooth atoms (the "easy setting"), 16 atoms, 2 active;
- ``euclid-smooth``: ``x = D c`` with band-limited Fourier atoms (frequencies up to 8);
- ``conv-smooth`` / ``conv-noise``: ``x = sum_k kappa_k * z_k``, 8 atoms, 2 active per sample, each at
  2 random locations (circular convolution), Fourier atoms (frequencies up to 12) or non-smooth ones;
- ``conv-smooth-c4``: as ``conv-smooth`` with 4-channel atoms.

Models (:data:`MODEL_KINDS`): ``"SAE"`` (pointwise; on ``x = D c`` the grid values are its channels, one
row per sample, as in the paper; on convolutional settings it runs at every grid point of the field),
``"FlatSAE"``, ``"SAE-FNO"`` and ``"SAE-CNN"`` (:class:`~saeno.sae.conv.ConvSAE`). Field models use TopK
over ``k`` concepts per sample, then keep the ``n_locations`` largest grid points of each active concept.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from saeno import synthetic as S
from saeno.errors import SaenoError
from saeno.sae import SAE, SAEFNO, ConvSAE, FlatSAE, SparseAutoencoder

MODEL_KINDS = ("SAE", "FlatSAE", "SAE-FNO", "SAE-CNN")


class RecoveryConfigError(SaenoError, ValueError):
    """An unknown setting or model kind, or an option that does not fit it."""


@dataclass(frozen=True)
class RecoverySetting:
    """One planted-dictionary setting.

    Attributes
    ----------
    name : str
        Key in :data:`SETTINGS`.
    family : {"noise", "fourier"}
        Atom family (non-smooth or smooth).
    euclidean : bool
        ``x = D c`` (one location at shift 0) instead of the convolutional model.
    p, s, n_locations : int
        Planted atoms, active concepts per sample, locations per active concept.
    bandwidth : int
        Highest frequency of Fourier atoms.
    n_samples, n_test : int
        Training and test samples.
    n : int
        Training grid.
    channels : int
        Channels of the atoms' values.
    """

    name: str
    family: str
    euclidean: bool
    p: int
    s: int
    n_locations: int
    bandwidth: int
    n_samples: int
    n_test: int
    n: int = 64
    channels: int = 1

    @property
    def base(self) -> int:
        """Base grid of atoms and locations.

        Non-smooth atoms live on the training grid; locations of smooth atoms on half of it (the
        coarsest tested grid), so that the codes' spikes are grid points at every tested resolution.
        """
        return self.n if self.family == "noise" else self.n // 2

    def atoms(self, seed: int) -> S.Atoms:
        """The planted atoms of seed ``seed``."""
        return S.make_atoms(
            self.family,
            self.p,
            channels=self.channels,
            bandwidth=self.bandwidth,
            base=self.base,
            seed=1000 * seed + 7,
        )

    def data(
        self,
        seed: int,
        split: str = "train",
        *,
        n_samples: int | None = None,
        amplitude: tuple[float, float] = (0.5, 1.5),
        noise_std: float = 0.0,
    ) -> S.SyntheticData:
        """Samples of one split (same atoms for every split and option, independent codes).

        Parameters
        ----------
        seed : int
        split : {"train", "test", "shift"}
            Which code draw (the shifted test sets draw their own codes).
        n_samples : int, optional
            Default ``n_samples`` for train, ``n_test`` otherwise.
        amplitude, noise_std
            Code amplitude range and additive noise (a distribution shift when changed).
        """
        offsets = {"train": 1, "test": 2, "shift": 3}
        if split not in offsets:
            raise RecoveryConfigError(f"split {split!r} is unknown: use one of {sorted(offsets)}")
        count = n_samples or (self.n_samples if split == "train" else self.n_test)
        codes = S.sample_codes(
            count,
            self.p,
            s=self.s,
            n_locations=self.n_locations,
            euclidean=self.euclidean,
            base=self.base,
            amplitude=amplitude,
            seed=1000 * seed + offsets[split],
        )
        return S.SyntheticData(self.atoms(seed), codes, noise_std=noise_std, seed=1000 * seed + 5)

    def with_(self, **changes: Any) -> RecoverySetting:
        """A copy with some fields changed (e.g. fewer samples for a quick run)."""
        return replace(self, **changes)


SETTINGS: dict[str, RecoverySetting] = {
    "euclid-noise": RecoverySetting("euclid-noise", "noise", True, 16, 2, 1, 8, 4096, 256),
    "euclid-smooth": RecoverySetting("euclid-smooth", "fourier", True, 16, 2, 1, 8, 4096, 256),
    "conv-smooth": RecoverySetting("conv-smooth", "fourier", False, 8, 2, 2, 12, 2048, 256),
    "conv-noise": RecoverySetting("conv-noise", "noise", False, 8, 2, 2, 12, 2048, 256),
    # four-channel atoms: a pointwise SAE then has something to learn at each point
    "conv-smooth-c4": RecoverySetting("conv-smooth-c4", "fourier", False, 8, 2, 2, 12, 2048, 256, channels=4),
}


def get_setting(name: str) -> RecoverySetting:
    """The setting called ``name``."""
    if name not in SETTINGS:
        raise RecoveryConfigError(f"unknown setting {name!r}: choose one of {sorted(SETTINGS)}")
    return SETTINGS[name]


def build_model(
    kind: str,
    setting: RecoverySetting,
    *,
    p: int | None = None,
    k: int | None = None,
    lifting: int | None = None,
    modes: int = 13,
    kernel: int = 33,
    peaks: int | None = None,
) -> SparseAutoencoder:
    """A fresh model for a setting.

    Parameters
    ----------
    kind : {"SAE", "FlatSAE", "SAE-FNO", "SAE-CNN"}
    setting : RecoverySetting
    p : int, optional
        Learned concepts (default: the planted count).
    k : int, optional
        Concepts kept per sample (rows, field models) or per point (the pointwise SAE on fields);
        default: the planted ``s`` (1 per point for the pointwise SAE on fields).
    lifting : int, optional
        Lifted width (the "L-" models).
    modes : int
        Fourier modes of the SAE-FNO (``n // 2`` keeps every mode of the training grid).
    kernel : int
        Taps of the SAE-CNN's kernels, in grid points.
    peaks : int, optional
        Peak-picking radius of field models (``domain_peaks``; None: off).
    """
    n, c, p = setting.n, setting.channels, p or setting.p
    if kind not in MODEL_KINDS:
        raise RecoveryConfigError(f"unknown model kind {kind!r}: choose one of {MODEL_KINDS}")
    if kind == "SAE":
        if setting.euclidean:  # the grid values are the channels: one row per sample
            return SAE(n, p, sparsity={"type": "topk", "k": k or setting.s}, lifting=lifting)
        return SAE(c, p, ndim=1, sparsity={"type": "topk", "k": k or 1}, lifting=lifting)
    if kind == "FlatSAE":
        return FlatSAE(c, p, grid=(n,), sparsity={"type": "topk", "k": k or setting.s}, lifting=lifting)
    fields: dict[str, Any] = {
        "type": "topk",
        "k": k or setting.s,
        "group": "concept",
        "domain_frac": setting.n_locations / n,
        "domain_peaks": peaks,
    }
    if kind == "SAE-FNO":
        return SAEFNO(c, p, ndim=1, modes=modes, sparsity=fields, lifting=lifting)
    return ConvSAE(c, p, ndim=1, kernel=kernel, sparsity=fields, lifting=lifting)
