"""Dictionary stability: planted permutations, sign flips and shifts are recovered; chance is chance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saeno.sae.base import ConfigError
from saeno.sae.stability import (
    chance_matched_cos,
    code_correlation,
    compare_dictionaries,
    expected_max_abs_cos,
    match_atoms,
    rotated_null_cos,
)


def _bumps(n: int, c: int, grid: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """n localised atoms: a periodic Gaussian bump at a random centre times random channel weights."""
    axes = [torch.arange(g, dtype=torch.float64) for g in grid]
    mesh = torch.meshgrid(*axes, indexing="ij")
    out = []
    for _ in range(n):
        r2 = torch.zeros(grid, dtype=torch.float64)
        for x, g in zip(mesh, grid):
            c0 = float(torch.randint(g, (1,), generator=gen))
            d = torch.remainder(x - c0 + g / 2, g) - g / 2
            r2 = r2 + d**2
        bump = torch.exp(-r2 / (2 * 2.0**2))
        w = torch.randn(c, generator=gen, dtype=torch.float64)
        out.append(w.view(c, *([1] * len(grid))) * bump)
    return torch.stack(out)


@pytest.mark.parametrize("grid", [(24,), (12, 10)])
def test_shifted_permuted_copy_is_fully_reproduced(grid):
    gen = torch.Generator().manual_seed(0)
    n, c, nsamp = 12, 5, 6
    a = _bumps(n, c, grid, gen)
    codes_a = torch.relu(torch.randn(nsamp, n, *grid, generator=gen, dtype=torch.float64))
    perm = torch.randperm(n, generator=gen)
    shifts = [tuple(int(torch.randint(g, (1,), generator=gen)) for g in grid) for _ in range(n)]
    dims = tuple(range(1, 1 + len(grid)))
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).double()
    b = torch.stack([sign[j] * torch.roll(a[perm[j]], shifts[j], dims=dims) for j in range(n)])
    cdims = tuple(range(1, 1 + len(grid)))
    codes_b = torch.stack(
        [torch.roll(codes_a[:, perm[j]], tuple(-s for s in shifts[j]), dims=cdims) for j in range(n)], 1
    )

    m = match_atoms(a, b, shifts=True)
    # atom perm[j] of a was matched with atom j of b, at shift shifts[j]
    got = dict(zip(m.rows.tolist(), m.cols.tolist()))
    assert all(got[int(perm[j])] == j for j in range(n))
    np.testing.assert_allclose(m.cos, 1.0, atol=1e-9)
    for col, s in zip(m.cols, m.shifts):
        assert tuple(int(v) for v in s) == tuple(v % g for v, g in zip(shifts[col], grid))
    score = compare_dictionaries(a, b, codes_a, codes_b, shifts=True)
    assert score.atom_cos == pytest.approx(1.0, abs=1e-9)
    assert score.reproduced == 1.0
    assert score.code_corr == pytest.approx(1.0, abs=1e-9)

    # without shifts the same copy is under-counted: localised atoms moved elsewhere barely overlap
    plain = compare_dictionaries(a, b, codes_a, codes_b, shifts=False)
    assert plain.reproduced < 0.5
    assert plain.code_corr < 0.5


def test_permuted_sign_flipped_vectors_are_reproduced():
    gen = torch.Generator().manual_seed(1)
    n, c, rows = 40, 16, 300
    a = torch.randn(n, c, generator=gen, dtype=torch.float64)
    codes_a = torch.relu(torch.randn(rows, n, generator=gen, dtype=torch.float64))
    perm = torch.randperm(n, generator=gen)
    b = -3.0 * a[perm]
    codes_b = codes_a[:, perm]
    score = compare_dictionaries(a, b, codes_a, codes_b)
    assert score.atom_cos == pytest.approx(1.0, abs=1e-9)
    assert score.reproduced == 1.0
    assert score.code_corr == pytest.approx(1.0, abs=1e-9)
    m = match_atoms(a, b)
    assert np.array_equal(perm[m.cols].numpy(), m.rows)


@pytest.mark.parametrize("dim,n", [(32, 64), (200, 30)])
def test_independent_dictionaries_score_at_chance(dim, n):
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    b = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    score = compare_dictionaries(a, b, threshold=0.9)
    bound = expected_max_abs_cos(dim, n)
    # a one-to-one matching reaches a little less than every atom's best partner, far above a random pair
    assert 0.8 * bound < score.atom_cos < 1.02 * bound
    assert score.atom_cos > 2.0 * np.sqrt(2 / (np.pi * dim))
    assert score.reproduced == 0.0
    assert score.atom_cos == pytest.approx(chance_matched_cos(dim, n, trials=4, seed=5), rel=0.15)


def test_expected_max_abs_cos_against_sampling():
    gen = torch.Generator().manual_seed(3)
    dim, n = 50, 20
    u = torch.nn.functional.normalize(torch.randn(4000, dim, generator=gen, dtype=torch.float64), dim=1)
    v = torch.nn.functional.normalize(torch.randn(n, dim, generator=gen, dtype=torch.float64), dim=1)
    sampled = float((u @ v.T).abs().max(dim=1).values.mean())
    assert expected_max_abs_cos(dim, n) == pytest.approx(sampled, rel=0.05)


def test_rotated_null_is_far_below_a_copy():
    gen = torch.Generator().manual_seed(4)
    a = _bumps(16, 8, (16, 16), gen)
    assert compare_dictionaries(a, a.clone(), shifts=True).atom_cos == pytest.approx(1.0)
    null = rotated_null_cos(a, a.clone(), shifts=True, trials=2)
    assert null < 0.8
    # the null keeps smoothness and shifts, so it sits above the unshifted null
    assert null > rotated_null_cos(a, a.clone(), shifts=False, trials=2)


def test_code_maps_of_dead_concepts_are_nan():
    a = torch.eye(3, dtype=torch.float64)
    m = match_atoms(a, a)
    codes = torch.rand(10, 3, dtype=torch.float64)
    codes[:, 1] = 0.0
    corr = code_correlation(codes, codes, m)
    assert np.isnan(corr[list(m.rows).index(1)])
    assert np.nanmean(corr) == pytest.approx(1.0)


def test_bad_inputs_name_the_fix():
    with pytest.raises(ConfigError, match="same grid"):
        match_atoms(torch.zeros(3, 2, 8), torch.zeros(3, 2, 9))
    with pytest.raises(ConfigError, match="shifts=True"):
        match_atoms(torch.zeros(3, 2), torch.zeros(3, 2), shifts=True)
    with pytest.raises(ConfigError, match="threshold"):
        compare_dictionaries(torch.eye(2), torch.eye(2), threshold=0.0)
