"""The interface every sparse autoencoder of saeno implements.

A model sees raw activations ``a`` (fields ``(B, C, *grid)``, or rows ``(N, C)`` for the pointwise SAE)
and works in normalised space ``(a - norm_mean) / norm_scale`` (per channel, buffers saved with the
weights). Internally it may re-arrange tensors ("packed layout": rows for the pointwise SAE); the
training entry point :meth:`SparseAutoencoder.forward_train` returns everything the losses need in that
layout, with channels or concepts on dimension 1.

Complex activations (e.g. from an FNO with ``complex_data=True``) are refused unless the model was built
with ``complex="realimag"``: the real and imaginary parts are then stacked as ``2C`` real channels
(``[real_0..real_{C-1}, imag_0..imag_{C-1}]``), normalised, encoded and decoded as such, and the
reconstruction is returned as a complex tensor again. ``norm_mean`` and ``norm_scale`` then have ``2C``
entries.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from saeno.errors import SaenoError, ShapeError
from saeno.sae.bias_field import BiasField
from saeno.sae.lifting import Lifting, channel_linear
from saeno.sae.sparsity import Sparsity, make_sparsity

COMPLEX_TREATMENTS = (None, "realimag")
# keys that save_sae adds to cfg.json beside the constructor arguments
# (``constants``: the fixed numbers and conventions of the forward pass, written for readers of the
# files, see docs/sae_format.md; derived from the other keys, so ignored when loading)
META_KEYS = frozenset(
    {"architecture", "hook", "model_fingerprint", "normalization", "versions", "metadata", "constants"}
)


class ConfigError(SaenoError, ValueError):
    """A model configuration that cannot be built."""


class SAEOutput:
    """What the training losses need, in normalised space and the model's packed layout.

    Attributes
    ----------
    recon : Tensor
        Reconstruction of ``target``.
    target : Tensor
        The normalised input.
    codes : Tensor
        Sparse codes (concepts on dimension 1). When built from ``(vals, idx)`` (``sparse=``), the
        dense tensor is only made on first access.
    pre : Tensor
        Pre-activations (before the sparsity mechanism), for AuxK.
    penalty : Tensor or None
        The sparsity mechanism's loss term.
    """

    __slots__ = ("recon", "target", "pre", "penalty", "_codes", "_sparse")

    def __init__(
        self,
        recon: Tensor,
        target: Tensor,
        codes: Tensor | None,
        pre: Tensor,
        penalty: Tensor | None,
        *,
        sparse: tuple[Tensor, Tensor] | None = None,
    ) -> None:
        if codes is None and sparse is None:
            raise ValueError("SAEOutput needs codes or sparse=(vals, idx)")
        self.recon, self.target, self.pre, self.penalty = recon, target, pre, penalty
        self._codes, self._sparse = codes, sparse

    @property
    def codes(self) -> Tensor:
        if self._codes is None:
            assert self._sparse is not None
            vals, idx = self._sparse
            self._codes = torch.zeros(self.pre.shape, dtype=vals.dtype, device=vals.device).scatter_(
                1, idx, vals.detach()
            )
        return self._codes

    def fired(self) -> Tensor:
        """``(p,)`` bool: concepts non-zero anywhere in the batch."""
        if self._codes is None and self._sparse is not None:
            vals, idx = self._sparse
            p = self.pre.shape[1]
            if idx.dim() > 2 and all(st == 0 for st in idx.stride()[2:]):
                # one concept per (sample, slot), expanded over the grid: reduce the grid first
                nz = vals.detach().flatten(2).abs().amax(2) != 0  # faster than != 0 then any
                idx = idx.flatten(2)[:, :, 0]
            else:
                nz = vals.detach() != 0
            hit = torch.zeros(p + 1, dtype=torch.bool, device=idx.device)  # zero codes go to p
            return hit.index_fill_(0, idx.masked_fill(~nz, p).reshape(-1), True)[:p]
        nz = self.codes != 0
        if nz.dim() == 2:
            return nz.any(0)
        return nz.transpose(0, 1).flatten(1).any(1)


class SparseAutoencoder(nn.Module):
    """Base class: normalisation, complex handling, lifting, sparsity and the public interface.

    Subclasses implement ``_encode_pre(x)`` (pre-activations from packed, lifted, normalised input),
    ``_decode(z, bias)`` (packed core-space output), ``_render(grid)`` (core-space atoms),
    ``normalize_decoder_()`` and ``init_encoder_from_decoder_()``; and, when their layout differs from
    ``(B, C, *grid)``, ``_pack``/``_unpack``.

    Parameters
    ----------
    in_channels : int
        Channels C of the activations (complex channels when ``complex="realimag"``).
    n_concepts : int
        Dictionary size p.
    ndim : int or None
        Grid dimension (1 to 3); None for the pointwise SAE when unknown.
    sparsity : str, dict, Sparsity or None
        See :func:`saeno.sae.sparsity.make_sparsity`.
    lifting : int or None
        Width L of the learned pointwise lift (None: no lifting).
    complex : {None, "realimag"}
        Treatment of complex activations (see the module docstring).
    bias_field : int or None
        Modes K of a band-limited bias field ``b(x)`` (:class:`~saeno.sae.bias_field.BiasField`),
        subtracted in normalised space before the encoder and added after the decoder (None: off).
        Needs ``ndim``.
    """

    architecture: ClassVar[str] = ""
    #: the store view the trainer streams for this model: "points" (rows) or "field"
    view: ClassVar[str] = "field"
    default_group: ClassVar[str] = "point"
    #: factor on the trainer's default learning rate (``saeno.train.schedules.default_lr``)
    default_lr_scale: ClassVar[float] = 1.0

    def __init__(
        self,
        in_channels: int,
        n_concepts: int,
        *,
        ndim: int | None,
        sparsity: str | dict | Sparsity | None = None,
        lifting: int | None = None,
        complex: str | None = None,
        bias_field: int | None = None,
    ) -> None:
        super().__init__()
        if in_channels < 1 or n_concepts < 1:
            raise ConfigError(f"in_channels and n_concepts must be >= 1, got {in_channels}, {n_concepts}")
        if ndim is not None and ndim not in (1, 2, 3):
            raise ConfigError(f"ndim must be 1, 2 or 3, got {ndim}")
        if complex not in COMPLEX_TREATMENTS:
            raise ConfigError(f"complex={complex!r} is unknown: use None or 'realimag'")
        self.in_channels = int(in_channels)
        self.n_concepts = int(n_concepts)
        self.ndim = ndim
        self.complex = complex
        self.real_channels = self.in_channels * (2 if complex else 1)
        if lifting is not None and lifting < self.real_channels:
            raise ConfigError(f"lifting={lifting} must be at least the channel count {self.real_channels}")
        self.lifting = None if lifting is None else int(lifting)
        self.core_channels = self.lifting or self.real_channels
        self.sparsity = make_sparsity(sparsity, self.n_concepts, self.default_group)
        self.lift = Lifting(self.real_channels, self.lifting) if self.lifting else None
        if bias_field is not None and (ndim is None or int(bias_field) < 1):
            raise ConfigError(f"bias_field={bias_field} needs modes >= 1 and a known ndim")
        self.bias_field_modes = None if bias_field is None else int(bias_field)
        self.bias_field = (
            BiasField(self.real_channels, self.bias_field_modes, ndim)
            if self.bias_field_modes is not None
            else None
        )
        self.register_buffer("norm_mean", torch.zeros(self.real_channels))
        self.register_buffer("norm_scale", torch.ones(self.real_channels))
        self.hook: str | None = None
        self.model_fingerprint: str | None = None
        self.metadata: dict[str, Any] = {}

    # ---------------------------------------------------------------- configuration
    def extra_config(self) -> dict[str, Any]:
        """Subclass constructor arguments beyond the common ones."""
        return {}

    def constants(self) -> dict[str, Any]:
        """Fixed numbers and conventions of the forward pass, for readers of ``cfg.json``.

        Not constructor arguments (they follow from them); ``from_config`` ignores them.
        See ``docs/sae_format.md``.
        """
        return {
            "format_version": 1,
            "channels_real": self.real_channels,
            "channels_core": self.core_channels,
            "complex_layout": ("[real_0..real_{C-1}, imag_0..imag_{C-1}]" if self.complex else None),
        }

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments plus ``architecture`` and ``constants``."""
        return {
            "architecture": self.architecture,
            "in_channels": self.in_channels,
            "n_concepts": self.n_concepts,
            "sparsity": self.sparsity.config(),
            "lifting": self.lifting,
            "complex": self.complex,
            **self.extra_config(),
            "constants": self.constants(),
        }

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> SparseAutoencoder:
        """Rebuild a model (fresh weights) from :meth:`config` output or a ``cfg.json`` dict."""
        arch = cfg.get("architecture", cls.architecture)
        if arch != cls.architecture:
            raise ConfigError(
                f"config is for architecture {arch!r}, not {cls.architecture!r}: load it with saeno.load_sae"
            )
        kwargs = {k: v for k, v in cfg.items() if k not in META_KEYS}
        accepted = inspect.signature(cls.__init__).parameters
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ConfigError(f"unknown keys {unknown} in a {arch!r} config")
        if "grid" in kwargs and kwargs["grid"] is not None:
            kwargs["grid"] = tuple(kwargs["grid"])
        return cls(**kwargs)

    # ---------------------------------------------------------------- normalisation
    def set_normalization(self, mean: Any, scale: Any) -> None:
        """Set the per-channel mean and scale (array-likes of length ``real_channels``)."""
        mean = torch.as_tensor(mean, dtype=self.norm_mean.dtype).reshape(-1)
        scale = torch.as_tensor(scale, dtype=self.norm_scale.dtype).reshape(-1)
        if mean.numel() != self.real_channels or scale.numel() != self.real_channels:
            raise ShapeError(
                f"normalisation needs {self.real_channels} values per statistic, got "
                f"{mean.numel()} and {scale.numel()}"
            )
        if not torch.all(scale > 0) or not torch.all(torch.isfinite(mean)):
            raise ShapeError("normalisation scale must be positive and mean finite")
        self.norm_mean.copy_(mean)
        self.norm_scale.copy_(scale)

    def _bcast(self, v: Tensor, like: Tensor) -> Tensor:
        return v.view(1, -1, *([1] * (like.dim() - 2)))

    def _check_input(self, a: Tensor) -> None:
        """Raise ShapeError when ``a`` (after complex stacking) does not fit the model."""
        if self.ndim is not None and a.dim() != 2 + self.ndim:
            raise ShapeError(
                f"{type(self).__name__} expects fields (B, C, *grid) with a "
                f"{self.ndim}D grid, got shape {tuple(a.shape)}"
            )

    def normalize(self, a: Tensor) -> Tensor:
        """Raw activations -> normalised real tensor (complex parts stacked when declared)."""
        if a.is_complex():
            if self.complex != "realimag":
                raise ShapeError(
                    "complex activations need a declared treatment: build the SAE "
                    "with complex='realimag' (CLI: --complex realimag) to stack real "
                    "and imaginary parts as channels"
                )
            a = torch.cat([a.real, a.imag], dim=1)
        elif self.complex == "realimag":
            raise ShapeError(
                "this SAE was built for complex activations (complex='realimag') and got a real tensor"
            )
        if a.dim() < 2 or a.shape[1] != self.real_channels:
            raise ShapeError(
                f"expected activations with {self.in_channels} channels on dimension "
                f"1, got shape {tuple(a.shape)}"
            )
        self._check_input(a)
        a = a.to(self.norm_mean.dtype)
        return (a - self._bcast(self.norm_mean, a)) / self._bcast(self.norm_scale, a)

    def denormalize(self, y: Tensor) -> Tensor:
        """Normalised real tensor -> raw activations (complex again when declared)."""
        y = y * self._bcast(self.norm_scale, y) + self._bcast(self.norm_mean, y)
        if self.complex == "realimag":
            c = self.in_channels
            y = torch.complex(y[:, :c], y[:, c:])
        return y

    # ---------------------------------------------------------------- core hooks
    def _pack(self, x: Tensor) -> tuple[Tensor, Any]:
        return x, None

    def _unpack(self, y: Tensor, meta: Any) -> Tensor:
        return y

    def _encode_pre(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _decode(self, z: Tensor, bias: bool) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _render(self, grid: tuple[int, ...]) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def normalize_decoder_(self) -> None:  # pragma: no cover - abstract
        """Rescale every decoder concept to unit norm (in place, no grad)."""
        raise NotImplementedError

    def init_encoder_from_decoder_(self) -> None:  # pragma: no cover - abstract
        """Set the encoder to the decoder's transpose (adjoint)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- normalised space
    def encode_pre(self, x: Tensor) -> Tensor:
        """Pre-activations from packed normalised input."""
        if self.lift is not None:
            x = self.lift.up(x)
        return self._encode_pre(x)

    def decode_norm(self, z: Tensor, bias: bool = True) -> Tensor:
        """Packed normalised reconstruction from packed codes (``bias=False``: the linear part)."""
        y = self._decode(z, bias)
        if self.lift is not None:
            y = self.lift.down(y)
        return y

    # ---------------------------------------------------------------- bias field
    def _field_bias(self, x: Tensor) -> Tensor | None:
        """The bias field on the grid of normalised fields ``x`` (None without one)."""
        if self.bias_field is None:
            return None
        if x.dim() != 2 + self.bias_field.ndim:
            raise ShapeError(
                f"this SAE has a bias field on a {self.bias_field.ndim}D grid and needs "
                f"fields (B, C, *grid), got shape {tuple(x.shape)}"
            )
        return self.bias_field(tuple(x.shape[2:])).to(x.dtype)

    @torch.no_grad()
    def fit_bias_field_(self, batches: Any, max_batches: int | None = 64) -> None:
        """Initialise the bias field to the mean field of raw ``batches`` (normalised units).

        Parameters
        ----------
        batches : iterable of Tensor
            Raw field batches ``(B, C, *grid)``, at one grid or several; the normalisation must be set
            first. With several grids the mean field of each is projected onto the bias field's modes
            and the coefficients are averaged with equal weight per grid (each mode over the grids that
            resolve it): the fit is made in mode space, where every grid describes the same function.
        max_batches : int, optional
            Use at most this many batches.
        """
        if self.bias_field is None:
            return
        sums: dict[tuple[int, ...], list[Any]] = {}  # grid -> [sum over samples, count]
        for i, a in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            x = self.normalize(torch.as_tensor(a).to(self.norm_mean.device)).double()
            if x.dim() != 2 + self.bias_field.ndim:
                raise ShapeError(
                    f"fitting a {self.bias_field.ndim}D bias field needs fields (B, C, *grid), got a "
                    f"batch of shape {tuple(x.shape)}"
                )
            entry = sums.setdefault(tuple(x.shape[2:]), [0.0, 0])
            entry[0] = entry[0] + x.sum(0)
            entry[1] += x.shape[0]
        if not sums:
            raise SaenoError("no batches to fit the bias field from")
        self.bias_field.fit_([total / count for total, count in sums.values()])

    def mean_field(self, resolution: int | tuple[int, ...]) -> Tensor:
        """The bias field rendered on a grid in raw units, ``(C, *grid)`` (complex when declared)."""
        if self.bias_field is None:
            raise ConfigError("this SAE has no bias field (build it with bias_field=K)")
        with torch.no_grad():
            b = self.bias_field(self._grid(resolution))
            return self.denormalize(b)[0]

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups for base rate ``lr``.

        Each group carries ``lr_scale`` (its rate is ``lr_scale * lr``, also under a schedule). The
        base class has one group; the SAE-FNO puts its spectral weights in a second one.
        """
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "lr": lr, "lr_scale": 1.0, "name": "all"}]

    def forward_train(self, a: Tensor) -> SAEOutput:
        """Everything the training loss needs, from raw activations ``a``."""
        x = self.normalize(a)
        if self.bias_field is not None and self.training and not bool(self.bias_field.fitted):
            self.bias_field.fit_(x.detach().double().mean(0))  # no data pass was made: this batch
        bias = self._field_bias(x)
        target, _ = self._pack(x)
        inp = target if bias is None else self._pack(x - bias)[0]
        pre = self.encode_pre(inp)
        codes, penalty = self.sparsity(pre)
        recon = self.decode_norm(codes)
        if bias is not None:
            recon = recon + self._pack(bias.expand_as(x))[0]
        return SAEOutput(recon, target, codes, pre, penalty)

    def default_aux_k(self) -> int:
        """Dead concepts the trainer's AuxK loss uses by default: ``min(p // 2, 256)``."""
        return min(self.n_concepts // 2, 256)

    def aux_codes(self, pre: Tensor, dead: Tensor, k: int) -> Tensor:
        """AuxK codes: the top ``k`` dead concepts of ``pre``, ReLU with a straight-through gradient.

        Selection follows the model's sparsity group: per row or grid point by pre-activation, or
        per sample by the mean pre-activation over the grid (``group="concept"``). The codes are
        ``relu(pre)`` in the forward pass, but the gradient passes as if there were no ReLU: a dead
        concept whose pre-activations are negative everywhere (typical of SAE-FNO concepts, for
        which plain AuxK gives no gradient at all) is still pushed up where its atom would reduce
        the residual.

        Parameters
        ----------
        pre : Tensor
            Pre-activations, concepts on dimension 1.
        dead : Tensor
            Boolean ``(p,)`` mask of dead concepts.
        k : int
            Number of auxiliary concepts.
        """
        k = min(k, self.n_concepts)
        by_concept = self.sparsity.group == "concept" and pre.dim() > 2
        score = pre.detach().flatten(2).mean(-1) if by_concept else pre.detach()
        dead_b = dead.view(1, -1, *([1] * (score.dim() - 2)))
        score = score.masked_fill(~dead_b, float("-inf"))
        idx = score.topk(k, dim=1, sorted=False).indices
        mask = torch.zeros_like(score).scatter_(1, idx, 1.0) * dead_b.to(score.dtype)
        if by_concept:
            mask = mask.view(*mask.shape, *([1] * (pre.dim() - 2)))
        z = pre + (pre.relu() - pre).detach()
        return z * mask

    # ---------------------------------------------------------------- public interface
    def encode(self, a: Tensor) -> Tensor:
        """Sparse codes of raw activations: ``(B, p, *grid)`` (pointwise, SAE-FNO) or ``(B, p)``."""
        x = self.normalize(a)
        bias = self._field_bias(x)
        x, meta = self._pack(x if bias is None else x - bias)
        z, _ = self.sparsity(self.encode_pre(x))
        return self._unpack(z, meta)

    def decode(self, z: Tensor) -> Tensor:
        """Raw reconstruction from codes as returned by :meth:`encode`."""
        zp, meta = self._pack(z)
        y = self._unpack(self.decode_norm(zp), meta)
        bias = self._field_bias(y)
        return self.denormalize(y if bias is None else y + bias)

    def forward(self, a: Tensor) -> Tensor:
        """Raw reconstruction ``a_hat`` of raw activations ``a``."""
        return self.decode(self.encode(a))

    def _grid(self, resolution: int | tuple[int, ...] | None) -> tuple[int, ...]:
        if resolution is None:
            return ()
        if isinstance(resolution, int):
            if self.ndim is None:
                raise ShapeError(
                    "this SAE does not know its grid dimension: pass the resolution as a tuple, e.g. (64, 64)"
                )
            return (resolution,) * self.ndim
        grid = tuple(int(n) for n in resolution)
        if self.ndim is not None and len(grid) != self.ndim:
            raise ShapeError(f"resolution {grid} has {len(grid)} dimensions, the SAE has {self.ndim}")
        return grid

    @torch.no_grad()
    def concepts(self, resolution: int | tuple[int, ...] | None = None) -> Tensor:
        """The decoder atoms rendered on a grid, in raw units: ``(p, C, *grid)``.

        Concept k is the decoder's response to a unit code of concept k concentrated at the origin
        (a point mass): for an SAE-FNO its spectral kernel sampled on the grid plus its pointwise
        column at the origin point; for a pointwise SAE its vector at the origin point (with
        ``resolution=None``: the vectors ``(p, C)``); for a flat SAE its column on the training grid.
        Values are the change of the raw reconstruction per unit code (scaled by ``norm_scale``,
        without the mean); complex models return complex atoms.

        Parameters
        ----------
        resolution : int, tuple of int, or None
            Grid size (an int repeats over the dimensions).
        """
        grid = self._grid(resolution)
        atoms = self._render(grid)
        if self.lift is not None:
            atoms = self.lift.down(atoms)
        atoms = atoms * self._bcast(self.norm_scale, atoms)
        if self.complex == "realimag":
            c = self.in_channels
            atoms = torch.complex(atoms[:, :c], atoms[:, c:])
        return atoms

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, n_concepts={self.n_concepts}, ndim={self.ndim}, "
            f"sparsity={self.sparsity.config()}, lifting={self.lifting}"
        )


__all__ = ["SparseAutoencoder", "SAEOutput", "ConfigError", "channel_linear", "META_KEYS"]
