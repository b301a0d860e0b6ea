"""export_concepts: statistics against independent computations (hand-made SAE and store), and the
real pipeline end to end (tiny FNO -> capture -> SAEs trained a few steps -> export)."""

import json

import numpy as np
import pytest
import torch
import zarr
from torch.utils.data import Dataset

from array_store import ArrayStore
from saeno.errors import HookNameError, ModelMismatchError, SaenoError, ShapeError
from saeno.export.concepts import ExportError, export_concepts
from saeno.export.schema import load_concepts

# ------------------------------------------------------------------------------------------------
# hand-made pieces: a pointwise ReLU SAE whose codes we can compute with numpy, and a store in memory


class FakeSAE(torch.nn.Module):
    """z(x) = relu(W_e a(x) + b_e), a_hat(x) = W_d z(x): concepts are channel vectors."""

    def __init__(self, channels=3, p=6, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W_e = torch.nn.Parameter(torch.randn(p, channels, generator=g))
        self.W_d = torch.nn.Parameter(torch.randn(channels, p, generator=g))
        b = torch.randn(p, generator=g) - 1.0
        b[2] = -1e6  # concept 2 never fires
        self.b_e = torch.nn.Parameter(b)
        self.n_concepts, self.in_channels, self.ndim = p, channels, 2
        self.hook = None

    def encode(self, a):
        z = torch.einsum("pc,bchw->bphw", self.W_e, a)
        return torch.relu(z + self.b_e.view(1, -1, 1, 1))

    def decode(self, z):
        return torch.einsum("cp,bphw->bchw", self.W_d, z)

    def concepts(self, resolution=None):
        if resolution is None:
            return self.W_d.T.detach().clone()
        res = (resolution,) * 2 if isinstance(resolution, int) else tuple(resolution)
        out = torch.zeros(self.n_concepts, self.in_channels, *res)
        out[:, :, 0, 0] = self.W_d.T.detach()
        return out

    def config(self):
        return {"architecture": "fake"}


class FakeStore(ArrayStore):
    def __init__(self, n=12, channels=3, grid=(8, 8), seed=0, hooks=("h",)):
        rng = np.random.default_rng(seed)
        self.arrays = {h: rng.normal(size=(n, channels, *grid)).astype("f4") for h in hooks}
        for name in ("x", "y", "y_pred"):
            self.arrays[name] = rng.normal(size=(n, 1, *grid)).astype("f4")
        self.hooks = list(hooks)
        self.n_rows = n
        self.fingerprint = None
        self.params = {"nu": rng.uniform(size=n), "family": (np.arange(n) % 3 == 0).astype(float)}
        self.labels = {"family": ["<plain>", "odd & rare"]}


def _numpy_codes(sae, a):
    pre = np.einsum("pc,nchw->nphw", sae.W_e.detach().numpy(), a)
    return np.maximum(pre + sae.b_e.detach().numpy()[None, :, None, None], 0.0)


def test_statistics_match_an_independent_computation(tmp_path):
    sae, store = FakeSAE(), FakeStore()
    report = export_concepts(sae, store, tmp_path, n_top=3, max_concepts=2, progress=False)
    assert report == tmp_path / "report.html" and report.exists()
    doc = load_concepts(tmp_path)
    arrays = zarr.open_group(str(tmp_path / "arrays.zarr"), mode="r")

    z = _numpy_codes(sae, store.arrays["h"])
    acts = np.sqrt((z**2).mean(axis=(2, 3)))
    np.testing.assert_allclose(arrays["activations"][:], acts, rtol=1e-5, atol=1e-6)
    density = (acts > 0).mean(axis=0)
    point_density = (z != 0).mean(axis=(0, 2, 3))
    for k, c in enumerate(doc["concepts"]):
        assert c["stats"]["sample_density"] == pytest.approx(density[k])
        assert c["stats"]["point_density"] == pytest.approx(point_density[k])
        assert c["stats"]["dead"] == (density[k] == 0)
    assert doc["concepts"][2]["stats"]["dead"] and doc["concepts"][2]["page"] is None

    # the two concepts with the largest mean activation get figures, in that order
    expected = [int(k) for k in np.argsort(-acts.mean(axis=0), kind="stable")[:2]]
    assert doc["figures_for"] == expected
    assert list(arrays["exported"][:]) == expected
    for i, k in enumerate(expected):
        c = doc["concepts"][k]
        top = [int(r) for r in np.argsort(-acts[:, k], kind="stable")[:3]]
        assert [e["row"] for e in c["top_examples"]] == top
        assert list(arrays["top_rows"][i]) == top
        np.testing.assert_allclose(arrays["code_maps"][i], z[top, k], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(arrays["atom_vectors"][i], sae.W_d.detach().numpy()[:, k], rtol=1e-6)
        assert c["figures"]["spectrum"] is None  # channel vectors have no useful spectrum
        for rel in filter(None, c["figures"].values()):
            assert (tmp_path / rel).stat().st_size > 0
        assert (tmp_path / c["page"]).exists()
        # parameters: mean on the top rows versus overall
        nu = store.params["nu"]
        assert c["params"]["nu"]["top_mean"] == pytest.approx(nu[top].mean())
        assert c["params"]["nu"]["overall_mean"] == pytest.approx(nu.mean())
        assert "family" not in c["params"]  # a categorical factor, reported as labels
        fam = store.params["family"][top]
        assert c["labels"]["family"]["top"].get("odd & rare", 0.0) == pytest.approx(fam.mean())
        assert c["labels"]["family"]["overall"]["odd & rare"] == pytest.approx(4 / 12)
    assert not doc["ablation"]["done"] and "no model" in doc["ablation"]["reason"]
    assert all(c["effect"] is None for c in doc["concepts"])


def test_hook_choice_and_shape_are_checked(tmp_path):
    store = FakeStore(hooks=("a", "b"))
    with pytest.raises(HookNameError, match="--hook"):
        export_concepts(FakeSAE(), store, tmp_path, progress=False)
    with pytest.raises(HookNameError, match="not in the store"):
        export_concepts(FakeSAE(), store, tmp_path, hook="c", progress=False)
    with pytest.raises(ShapeError, match="4 channels"):
        export_concepts(FakeSAE(channels=4), store, tmp_path, hook="a", progress=False)
    with pytest.raises(ExportError, match="n_top"):
        export_concepts(FakeSAE(), store, tmp_path, hook="a", n_top=0, progress=False)


# ------------------------------------------------------------------------------------------------
# the real pipeline


class TinyData(Dataset):
    """16x16 inputs, targets tanh(x), a continuous parameter and a categorical factor."""

    labels = {"family": ["smooth", "rough"]}

    def __init__(self, n=16):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 1, 16, 16, generator=g)
        self.y = torch.tanh(self.x)
        self.nu = torch.rand(n, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {
            "x": self.x[i],
            "y": self.y[i],
            "index": i,
            "params": {"nu": float(self.nu[i]), "family": float(i % 2)},
        }


def tiny_fno(seed=0):
    from neuralop.models import FNO

    torch.manual_seed(seed)
    return FNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=8, n_layers=2).eval()


HOOK = "blocks.0.hook_out"


def build_tiny_pipeline(root):
    """FNO, store, a pointwise SAE and an SAE-FNO trained a few steps, both saved under ``root``."""
    import saeno

    fno = tiny_fno()
    store = saeno.capture(
        saeno.HookedOperator(fno), TinyData(), [HOOK], root / "store.zarr", batch_size=8, progress=False
    )
    pointwise = saeno.SAE(8, 12, sparsity={"type": "topk", "k": 3})
    saeno.train_sae(pointwise, store, hook=HOOK, steps=5, batch_size=64, progress=False)
    saeno.save_sae(pointwise, root / "sae")
    fnosae = saeno.SAEFNO(8, 6, ndim=2, modes=4)
    saeno.train_sae(fnosae, store, hook=HOOK, steps=3, batch_size=4, progress=False)
    saeno.save_sae(fnosae, root / "sae_fno")
    return fno, store


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("export_pipeline")
    fno, store = build_tiny_pipeline(root)
    return root, fno, store


def _rel_l2(pred, target):
    pred, target = pred.reshape(len(pred), -1), target.reshape(len(target), -1)
    return np.linalg.norm(pred - target, axis=1) / np.linalg.norm(target, axis=1)


def test_sae_fno_export_with_model(pipeline, tmp_path):
    import saeno

    root, fno, store = pipeline
    sae = saeno.load_sae(root / "sae_fno")
    export_concepts(
        root / "sae_fno", root / "store.zarr", tmp_path, model=fno, n_top=3, max_concepts=2, progress=False
    )
    doc = load_concepts(tmp_path)
    arrays = zarr.open_group(str(tmp_path / "arrays.zarr"), mode="r")
    assert doc["store"]["hook"] == HOOK  # taken from the SAE
    assert doc["resolutions"] == [[16, 16], [32, 32]]
    assert doc["ablation"]["done"] and doc["model"]["fingerprint"] == store.fingerprint
    exported = doc["figures_for"]
    assert 1 <= len(exported) <= 2
    np.testing.assert_allclose(
        arrays["atoms/32x32"][:], sae.concepts(32)[exported].numpy(), rtol=1e-5, atol=1e-6
    )
    y, y_pred = store.read("y"), store.read("y_pred")
    for i, k in enumerate(exported):
        c = doc["concepts"][k]
        eff = c["effect"]
        rows = [e["row"] for e in eff["per_sample"]]
        assert rows == [e["row"] for e in c["top_examples"]]
        # the clean run reproduces the captured output, so its error is the stored one
        np.testing.assert_allclose(
            [e["err_clean"] for e in eff["per_sample"]], _rel_l2(y_pred[rows], y[rows]), rtol=1e-4
        )
        np.testing.assert_allclose(
            arrays["effect/y_clean"][i, : len(rows)], y_pred[rows], rtol=1e-4, atol=1e-5
        )
        assert eff["rel_change"] > 0  # an active concept changes the prediction
        assert set(c["figures"]) >= {"atom", "spectrum", "code_maps", "density", "effect"}
        for rel in c["figures"].values():
            assert (tmp_path / rel).stat().st_size > 0
        assert set(c["params"]) == {"nu"} and set(c["labels"]) == {"family"}


def test_ablation_of_an_inactive_concept_changes_nothing(pipeline):
    import saeno
    from saeno.export.ablation import ablation_effect

    root, fno, store = pipeline
    sae = saeno.load_sae(root / "sae")
    x = torch.as_tensor(store.read("x", [0, 1]))
    z = sae.encode(torch.as_tensor(store.read(HOOK, [0, 1])))
    silent = [k for k in range(sae.n_concepts) if not z[:, k].any()]
    active = [k for k in range(sae.n_concepts) if z[:, k].any()]
    hooked = saeno.HookedOperator(fno)
    if silent:
        eff = ablation_effect(hooked, sae, HOOK, silent[0], x)
        np.testing.assert_allclose(eff.y_ablated, eff.y_clean, atol=1e-6)
    eff = ablation_effect(hooked, sae, HOOK, active[0], x)
    assert np.abs(eff.y_ablated - eff.y_clean).max() > 1e-6


def test_model_from_another_capture_is_refused(pipeline, tmp_path):
    root, _, _ = pipeline
    with pytest.raises(ModelMismatchError, match="fingerprint") as info:
        export_concepts(root / "sae", root / "store.zarr", tmp_path, model=tiny_fno(seed=1), progress=False)
    assert isinstance(info.value, SaenoError)


def test_pointwise_export_without_model_says_why(pipeline, tmp_path):
    root, _, _ = pipeline
    export_concepts(root / "sae", root / "store.zarr", tmp_path, n_top=2, max_concepts=1, progress=False)
    doc = json.loads((tmp_path / "concepts.json").read_text())
    assert not doc["ablation"]["done"]
    k = doc["figures_for"][0]
    page = (tmp_path / doc["concepts"][k]["page"]).read_text()
    assert "Not computed: no model was given" in page
    assert doc["sae"]["ndim"] == 2 and doc["sae"]["architecture"] == "sae"


def test_flat_sae_renders_only_its_grid_and_has_scalar_codes(pipeline, tmp_path):
    import saeno

    _, _, store = pipeline
    torch.manual_seed(0)
    flat = saeno.FlatSAE(8, 5, grid=(16, 16), sparsity={"type": "topk", "k": 2})
    flat.hook = HOOK
    export_concepts(flat, store, tmp_path, n_top=2, max_concepts=1, resolutions=[16, 32], progress=False)
    doc = load_concepts(tmp_path)
    arrays = zarr.open_group(str(tmp_path / "arrays.zarr"), mode="r")
    assert doc["resolutions"] == [[16, 16]]  # a flat SAE cannot run at 32x32
    assert arrays["code_maps"].shape == (1, 2)
    k = doc["figures_for"][0]
    assert doc["concepts"][k]["stats"]["point_density"] is None
    z = flat.encode(torch.as_tensor(store.read(HOOK))).detach().numpy()
    top = [e["row"] for e in doc["concepts"][k]["top_examples"]]
    np.testing.assert_allclose(arrays["code_maps"][0], z[top, k], rtol=1e-5)
    assert top == [int(r) for r in np.argsort(-np.abs(z[:, k]), kind="stable")[:2]]
