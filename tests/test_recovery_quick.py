"""CI checks of the synthetic recovery benchmark (issue 7), on ``benchmarks/recovery.py --quick``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from saeno import synthetic as S
from saeno.errors import ShapeError
from saeno.sae import FlatSAE

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def recovery():
    spec = importlib.util.spec_from_file_location("saeno_bench_recovery", ROOT / "benchmarks" / "recovery.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick(recovery):
    return recovery.run(quick=True, workers=1, progress=False)


def test_planted_atoms_recovered_in_the_easy_setting(quick):
    # x = D c with random incoherent atoms, 2 of 16 active per sample; the library's pointwise SAE with a
    # 2x overcomplete dictionary (every planted atom must find its own learned atom)
    s = quick["summary"]["euclid-noise"]["SAE"]
    assert s["mean_cos"]["mean"] >= 0.9
    # the curve starts from a random dictionary, so the check measures learning, not the initialisation
    assert s["curve"]["mean"][0] < 0.5


def test_sae_fno_error_at_twice_the_resolution_within_1_2x(quick):
    res = quick["summary"]["conv-smooth"]["SAE-FNO"]["resolution"]
    e1, e2 = res["64"]["rel_error"]["mean"], res["128"]["rel_error"]["mean"]
    assert e1 < 1.0  # it reconstructs something at the training grid
    assert e2 <= 1.2 * e1


def test_flat_sae_is_not_applicable_off_its_grid(recovery):
    cfg = recovery.QUICK
    _, test = recovery.make_setting("conv-smooth", {**cfg, "n_test": 8}, seed=0)
    flat = FlatSAE(1, 8, grid=(64,), sparsity={"type": "topk", "k": 2})
    sweep = recovery.resolution_sweep(flat, test, 64)
    assert isinstance(sweep["64"]["rel_error"], float)
    for m in ("32", "128", "256"):
        assert sweep[m]["rel_error"] == "n/a"
        assert sweep[m]["error"].startswith(ShapeError.__name__)


def test_conv_sae_concepts_are_its_response_to_a_point_code(recovery):
    torch.manual_seed(0)
    conv = recovery.ConvSAE(4, 9, {"type": "topk", "k": 2, "group": "concept"})
    for n in (16, 32):
        z = torch.zeros(4, 4, n)
        z[torch.arange(4), torch.arange(4), 0] = 1.0
        with torch.no_grad():
            resp = conv.dec(z) - conv.dec.bias.view(1, -1, 1)
        torch.testing.assert_close(conv.concepts(n), resp)
    # fixed taps: on a grid twice as fine the same atom covers half the physical width
    a16, a32 = conv.concepts(16)[0, 0], conv.concepts(32)[0, 0]
    assert (a16 != 0).sum() == (a32 != 0).sum() == 9


def test_steps_to_threshold(recovery):
    curve = {"step": [0, 10, 20], "mean_cos": [0.2, 0.85, 0.95]}
    assert recovery.steps_to(curve, 0.8) == 10
    assert recovery.steps_to(curve, 0.9) == 20
    assert recovery.steps_to(curve, 0.99) == float("inf")


def test_settings_use_the_same_atoms_at_every_resolution(recovery):
    train, test = recovery.make_setting("conv-smooth", {**recovery.QUICK, "n_test": 4}, seed=1)
    assert train.atoms is test.atoms
    d64, d128 = train.dictionary(64), train.dictionary(128)
    torch.testing.assert_close(d128[..., ::2], d64)
    assert S.match_atoms(d64, d64).mean_cos == pytest.approx(1.0)
