"""explain_concepts: a planted concept is explained by its probe on held-out samples, a random-init SAE
is not explained beyond what the null allows, halves never share a sample, the scores match direct
computations, and bad input gives clean errors."""

import numpy as np
import pytest
import torch

import saeno
from array_store import ArrayStore
from saeno.explain import ExplainError, ProbeError, explain_concepts, split_halves
from saeno.explain import scores as SC
from saeno.explain.result import load_explanations

DARCY_CARD = {
    "name": "darcy",
    "pde": "darcy",
    "domain": [[0.0, 1.0], [0.0, 1.0]],
    "grid": "vertices (i/n, j/n)",
    "parameters": {"high": 12.0, "low": 3.0},
}


class FakeStore(ArrayStore):
    """The parts of ActivationStore explain_concepts uses, on numpy arrays."""

    def __init__(self, arrays, card=DARCY_CARD, hook="h"):
        self.arrays = arrays
        self.hooks = [hook]
        self.n_rows = arrays[hook].shape[0]
        self.attrs = {"dataset": {"name": card.get("name"), "card": card}}
        self.fingerprint = None


class LinearSAE(torch.nn.Module):
    """Pointwise z = relu(W a + b): a hand-built dictionary whose codes we control."""

    view = "points"

    def __init__(self, W, b):
        super().__init__()
        self.W = torch.nn.Parameter(torch.as_tensor(W, dtype=torch.float32))
        self.b = torch.nn.Parameter(torch.as_tensor(b, dtype=torch.float32))
        self.n_concepts, self.in_channels = self.W.shape

    def encode(self, a):
        return torch.relu(torch.einsum("pc,bchw->bphw", self.W, a) + self.b.view(1, -1, 1, 1))

    def decode(self, z):
        return torch.einsum("pc,bphw->bchw", self.W, z)


def _phases(n, grid, rng):
    """Random two-phase coefficient fields (smoothed noise thresholded)."""
    from scipy.ndimage import gaussian_filter

    g = np.stack([gaussian_filter(rng.normal(size=grid), 2.0, mode="wrap") for _ in range(n)])
    return np.where(g > 0, 12.0, 3.0)[:, None]


def _planted_store(n=40, grid=(24, 24), seed=0):
    rng = np.random.default_rng(seed)
    i = np.arange(grid[0]) / grid[0]
    X, Y = np.meshgrid(i, i, indexing="ij")
    dist = np.minimum(np.minimum(X, 1 - X), np.minimum(Y, 1 - Y))
    x = _phases(n, grid, rng)
    y = (dist[None, None] * (1 + 0.2 * rng.normal(size=(n, 1, 1, 1)))).astype("f4")
    # channel 0: the boundary distance; 1: the high phase; 2-3: noise
    acts = np.concatenate(
        [np.broadcast_to(dist, (n, 1, *grid)), (x > 7.5).astype("f4"), rng.normal(size=(n, 2, *grid))], axis=1
    ).astype("f4")
    return FakeStore({"h": acts, "x": x.astype("f4"), "y": y, "y_pred": y + 0.01})


def test_planted_concepts_are_explained_by_their_probes_held_out():
    store = _planted_store()
    W = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0.3], [0, 0, -0.4, 1.0]])
    sae = LinearSAE(W, [0.0, 0.0, 0.0, 0.0])
    null = LinearSAE(np.random.default_rng(5).normal(size=(8, 4)) * [0.05, 0.05, 1, 1], np.zeros(8))
    ex = explain_concepts(sae, store, n_rows=40, null_sae=null, progress=False)
    c0, c1, c2, c3 = ex.concepts
    assert c0.probe == "boundary_distance" and c0.signs == [1] and c0.explained
    assert c0.rho >= 0.95 and c0.null_shuffle < 0.95 and c0.null_random < c0.rho
    assert c1.probe in ("input", "phase_high", "phase_low", "interface_distance")  # tied for two phases
    assert c1.explained and c1.rho >= 0.8
    assert c1.auroc >= 0.95
    assert not c2.explained and not c3.explained  # noise channels
    assert ex.summary.n_live == 4 and ex.summary.n_explained == 2
    assert ex.summary.share_explained == 0.5
    assert ex.summary.probe_counts[c0.probe] == 1
    # the held-out rho equals a direct Spearman on the held-out samples
    rows = np.array(ex.protocol["rows_heldout"])
    direct = SC.spearman(
        store.arrays["h"][rows, 0].ravel(),
        np.broadcast_to(store.arrays["h"][0, 0], (len(rows), 24, 24)).ravel(),
    )
    assert c0.rho == pytest.approx(direct, abs=1e-9)


def test_a_sample_specific_concept_beats_its_shuffled_null_and_invariant_ones_use_shifts():
    store = _planted_store()
    sae = LinearSAE([[0.0, 1.0, 0, 0]], [0.0])
    ex = explain_concepts(sae, store, n_rows=40, random_null=False, progress=False)
    c = ex.concepts[0]
    assert c.null_shuffle < 0.3 < c.rho  # other samples' phases do not match this one's
    assert "boundary_distance" in ex.protocol["invariant_probes"]
    assert "phase_high" not in ex.protocol["invariant_probes"]


def test_halves_are_disjoint_and_cover_the_rows():
    for n in (2, 7, 100):
        rows = np.arange(3, 3 + n)
        for seed in range(5):
            a, b = split_halves(rows, seed)
            assert not set(a) & set(b)
            assert sorted(set(a) | set(b)) == list(rows)
            assert abs(len(a) - len(b)) <= 1
    store = _planted_store()
    ex = explain_concepts(
        LinearSAE([[1.0, 0, 0, 0]], [0.0]), store, rows=range(0, 40, 2), random_null=False, progress=False
    )
    sel, held = ex.protocol["rows_select"], ex.protocol["rows_heldout"]
    assert not set(sel) & set(held) and sorted(sel + held) == list(range(0, 40, 2))


def test_rare_concepts_are_not_live():
    store = _planted_store(n=20)
    sae = LinearSAE([[1.0, 0, 0, 0], [0, 0, 0, 0]], [0.0, -1.0])  # concept 1 never fires
    ex = explain_concepts(sae, store, n_rows=20, random_null=False, progress=False)
    assert ex.concepts[1].status == "rare" and not ex.concepts[1].live
    assert ex.summary.n_live == 1


def test_conjunction_only_when_it_beats_the_best_single_probe_held_out():
    from saeno.explain.fields import signed_distance

    store = _planted_store()
    h, x = store.arrays["h"], store.arrays["x"]
    n, grid = h.shape[0], h.shape[2:]
    d = h[:, 0]  # boundary distance
    sd = np.stack([signed_distance(x[i, 0] > 7.5, [1 / grid[0]] * 2) for i in range(n)])
    # a concept that is high only far from the wall AND deep in the high phase: the product of the
    # two fields' quantiles (over all points)
    code = (SC.ranks(d.ravel()) * SC.ranks(sd.ravel())).reshape(d.shape) / d.size**2
    store.arrays["h"] = np.concatenate([h, code[:, None].astype("f4")], axis=1)
    sae = LinearSAE([[0, 0, 0, 0, 1.0], [1.0, 0, 0, 0, 0]], [0.0, 0.0])
    ex = explain_concepts(sae, store, n_rows=40, random_null=False, progress=False)
    both, single = ex.concepts
    assert set(both.probes) == {"boundary_distance", "interface_distance"}, both.alternatives
    best_single = max(a["rho"] for a in both.alternatives if " & " not in a["probe"])
    assert both.rho > best_single and both.explained
    assert both.probe == " & ".join(both.probes)
    assert len(single.probes) == 1  # the plain boundary distance is not made a conjunction


def test_errors_name_the_problem():
    store = _planted_store(n=10)
    sae = LinearSAE([[1.0, 0, 0, 0]], [0.0])
    with pytest.raises(ProbeError, match="unknown probe.*'nope'.*available for darcy: input"):
        explain_concepts(sae, store, probes=["nope"], progress=False)
    with pytest.raises(saeno.errors.ShapeError, match="reads 3 channels"):
        explain_concepts(LinearSAE(np.ones((1, 3)), [0.0]), store, progress=False)
    with pytest.raises(ExplainError, match="config"):
        explain_concepts(sae, store, progress=False)  # no from_config: random null impossible
    del store.arrays["y"], store.arrays["y_pred"]
    ex = explain_concepts(sae, store, random_null=False, progress=False)
    assert "targets 'y'" in ex.skipped["target_grad"] and "y_pred" in ex.skipped["error"]
    assert "input" in ex.probes and "target" not in ex.probes


def test_random_init_sae_on_darcy_activations_is_not_explained_beyond_the_null(tmp_path, one_thread_seeded):
    """A random-init SAE-FNO judged against another random init: at most what a 99% null allows."""
    pytest.importorskip("neuralop")
    from saeno.hooking.examples import example_model

    # the seeded example FNO on two-phase Darcy coefficient fields (no zoo training in tests)
    model = example_model("example-fno2d")
    hooked = saeno.HookedOperator(model)
    rng = np.random.default_rng(0)
    x = torch.as_tensor(_phases(40, (16, 16), rng), dtype=torch.float32)
    store = saeno.capture(
        hooked, x, "blocks.1.hook_out", tmp_path / "s.zarr", progress=False, dataset_card=DARCY_CARD
    )
    ch = store.hook_info("blocks.1.hook_out")["shape"][0]
    mean, var = store.stats("blocks.1.hook_out")
    torch.manual_seed(1)
    rand = saeno.SAEFNO(ch, 32, ndim=2, modes=4, sparsity={"type": "topk", "k": 8, "group": "concept"})
    rand.set_normalization(mean, np.sqrt(var) + 1e-6)
    ex = explain_concepts(rand, store, n_rows=40, seed=3, progress=False)
    assert ex.random_null is not None and ex.random_null["n_live"] > 0
    # 1% false positives per concept; allow a binomial tail (P(X >= 3 | n = 32, p = 0.01) < 0.5%)
    assert ex.summary.n_explained <= 2, [c.describe() for c in ex.concepts if c.explained]
    path = ex.save(tmp_path / "out")
    back = load_explanations(path)
    assert back.summary == ex.summary and back.concepts[0] == ex.concepts[0]
