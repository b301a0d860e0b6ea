"""The claims' metrics in ``saeno.synthetic_metrics``: matched lags, usage evenness, localisation."""

from __future__ import annotations

import numpy as np
import pytest

from saeno import synthetic as S
from saeno.errors import ShapeError


def _atoms(p=4, n=32, seed=0):
    return S.make_atoms("noise", p, base=n, seed=seed).render(n)


@pytest.mark.parametrize("lag", [0, 3, 17])
def test_best_lags_undo_a_planted_roll(lag):
    true = _atoms()
    learned = np.roll(true[[2, 0, 3, 1]], -lag, axis=-1)  # learned j = true k rolled back by lag
    rec = S.match_atoms(learned, true, shift_invariant=True)
    np.testing.assert_array_equal(rec.assignment, [1, 3, 0, 2])
    lags = S.best_lags(learned, true, rec.assignment)
    np.testing.assert_array_equal(lags, [lag] * 4)
    for k, j in enumerate(rec.assignment):  # the definition: roll(learned_j, lag) ~ true_k
        np.testing.assert_allclose(np.roll(learned[j], lags[k], axis=-1), true[k])


def test_usage_evenness_by_hand():
    even = np.eye(4, dtype=bool).repeat(5, axis=0)  # every concept fires in 5 of 20 samples
    assert S.usage_evenness(even) == pytest.approx({"evenness": 1.0, "never": 0.0, "max_share": 0.25})
    one = np.zeros((10, 4), dtype=bool)
    one[:, 0] = True
    assert S.usage_evenness(one) == pytest.approx({"evenness": 0.25, "never": 0.75, "max_share": 1.0})
    two = np.zeros((10, 4), dtype=bool)
    two[:, 0], two[:5, 1] = True, True  # shares 2/3, 1/3
    h = -(2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3))
    assert S.usage_evenness(two)["evenness"] == pytest.approx(np.exp(h) / 4)
    assert S.usage_evenness(np.zeros((3, 4), dtype=bool))["evenness"] == 0.0
    with pytest.raises(ShapeError):
        S.usage_evenness(np.zeros(4, dtype=bool))


def _planted(n=32, lag=2):
    sample = np.array([0, 0, 1, 1])
    concept = np.array([0, 1, 0, 1])
    position = np.array([5, 20, 9, 30])
    assignment = np.array([1, 0])  # true 0 -> learned 1, true 1 -> learned 0
    lags = np.array([lag, lag])
    return sample, concept, position, assignment, lags


def test_localisation_is_perfect_for_codes_at_the_expected_points_and_falls_off_them():
    n, lag = 32, 2
    sample, concept, position, assignment, lags = _planted(n, lag)
    codes = np.zeros((2, 2, n))
    for i, k, pos in zip(sample, concept, position):
        codes[i, assignment[k], (pos + lag) % n] = 1.0
    assert S.localisation_scores(codes, sample, concept, position, assignment, lags) == pytest.approx(
        {"recall": 1.0, "precision": 1.0, "f1": 1.0}
    )
    # one point off is within radius 1, three points off is not
    off1 = np.roll(codes, 1, axis=-1)
    assert S.localisation_scores(off1, sample, concept, position, assignment, lags)["f1"] == pytest.approx(
        1.0
    )
    off3 = np.roll(codes, 3, axis=-1)
    assert S.localisation_scores(off3, sample, concept, position, assignment, lags)["f1"] == 0.0
    # mass spread evenly over the domain: every occurrence is "found", but only 3 of 32 points are near
    flat = np.ones((2, 2, n))
    loc = S.localisation_scores(flat, sample, concept, position, assignment, lags)
    assert loc["recall"] == 1.0
    assert loc["precision"] == pytest.approx(3 / 32)
