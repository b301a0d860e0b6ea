"""A named hook point: where one activation of a model is observed, and how to read it."""

from __future__ import annotations

from dataclasses import dataclass

AT_OUTPUT = "output"  # the module's output (forward hook)
AT_INPUT = "input"  # the module's first positional input (forward pre-hook)
AT_LAYER_OUTPUT = "layer_output"  # output of a module called once per layer; the layer index is an argument


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
    """

    name: str
    module_path: str
    at: str = AT_OUTPUT
    layer: int | None = None
    padded: bool = False

    def __repr__(self) -> str:
        return f"HookPoint({self.name!r})"
