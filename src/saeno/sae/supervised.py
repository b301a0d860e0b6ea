"""Supervised SAE: decoder-only concept blocks switched on by labels (``docs/method.md`` section 6).

Every category value of every labelled factor (``viscosity=low``, ``ic=bump``, ...) is a *concept* and
owns a learned code block of ``d = block_size`` channels. On a field the block is a function: its
``d`` channels are trigonometric polynomials with ``|w| < modes`` (stored as Fourier coefficients, so a
block renders on any grid, as an SAE-FNO concept does). A sample's binary label mask ``m`` (one concept
per factor switched on) gates the blocks; a per-sample *nuisance* block ``n`` of ``nuisance_size``
channels carries what the labels do not (here: the random initial field inside its family). The code
field is

    z = [m_1 Y_1, ..., m_p Y_p, n]                       (B, p d + d_n, *grid)

and one decoder maps it back to the (normalised) activation: SAE-FNO style,
``a_hat = F^-1[R . F h] + W h + b`` with ``h = z`` (``hidden=0``, linear) or
``h = GELU(F^-1[R_1 . F z] + W_1 z + b_1)`` (``hidden > 0``, one hidden layer, the default, so that the
effect of a label may depend on the nuisance). The loss is reconstruction: the mask replaces the L1
penalty, there is no sparsity term.

Nuisance for a sample: **amortised**. A linear spectral encoder ``n = F^-1[R_e . F a]`` keeping only
``|w| < nuisance_modes`` Fourier modes (a band-limited bottleneck of ``d_n`` channels) is trained jointly
with the blocks and the decoder. For a new sample the codes are its labels plus ``n(a)``: one forward
pass, no optimisation. An encoder that sees the activation can also copy the label information into
the nuisance, and then a label switch changes little: on the Burgers benchmark with plain reconstruction
only, decoding held-out combinations from their labels alone explained less variance than a ridge
regression from labels. The training loss therefore adds a penalty on the batch correlation between the
nuisance (and its square) and the label indicators (:func:`nuisance_label_correlation`, weight
``decorrelate``, default 10, relative to the channel-averaged MSE); the reconstruction term itself is plain
MSE, with no sparsity penalty. :meth:`SupervisedSAE.forward_train` returns that penalty as the output's
``penalty``, so :func:`saeno.train_sae` trains the model like any other SAE, on ``(activations, label
mask)`` batches (:func:`saeno.supervised.training.fit_supervised` does this).

Interventions change the mask and keep the nuisance: ``a' = a + D(m', n) - D(m, n)`` (the
reconstruction error is preserved; setting the labels a sample already has changes nothing, exactly).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from saeno.errors import LabelError
from saeno.sae.base import ConfigError, SAEOutput, SparseAutoencoder
from saeno.sae.lifting import channel_linear
from saeno.sae.sparsity import Sparsity
from saeno.sae.spectral import SpectralConv

LabelsLike = Tensor | np.ndarray | Mapping[str, Any]


def nuisance_label_correlation(nuisance: Tensor, mask: Tensor) -> Tensor:
    """Mean squared correlation, over the batch, between every nuisance value (and its square) and
    every concept's label indicator: zero when the nuisance's first two moments do not depend on the
    labels (in the batch).

    Parameters
    ----------
    nuisance : Tensor
        ``(B, d_n, *grid)``.
    mask : Tensor
        ``(B, p)`` label mask.
    """
    n = nuisance.flatten(1)
    feats = torch.cat([n, n.pow(2)], dim=1)
    f = feats - feats.mean(0, keepdim=True)
    m = mask - mask.mean(0, keepdim=True)
    cov = m.T @ f / len(f)
    denom = m.pow(2).mean(0).sqrt()[:, None] * f.pow(2).mean(0).sqrt()[None, :]
    return (cov / denom.clamp_min(1e-6)).pow(2).mean()


class SupervisedSAE(SparseAutoencoder):
    """Decoder-only supervised SAE on 1D, 2D or 3D fields with label-gated concept blocks.

    Parameters
    ----------
    in_channels : int
        Channels C of the activations.
    n_concepts : int, optional
        Number of labelled concepts p; must equal the total number of categories in ``factors``
        (computed when omitted; accepted so that ``from_config`` round-trips).
    factors : dict of str to list of str
        Label factors and their category names, e.g. ``{"viscosity": ["low", "mid", "high"]}``.
        Concept order: factors in the given order, categories in the given order.
    ndim : int
        Grid dimension (1, 2 or 3).
    block_size : int
        Channels d of each concept block.
    nuisance_size : int
        Channels of the per-sample nuisance block (0: no nuisance, labels only).
    modes : int
        Fourier modes ``K`` kept per dimension by the blocks and the decoder's spectral convolutions.
    nuisance_modes : int, optional
        Modes kept by the amortised nuisance encoder (default ``modes``).
    hidden : int
        Width of the decoder's hidden layer (0: linear SAE-FNO decoder).
    decorrelate : float
        Weight of :func:`nuisance_label_correlation` in the training loss, relative to the
        channel-averaged squared error (0: plain reconstruction).
    sparsity, lifting, complex
        As in :class:`~saeno.sae.base.SparseAutoencoder`; sparsity is unused (the label mask is the
        sparsity) and lifting is not supported.
    """

    architecture = "supervised"
    view = "field"
    default_group = "concept"

    def __init__(
        self,
        in_channels: int,
        n_concepts: int | None = None,
        *,
        factors: Mapping[str, Sequence[str]],
        ndim: int,
        block_size: int = 4,
        nuisance_size: int = 4,
        modes: int = 8,
        nuisance_modes: int | None = None,
        hidden: int = 32,
        decorrelate: float = 10.0,
        sparsity: str | dict | Sparsity | None = None,
        lifting: int | None = None,
        complex: str | None = None,
    ) -> None:
        if not isinstance(factors, Mapping) or not factors:
            raise ConfigError("factors must be a non-empty dict {factor: [category names]}")
        clean: dict[str, list[str]] = {}
        for name, cats in factors.items():
            cats = [str(c) for c in cats]
            if len(cats) < 2 or len(set(cats)) != len(cats):
                raise ConfigError(f"factor {name!r} needs at least two distinct category names, got {cats}")
            clean[str(name)] = cats
        p = sum(len(c) for c in clean.values())
        if n_concepts is not None and int(n_concepts) != p:
            raise ConfigError(f"n_concepts={n_concepts} does not match the {p} categories of factors {clean}")
        if lifting is not None:
            raise ConfigError("SupervisedSAE does not support lifting: leave lifting=None")
        if ndim is None:
            raise ConfigError("SupervisedSAE needs ndim (1, 2 or 3)")
        if block_size < 1 or nuisance_size < 0 or modes < 1 or hidden < 0:
            raise ConfigError("block_size and modes must be >= 1, nuisance_size and hidden >= 0")
        if not decorrelate >= 0:
            raise ConfigError(f"decorrelate must be >= 0, got {decorrelate}")
        super().__init__(
            in_channels,
            p,
            ndim=ndim,
            sparsity=sparsity or {"type": "topk", "k": min(8, p)},
            lifting=None,
            complex=complex,
        )
        self.factors = clean
        self.block_size = int(block_size)
        self.nuisance_size = int(nuisance_size)
        self.modes = int(modes)
        self.nuisance_modes = int(nuisance_modes or modes)
        self.hidden = int(hidden)
        self.decorrelate = float(decorrelate)
        c, d = self.core_channels, self.block_size
        self.code_channels = p * d + self.nuisance_size
        # concept blocks as functions: kernel of a 1 -> p*d spectral map (Fourier coefficients)
        self.blocks = SpectralConv(1, p * d, self.modes, ndim)
        with torch.no_grad():
            self.blocks.weight.mul_(float(np.sqrt(self.blocks.weight[0, 0].numel() / 2)))
        self.enc_spectral = (
            SpectralConv(c, self.nuisance_size, self.nuisance_modes, ndim) if self.nuisance_size else None
        )
        width = self.hidden or c
        self.dec_spectral = SpectralConv(self.code_channels, width, self.modes, ndim)
        self.W_d = nn.Parameter(torch.randn(width, self.code_channels) / np.sqrt(self.code_channels))
        self.b_d = nn.Parameter(torch.zeros(width))
        if self.hidden:
            self.out_spectral = SpectralConv(width, c, self.modes, ndim)
            self.W_o = nn.Parameter(torch.randn(c, width) / np.sqrt(width))
            self.b_o = nn.Parameter(torch.zeros(c))

    # ---------------------------------------------------------------- configuration
    def extra_config(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "ndim": self.ndim,
            "block_size": self.block_size,
            "nuisance_size": self.nuisance_size,
            "modes": self.modes,
            "nuisance_modes": self.nuisance_modes,
            "hidden": self.hidden,
            "decorrelate": self.decorrelate,
        }

    @property
    def concept_names(self) -> list[str]:
        """``"factor=category"`` for each concept, in concept order."""
        return [f"{f}={c}" for f, cats in self.factors.items() for c in cats]

    def concept_index(self, factor: str, category: str) -> int:
        """Index of the concept ``factor=category``."""
        if factor not in self.factors:
            raise LabelError(f"unknown factor {factor!r}: this SAE knows {list(self.factors)}")
        if category not in self.factors[factor]:
            raise LabelError(
                f"unknown category {category!r} of factor {factor!r}: choose among {self.factors[factor]}"
            )
        offset = 0
        for f, cats in self.factors.items():
            if f == factor:
                return offset + cats.index(category)
            offset += len(cats)
        raise AssertionError("unreachable")

    # ---------------------------------------------------------------- labels
    def label_mask(self, labels: LabelsLike, batch: int | None = None) -> Tensor:
        """Binary concept mask ``(B, p)`` from labels.

        Parameters
        ----------
        labels : Tensor, ndarray or dict
            A ``(B, p)`` mask, or ``{factor: codes}`` with one entry per factor, each ``(B,)``
            integer category codes or a sequence of category names.
        batch : int, optional
            Expected batch size B (checked).
        """
        dev = self.norm_mean.device
        if isinstance(labels, (Tensor, np.ndarray)):
            mask = torch.as_tensor(labels, dtype=torch.float32, device=dev)
            if mask.dim() != 2 or mask.shape[1] != self.n_concepts:
                raise LabelError(
                    f"a label mask must have shape (B, {self.n_concepts}), got {tuple(mask.shape)}"
                )
        elif isinstance(labels, Mapping):
            missing = [f for f in self.factors if f not in labels]
            extra = [f for f in labels if f not in self.factors]
            if missing or extra:
                raise LabelError(
                    f"labels must give every factor {list(self.factors)}; missing {missing}, unknown {extra}"
                )
            parts = []
            for f, cats in self.factors.items():
                vals = labels[f]
                if isinstance(vals, (str, int, np.integer)):
                    vals = [vals]
                codes = []
                for v in vals.tolist() if isinstance(vals, (Tensor, np.ndarray)) else list(vals):
                    if isinstance(v, str):
                        self.concept_index(f, v)  # raises a LabelError naming the choices
                        codes.append(cats.index(v))
                    else:
                        if not 0 <= int(v) < len(cats):
                            raise LabelError(
                                f"code {v} out of range for factor {f!r} ({len(cats)} categories {cats})"
                            )
                        codes.append(int(v))
                parts.append(F.one_hot(torch.tensor(codes, dtype=torch.long), len(cats)))
            sizes = {len(p_) for p_ in parts}
            if len(sizes) != 1:
                raise LabelError(f"every factor needs the same number of samples, got {sizes}")
            mask = torch.cat(parts, dim=1).to(dev, torch.float32)
        else:
            raise LabelError(
                f"labels must be a mask tensor or a dict {{factor: codes}}, got {type(labels).__name__}"
            )
        if batch is not None and mask.shape[0] != batch:
            raise LabelError(f"got labels for {mask.shape[0]} samples and {batch} activations")
        return mask

    def labels_of(self, mask: Tensor) -> dict[str, list[str]]:
        """Category names per factor from a mask ``(B, p)`` (argmax within each factor)."""
        out, offset = {}, 0
        for f, cats in self.factors.items():
            idx = mask[:, offset : offset + len(cats)].argmax(1).tolist()
            out[f] = [cats[i] for i in idx]
            offset += len(cats)
        return out

    # ---------------------------------------------------------------- codes
    def block_fields(self, grid: tuple[int, ...]) -> Tensor:
        """The concept blocks rendered on ``grid``: ``(p, d, *grid)`` (normalised space)."""
        k = self.blocks.kernel(tuple(grid))[0]
        return k.view(self.n_concepts, self.block_size, *grid)

    def nuisance_norm(self, x: Tensor) -> Tensor:
        """Nuisance ``(B, d_n, *grid)`` of normalised activations ``x``."""
        if self.enc_spectral is None:
            return x.new_zeros((x.shape[0], 0, *x.shape[2:]))
        return self.enc_spectral(x)

    def nuisance(self, a: Tensor) -> Tensor:
        """Nuisance ``(B, d_n, *grid)`` of raw activations ``a`` (the amortised encoder)."""
        return self.nuisance_norm(self.normalize(a))

    def codes(self, mask: Tensor, nuisance: Tensor) -> Tensor:
        """Code field ``z = [m_1 Y_1, ..., m_p Y_p, n]``: ``(B, p d + d_n, *grid)``."""
        grid = tuple(nuisance.shape[2:])
        blocks = self.block_fields(grid)  # (p, d, *grid)
        shape = (mask.shape[0], self.n_concepts, 1, *([1] * len(grid)))
        gated = mask.to(blocks.dtype).view(shape) * blocks.unsqueeze(0)
        gated = gated.reshape(mask.shape[0], -1, *grid)
        return torch.cat([gated, nuisance.to(gated.dtype)], dim=1)

    # ---------------------------------------------------------------- core
    def _encode_pre(self, x: Tensor) -> Tensor:
        raise LabelError("a supervised SAE encodes with labels: call encode(a, labels)")

    def _lin(self, z: Tensor, spec: SpectralConv, w: Tensor, b: Tensor, bias: bool) -> Tensor:
        y = spec(z) + channel_linear(z, w)
        return y + self._bias(b, y) if bias else y

    def _bias(self, b: Tensor, like: Tensor) -> Tensor:
        return b.view(1, -1, *([1] * (like.dim() - 2)))

    def _decode(self, z: Tensor, bias: bool) -> Tensor:
        if not self.hidden:
            return self._lin(z, self.dec_spectral, self.W_d, self.b_d, bias)
        h = F.gelu(self._lin(z, self.dec_spectral, self.W_d, self.b_d, True))
        y = self._lin(h, self.out_spectral, self.W_o, self.b_o, True)
        if not bias:  # the part that depends on z: subtract the decoding of zero codes
            y = y - self._decode(torch.zeros_like(z[:1]), True)
        return y

    def _render(self, grid: tuple[int, ...]) -> Tensor:
        """Concept atoms: decoding of each block alone minus the decoding of zero codes."""
        if not grid:
            raise ConfigError("supervised SAE concepts are functions: give a resolution")
        eye = torch.eye(self.n_concepts, device=self.norm_mean.device)
        nuis = eye.new_zeros((self.n_concepts, self.nuisance_size, *grid))
        return self._decode(self.codes(eye, nuis), bias=False)

    def normalize_decoder_(self) -> None:
        """No-op: the decoder is not tied to an encoder and its scale is free (no L1 penalty)."""

    def init_encoder_from_decoder_(self) -> None:
        """No-op: there is no concept encoder (the nuisance encoder is trained from scratch)."""

    def default_aux_k(self) -> int:
        """0: the concepts are switched on by labels, not by an encoder, so there is no AuxK loss."""
        return 0

    def aux_codes(self, pre: Tensor, dead: Tensor, k: int) -> Tensor:
        raise ConfigError("a supervised SAE has no AuxK loss: train it with aux_k=0 (the default)")

    # ---------------------------------------------------------------- public interface
    def _need(self, labels: LabelsLike | None) -> LabelsLike:
        if labels is None:
            raise LabelError(
                "a supervised SAE needs the samples' labels: pass labels= as a "
                "{factor: codes} dict or a (B, p) mask"
            )
        return labels

    def encode(self, a: Tensor, labels: LabelsLike | None = None) -> Tensor:
        """Code field ``(B, p d + d_n, *grid)`` of raw activations ``a`` with their labels."""
        x = self.normalize(a)
        mask = self.label_mask(self._need(labels), x.shape[0])
        return self.codes(mask, self.nuisance_norm(x))

    def forward(self, a: Tensor, labels: LabelsLike | None = None) -> Tensor:
        """Raw reconstruction of raw activations ``a`` from their labels and their nuisance."""
        return self.decode(self.encode(a, labels))

    def forward_train(self, a: Tensor, labels: LabelsLike | None = None) -> SAEOutput:
        """Everything the training loss needs (:func:`saeno.train_sae` calls it on ``(a, mask)``
        batches).

        Returns
        -------
        SAEOutput
            ``recon`` and ``target`` in normalised space; ``codes``: the label mask ``(B, p)``
            (which concepts each sample uses); ``pre``: the code field ``z``; ``penalty``: the
            decorrelation term in the trainer's units (squared error summed over channels, hence
            ``decorrelate * C``), None when ``decorrelate`` is 0 or there is no nuisance.
        """
        x = self.normalize(a)
        mask = self.label_mask(self._need(labels), x.shape[0])
        z = self.codes(mask, self.nuisance_norm(x))
        penalty = None
        if self.decorrelate and self.nuisance_size:
            nuis = z[:, self.n_concepts * self.block_size :]
            corr = nuisance_label_correlation(nuis, mask)
            penalty = self.decorrelate * x.shape[1] * corr
        return SAEOutput(self._decode(z, True), x, mask, z, penalty)

    def decode_labels(self, labels: LabelsLike, nuisance: Tensor) -> Tensor:
        """Raw field decoded from labels and a nuisance ``(B, d_n, *grid)``."""
        mask = self.label_mask(labels, nuisance.shape[0])
        return self.denormalize(self._decode(self.codes(mask, nuisance), True))

    def intervene(
        self, a: Tensor, labels: LabelsLike, new_labels: LabelsLike, keep_error: bool = True
    ) -> Tensor:
        """Edit raw activations ``a``: switch their labels to ``new_labels``, keep the nuisance.

        Parameters
        ----------
        a : Tensor
            Raw activations ``(B, C, *grid)``.
        labels, new_labels : mask or dict
            The samples' labels and the labels to set.
        keep_error : bool
            Return ``a + D(m', n) - D(m, n)`` (True, the default: what the SAE does not explain is
            kept) or the bare decoding ``D(m', n)``.
        """
        x = self.normalize(a)
        n = self.nuisance_norm(x)
        new = self._decode(self.codes(self.label_mask(new_labels, x.shape[0]), n), True)
        if not keep_error:
            return self.denormalize(new)
        old = self._decode(self.codes(self.label_mask(labels, x.shape[0]), n), True)
        if self.complex:
            return self.denormalize(x + new - old)
        return a + (new - old) * self._bcast(self.norm_scale, new)

    def extra_repr(self) -> str:
        return (
            f"factors={self.factors}, in_channels={self.in_channels}, ndim={self.ndim}, "
            f"block_size={self.block_size}, nuisance_size={self.nuisance_size}, "
            f"modes={self.modes}, hidden={self.hidden}, decorrelate={self.decorrelate}"
        )


__all__ = ["SupervisedSAE", "LabelError", "nuisance_label_correlation"]
