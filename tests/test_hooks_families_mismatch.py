"""A wrong preset fails with a message naming the mismatch, for every family.

Every family's model forced under every other family's preset raises a ``PresetError`` that names what
differs (a module of another class, a missing child, the classes the preset looks for); a model of the
right class whose tree was changed (a block replaced, a layer count that disagrees with its blocks) fails
the same way under its own preset. Nothing is hooked in either case, so no wrong tensor is captured.
FNO and TFNO share one scheme (TFNO's preset extends FNO's), so each may be read with the other's.
"""

from __future__ import annotations

import contextlib
import io
import re

import pytest
from torch import nn

from saeno.hooking import HookedOperator, PresetError, preset_names
from saeno.zoo.architecture import build_neuralop
from test_hooks_cmd_families import ARCHS, FNO

pytest.importorskip("neuralop.models")

FAMILIES = {**ARCHS, "FNO": FNO, "TFNO": {**FNO, "model_class": "TFNO"}}
SAME_SCHEME = {frozenset({"neuralop-fno", "neuralop-tfno"})}
# a forced FNO preset finds the FNO a UQNO holds (as in any wrapper) and names its base model: checked below
HOLDS_AN_FNO = {("UQNO", "neuralop-fno"), ("UQNO", "neuralop-tfno")}


def _build(family):
    with contextlib.redirect_stdout(io.StringIO()):
        return build_neuralop(FAMILIES[family]).eval()


@pytest.fixture(scope="module")
def models():
    return {family: _build(family) for family in FAMILIES}


def _own(family):
    return f"neuralop-{family.lower()}"


CASES = [
    (family, preset)
    for family in sorted(FAMILIES)
    for preset in preset_names()
    if preset not in (_own(family), "all-modules", "neuralop-sfno")
    and frozenset({preset, _own(family)}) not in SAME_SCHEME
    and (family, preset) not in HOLDS_AN_FNO
]


@pytest.mark.parametrize("family,preset", CASES)
def test_every_other_familys_preset_is_refused_naming_the_mismatch(models, family, preset):
    model = models[family]
    with pytest.raises(PresetError) as info:
        HookedOperator(model, preset=preset)
    message = str(info.value)
    assert repr(preset) in message and "Traceback" not in message
    # the message says what differs: another class at a path, a missing child, or what the preset looks for
    assert re.search(r"is (a |absent)|looks for|no submodel|holds \d+ modules|not a layer count", message), (
        message
    )


def test_a_forced_fno_preset_on_a_uqno_names_only_the_fno_it_holds(models):
    hooked = HookedOperator(models["UQNO"], preset="neuralop-fno")
    assert hooked.operator_path == "base_model"
    inner = [p for p in hooked.hook_points.values() if p.name != "hook_out"]  # hook_out: the model's output
    assert inner and all(p.module_path.startswith("base_model.") for p in inner)


def test_the_sfno_preset_on_an_fno_names_the_convolution_class(models):
    with pytest.raises(
        PresetError, match=r"FNO.fno_blocks.convs.0 is a SpectralConv, where the preset expects SphericalConv"
    ):
        HookedOperator(models["FNO"], preset="neuralop-sfno")


def _replace(model, path, module):
    parent, _, name = path.rpartition(".")
    owner = model.get_submodule(parent) if parent else model
    if isinstance(owner, (nn.ModuleList,)):
        owner[int(name)] = module
    else:
        setattr(owner, name, module)


DAMAGE = {
    "GINO": ("gno_out", r"GINO.gno_out is a Identity, where the preset expects GNOBlock"),
    "FNOGNO": ("gno", r"FNOGNO.gno is a Identity, where the preset expects GNOBlock"),
    "CODANO": (
        "attention_layers.0",
        r"CODANO.attention_layers.0 is a Identity, where the preset expects CODALayer",
    ),
    "UNO": ("fno_blocks.2", r"UNO.fno_blocks.2 is a Identity, where the preset expects FNOBlocks"),
    "FNO": ("fno_blocks", r"FNO.fno_blocks is a Identity, where the preset expects FNOBlocks"),
    "UQNO": (
        "residual_model.fno_blocks",
        r"UQNO.residual_model \(names residual.\*\): .*FNO.fno_blocks is a Identity, where the preset expects",
    ),
}


@pytest.mark.parametrize("family", sorted(DAMAGE))
def test_a_changed_tree_fails_under_its_own_preset(family):
    model = _build(family)
    path, message = DAMAGE[family]
    _replace(model, path, nn.Identity())
    with pytest.raises(PresetError, match=message):
        HookedOperator(model)


@pytest.mark.parametrize(
    "family,attr,message",
    [
        (
            "GINO",
            "fno_blocks.n_layers",
            r"GINO.fno_blocks.convs holds 2 modules but GINO.fno_blocks.n_layers is 3",
        ),
        (
            "FNOGNO",
            "fno_blocks.n_layers",
            r"FNOGNO.fno_blocks.convs holds 2 modules but FNOGNO.fno_blocks.n_layers is 3",
        ),
        ("CODANO", "n_layers", r"CODANO.attention_layers holds 1 modules but CODANO.n_layers is 3"),
        ("UNO", "n_layers", r"UNO.fno_blocks holds 3 modules but UNO.n_layers is 3|holds 3 modules"),
    ],
)
def test_a_layer_count_that_disagrees_with_the_blocks_fails(family, attr, message):
    model = _build(family)
    owner, _, name = attr.rpartition(".")
    target = model.get_submodule(owner) if owner else model
    setattr(target, name, 3 if getattr(target, name) != 3 else 2)
    with pytest.raises(PresetError, match=message):
        HookedOperator(model)
