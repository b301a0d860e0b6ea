"""A band-limited, grid-independent bias field: one smooth function per channel.

Activations of an FNO block have a strong mean field: the average over samples varies over the
domain, so a constant decoder bias per channel leaves it to the dictionary. The bias field ``b(x)`` is a
trigonometric polynomial with the frequencies ``|w| < K`` per dimension (the same convention as
:mod:`saeno.sae.spectral`): its coefficients are the parameters, and rendering it on any grid samples the
same function, so a field fitted at one resolution is the same field at every other.

It lives in the SAE's normalised space: the SAE subtracts it before the encoder and adds it back after
the decoder, ``a_hat = b + D(s(E(a - b)))``. It is initialised to the band-limited projection of the
training mean field (:meth:`BiasField.fit_`) and trained with the rest of the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from saeno.sae.spectral import kept_frequencies


class BiasField(nn.Module):
    """Per-channel trigonometric polynomial with ``K`` modes per dimension.

    Parameters
    ----------
    channels : int
        Number of channels.
    modes : int
        K: frequencies ``|w| < K`` kept in every dimension.
    ndim : int
        Grid dimension (1 to 3).
    """

    def __init__(self, channels: int, modes: int, ndim: int) -> None:
        super().__init__()
        if modes < 1 or ndim not in (1, 2, 3):
            raise ValueError(f"BiasField needs modes >= 1 and ndim in 1..3, got {modes}, {ndim}")
        self.channels, self.modes, self.ndim = int(channels), int(modes), int(ndim)
        shape = [2 * modes - 1] * (ndim - 1) + [modes]
        #: Fourier coefficients (real pairs), ``(C, 2K-1, ..., 2K-1, K, 2)``
        self.coef = nn.Parameter(torch.zeros(channels, *shape, 2))
        #: 1 once :meth:`fit_` ran (saved with the weights)
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def _index(self, grid: tuple[int, ...], device: torch.device) -> tuple[tuple, tuple]:
        nd = len(grid)
        fft_idx, w_idx = [], []
        for d, n in enumerate(grid):
            last = d == nd - 1
            freqs = kept_frequencies(n, self.modes, last)
            shape = [1] * nd
            shape[d] = len(freqs)
            fft_idx.append(torch.tensor([f % n for f in freqs], device=device).view(shape))
            w_idx.append(
                torch.tensor([f if last else f % (2 * self.modes - 1) for f in freqs], device=device).view(
                    shape
                )
            )
        return tuple(fft_idx), tuple(w_idx)

    def forward(self, grid: tuple[int, ...]) -> Tensor:
        """The field sampled on ``grid``: ``(1, C, *grid)``."""
        grid = tuple(int(n) for n in grid)
        if len(grid) != self.ndim:
            raise ValueError(f"the bias field is {self.ndim}D, got grid {grid}")
        fft_idx, w_idx = self._index(grid, self.coef.device)
        w = torch.view_as_complex(self.coef)
        spec = w.new_zeros((self.channels, *grid[:-1], grid[-1] // 2 + 1))
        spec[(slice(None), *fft_idx)] = w[(slice(None), *w_idx)]
        dims = tuple(range(1, 1 + self.ndim))
        return torch.fft.irfftn(spec, s=grid, dim=dims, norm="forward").unsqueeze(0)

    @torch.no_grad()
    def project(self, mean_field: Tensor) -> tuple[Tensor, Tensor]:
        """The grid-free coefficients of ``mean_field`` ``(C, *grid)`` and which of them it holds.

        Returns the complex coefficients ``(C, 2K-1, ..., K)`` of the field's kept modes (the
        least-squares fit on that grid) and a boolean mask of the mode slots the grid resolves (a grid
        with fewer than ``2K - 1`` points per dimension holds fewer modes).
        """
        grid = tuple(mean_field.shape[1:])
        if len(grid) != self.ndim:
            raise ValueError(f"the bias field is {self.ndim}D, got a mean field on grid {grid}")
        dims = tuple(range(1, 1 + self.ndim))
        spec = torch.fft.rfftn(mean_field.to(self.coef.dtype), dim=dims, norm="forward")
        fft_idx, w_idx = self._index(grid, self.coef.device)
        w = torch.zeros_like(torch.view_as_complex(self.coef))
        w[(slice(None), *w_idx)] = spec.to(self.coef.device)[(slice(None), *fft_idx)]
        held = torch.zeros(w.shape[1:], dtype=torch.bool, device=w.device)
        held[w_idx] = True
        return w, held

    @torch.no_grad()
    def fit_(self, mean_field: Tensor | Sequence[Tensor], weights: Sequence[float] | None = None) -> None:
        """Set the coefficients to the band-limited projection of one or several mean fields.

        Parameters
        ----------
        mean_field : Tensor or sequence of Tensor
            ``(C, *grid)``, or one such field per grid (the grids may differ).
        weights : sequence of float, optional
            Weight of each field (default: equal). Each mode's coefficient is the weighted mean over
            the fields whose grid resolves it, so the fit is done in mode space, where the
            coefficients of every grid describe the same function.

        The projection keeps the Fourier coefficients ``|w| < K`` of the sampled field (the
        least-squares fit on that grid); for a field that is band-limited to those modes it is exact
        at any resolution that resolves them.
        """
        fields = [mean_field] if isinstance(mean_field, Tensor) else list(mean_field)
        if not fields:
            raise ValueError("fit_ needs at least one mean field")
        wts = [1.0] * len(fields) if weights is None else [float(x) for x in weights]
        if len(wts) != len(fields):
            raise ValueError(f"{len(fields)} mean fields but {len(wts)} weights")
        total = torch.zeros_like(torch.view_as_complex(self.coef))
        weight = torch.zeros(total.shape[1:], dtype=self.coef.dtype, device=total.device)
        for field, wt in zip(fields, wts):
            w, held = self.project(field)
            total += w * wt
            weight += held.to(weight.dtype) * wt
        total = torch.where(weight > 0, total / weight.clamp_min(1e-300), total)
        self.coef.copy_(torch.view_as_real(total))
        self.fitted.fill_(True)


__all__ = ["BiasField"]
