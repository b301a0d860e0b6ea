"""Hook-point presets: JSON files in the top-level ``hooks/`` folder that name the activations of a model family.

A preset says which module of a model is "the operator" (matched by class name, else by structure, at any
depth, so that a wrapper holding an FNO as a child is recognised), and where each named hook point sits
relative to it. The schema is described in ``hooks/README.md``. This module only reads presets and
expands them into :class:`~saeno.hooking.hook_point.HookPoint` objects; installing torch hooks is the job
of :mod:`saeno.hooking.hooked_operator`.
"""

from __future__ import annotations

import copy
import functools
import json
import warnings
from pathlib import Path
from typing import Any

from torch import nn

from saeno.errors import SaenoError
from saeno.hooking.hook_point import AT_INPUT, AT_LAYER_OUTPUT, AT_OUTPUT, HookPoint
from saeno.resources import hooks_dir

ROOT = "@root"  # module path meaning "the outermost wrapped model"
ALL_MODULES = "all-modules"  # preset name: one ``<path>.hook_out`` per submodule, no warning
_VALID_AT = {AT_OUTPUT, AT_INPUT, AT_LAYER_OUTPUT}
_CONTAINERS = (nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict)


class PresetError(SaenoError, ValueError):
    """A preset file or argument that cannot be used."""


class NoPresetWarning(UserWarning):
    """No preset matched a model: generic ``<module.path>.hook_out`` names are used."""


def _validate(preset: dict, source: str) -> dict:
    for key in ("name", "match", "points"):
        if key not in preset:
            raise PresetError(f"hook preset {source} has no {key!r} key; see hooks/README.md for the schema.")
    match = preset["match"]
    if not (match.get("classes") or match.get("children")):
        raise PresetError(f"hook preset {source}: 'match' needs 'classes' or 'children'.")
    for point in preset["points"]:
        if point.get("at") not in _VALID_AT:
            raise PresetError(
                f"hook preset {source}: point {point.get('name')!r} has at={point.get('at')!r}; "
                f"use one of {sorted(_VALID_AT)}."
            )
        if point["at"] == AT_LAYER_OUTPUT and "layers" not in preset:
            raise PresetError(f"hook preset {source}: 'layer_output' points need a 'layers' section.")
        if "{i}" in point["name"] and "layers" not in preset:
            raise PresetError(f"hook preset {source}: names with '{{i}}' need a 'layers' section.")
    return preset


def _merge(base: dict, child: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in child.items():
        if key != "extends":
            merged[key] = copy.deepcopy(value)
    return merged


@functools.lru_cache(maxsize=8)
def _load_folder(folder: str) -> tuple[dict, ...]:
    raw: dict[str, dict] = {}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            raise PresetError(f"cannot read hook preset {path}: {exc}. Fix or remove the file.") from exc
        if "name" not in data:
            raise PresetError(f"hook preset {path} has no 'name' key; see hooks/README.md.")
        data["_source"] = str(path)
        raw[data["name"]] = data
    resolved: dict[str, dict] = {}

    def resolve(name: str, seen: tuple[str, ...]) -> dict:
        if name in resolved:
            return resolved[name]
        if name in seen:
            raise PresetError(f"hook presets extend each other in a cycle: {' -> '.join(seen + (name,))}.")
        data = raw[name]
        parent = data.get("extends")
        if parent is not None:
            if parent not in raw:
                raise PresetError(f"hook preset {data['_source']} extends unknown preset {parent!r}.")
            data = _merge(resolve(parent, seen + (name,)), data)
        resolved[name] = _validate(data, data["_source"])
        return resolved[name]

    return tuple(resolve(name, ()) for name in raw)


def load_presets(folder: str | Path | None = None) -> list[dict]:
    """Read every preset of a folder (default: the shipped ``hooks/``), with ``extends`` resolved.

    Parameters
    ----------
    folder : str or Path, optional
        Folder of ``*.json`` presets.

    Returns
    -------
    list of dict
        One dict per preset, in file-name order.
    """
    return [copy.deepcopy(p) for p in _load_folder(str(folder or hooks_dir()))]


def preset_names() -> list[str]:
    """Names of the shipped presets (plus ``"all-modules"``)."""
    return [p["name"] for p in load_presets()] + [ALL_MODULES]


def get_preset(preset: str | Path | dict) -> dict:
    """Return a preset given by name, by JSON file path, or as a dict (validated)."""
    if isinstance(preset, dict):
        data = dict(preset)
        if "extends" in data:
            base = get_preset(data["extends"])
            data = _merge(base, data)
        return _validate(data, "given as a dict")
    text = str(preset)
    for p in load_presets():
        if p["name"] == text:
            return p
    path = Path(text)
    if path.suffix == ".json" and path.is_file():
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        data["_source"] = str(path)
        return get_preset(data)
    raise PresetError(
        f"unknown hook preset {text!r}; use one of {preset_names()} or the path of a preset JSON file."
    )


def submodule(root: nn.Module, path: str) -> nn.Module | None:
    """Module at a dotted path below ``root`` (``""`` is ``root``); ``None`` when absent or ``None``."""
    module: Any = root
    if path:
        for part in path.split("."):
            children = getattr(module, "_modules", {})
            if part in children:
                module = children[part]
            else:
                module = getattr(module, part, None)
            if module is None:
                return None
    return module if isinstance(module, nn.Module) else None


def _attr(module: nn.Module, path: str) -> Any:
    value: Any = module
    for part in path.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


def matches_class(preset: dict, module: nn.Module) -> bool:
    """Whether the module's class name is one the preset lists."""
    return type(module).__name__ in preset["match"].get("classes", [])


def matches_structure(preset: dict, module: nn.Module) -> bool:
    """Whether the module has every child and attribute the preset's ``match`` asks for."""
    match = preset["match"]
    children = match.get("children", [])
    if not children:
        return False
    if any(submodule(module, c) is None for c in children):
        return False
    return all(_attr(module, a) is not None for a in match.get("attributes", []))


def find_operator(model: nn.Module, preset: str | Path | dict | None = None) -> tuple[str, nn.Module, dict] | None:
    """Find the outermost submodule a preset describes.

    Parameters
    ----------
    model : nn.Module
        The model (or a wrapper holding it at any depth).
    preset : str, Path or dict, optional
        Restrict the search to this preset. By default every shipped preset is tried, first by class
        name at every depth, then by structure.

    Returns
    -------
    tuple or None
        ``(path, module, preset)`` or ``None`` when nothing matched.
    """
    presets = [get_preset(preset)] if preset is not None else load_presets()
    modules = list(model.named_modules())
    for test in (matches_class, matches_structure):
        for path, module in modules:
            for p in presets:
                if test(p, module):
                    return path, module, p
    return None


def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix and path else (prefix or path)


def expand_points(model: nn.Module, operator_path: str, operator: nn.Module, preset: dict) -> list[HookPoint]:
    """Turn a preset's point templates into concrete hook points of one model.

    Points whose module is absent (``None``, e.g. ``positional_embedding=None`` or ``fno_skip=None``)
    are left out. ``{i}`` in a name or module path is expanded over the operator's layers.

    Parameters
    ----------
    model : nn.Module
        The outermost model (``@root`` points attach to it).
    operator_path : str
        Path of the matched operator inside ``model``.
    operator : nn.Module
        The matched operator.
    preset : dict
        The preset that matched.

    Returns
    -------
    list of HookPoint
        In the preset's order, layer by layer for ``{i}`` points.
    """
    layers = preset.get("layers")
    n_layers = 0
    if layers is not None:
        count = _attr(operator, layers["count"])
        if not isinstance(count, int):
            raise PresetError(
                f"hook preset {preset['name']!r}: attribute {layers['count']!r} of {type(operator).__name__} "
                f"is {count!r}, not a layer count."
            )
        n_layers = count
    singles: list[HookPoint] = []
    per_layer: list[list[HookPoint]] = [[] for _ in range(n_layers)]
    first_layer_slot: int | None = None
    tail: list[HookPoint] = []
    for template in preset["points"]:
        layered = "{i}" in template["name"] or template["at"] == AT_LAYER_OUTPUT
        indices = range(n_layers) if layered else [None]
        for i in indices:
            name = template["name"].replace("{i}", str(i)) if i is not None else template["name"]
            rel = template.get("module", "")
            if rel == ROOT:
                full, module = "", model
            else:
                rel = rel.replace("{i}", str(i)) if i is not None else rel
                full, module = _join(operator_path, rel), submodule(operator, rel)
            if module is None:
                continue
            point = HookPoint(
                name=name,
                module_path=full,
                at=template["at"],
                layer=i,
                padded=bool(template.get("padded", False)),
            )
            if layered:
                if first_layer_slot is None:
                    first_layer_slot = len(singles)
                per_layer[i].append(point)
            elif first_layer_slot is None:
                singles.append(point)
            else:
                tail.append(point)
    ordered = list(singles)
    for layer_points in per_layer:
        ordered.extend(layer_points)
    return ordered + tail


def generic_points(model: nn.Module, warn: bool = True) -> list[HookPoint]:
    """One ``<module.path>.hook_out`` point per submodule (``hook_out`` for the model itself).

    Containers that are never called (``ModuleList``, ``ModuleDict``) get no point. A submodule named
    ``hook_out`` would make its name ambiguous with its parent's point and is skipped.
    """
    points = []
    for path, module in model.named_modules():
        if isinstance(module, _CONTAINERS) or path.split(".")[-1] == "hook_out":
            continue
        points.append(HookPoint(name=_join(path, "hook_out"), module_path=path, at=AT_OUTPUT))
    if warn:
        warnings.warn(
            f"no hook preset matches {type(model).__name__} or any of its submodules; every submodule gets a "
            f"generic '<module.path>.hook_out' name ({len(points)} hook points, fields not cropped). "
            "Add a preset to hooks/ (see hooks/README.md) for stable names.",
            NoPresetWarning,
            stacklevel=3,
        )
    return points
