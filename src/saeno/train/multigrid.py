"""Training on several grids at once: one batch source per grid, drawn in turn.

An FNO runs at any resolution and so does an SAE-FNO, but a dictionary fitted at one grid has never seen
the fine-scale content the FNO's activations carry on a finer one (``docs/sae_fno.md``). Fitting on the
activations of several grids is the data recipe that makes the dictionary a function of the domain
rather than of one sampling of it.

The rules, chosen once here and documented in ``docs/sae_fno.md``:

- **Order.** Batch ``i`` of an epoch comes from grid ``i mod G`` (the grids in the order given), batch
  ``i // G`` of that grid's own epoch; the epoch ends when any grid's source runs out, so every grid
  contributes the same number of batches. Each grid's source shuffles with its own seed, so a resumed
  run sees the same batches as an uninterrupted one.
- **Batch size: equal points.** ``batch_size`` counts fields (or rows) at the *coarsest* grid; a batch
  at a grid with ``m`` times its points holds ``max(1, round(batch_size / m))`` fields, so every batch
  costs about the same and every grid gets the same share of the training signal (points). Pointwise
  SAEs train on rows: ``batch_size`` rows from every grid. ``grid_batches="fields"`` keeps
  ``batch_size`` fields at every grid instead (finer grids then dominate the loss and the cost).
- **Normalisation moments** are pooled with equal weight per grid (the share each grid has in training):
  the mean of the per-grid means, and the mean of the per-grid second moments minus its square.
- **Bias field.** The SAE fits it in mode space: the band-limited coefficients of each grid's mean
  field are averaged (:meth:`saeno.sae.base.SparseAutoencoder.fit_bias_field_`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from saeno.errors import SaenoError, ShapeError

GRID_BATCHES = ("points", "fields")


class MultiGrid:
    """Training data at several grids for :func:`saeno.train_sae`: one entry per grid.

    Parameters
    ----------
    parts : sequence
        Each an ``ActivationStore`` (or its path / URL) or a tensor / array ``(N, C, *grid)`` at one grid.
        A plain list of stores or paths passed to ``train_sae`` means the same thing; a list of tensors
        there stays a list of batches, so tensors at several grids need this wrapper.
    grid_batches : {"points", "fields"}
        How batch sizes relate across grids (module docstring): equal points per batch (default) or
        equal fields.
    """

    def __init__(self, parts: Sequence[Any], grid_batches: str = "points") -> None:
        parts = list(parts)
        if len(parts) < 1:
            raise SaenoError("MultiGrid needs at least one store or tensor")
        if grid_batches not in GRID_BATCHES:
            raise SaenoError(f"grid_batches must be one of {GRID_BATCHES}, got {grid_batches!r}")
        self.parts, self.grid_batches = parts, grid_batches

    def __repr__(self) -> str:
        return f"MultiGrid({len(self.parts)} parts, grid_batches={self.grid_batches!r})"


def is_store_like(obj: Any) -> bool:
    """True for an activation store or a path / URL naming one."""
    import os

    return isinstance(obj, (str, os.PathLike)) or (hasattr(obj, "loader") and hasattr(obj, "stats"))


def as_multigrid(data: Any) -> MultiGrid | None:
    """``data`` as a :class:`MultiGrid` when it names several grids' data, else None.

    A :class:`MultiGrid`, or a list / tuple of two or more stores or paths. Lists of tensors are
    batches (see :class:`MultiGrid`); a tuple of tensors is (activations, extra inputs).
    """
    if isinstance(data, MultiGrid):
        return data
    if isinstance(data, (list, tuple)) and len(data) > 1 and all(is_store_like(d) for d in data):
        return MultiGrid(data)
    return None


class MultiGridSource:
    """Batches drawn in turn from one source per grid (rules in the module docstring).

    Built by :func:`make_multigrid_source`; the per-grid sources are
    :class:`~saeno.train.data.TensorSource` or :class:`~saeno.train.data.StoreSource`.
    """

    def __init__(self, sources: list[Any], shapes: list[tuple[int, ...]], grid_batches: str) -> None:
        self.sources, self.shapes, self.grid_batches = sources, shapes, grid_batches
        self.grids = [s[1:] for s in shapes]
        counts = [s.n_batches for s in sources]
        self.n_batches = None if any(c is None for c in counts) else len(sources) * min(counts)
        self.hook = getattr(sources[0], "hook", None)
        prints = [getattr(s, "fingerprint", None) for s in sources]
        known = {p for p in prints if p is not None}
        self.fingerprint = known.pop() if len(known) == 1 else None

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Any]:
        """Batches of epoch ``epoch`` from batch ``skip`` on (grid ``i mod G`` for batch ``i``)."""
        g = len(self.sources)
        # grid j has served ceil((skip - j) / g) of its batches before position ``skip``
        iters = [src.epoch(epoch, skip=max(0, -(-(skip - j) // g))) for j, src in enumerate(self.sources)]
        for i in itertools.count(skip):
            try:
                yield next(iters[i % g])
            except StopIteration:
                return

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and variance pooled with equal weight per grid."""
        means, seconds = [], []
        for src in self.sources:
            m, v = src.moments()
            m, v = np.asarray(m, dtype=np.float64), np.asarray(v, dtype=np.float64)
            means.append(m)
            seconds.append(v + m**2)
        mean = np.mean(means, axis=0)
        var = np.clip(np.mean(seconds, axis=0) - mean**2, 0, None)
        return mean, var

    def record(self) -> dict[str, Any]:
        """What the resume signature stores about the grids."""
        return {
            "grids": [list(g) for g in self.grids],
            "grid_batches": self.grid_batches,
            "batch_sizes": [int(s.batch_size) for s in self.sources],
            "fingerprints": [getattr(s, "fingerprint", None) for s in self.sources],
        }


def make_multigrid_source(
    data: MultiGrid,
    *,
    view: str,
    batch_size: int,
    seed: int,
    hook: str | None,
    shuffle_buffer: int | None = None,
) -> MultiGridSource:
    """One source per entry of ``data``, checked against each other.

    Raises
    ------
    SaenoError
        If the entries differ in hook, channels or grid dimension, if two model fingerprints differ,
        (the SAE is checked by :func:`check_sae_grids`).
    """
    from saeno.train.data import StoreSource, TensorSource, open_store

    opened = [open_store(p) for p in data.parts]
    for i, part in enumerate(opened):
        if isinstance(part, (torch.Tensor, np.ndarray)):
            if torch.as_tensor(part).dim() < 3:
                raise ShapeError(
                    f"MultiGrid entry {i} has shape {tuple(part.shape)}: each entry holds fields "
                    "(N, C, *grid) at one grid (rows carry no grid to mix)"
                )
        elif not (hasattr(part, "loader") and hasattr(part, "stats")):
            raise SaenoError(
                f"MultiGrid entry {i} is a {type(part).__name__}: pass activation stores, their paths, or "
                "tensors (N, C, *grid), one per grid"
            )
    names = [
        f"{'tensor' if isinstance(p, (torch.Tensor, np.ndarray)) else 'store'} {i} of the training grids"
        for i, p in enumerate(opened)
    ]
    hook, shapes = check_grid_parts(opened, hook, names, hook_hint="pass hook= (CLI: --hook)")
    points = [math.prod(s[1:]) for s in shapes]
    coarse = min(points)
    sources: list[Any] = []
    for j, (part, n) in enumerate(zip(opened, points)):
        if view == "points" or data.grid_batches == "fields":
            b = batch_size
        else:
            b = max(1, round(batch_size * coarse / n))
        sub_seed = seed + 7919 * j  # a different shuffle per grid, fixed by the run's seed
        if isinstance(part, (torch.Tensor, np.ndarray)):
            src: Any = TensorSource(part, view, b, sub_seed)
        else:
            src = StoreSource(part, hook, view, b, sub_seed, shuffle_buffer)
        sources.append(src)
    return MultiGridSource(sources, shapes, data.grid_batches)


def check_grid_parts(
    parts: list[Any], hook: str | None, names: list[str], hook_hint: str
) -> tuple[str | None, list[tuple[int, ...]]]:
    """The hook the stores among ``parts`` hold and every part's activation shape ``(C, *grid)``.

    Checks that the parts are one hook of one model at several grids: the same hook in every store,
    one channel count, one grid dimension, one model fingerprint. ``names[i]`` names part ``i`` in
    the errors (``--store PATH`` in the CLI) and ``hook_hint`` says how to choose the hook.

    Raises
    ------
    SaenoError, ShapeError
        Naming the parts that differ.
    """
    from saeno.train.data import resolve_hook

    is_tensor = [isinstance(p, (torch.Tensor, np.ndarray)) for p in parts]
    hooks: dict[str, str] = {}
    for name, part, tensor in zip(names, parts, is_tensor):
        if tensor:
            continue
        try:
            hooks[name] = resolve_hook(part, hook)
        except SaenoError as exc:
            raise type(exc)(f"{name}: {exc}") from None
    if len(set(hooks.values())) > 1:
        held = ", ".join(f"{n}: {h}" for n, h in hooks.items())
        raise SaenoError(
            f"the training stores hold different hooks ({held}): {hook_hint} naming one hook every store holds"
        )
    chosen = next(iter(hooks.values()), hook)
    shapes = [
        tuple(int(n) for n in (part.shape[1:] if tensor else part.hook_info(chosen)["shape"]))
        for part, tensor in zip(parts, is_tensor)
    ]
    listed = ", ".join(f"{n}: {s[0]} channels on {'x'.join(map(str, s[1:]))}" for n, s in zip(names, shapes))
    if len({s[0] for s in shapes}) > 1:
        raise ShapeError(
            f"the training grids' activations have different channel counts ({listed}): every store (or "
            "tensor) must hold the same hook of the same model"
        )
    if len({len(s) for s in shapes}) > 1:
        raise ShapeError(f"the training grids have different dimensions ({listed})")
    prints = {getattr(p, "fingerprint", None) for p, tensor in zip(parts, is_tensor) if not tensor} - {None}
    if len(prints) > 1:
        raise SaenoError(
            "the training stores were captured from different models (model fingerprints "
            f"{sorted(str(p)[:16] for p in prints)}): train on stores of one model"
        )
    return chosen, shapes


def check_sae_grids(sae: Any, source: MultiGridSource) -> None:
    """Raise ShapeError when ``sae`` cannot train on every grid of ``source``.

    A flat SAE works on one fixed grid; every SAE with a declared grid dimension needs it to match, and
    an SAE-FNO needs every grid to resolve its modes (``(n + 1) // 2 >= modes`` per dimension).
    """
    shapes = source.shapes
    fixed = getattr(sae, "grid", None)
    if fixed is not None and any(tuple(s[1:]) != tuple(fixed) for s in shapes):
        raise ShapeError(
            f"{type(sae).__name__} works on its grid {tuple(fixed)} only and cannot train on the grids "
            f"{[s[1:] for s in shapes]}: use an SAE-FNO or a pointwise SAE for several grids"
        )
    ndim = getattr(sae, "ndim", None)
    if ndim is not None and {len(s) - 1 for s in shapes} != {ndim}:
        raise ShapeError(
            f"{type(sae).__name__} is {ndim}D but the training grids are {[s[1:] for s in shapes]}"
        )
    modes = getattr(sae, "modes", None)
    if isinstance(modes, int) and sae.view == "field":
        for s in shapes:
            limit = (min(s[1:]) + 1) // 2
            if modes > limit:
                raise ShapeError(
                    f"the {'x'.join(map(str, s[1:]))} training grid resolves at most {limit} Fourier modes "
                    f"per dimension but {type(sae).__name__} has modes={modes}: leave that grid out or "
                    f"build the SAE with modes <= {limit}"
                )


__all__ = [
    "GRID_BATCHES",
    "MultiGrid",
    "MultiGridSource",
    "as_multigrid",
    "check_sae_grids",
    "make_multigrid_source",
]
