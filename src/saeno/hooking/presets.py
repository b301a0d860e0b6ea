"""Hook-point presets: JSON files in the top-level ``hooks/`` folder that name the activations of a model family.

A preset says which module of a model is "the operator" (matched by class name, else by structure, at any
depth, so that a wrapper holding an FNO as a child is recognised), and where each named hook point sits
relative to it. The schema is described in ``hooks/README.md``. This module only reads presets and
expands them into :class:`~saeno.hooking.hook_point.HookPoint` objects; installing torch hooks is the job
of :mod:`saeno.hooking.hooked_operator`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import warnings
from pathlib import Path
from typing import Any

from torch import nn

from saeno.errors import SaenoError
from saeno.hooking.hook_point import (
    AT_INPUT,
    AT_LAYER_OUTPUT,
    AT_OUTPUT,
    FIELD_GRID,
    FIELD_KINDS,
    FIELD_POINTS,
    LAYOUT_CHANNELS_LAST,
    LAYOUT_FIELD,
    LAYOUT_TOKENS,
    HookPoint,
)
from saeno.resources import hooks_dir

ROOT = "@root"  # module path meaning "the outermost wrapped model"
ALL_MODULES = "all-modules"  # preset name: one ``<path>.hook_out`` per submodule, no warning
_VALID_AT = {AT_OUTPUT, AT_INPUT, AT_LAYER_OUTPUT}
_VALID_LAYOUT = {LAYOUT_FIELD, LAYOUT_CHANNELS_LAST, LAYOUT_TOKENS}
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
    if not isinstance(preset["points"], list):
        raise PresetError(f"hook preset {source}: 'points' must be a list.")
    for sub in preset.get("submodels", []):
        if not isinstance(sub, dict) or not isinstance(sub.get("prefix"), str) or not sub.get("module"):
            raise PresetError(f"hook preset {source}: each of 'submodels' needs a 'prefix' and a 'module'.")
    for point in preset["points"]:
        if point.get("layout", LAYOUT_FIELD) not in _VALID_LAYOUT:
            raise PresetError(
                f"hook preset {source}: point {point.get('name')!r} has layout={point.get('layout')!r}; "
                f"use one of {sorted(_VALID_LAYOUT)}."
            )
        if point.get("field", FIELD_GRID) not in FIELD_KINDS:
            raise PresetError(
                f"hook preset {source}: point {point.get('name')!r} has field={point.get('field')!r}; "
                f"use one of {list(FIELD_KINDS)}."
            )
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


def attribute(module: nn.Module, path: str) -> Any:
    """Value at a dotted attribute path (``None`` when any step is missing)."""
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
    return all(attribute(module, a) is not None for a in match.get("attributes", []))


def _layer_count(preset: dict, module: nn.Module) -> int | None:
    layers = preset.get("layers")
    if layers is None:
        return 0
    count = attribute(module, layers["count"])
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def structure_problems(preset: dict, module: nn.Module) -> list[str]:
    """What in a module's tree differs from what a preset expects (empty when it fits).

    Checks the preset's ``expect`` (module path, ``{i}`` per layer, to the class names allowed there;
    ``null`` among them allows an absent module), that ``layers.count`` is an integer, and that
    ``layers.length`` (a container's path) holds that many modules.

    Parameters
    ----------
    preset : dict
        A validated preset.
    module : nn.Module
        The candidate operator.

    Returns
    -------
    list of str
        One sentence per mismatch.
    """
    problems = []
    cls = type(module).__name__
    n_layers = _layer_count(preset, module)
    if n_layers is None:
        layers = preset["layers"]
        return [f"{cls}.{layers['count']} is {attribute(module, layers['count'])!r}, not a layer count"]
    length = (preset.get("layers") or {}).get("length")
    if length:
        container: Any = submodule(module, length)
        size = len(container) if container is not None and hasattr(container, "__len__") else None
        if size is None:
            problems.append(f"{cls} has no container {length!r} of layers")
        elif size != n_layers:
            problems.append(
                f"{cls}.{length} holds {size} modules but {cls}.{preset['layers']['count']} is {n_layers}"
            )
    for template, allowed in (preset.get("expect") or {}).items():
        paths = (
            [template.replace("{i}", str(i)) for i in range(n_layers)] if "{i}" in template else [template]
        )
        for path in paths:
            found = submodule(module, path)
            name = None if found is None else type(found).__name__
            if name not in allowed and not (found is None and None in allowed):
                shown = [a for a in allowed if a is not None]
                problems.append(
                    f"{cls}.{path} is {'absent' if name is None else 'a ' + name}, where the preset expects "
                    f"{' or '.join(shown)}"
                )
    return problems


def check_structure(preset: dict, module: nn.Module, path: str = "") -> None:
    """Raise :class:`PresetError` naming every mismatch between a preset and a module's tree."""
    problems = structure_problems(preset, module)
    if problems:
        where = f" at {path!r}" if path else ""
        raise PresetError(
            f"hook preset {preset['name']!r} does not fit the {type(module).__name__}{where}: "
            + "; ".join(problems)
            + ". Its hooks would read the wrong tensors: use the preset of this model family "
            "(see `saeno hooks --model ...` and hooks/README.md), or preset='all-modules' for generic names."
        )


def find_operator(
    model: nn.Module, preset: str | Path | dict | None = None
) -> tuple[str, nn.Module, dict] | None:
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
        ``(path, module, preset)`` or ``None`` when nothing matched. A class match is returned even
        when the tree differs from the preset (check it with :func:`check_structure`); a structure
        match only where nothing differs, unless ``preset`` is given.
    """
    forced = preset is not None
    presets = [get_preset(preset)] if forced else load_presets()
    modules = list(model.named_modules())
    for path, module in modules:
        for p in presets:
            if matches_class(p, module):
                return path, module, p
    for path, module in modules:
        for p in presets:
            if matches_structure(p, module) and (forced or not structure_problems(p, module)):
                return path, module, p
    return None


def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix and path else (prefix or path)


def expand_points(
    model: nn.Module,
    operator_path: str,
    operator: nn.Module,
    preset: dict,
    prefix: str = "",
    scopes: dict[str, str | None] | None = None,
) -> list[HookPoint]:
    """Turn a preset's point templates into concrete hook points of one model.

    Points whose module is absent (``None``, e.g. ``positional_embedding=None`` or ``fno_skip=None``)
    are left out. ``{i}`` in a name or module path is expanded over the operator's layers. A preset with
    ``submodels`` hooks each of them with the preset that matches it, its names under the submodel's
    prefix (``base.blocks.0.hook_out``).

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
    prefix : str, optional
        Put before every name (with a dot).
    scopes : dict, optional
        Filled with ``{operator path: name of its domain-padding attribute or None}`` for the operator
        and every submodel operator (paths inside ``model``).

    Returns
    -------
    list of HookPoint
        Submodels first, then the preset's points in its order, layer by layer for ``{i}`` points.

    Raises
    ------
    PresetError
        The operator's tree differs from what the preset (or a submodel's preset) expects.
    """
    check_structure(preset, operator, operator_path)
    if scopes is not None:
        scopes[operator_path] = preset.get("padding")
    layers = preset.get("layers")
    n_layers = _layer_count(preset, operator) or 0
    index = None
    if layers is not None:
        index = (
            int(layers.get("index_arg", 1)),
            layers.get("index_kwarg", "index"),
            layers.get("index_default", 0),
        )
    subs: list[HookPoint] = []
    for sub in preset.get("submodels", []):
        sub_module = submodule(operator, sub["module"])
        if sub_module is None:
            raise PresetError(
                f"hook preset {preset['name']!r}: {type(operator).__name__} has no submodel {sub['module']!r}."
            )
        sub_path = _join(operator_path, sub["module"])
        sub_prefix = _join(prefix, sub["prefix"])
        found = find_operator(sub_module, sub.get("preset"))
        if found is None:
            raise PresetError(
                f"hook preset {preset['name']!r}: no hook preset matches its submodel {sub['module']!r} "
                f"({type(sub_module).__name__}); add one to hooks/ (see hooks/README.md)."
            )
        inner_path, inner, inner_preset = found
        inner_scopes: dict[str, str | None] = {}
        try:
            inner_points = expand_points(
                sub_module, inner_path, inner, inner_preset, sub_prefix, inner_scopes
            )
        except PresetError as exc:
            raise PresetError(
                f"{type(operator).__name__}.{sub['module']} (names {sub_prefix}.*): {exc}"
            ) from None
        subs.extend(_rebase(p, sub_path) for p in inner_points)
        if scopes is not None:
            scopes.update({_join(sub_path, k): v for k, v in inner_scopes.items()})
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
                name=_join(prefix, name),
                module_path=full,
                at=template["at"],
                layer=i,
                padded=bool(template.get("padded", False)),
                scope=operator_path,
                layout=template.get("layout", LAYOUT_FIELD),
                index=index if template["at"] == AT_LAYER_OUTPUT else None,
                field=_field_kind(template),
            )
            if layered:
                assert i is not None
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
    return subs + ordered + tail


def _field_kind(template: dict) -> str:
    """A point's field kind: as the preset says, else ``points`` for channels-last point clouds."""
    if "field" in template:
        return str(template["field"])
    return FIELD_POINTS if template.get("layout") == LAYOUT_CHANNELS_LAST else FIELD_GRID


def _rebase(point: HookPoint, base: str) -> HookPoint:
    """The same point, its module and scope paths taken from ``base`` (a submodel inside the model)."""
    return dataclasses.replace(
        point, module_path=_join(base, point.module_path), scope=_join(base, point.scope)
    )


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


def preset_label(preset: Any) -> str:
    """A preset argument's name (a dict's ``name``, else the argument as text)."""
    return str(preset.get("name")) if isinstance(preset, dict) else str(preset)


def match_description(preset: Any) -> str:
    """What a preset's ``match`` asks of a module, in words."""
    match = get_preset(preset)["match"]
    parts = []
    if match.get("classes"):
        parts.append("a module of class " + " or ".join(match["classes"]))
    if match.get("children"):
        parts.append("a module with children " + ", ".join(match["children"]))
    return "it looks for " + ", or ".join(parts)
