"""``HookedOperator``: stable named hook points on any ``nn.Module``, with forward hooks only.

The wrapped model is not edited: torch hooks are installed only while hook functions are active
(inside ``hooks()``, ``run_with_cache`` or ``run_with_hooks``, or after ``add_hook`` until
``reset_hooks``), and removed afterwards, also when the forward raises.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from saeno.errors import HookNameError, SaenoError, ShapeError
from saeno.hooking.hook_point import (
    AT_INPUT,
    AT_LAYER_OUTPUT,
    LAYOUT_CHANNELS_LAST,
    LAYOUT_TOKENS,
    HookPoint,
    field_axes,
)
from saeno.hooking.names import NamesFilter, resolve_names
from saeno.hooking.padding import PaddingCropper
from saeno.hooking.presets import (
    ALL_MODULES,
    PresetError,
    attribute,
    expand_points,
    find_operator,
    generic_points,
    match_description,
    preset_label,
    submodule,
)
from saeno.hooking.replacing import call_all as _call_all
from saeno.hooking.replacing import input_recorder as _input_recorder

HookFn = Callable[..., "torch.Tensor | None"]
FwdHooks = Sequence[tuple[Any, HookFn]]


class HookNotFiredWarning(UserWarning):
    """A selected hook point saw no tensor during a forward pass (its module was not called)."""


class _StopForward(Exception):
    """Raised by the ``stop_at`` hook to end a forward pass early; caught by ``run_with_cache``."""


class _Site:
    """One torch module that serves one or more hook points (several for a per-layer module)."""

    __slots__ = ("module", "at", "by_layer", "points", "crop", "scope")

    def __init__(self, module: nn.Module, at: str, scope: str) -> None:
        self.module = module
        self.at = at
        self.scope = scope
        self.by_layer: dict[int, HookPoint] = {}
        self.points: list[HookPoint] = []
        self.crop = False


class HookedOperator(nn.Module):
    """Named hook points on a (neural-operator) model, in the style of TransformerLens.

    Parameters
    ----------
    model : nn.Module
        Any model. A submodule a preset of ``hooks/`` describes (a neuraloperator FNO, TFNO, SFNO, UNO,
        UQNO, CODANO, FNOGNO or GINO, at any depth: a wrapper that normalises inputs and outputs is
        fine) gets the preset's names (see ``docs/hooks.md``); any other model gets
        ``<module.path>.hook_out`` for every submodule, with a warning. A model whose tree differs from
        what its preset expects raises :class:`~saeno.hooking.PresetError` naming the difference.
    preset : str, Path or dict, optional
        Force a preset (name, JSON path or dict); ``"all-modules"`` gives the generic names without a
        warning. By default every shipped preset is tried.
    keep_padding : bool, default False
        Keep the domain padding on block activations instead of cropping them to the input grid.

    Attributes
    ----------
    model : nn.Module
        The wrapped model.
    preset : dict or None
        The preset that matched (``None`` for generic names).
    operator_path : str or None
        Path of the matched operator inside ``model`` (``""`` when it is ``model`` itself).
    hook_points : dict of str to HookPoint
        Every hook point by name.

    Notes
    -----
    A hook function is ``fn(act, *, hook) -> Tensor | None``; a returned tensor (same shape) replaces
    the activation downstream. Fields are ``(B, C, *grid)``, each on its own grid (a UNO block's,
    a GINO's latent grid); point clouds are ``(B, C, n)``. Activations of a domain-padded operator are
    cropped to the input grid, and a replacement is written back into the padded tensor's interior
    (the padding cells keep the model's values). If the model calls a hooked module more than once
    per forward, the cache keeps the last call.
    """

    def __init__(
        self, model: nn.Module, preset: str | Path | dict | None = None, keep_padding: bool = False
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise SaenoError(f"HookedOperator wraps a torch.nn.Module, got {type(model).__name__}.")
        self.model = model
        self.keep_padding = bool(keep_padding)
        self.preset: dict | None = None
        self.operator_path: str | None = None
        self._operator: nn.Module | None = None
        scopes: dict[str, str | None] = {}
        if preset == ALL_MODULES:
            points = generic_points(model, warn=False)
        else:
            found = find_operator(model, preset)
            if found is None:
                if preset is not None:
                    raise PresetError(
                        f"hook preset {preset_label(preset)!r} matches no submodule of {type(model).__name__}: "
                        f"{match_description(preset)}. Use the preset of this model's family (leave preset=None to "
                        "pick it, or to get generic names)."
                    )
                points = generic_points(model, warn=True)
            else:
                self.operator_path, self._operator, self.preset = found
                points = expand_points(model, self.operator_path, self._operator, self.preset, scopes=scopes)
        self.hook_points: dict[str, HookPoint] = {p.name: p for p in points}
        self._names: list[str] = [p.name for p in points]
        self._croppers = self._make_croppers(scopes)
        self._batch: dict[str, int] = {}  # batch size of the forward pass, per operator (token layouts)
        self._sites = self._make_sites(points)
        self._input_spec = self._make_input_spec()
        self._entries: list[tuple[str, HookFn, object]] = []
        self._fns: dict[str, tuple[HookFn, ...]] = {}
        self._handles: list[RemovableHandle] = []

    # ------------------------------------------------------------------ construction helpers
    def _make_croppers(self, scopes: dict[str, str | None]) -> dict[str, tuple[nn.Module, PaddingCropper]]:
        """One padding cropper per operator (scope) that has a neuraloperator ``DomainPadding``."""
        croppers = {}
        for scope, attr in scopes.items():
            operator = submodule(self.model, scope)
            padding = getattr(operator, attr, None) if attr and operator is not None else None
            if padding is not None and hasattr(padding, "domain_padding"):
                croppers[scope] = (operator, PaddingCropper(padding))
        return croppers

    def _make_sites(self, points: list[HookPoint]) -> list[_Site]:
        sites: dict[tuple[str, str], _Site] = {}
        for p in points:
            key = (p.module_path, p.at)
            site = sites.get(key)
            if site is None:
                module = submodule(self.model, p.module_path)
                assert module is not None, p
                site = sites[key] = _Site(module, p.at, p.scope)
            site.points.append(p)
            if p.at == AT_LAYER_OUTPUT:
                site.by_layer[p.layer] = p
        return list(sites.values())

    def _make_input_spec(self) -> tuple[int, int] | None:
        if self.preset is None or "input" not in self.preset or self._operator is None:
            return None
        spec = self.preset["input"]
        ndim = attribute(self._operator, spec.get("ndim", ""))
        channels = getattr(self.model, "in_channels", None)
        if not isinstance(channels, int):
            channels = attribute(self._operator, spec.get("channels", ""))
        if isinstance(ndim, int) and isinstance(channels, int):
            return channels, ndim
        return None

    # ------------------------------------------------------------------ public properties
    @property
    def hook_names(self) -> list[str]:
        """Every hook name: embedding, lifting, then layer by layer, projection input, output (preset order)."""
        return list(self._names)

    @property
    def operator(self) -> nn.Module | None:
        """The submodule the preset matched (``None`` for generic names)."""
        return self._operator

    @property
    def in_channels(self) -> int | None:
        """Input channels the model expects (``None`` if no preset tells)."""
        return None if self._input_spec is None else self._input_spec[0]

    @property
    def ndim(self) -> int | None:
        """Number of grid dimensions the model expects (``None`` if no preset tells)."""
        return None if self._input_spec is None else self._input_spec[1]

    def resolve(self, names_filter: NamesFilter) -> list[str]:
        """Hook names selected by ``names_filter`` (None, name, glob, list of them, or callable).

        Raises
        ------
        HookNameError
            An unknown name (with the nearest valid ones) or a filter that selects nothing.
        """
        return resolve_names(names_filter, self._names)

    def field_axes(self, name: str, n_space: int) -> list[str]:
        """Axis names of one sample of hook ``name``'s field with ``n_space`` axes after the channel.

        ``["channel", "grid_0", ...]`` on the input grid (or one rescaled from it, a UNO block's),
        ``["channel", "latent_0", ...]`` on a latent grid of the model's own (GINO, FNOGNO),
        ``["channel", "point"]`` for a point cloud. Activation stores record them per hook.
        """
        point = self.hook_points.get(name)
        if point is None:
            self.resolve(name)  # raises with the nearest names
            raise HookNameError(f"{name!r} is a pattern; field_axes takes one exact hook name.")
        return field_axes(point.field, n_space)

    # ------------------------------------------------------------------ running
    def check_input(self, x: Any) -> None:
        """Raise :class:`~saeno.errors.ShapeError` unless ``x`` is ``(B, in_channels, *grid)``."""
        if self._input_spec is None or isinstance(x, Mapping):
            return
        channels, ndim = self._input_spec
        example = f"(B, {channels}, {', '.join(['n'] * ndim)})"
        if not isinstance(x, torch.Tensor):
            raise ShapeError(f"the input must be a torch.Tensor of shape {example}, got {type(x).__name__}.")
        if x.ndim == ndim + 2 and x.shape[1] == channels:
            return
        hint = ""
        if x.ndim == ndim + 1 and x.shape[0] == channels:
            hint = " Add the batch dimension: x.unsqueeze(0)."
        elif x.ndim == ndim + 2 and x.shape[-1] == channels:
            hint = " Channels must come second: x.movedim(-1, 1)."
        raise ShapeError(
            f"input has shape {tuple(x.shape)}, but this model expects {example}: batch, {channels} channel(s) "
            f"and a grid with {ndim} dimension(s) of any size.{hint}"
        )

    def forward(self, x: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Run the wrapped model (with whatever hooks are active) after checking the input shape.

        ``x`` is the first positional input, or a mapping of named inputs passed as keyword arguments
        (``{"input_geom": ..., "latent_queries": ..., "output_queries": ..., "x": ...}`` for a GINO).
        """
        if isinstance(x, Mapping):
            if args:
                raise SaenoError("give a model's inputs either as a mapping of named inputs or positionally.")
            return self.model(**x, **kwargs)
        self.check_input(x)
        return self.model(x, *args, **kwargs)

    def run_with_cache(
        self,
        x: torch.Tensor,
        /,
        names_filter: NamesFilter = None,
        device: torch.device | str | None = None,
        stop_at: str | None = None,
        **model_kwargs: Any,
    ) -> tuple[Any, dict[str, torch.Tensor]]:
        """Run the model and keep the selected activations.

        Parameters
        ----------
        x : Tensor or mapping
            Input ``(B, in_channels, *grid)``, or the model's named inputs (passed as keywords).
        names_filter : None, str, list or callable
            Which hook points to keep (default all); see :meth:`resolve`.
        device : torch.device or str, optional
            Move cached tensors there (default: where they were computed).
        stop_at : str, optional
            Exact hook name after which the forward ends early (output ``None``).
        **model_kwargs
            Passed to the model's forward (a keyword ``x``, as GINO's, goes there too: the input is
            positional-only).

        Returns
        -------
        out : Any
            The model output, or ``None`` when ``stop_at`` fired.
        cache : dict of str to Tensor
            Detached activations by hook name, ``(B, C, *grid)``, in forward order.
        """
        names = self.resolve(names_filter)
        if stop_at is not None:
            if not isinstance(stop_at, str) or stop_at not in self.hook_points:
                self.resolve([stop_at] if isinstance(stop_at, str) else stop_at)  # raises with suggestions
                raise HookNameError(f"stop_at must be one exact hook name, got {stop_at!r}.")
        cache: dict[str, torch.Tensor] = {}

        if device is None:

            def save(act: torch.Tensor, *, hook: HookPoint) -> None:
                cache[hook.name] = act.detach()

        else:

            def save(act: torch.Tensor, *, hook: HookPoint) -> None:
                cache[hook.name] = act.detach().to(device)

        def stop(act: torch.Tensor, *, hook: HookPoint) -> None:
            raise _StopForward(hook.name)

        entries: list[tuple[str, HookFn]] = [(n, save) for n in names]
        if stop_at is not None:
            entries.append((stop_at, stop))
        stopped = False
        with self._active(entries):
            try:
                out = self.forward(x, **model_kwargs)
            except _StopForward:
                out, stopped = None, True
        missing = [] if stopped else [n for n in names if n not in cache]
        if missing:
            warnings.warn(
                f"hook point(s) {', '.join(missing)} did not fire in this forward pass: the model did not call "
                "their modules, or they returned something other than a tensor; the cache has no entry for them.",
                HookNotFiredWarning,
                stacklevel=2,
            )
        return out, cache

    def run_with_hooks(self, x: torch.Tensor, /, fwd_hooks: FwdHooks = (), **model_kwargs: Any) -> Any:
        """Run the model with ``fwd_hooks`` (``[(name_or_glob, fn)]``) active for this call only."""
        with self.hooks(fwd_hooks=fwd_hooks):
            return self.forward(x, **model_kwargs)

    @contextlib.contextmanager
    def hooks(self, fwd_hooks: FwdHooks = ()) -> Iterator[HookedOperator]:
        """Context manager that activates hook functions and removes them on exit (also on errors).

        Parameters
        ----------
        fwd_hooks : sequence of (names_filter, fn)
            ``names_filter`` is a name, glob, list or callable (see :meth:`resolve`); ``fn(act, *, hook)``
            returns ``None`` or a tensor of the same shape that replaces the activation.

        Yields
        ------
        HookedOperator
            ``self``.
        """
        with self._active(self._expand(fwd_hooks)):
            yield self

    def add_hook(self, names_filter: NamesFilter, fn: HookFn) -> None:
        """Activate ``fn`` on the selected hook points until :meth:`reset_hooks` (installs torch hooks)."""
        self._entries.extend((n, f, None) for n, f in self._expand([(names_filter, fn)]))
        self._rebuild()

    def reset_hooks(self) -> None:
        """Remove every hook function and every torch hook this object installed."""
        self._entries.clear()
        self._rebuild()

    # ------------------------------------------------------------------ hook machinery
    def _expand(self, fwd_hooks: FwdHooks) -> list[tuple[str, HookFn]]:
        if isinstance(fwd_hooks, tuple) and len(fwd_hooks) == 2 and callable(fwd_hooks[1]):
            fwd_hooks = [fwd_hooks]  # type: ignore[assignment]  # a single (name, fn) pair
        out = []
        for item in fwd_hooks:
            if not (isinstance(item, (tuple, list)) and len(item) == 2 and callable(item[1])):
                raise SaenoError(f"fwd_hooks must be a list of (name_or_glob, fn) pairs, got {item!r}.")
            names_filter, fn = item
            out.extend((n, fn) for n in self.resolve(names_filter))
        return out

    @contextlib.contextmanager
    def _active(self, entries: list[tuple[str, HookFn]]) -> Iterator[None]:
        token = object()
        self._entries.extend((n, f, token) for n, f in entries)
        try:
            self._rebuild()
            yield
        finally:
            self._entries = [e for e in self._entries if e[2] is not token]
            self._rebuild()

    def _rebuild(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        fns: dict[str, list[HookFn]] = {}
        for name, fn, _ in self._entries:
            fns.setdefault(name, []).append(fn)
        self._fns = {k: tuple(v) for k, v in fns.items()}
        if not self._fns:
            return
        need_input: set[str] = set()
        for site in self._sites:
            active = [p for p in site.points if p.name in self._fns]
            if not active:
                continue
            site.crop = (
                site.scope in self._croppers and not self.keep_padding and any(p.padded for p in active)
            )
            if site.crop or any(p.layout == LAYOUT_TOKENS for p in active):
                need_input.add(site.scope)
            self._handles.append(self._install(site))
        for scope in need_input:
            operator, cropper = self._croppers.get(scope) or (submodule(self.model, scope), None)
            assert operator is not None, scope
            recorder = _input_recorder(cropper, self._batch, scope)
            self._handles.append(operator.register_forward_pre_hook(recorder, with_kwargs=True))

    def _install(self, site: _Site) -> RemovableHandle:
        fire = self._fire
        if site.at == AT_LAYER_OUTPUT:
            by_layer = site.by_layer
            index_arg, index_kwarg, index_default = site.points[0].index or (1, "index", 0)
            crop = site.crop

            def layer_hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
                index = args[index_arg] if len(args) > index_arg else kwargs.get(index_kwarg, index_default)
                point = by_layer.get(int(index))
                return None if point is None else fire(point, output, crop)

            return site.module.register_forward_hook(layer_hook, with_kwargs=True)
        point = site.points[0]
        crop = site.crop and point.padded
        if site.at == AT_INPUT:

            def input_hook(module: nn.Module, args: tuple) -> Any:
                if not args:
                    return None
                new = fire(point, args[0], crop)
                return None if new is None else (new,) + tuple(args[1:])

            return site.module.register_forward_pre_hook(input_hook)

        def output_hook(module: nn.Module, args: tuple, output: Any) -> Any:
            return fire(point, output, crop)

        return site.module.register_forward_hook(output_hook)

    def _fire(self, point: HookPoint, act: Any, crop: bool) -> torch.Tensor | None:
        fns = self._fns.get(point.name)
        if not fns or not isinstance(act, torch.Tensor):
            return None
        if point.layout == LAYOUT_CHANNELS_LAST:
            return self._fire_points(point, act, fns)
        if point.layout == LAYOUT_TOKENS:
            tokens_shape = act.shape
            act = act.reshape(self._batch[point.scope], -1, *tokens_shape[2:])
            new = self._fire_field(point, act, fns, crop)
            return None if new is None else new.reshape(tokens_shape)
        return self._fire_field(point, act, fns, crop)

    def _fire_field(
        self, point: HookPoint, act: torch.Tensor, fns: tuple[HookFn, ...], crop: bool
    ) -> torch.Tensor | None:
        """A ``(B, C, *grid)`` activation, cropped to the input grid when ``crop``."""
        slices = self._croppers[point.scope][1].slices_for(tuple(act.shape[2:])) if crop else None
        current = act if slices is None else act[slices]
        replaced = None
        current, replaced = _call_all(fns, point, current)
        if replaced is None or slices is None:
            return replaced
        full = act.clone()
        full[slices] = replaced
        return full

    @staticmethod
    def _fire_points(point: HookPoint, act: torch.Tensor, fns: tuple[HookFn, ...]) -> torch.Tensor | None:
        """Point-cloud activation ``(n, C)`` or ``(B, n, C)``: hooks see ``(B, C, n)``."""
        unbatched = act.dim() == 2
        field = (act.unsqueeze(0) if unbatched else act).transpose(-1, -2)
        _, replaced = _call_all(fns, point, field)
        if replaced is None:
            return None
        back = replaced.transpose(-1, -2)
        return back.squeeze(0) if unbatched else back
