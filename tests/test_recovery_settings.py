"""The recovery experiments' library side (``saeno.recovery``): settings, the tracked loop, grid sweeps."""

from __future__ import annotations

import math

import pytest
import torch

from saeno import synthetic as S
from saeno.errors import SaenoError, ShapeError
from saeno.recovery import (
    TrainOptions,
    build_model,
    model_atoms,
    rel_error,
    resolution_sweep,
    steps_to,
    train_tracked,
)
from saeno.recovery.evaluation import fourier_resample
from saeno.recovery.settings import SETTINGS, get_setting
from saeno.sae import SAEFNO, FlatSAE


def test_planted_atoms_recovered_in_the_easy_setting():
    # x = D c with random incoherent atoms, 2 of 16 active per sample; the library's pointwise SAE with a
    # 2x overcomplete dictionary (every planted atom must find its own learned atom); chance is ~0.25
    easy = get_setting("euclid-noise").with_(n_samples=2048, n_test=64)
    train = easy.data(0)
    torch.manual_seed(0)
    sae = build_model("SAE", easy, p=32)
    out = train_tracked(
        sae, train.fields(64), train.dictionary(64), TrainOptions(600, 256, 1e-3, 100), shift=False, seed=0
    )
    assert out["curve"]["mean_cos"][-1] >= 0.9
    # the curve starts from a random dictionary, so the check measures learning, not the initialisation
    assert out["curve"]["mean_cos"][0] < 0.5


def test_sae_fno_error_at_twice_the_resolution_within_1_2x():
    conv = get_setting("conv-smooth").with_(n_samples=256, n_test=32)
    train = conv.data(0)
    torch.manual_seed(0)
    fno = build_model("SAE-FNO", conv)
    assert isinstance(fno, SAEFNO) and fno.modes == 13
    train_tracked(fno, train.fields(64), None, TrainOptions(60, 32, 1e-2, 50), shift=True, seed=0)
    res = resolution_sweep(fno, conv.data(0, "test"), 64)
    e1, e2 = res["64"]["rel_error"], res["128"]["rel_error"]
    assert e1 < 1.0  # it reconstructs something at the training grid
    assert e2 <= 1.2 * e1


def test_flat_sae_is_not_applicable_off_its_grid():
    test = get_setting("conv-smooth").with_(n_test=8).data(0, "test")
    flat = FlatSAE(1, 8, grid=(64,), sparsity={"type": "topk", "k": 2})
    sweep = resolution_sweep(flat, test, 64)
    assert isinstance(sweep["64"]["rel_error"], float)
    for m in ("32", "128", "256"):
        assert sweep[m]["rel_error"] == "n/a"
        assert sweep[m]["error"].startswith(ShapeError.__name__)
    # the resampling ablation runs it on its own grid, so it runs everywhere
    resampled = resolution_sweep(flat, test, 64, resampled=True)
    assert all(isinstance(v["rel_error"], float) for v in resampled.values())


def test_fourier_resample_is_exact_for_band_limited_fields():
    data = get_setting("conv-smooth").with_(n_test=4).data(0, "test")  # frequencies <= 12
    x64, x32, x128 = data.fields(64), data.fields(32), data.fields(128)
    torch.testing.assert_close(fourier_resample(x64, 32), x32, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fourier_resample(x64, 128), x128, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fourier_resample(x128, 64), x64, atol=1e-4, rtol=1e-4)


def test_steps_to_threshold():
    curve = {"step": [0, 10, 20], "mean_cos": [0.2, 0.85, 0.95]}
    assert steps_to(curve, 0.8) == 10
    assert steps_to(curve, 0.9) == 20
    assert steps_to(curve, 0.99) == float("inf")


def test_settings_use_the_same_atoms_at_every_resolution_and_split():
    setting = get_setting("conv-smooth").with_(n_samples=4, n_test=4)
    train, test = setting.data(1), setting.data(1, "test")
    d64, d128 = train.dictionary(64), test.dictionary(128)
    torch.testing.assert_close(d128[..., ::2], d64)
    assert S.match_atoms(d64, d64).mean_cos == pytest.approx(1.0)
    assert not torch.equal(train.fields(64), test.fields(64))  # independent codes
    # a shifted split keeps the atoms and changes the amplitudes as asked
    shifted = setting.data(1, "shift", amplitude=(1.5, 3.0))
    assert shifted.codes.amplitude.min() >= 1.5
    torch.testing.assert_close(shifted.dictionary(64), d64)


def test_every_model_kind_builds_and_reconstructs_on_every_setting():
    for name, setting in SETTINGS.items():
        x = setting.with_(n_samples=4).data(0).fields(setting.n)
        for kind in ("SAE", "FlatSAE", "SAE-FNO", "SAE-CNN"):
            model = build_model(kind, setting, modes=5, kernel=5)
            assert math.isfinite(rel_error(model, x)), (name, kind)
            atoms = model_atoms(model, setting.n)
            if kind == "SAE" and not setting.euclidean:
                assert atoms is None  # a pointwise SAE on a field has no spatial atoms
            else:
                assert atoms.shape[0] == setting.p and atoms.shape[-1] == setting.n


def test_unknown_names_raise_saeno_errors():
    with pytest.raises(SaenoError, match="conv-smooth"):
        get_setting("conv-smoth")
    with pytest.raises(SaenoError, match="SAE-CNN"):
        build_model("CNN", get_setting("conv-smooth"))
    with pytest.raises(SaenoError, match="split"):
        get_setting("conv-smooth").data(0, "validation")
