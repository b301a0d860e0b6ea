"""A named hook point: where one activation of a model is observed, and how to read it."""

from __future__ import annotations

from dataclasses import dataclass

AT_OUTPUT = "output"  # the module's output (forward hook)
AT_INPUT = "input"  # the module's first positional input (forward pre-hook)
AT_LAYER_OUTPUT = "layer_output"  # output of a module called once per layer; the layer index is an argument

LAYOUT_FIELD = "field"  # the activation is already (B, C, *grid)
LAYOUT_CHANNELS_LAST = "channels_last"  # a point cloud (n, C) or (B, n, C), shown to hooks as (B, C, n)
LAYOUT_TOKENS = "tokens"  # per-variable tokens (B * t, d, *grid), shown to hooks as (B, t * d, *grid)

FIELD_GRID = "grid"  # the field's axes after the channel are a grid: the input's, or one it was rescaled to
FIELD_LATENT = "latent_grid"  # a grid of the model's own, not the input's (GINO's and FNOGNO's latent grid)
FIELD_POINTS = "points"  # one axis of points (a point cloud: GNO stages, query points)
FIELD_KINDS = (FIELD_GRID, FIELD_LATENT, FIELD_POINTS)
_AXIS_PREFIX = {FIELD_GRID: "grid", FIELD_LATENT: "latent"}


def field_axes(kind: str, n_space: int) -> list[str]:
    """Names of the axes of one sample of a hook's field, ``[channel, *space]``.

    ``grid`` fields get ``grid_0 ..``, latent grids ``latent_0 ..``, point clouds ``point``.
    """
    if kind == FIELD_POINTS:
        return ["channel"] + (["point"] if n_space == 1 else [f"point_{i}" for i in range(n_space)])
    return ["channel"] + [f"{_AXIS_PREFIX[kind]}_{i}" for i in range(n_space)]


@dataclass(frozen=True)
class HookPoint:
    """One named activation of a hooked model.

    Hook functions receive it as their ``hook`` keyword argument, as in TransformerLens.

    Attributes
    ----------
    name : str
        Stable dotted name, e.g. ``"blocks.2.hook_out"``.
    module_path : str
        Path of the torch module it is read from, inside the wrapped model (``""`` is the model itself).
    at : str
        ``"output"``, ``"input"`` or ``"layer_output"``.
    layer : int or None
        Layer index for per-layer points.
    padded : bool
        Whether the activation lives on the domain-padded grid (it is cropped unless ``keep_padding``).
    scope : str
        Path (inside the wrapped model) of the operator whose domain padding and layer indexing apply:
        a model holding several operators (a UQNO's base and residual models) has one scope for each.
    layout : str
        ``"field"`` (already ``(B, C, *grid)``) or ``"channels_last"``: a point-cloud activation
        ``(n, C)`` or ``(B, n, C)`` (a graph neural operator stage) that hooks see as ``(B, C, n)``; or
        ``"tokens"``: per-variable tokens ``(B * t, d, *grid)`` (CODANO) that hooks see as
        ``(B, t * d, *grid)``, token ``v`` in channels ``v * d`` to ``(v + 1) * d - 1``.
    index : tuple or None
        For ``"layer_output"`` points: ``(positional index, keyword, default)`` of the layer index argument.
    field : str
        What the axes after the channel are: ``"grid"`` (the input grid or a rescaled one, a UNO
        block's), ``"latent_grid"`` (a grid of the model's own, GINO's) or ``"points"`` (a point cloud).
    """

    name: str
    module_path: str
    at: str = AT_OUTPUT
    layer: int | None = None
    padded: bool = False
    scope: str = ""
    layout: str = LAYOUT_FIELD
    index: tuple | None = None
    field: str = FIELD_GRID

    def __repr__(self) -> str:
        return f"HookPoint({self.name!r})"
