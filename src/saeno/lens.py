"""Optional adapter: a :class:`~saeno.hooking.HookedOperator` as a transformer-lens ``HookedRootModule``.

Needs the ``lens`` extra (``pip install "saeno[lens]"``, transformer-lens >= 4). transformer-lens is imported
only when :func:`as_hooked_root_module` is called, never by ``import saeno``.

Each of the operator's hook names gets a transformer-lens ``HookPoint`` (an identity module). During a
forward pass, every ``HookPoint`` that carries transformer-lens hooks is called on the activation at the
matching saeno hook, so transformer-lens caching, patching (``run_with_hooks``), ``hooks()`` and
``add_hook`` see and replace exactly the tensors saeno's own ``run_with_cache`` returns.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from saeno.errors import SaenoError
from saeno.hooking.hooked_operator import HookedOperator


def _import_lens() -> Any:
    try:
        import transformer_lens
    except ImportError as exc:
        raise SaenoError(
            "the transformer-lens adapter needs the 'lens' extra: pip install \"saeno[lens]\" "
            f"(transformer-lens >= 4). Import failed: {exc}"
        ) from exc
    return transformer_lens


@functools.lru_cache(maxsize=1)
def _adapter_class() -> type:
    tl = _import_lens()
    from transformer_lens.hook_points import HookPoint

    class LensOperator(tl.HookedRootModule):
        """A hooked operator seen through transformer-lens (built by :func:`as_hooked_root_module`)."""

        def __init__(self, hooked: HookedOperator) -> None:
            super().__init__()
            self.hooked = hooked
            # a flat list, so that hook names with dots need no module tree
            self.lens_hook_points = torch.nn.ModuleList(HookPoint() for _ in hooked.hook_names)
            self.setup()

        def setup(self) -> None:
            """Name the hook points after saeno's hook names (only them: the model is left untouched)."""
            self.mod_dict = {}
            self.hook_dict = {}
            for name, hp in zip(self.hooked.hook_names, self.lens_hook_points):
                hp.name = name
                self.mod_dict[name] = hp
                self.hook_dict[name] = hp

        def _bridge(self, act: torch.Tensor, *, hook: Any) -> torch.Tensor | None:
            out = self.hook_dict[hook.name](act)
            return None if out is act else out

        def forward(self, x: torch.Tensor, **model_kwargs: Any) -> Any:
            """Run the operator; transformer-lens hooks fire at the saeno hook points."""
            active = [name for name, hp in self.hook_dict.items() if hp._forward_hooks]
            if not active:
                return self.hooked(x, **model_kwargs)
            with self.hooked.hooks(fwd_hooks=[(active, self._bridge)]):
                return self.hooked(x, **model_kwargs)

    return LensOperator


def as_hooked_root_module(hooked: HookedOperator | torch.nn.Module) -> Any:
    """Expose a hooked operator as a transformer-lens ``HookedRootModule``.

    Parameters
    ----------
    hooked : HookedOperator or nn.Module
        A hooked operator, or a model (wrapped with ``HookedOperator(model)`` first).

    Returns
    -------
    transformer_lens.HookedRootModule
        Its ``hook_dict`` keys are ``hooked.hook_names``; ``run_with_cache(x, names_filter=...)`` returns
        the same tensors as ``hooked.run_with_cache(x, names_filter=...)``.

    Raises
    ------
    SaenoError
        When transformer-lens is not installed.
    """
    cls = _adapter_class()
    if not isinstance(hooked, HookedOperator):
        hooked = HookedOperator(hooked)
    return cls(hooked)
