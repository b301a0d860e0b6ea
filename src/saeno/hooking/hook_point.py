"""A named hook point: where one activation of a model is observed, and how to read it."""

from __future__ import annotations

from dataclasses import dataclass

AT_OUTPUT = "output"  # the module's output (forward hook)
AT_INPUT = "input"  # the module's first positional input (forward pre-hook)
AT_LAYER_OUTPUT = "layer_output"  # output of a module called once per layer; the layer index is an argument

LAYOUT_FIELD = "field"  # the activation is already (B, C, *grid)
LAYOUT_CHANNELS_LAST = "channels_last"  # a point cloud (n, C) or (B, n, C), shown to hooks as (B, C, n)
LAYOUT_TOKENS = "tokens"  # per-variable tokens (B * t, d, *grid), shown to hooks as (B, t * d, *grid)


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
    """

    name: str
    module_path: str
    at: str = AT_OUTPUT
    layer: int | None = None
    padded: bool = False
    scope: str = ""
    layout: str = LAYOUT_FIELD
    index: tuple | None = None

    def __repr__(self) -> str:
        return f"HookPoint({self.name!r})"
