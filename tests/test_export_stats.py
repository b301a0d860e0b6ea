"""Per-concept statistics on hand-made codes, against values worked out by hand."""

import math

import numpy as np
import pytest
import torch

from saeno.export import stats as S


def test_activation_is_rms_over_grid_and_abs_for_flat_codes():
    z = torch.zeros(2, 2, 4)
    z[0, 0] = torch.tensor([3.0, 4.0, 0.0, 0.0])  # rms = sqrt(25 / 4) = 2.5
    z[1, 1] = torch.tensor([2.0, 2.0, 2.0, 2.0])  # rms = 2
    acts = S.concept_activations(z)
    assert torch.allclose(acts, torch.tensor([[2.5, 0.0], [0.0, 2.0]]))
    flat = torch.tensor([[-1.5, 0.0, 2.0]])
    assert torch.equal(S.concept_activations(flat), torch.tensor([[1.5, 0.0, 2.0]]))
    # a 2D grid gives the same value as its flattening
    z2 = z.reshape(2, 2, 2, 2)
    assert torch.allclose(S.concept_activations(z2), acts)


def test_nonzero_points_counts_over_batch_and_grid():
    z = torch.zeros(2, 3, 2, 2)
    z[0, 0, 0, 0] = 1.0
    z[1, 0, 1, 1] = -2.0
    z[1, 2] = 5.0
    assert S.nonzero_points(z).tolist() == [2, 0, 4]
    assert S.nonzero_points(torch.ones(2, 3)) is None


def test_summarize_densities_means_rank_and_histogram():
    acts = np.array([[0.0, 1.0, 0.0], [2.0, 3.0, 0.0], [0.0, 0.0, 0.0], [4.0, 0.0, 0.0]])
    st = S.summarize(acts, nonzero=np.array([6, 3, 0]), n_points=5, n_bins=4)
    assert st.sample_density.tolist() == [0.5, 0.5, 0.0]
    assert st.mean_activation.tolist() == [3.0, 2.0, 0.0]  # mean over active samples only
    assert st.max_activation.tolist() == [4.0, 3.0, 0.0]
    assert st.point_density.tolist() == [6 / 20, 3 / 20, 0.0]
    # mean over all samples: 1.5, 1.0, 0 -> concept 0 first, the dead concept last
    assert st.rank.tolist() == [0, 1, 2]
    # concept 0: active values 2 and 4 in bins of width 1 over [0, 4]
    assert st.hist_edges[0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert st.hist_counts[0].tolist() == [0, 0, 1, 1]
    assert st.hist_counts[2].sum() == 0


def test_summarize_needs_points_with_counts():
    with pytest.raises(ValueError):
        S.summarize(np.ones((2, 2)), nonzero=np.ones(2))


def test_top_examples_sorted_active_only_ties_by_row():
    acts = np.array([0.5, 0.0, 2.0, 0.5, 1.0])
    assert S.top_examples(acts, 3) == [(2, 2.0), (4, 1.0), (0, 0.5)]
    assert S.top_examples(acts, 10) == [(2, 2.0), (4, 1.0), (0, 0.5), (3, 0.5)]
    assert S.top_examples(np.zeros(4), 2) == []


def test_quantile_examples_pick_nearest_active_sample():
    acts = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0])  # active values 1..5, median 3 at row 3
    got = S.quantile_examples(acts, quantiles=(0.0, 0.5, 1.0))
    assert got == [(0.0, 1, 1.0), (0.5, 3, 3.0), (1.0, 5, 5.0)]
    assert S.quantile_examples(np.zeros(3)) == []


def test_correlations_find_partners_and_skip_constant_columns():
    rng = np.random.default_rng(0)
    base = rng.normal(size=50)
    other = rng.normal(size=50)
    acts = np.stack([base, 2 * base + 1, -base, other, np.zeros(50)], axis=1)
    corr = S.correlation_matrix(acts)
    assert corr[0, 1] == pytest.approx(1.0)
    assert corr[0, 2] == pytest.approx(-1.0)
    assert np.isnan(corr[4]).all()
    assert corr[0, 3] == pytest.approx(np.corrcoef(base, other)[0, 1])
    top = S.top_correlated(acts, [0, 3, 4], n=2, chunk=2)
    assert [j for j, _ in top[0]] == [1, 2]
    assert top[0][0][1] == pytest.approx(1.0) and top[0][1][1] == pytest.approx(-1.0)
    assert 4 not in [j for j, _ in top[3]]
    assert top[4] == []


def test_param_enrichment_against_numpy():
    acts = np.array([0.0, 1.0, 2.0, 3.0])
    nu = np.array([10.0, 20.0, 30.0, 50.0])
    got = S.param_enrichment(acts, [3, 2], {"nu": nu, "const": np.ones(4), "short": np.ones(3)})
    assert got["nu"]["top_mean"] == pytest.approx(40.0)
    assert got["nu"]["overall_mean"] == pytest.approx(27.5)
    assert got["nu"]["overall_std"] == pytest.approx(np.std(nu))
    assert got["nu"]["correlation"] == pytest.approx(np.corrcoef(acts, nu)[0, 1])
    assert got["const"]["correlation"] is None
    assert "short" not in got  # not aligned with the samples


def test_label_enrichment_shares_and_enriched_value():
    labels = {"family": ["a", "b", "b", "b"]}
    got = S.label_enrichment([0, 1], labels)["family"]
    assert got["overall"] == {"a": 0.25, "b": 0.75}
    assert got["top"] == {"a": 0.5, "b": 0.5}
    assert got["enriched"] == "a"
    same = S.label_enrichment([1, 2, 3, 0], labels)["family"]
    assert same["enriched"] is None
    assert math.isclose(sum(same["top"].values()), 1.0)
