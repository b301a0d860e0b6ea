"""Named hook points on neural operators: :class:`HookedOperator`, presets, :func:`fingerprint`.

This package imports torch but never transformer-lens (see :mod:`saeno.lens`) nor Zarr.
"""

from saeno.hooking.calls import KeywordCall, fnogno_call, gino_call
from saeno.hooking.examples import example_model, example_names
from saeno.hooking.fingerprint import fingerprint
from saeno.hooking.hook_point import HookPoint
from saeno.hooking.hooked_operator import HookedOperator, HookNotFiredWarning
from saeno.hooking.presets import NoPresetWarning, PresetError, load_presets, preset_names

__all__ = [
    "HookedOperator",
    "KeywordCall",
    "gino_call",
    "fnogno_call",
    "HookPoint",
    "fingerprint",
    "example_model",
    "example_names",
    "load_presets",
    "preset_names",
    "NoPresetWarning",
    "HookNotFiredWarning",
    "PresetError",
]
