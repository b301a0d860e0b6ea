"""Tests of the sparse functional generative model and the recovery metrics (saeno.synthetic)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from saeno import synthetic as S
from saeno.errors import SaenoError, ShapeError


def _l2sq(v: np.ndarray, ndim: int) -> np.ndarray:
    """Mean over the grid of the sum over channels of v^2, per atom."""
    return np.mean(v**2, axis=tuple(range(2, 2 + ndim))).sum(axis=1)


@pytest.mark.parametrize("ndim", [1, 2])
def test_fourier_atoms_unit_norm_band_limited_mean_zero(ndim):
    atoms = S.make_atoms("fourier", 4, ndim=ndim, channels=2, bandwidth=3, seed=3)
    v = atoms.render(32)
    assert v.shape == (4, 2) + (32,) * ndim
    np.testing.assert_allclose(_l2sq(v, ndim), 1.0, rtol=1e-10)
    spec = np.abs(np.fft.fftn(v, axes=tuple(range(2, 2 + ndim))))
    k = np.abs(np.fft.fftfreq(32, 1 / 32))
    kmax = k if ndim == 1 else np.maximum.outer(k, k)
    assert spec[..., kmax > 3].max() < 1e-9 * spec.max()
    assert np.abs(v.mean(axis=tuple(range(2, 2 + ndim)))).max() < 1e-12


def test_bump_atoms_match_closed_form():
    atoms = S.make_atoms("bump", 2, n_bumps=1, widths=(0.05, 0.05), seed=0)
    c = atoms.params["centres"][0, 0, 0]
    a = atoms.params["amps"][0, 0, 0]
    x = np.arange(256) / 256
    d = (x - c + 0.5) % 1.0 - 0.5
    raw = a * np.exp(-0.5 * (d / 0.05) ** 2)
    expected = raw / np.sqrt(np.mean(raw**2))
    np.testing.assert_allclose(atoms.render(256)[0, 0], expected, atol=1e-6)


def test_noise_atoms_unit_norm_on_base_and_cell_averages_when_coarser():
    atoms = S.make_atoms("noise", 3, base=64, seed=1)
    fine = atoms.render(64)
    np.testing.assert_allclose(_l2sq(fine, 1), 1.0, rtol=1e-10)
    coarse = atoms.render(16)
    np.testing.assert_allclose(coarse, fine.reshape(3, 1, 16, 4).mean(-1))
    finer = atoms.render(128)
    np.testing.assert_allclose(finer[..., ::2], fine)
    np.testing.assert_allclose(finer[..., 1::2], fine)


@pytest.mark.parametrize("family", ["fourier", "bump"])
def test_smooth_fields_are_point_values_of_one_function_at_every_resolution(family):
    data = S.generate(family, p=5, n_samples=20, s=2, n_locations=3, seed=2)
    x32, x128 = data.fields(32, dtype=torch.float64), data.fields(128, dtype=torch.float64)
    torch.testing.assert_close(x128[..., ::4], x32)


def test_noise_fields_are_cell_averages_across_resolutions():
    data = S.generate("noise", p=5, n_samples=20, s=2, n_locations=2, base=64, seed=2)
    x64, x16 = data.fields(64, dtype=torch.float64), data.fields(16, dtype=torch.float64)
    torch.testing.assert_close(x64.reshape(20, 1, 16, 4).mean(-1), x16)


@pytest.mark.parametrize("family", S.FAMILIES)
@pytest.mark.parametrize("ndim", [1, 2])
def test_shift_on_base_grid_is_a_roll(family, ndim):
    base = 32 if ndim == 1 else 16
    atoms = S.make_atoms(family, 3, ndim=ndim, base=base, seed=4)
    shifts = np.array([[5] * ndim, [0] * ndim, [base - 1] * ndim])
    shifted = atoms.render(base, index=np.array([0, 1, 2]), shifts=shifts)
    plain = atoms.render(base)
    for m in range(3):
        rolled = np.roll(plain[m], tuple(shifts[m]), axis=tuple(range(1, 1 + ndim)))
        np.testing.assert_allclose(shifted[m], rolled, atol=1e-10)


@pytest.mark.parametrize("family", ["noise", "fourier"])
def test_functional_fields_are_circular_convolutions_with_spike_trains(family):
    base = 64
    data = S.generate(family, p=4, n_samples=6, s=2, n_locations=3, base=base, seed=5)
    codes = data.codes
    z = np.zeros((codes.n_samples, codes.p, base))
    np.add.at(z, (codes.sample, codes.concept, codes.shift[:, 0]), codes.amplitude)
    kappa = data.atoms.render(base)[:, 0]  # (p, n)
    expected = np.real(np.fft.ifft(np.fft.fft(z, axis=-1) * np.fft.fft(kappa, axis=-1)[None], axis=-1)).sum(1)
    np.testing.assert_allclose(data.fields(base, dtype=torch.float64)[:, 0].numpy(), expected, atol=1e-10)


def test_euclidean_fields_are_d_times_c():
    data = S.generate("bump", p=6, n_samples=30, channels=2, s=3, euclidean=True, seed=7)
    d = data.dictionary(40, dtype=torch.float64).reshape(6, -1).numpy()
    x = data.fields(40, dtype=torch.float64).reshape(30, -1).numpy()
    np.testing.assert_allclose(x, data.codes.dense() @ d, atol=1e-12)


def test_codes_have_s_distinct_concepts_with_amplitudes_in_range():
    codes = S.sample_codes(50, 10, s=4, n_locations=2, amplitude=(0.5, 1.5), seed=0)
    assert codes.concept.size == 50 * 4 * 2
    for i in range(50):
        assert len(set(codes.concept[codes.sample == i])) == 4
    assert codes.amplitude.min() >= 0.5 and codes.amplitude.max() <= 1.5
    assert (codes.shift >= 0).all() and (codes.shift < S.DEFAULT_BASE[1]).all()
    assert np.count_nonzero(codes.dense(), axis=1).tolist() == [4] * 50
    signed = S.sample_codes(200, 10, s=2, signed=True, seed=1)
    assert (signed.amplitude < 0).any() and (signed.amplitude > 0).any()
    eu = S.sample_codes(20, 10, s=2, euclidean=True, ndim=2, seed=0)
    assert eu.shift.shape == (40, 2) and not eu.shift.any()


def test_noise_observations_are_added_with_given_std():
    data = S.generate("fourier", p=3, n_samples=200, s=1, noise_std=0.5, seed=0)
    clean = S.synthesize(data.atoms, data.codes, 64)
    resid = data.fields(64, dtype=torch.float64).numpy() - clean
    assert abs(resid.std() - 0.5) < 0.02


@pytest.mark.parametrize(
    "call",
    [
        lambda: S.make_atoms("wavelet", 3),
        lambda: S.make_atoms("fourier", 3, ndim=3),
        lambda: S.make_atoms("fourier", 0),
        lambda: S.make_atoms("bump", 3, widths=(0.1, 0.5)),
        lambda: S.make_atoms("noise", 3, base=64).render(48),
        lambda: S.make_atoms("fourier", 3, ndim=2).render((8, 8, 8)),
        lambda: S.sample_codes(10, 3, s=4),
        lambda: S.sample_codes(10, 3, s=1, n_locations=2, euclidean=True),
        lambda: S.synthesize(S.make_atoms("fourier", 3), S.sample_codes(4, 5, s=1), 16),
    ],
)
def test_bad_options_raise_saeno_errors(call):
    with pytest.raises(SaenoError):
        call()


# -- metrics ---------------------------------------------------------------------------------------------


def test_matching_undoes_permutation_sign_and_scale():
    rng = np.random.default_rng(0)
    true = rng.normal(size=(6, 2, 16))
    perm = rng.permutation(6)
    learned = true[perm] * rng.choice([-3.0, 0.2], size=(6, 1, 1))
    rec = S.match_atoms(torch.as_tensor(learned), true)
    np.testing.assert_allclose(rec.cos, 1.0, atol=1e-12)
    np.testing.assert_array_equal(perm[rec.assignment], np.arange(6))
    assert rec.max_sine < 1e-6


def test_matching_gives_known_cosines_and_sines():
    true = np.eye(3)
    angles = np.array([0.1, 0.4, 0.7])
    learned = np.zeros((3, 3))
    for i, a in enumerate(angles):  # atom i turned by angle a towards axis (i + 1) % 3
        learned[i, i], learned[i, (i + 1) % 3] = np.cos(a), np.sin(a)
    rec = S.match_atoms(learned, true)
    np.testing.assert_allclose(rec.cos, np.cos(angles))
    np.testing.assert_allclose(rec.sine, np.sin(angles))
    assert rec.min_cos == pytest.approx(np.cos(0.7))
    assert rec.mean_sine == pytest.approx(np.sin(angles).mean())


def test_hungarian_matching_is_the_best_one_to_one_assignment():
    rng = np.random.default_rng(1)
    true, learned = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    sim = S.similarity(learned, true)
    best = max(sum(sim[perm[j], j] for j in range(5)) for perm in itertools.permutations(range(5)))
    assert S.match_atoms(learned, true).cos.sum() == pytest.approx(best)


def test_fewer_learned_atoms_leave_true_atoms_unmatched():
    true = np.eye(4)
    rec = S.match_atoms(true[:2], true)
    assert sorted(rec.cos.tolist()) == [0.0, 0.0, 1.0, 1.0]
    assert (rec.assignment == -1).sum() == 2


@pytest.mark.parametrize("ndim", [1, 2])
def test_shift_invariant_matching_finds_rolled_atoms(ndim):
    atoms = S.make_atoms("bump", 4, ndim=ndim, seed=2).render(16)
    rolled = np.stack([np.roll(a, 3 + i, axis=tuple(range(1, 1 + ndim))) for i, a in enumerate(atoms)])
    assert S.match_atoms(rolled, atoms).mean_cos < 0.9
    np.testing.assert_allclose(S.match_atoms(rolled, atoms, shift_invariant=True).cos, 1.0, atol=1e-10)


def test_shift_invariant_similarity_equals_brute_force_over_shifts():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(3, 2, 12)), rng.normal(size=(4, 2, 12))
    ua, ub = S.unit_normalize(a).reshape(a.shape), S.unit_normalize(b).reshape(b.shape)
    brute = np.array(
        [
            [max(abs(np.sum(ua[i] * np.roll(ub[j], s, axis=-1))) for s in range(12)) for j in range(4)]
            for i in range(3)
        ]
    )
    np.testing.assert_allclose(S.similarity(a, b, shift_invariant=True), brute, atol=1e-12)


def test_coherence_known_values():
    assert S.coherence(np.eye(5)) == pytest.approx(0.0)
    two = np.array([[1.0, 0.0], [np.cos(np.pi / 3), np.sin(np.pi / 3)]])
    assert S.coherence(two) == pytest.approx(0.5)
    three = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]])  # |cos| pairs 0, 1/sqrt2, 1/sqrt2
    assert S.coherence(three) == pytest.approx(np.sqrt(2) / 3)


def test_metrics_reject_bad_shapes():
    with pytest.raises(ShapeError):
        S.match_atoms(np.ones((3, 1, 8)), np.ones((3, 1, 16)))
    with pytest.raises(ShapeError):
        S.coherence(np.ones((1, 4)))
    with pytest.raises(ShapeError):
        S.unit_normalize(np.array([[np.nan, 1.0]]))
