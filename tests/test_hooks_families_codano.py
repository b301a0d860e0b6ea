"""CODANO's options checked against the hand-written forward: the class token, positional encodings,
static channels and horizontal skips (alone, together, with domain padding).

As in ``test_families``: every captured field equals the recomputation from CODANO's own modules,
capture-only hooks leave the output bit-identical, replacing a hook point by itself changes nothing
and by zeros gives the hand-computed forward with that field zeroed.
"""

from __future__ import annotations

import pytest
import torch

import family_hand as hand
from family_hand import quiet
from test_families import check_family

neuralop_models = pytest.importorskip("neuralop.models")

pytestmark = pytest.mark.usefixtures("one_thread_seeded")

IDS = ["u", "v", "p"]


def _codano(n_layers=2, padding=None, **kw):
    return quiet(
        neuralop_models.CODANO,
        n_layers=n_layers,
        n_modes=[[4, 4]] * n_layers,
        hidden_variable_codimension=2,
        lifting_channels=4,
        projection_channels=4,
        output_variable_codimension=1,
        per_layer_scaling_factors=[[1, 1]] * n_layers,
        n_heads=[1] * n_layers,
        attention_scaling_factors=[1] * n_layers,
        domain_padding=padding,
        **kw,
    )


CASES = {
    "cls-token": dict(enable_cls_token=True),
    "positional-encoding": dict(
        use_positional_encoding=True,
        positional_encoding_dim=2,
        positional_encoding_modes=[4, 4],
        variable_ids=IDS,
    ),
    "static-channels": dict(static_channel_dim=1),
    "horizontal-skips-padded": dict(
        n_layers=3, padding=0.25, use_horizontal_skip_connection=True, horizontal_skips_map={2: 0}
    ),
    "everything": dict(
        n_layers=3,
        padding=0.25,
        enable_cls_token=True,
        use_positional_encoding=True,
        positional_encoding_dim=2,
        positional_encoding_modes=[4, 4],
        variable_ids=IDS,
        static_channel_dim=1,
        use_horizontal_skip_connection=True,
        horizontal_skips_map={1: 0, 2: 0},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_codano_option_fields_match_hand_forward(case):
    options = dict(CASES[case])
    model = _codano(**options)
    x = torch.randn(2, 3, 16, 16)
    kwargs = {}
    if options.get("use_positional_encoding"):
        kwargs["input_variable_ids"] = IDS
    if options.get("static_channel_dim"):
        kwargs["static_channel"] = torch.randn(2, options["static_channel_dim"], 16, 16)
    last = options.get("n_layers", 2) - 1
    zero = [
        "lifting.hook_out",
        "blocks.0.hook_out",  # feeds the horizontal skips, where there are some
        f"blocks.{last}.hook_in",
        f"blocks.{last}.attention.hook_out",
        f"blocks.{last}.mixer.hook_out",
        "projection.hook_in",
    ]
    hooked, cache = check_family(
        model, lambda tap: hand.codano(model, x, tap, **kwargs), (x,), kwargs, zero_names=zero
    )
    assert hooked.preset["name"] == "neuralop-codano"
    tokens = 3 + bool(options.get("enable_cls_token"))  # the class token is one more token of 2 channels
    assert cache["blocks.0.hook_in"].shape == (2, tokens * 2, 16, 16)
    assert cache["projection.hook_in"].shape == (2, tokens * 2, 16, 16)
    assert cache["hook_out"].shape == (2, 3, 16, 16)
