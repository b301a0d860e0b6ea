"""Capture from point-cloud operators (GINO, FNOGNO) called with several inputs.

``saeno.hooking.gino_call`` / ``fnogno_call`` hold the shared geometry and pass each batch as the
per-sample input. Checked: every captured field equals the hand recomputation from neuraloperator's own
modules (``family_hand``); capture-only hooks leave the output bit-identical; the store records each hook's
own grid and axes (input points, latent grid, output points); the geometry counts in the fingerprint; an
SAE-FNO trained on GINO's latent-grid block is evaluated with the splice and exported, end to end.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

import family_hand as hand
import saeno
from saeno.errors import ShapeError, StoreError
from saeno.evaluation import evaluate
from saeno.export.concepts import export_concepts
from saeno.export.schema import load_concepts
from saeno.hooking import HookedOperator, KeywordCall, fingerprint, fnogno_call, gino_call

neuralop_models = pytest.importorskip("neuralop.models")

pytestmark = pytest.mark.usefixtures("one_thread_seeded")

LATENT = "blocks.1.hook_out"


def _latent_grid(n=8):
    axes = torch.linspace(0, 1, n)
    return torch.stack(torch.meshgrid(axes, axes, indexing="ij"), -1)


def _gino():
    return hand.tiny_gino()


@pytest.fixture()
def gino_setup():
    torch.manual_seed(0)
    model = _gino()
    geom, latent, queries = torch.rand(1, 23, 2), _latent_grid().unsqueeze(0), torch.rand(1, 11, 2)
    return model, geom, latent, queries


def _hand_gino(model, geom, latent, queries, x_points):
    """Hand recomputation; ``x_points`` is (B, C, n_in) (the call's convention), returned fields too."""
    tap = hand.Tap()
    with torch.no_grad():
        out = hand.gino(model, geom, latent, queries, x_points.movedim(1, -1), tap)
    return out, tap.fields


def test_gino_capture_equals_hand_recomputation_and_records_axes(gino_setup, tmp_path):
    model, geom, latent, queries = gino_setup
    hooked = HookedOperator(gino_call(model, geom, latent, queries))
    assert hooked.operator_path == "model" and hooked.preset["name"] == "neuralop-gino"
    x = torch.randn(7, 1, 23)  # 7 input functions on the 23 shared input points, channels first
    y = torch.randn(7, 1, 11)
    hooks = ["gno_in.hook_out", "lifting.hook_out", LATENT, "gno_out.hook_out", "hook_out"]
    store = saeno.capture(
        hooked, TensorDataset(x, y), hooks, tmp_path / "g.zarr", batch_size=3, progress=False
    )
    _, fields = _hand_gino(model, geom, latent, queries, x)
    for h in hooks:
        np.testing.assert_allclose(store.read(h), fields[h].numpy(), rtol=1e-5, atol=1e-6, err_msg=h)
    # capture-only hooks leave the output bit-identical (same batches as the capture ran)
    with torch.no_grad():
        plain = torch.cat([model(geom, latent, queries, x=x[i : i + 3].movedim(1, -1)) for i in (0, 3, 6)])
    np.testing.assert_array_equal(store.read("y_pred"), plain.movedim(-1, 1).numpy())
    assert store.grid == (23,)
    assert store.grid_of("gno_in.hook_out") == (64,) and store.grid_of(LATENT) == (8, 8)
    assert store.grid_of("gno_out.hook_out") == (11,)
    assert store.hook_info(LATENT)["axes"] == ["channel", "latent_0", "latent_1"]
    assert store.hook_info("lifting.hook_out")["axes"] == ["channel", "latent_0", "latent_1"]
    assert store.hook_info("gno_in.hook_out")["axes"] == ["channel", "point"]
    assert store.hook_info("hook_out")["axes"] == ["channel", "point"]


def test_gino_named_inputs_as_a_mapping_match_the_call_adapter(gino_setup):
    model, geom, latent, queries = gino_setup
    x = torch.randn(2, 1, 23)
    named = {"input_geom": geom, "latent_queries": latent, "output_queries": queries, "x": x.movedim(1, -1)}
    with torch.no_grad():
        out, cache = HookedOperator(model).run_with_cache(named, names_filter=LATENT)
        plain = model(**named)
        _, via_call = HookedOperator(gino_call(model, geom, latent, queries)).run_with_cache(x, LATENT)
    assert torch.equal(out, plain)
    assert torch.equal(cache[LATENT], via_call[LATENT])


def test_the_shared_geometry_counts_in_the_fingerprint(gino_setup):
    model, geom, latent, queries = gino_setup
    a = fingerprint(gino_call(model, geom, latent, queries))
    assert a == fingerprint(gino_call(model, geom.clone(), latent, queries))
    assert a != fingerprint(gino_call(model, geom + 0.01, latent, queries))


def test_gino_latent_block_capture_train_evaluate_with_splice(gino_setup, tmp_path):
    model, geom, latent, queries = gino_setup
    call = gino_call(model, geom, latent, queries)
    hooked = HookedOperator(call)
    x = torch.randn(10, 1, 23)
    with torch.no_grad():
        y = call(x) + 0.05 * torch.randn(10, 1, 11)
    store = saeno.capture(
        hooked, TensorDataset(x, y), LATENT, tmp_path / "g.zarr", batch_size=5, progress=False
    )
    sae = saeno.SAEFNO(4, 6, ndim=2, modes=3, sparsity={"type": "topk", "k": 2})
    saeno.train_sae(sae, store, hook=LATENT, steps=4, batch_size=4, progress=False)
    report = evaluate(sae, store, LATENT, model=call, progress=False)
    res = report["results"][0]
    assert res["grid"] == [8, 8] and res["input_grid"] == [23]
    with torch.no_grad():
        spliced = hooked.run_with_hooks(x, fwd_hooks=[(LATENT, lambda a, hook: sae(a).to(a.dtype))])
        # the same splice by hand: the recomputation with the latent block replaced by the SAE's output
        tap = hand.Tap()
        want = hand.gino(model, geom, latent, queries, x.movedim(1, -1), _Replace(tap, LATENT, sae))
    torch.testing.assert_close(spliced, want.movedim(-1, 1), rtol=1e-5, atol=1e-6)
    rel = torch.linalg.vector_norm((spliced - y).flatten(1), dim=1) / torch.linalg.vector_norm(
        y.flatten(1), dim=1
    )
    clean = (torch.linalg.vector_norm((call(x).detach() - y).flatten(1), dim=1)
             / torch.linalg.vector_norm(y.flatten(1), dim=1))  # fmt: skip
    # a difference of two nearly equal losses: evaluate's FNO passes (saeno.zoo.fast_forward) sum in
    # another order, so it matches to about 1e-6 absolute
    assert res["splice_added_error"] == pytest.approx(
        rel.mean().item() / clean.mean().item() - 1, rel=1e-3, abs=1e-6
    )
    assert res["L_sae"] != res["L_clean"]  # the splice acted on the latent block
    saeno.save_sae(sae, tmp_path / "sae")
    export_concepts(tmp_path / "sae", tmp_path / "g.zarr", tmp_path / "out", model=call, n_top=2,
                    max_concepts=2, progress=False)  # fmt: skip
    doc = load_concepts(tmp_path / "out")
    assert doc["store"]["hook"] == LATENT and doc["store"]["grid"] == [8, 8] and doc["ablation"]["done"]
    assert (tmp_path / "out" / "report.html").is_file()


class _Replace:
    """A ``Tap`` that replaces one field by an SAE's reconstruction of it."""

    def __init__(self, tap, name, sae):
        self.tap, self.name, self.sae = tap, name, sae

    def __call__(self, name, t, padded=False, layout="field"):
        t = self.tap(name, t, padded, layout)
        return self.sae(t).to(t.dtype) if name == self.name else t


def test_a_store_of_other_geometry_is_refused_for_the_splice(gino_setup, tmp_path):
    model, geom, latent, queries = gino_setup
    call = gino_call(model, geom, latent, queries)
    x, y = torch.randn(4, 1, 23), torch.randn(4, 1, 11)
    store = saeno.capture(
        HookedOperator(call), TensorDataset(x, y), LATENT, tmp_path / "g.zarr", batch_size=2, progress=False
    )
    sae = saeno.SAEFNO(4, 4, ndim=2, modes=2)
    other = gino_call(model, torch.rand(1, 23, 2), latent, queries)
    with pytest.raises(StoreError, match="not the model that produced"):
        evaluate(sae, store, LATENT, model=other, progress=False)


# ----------------------------------------------------------------------------------------------- FNOGNO
def _fnogno(batched):
    return hand.quiet(
        neuralop_models.FNOGNO,
        in_channels=1,
        out_channels=2,
        gno_coord_dim=2,
        fno_n_modes=(4, 4),
        fno_hidden_channels=4,
        fno_n_layers=2,
        gno_radius=0.3,
        gno_use_open3d=False,
        gno_use_torch_scatter=False,
        gno_channel_mlp_hidden_layers=[8],
        gno_embed_channels=4,
        projection_channel_ratio=2,
        fno_lifting_channel_ratio=2,
        gno_batched=batched,
    )


def test_fnogno_unbatched_capture_one_sample_per_batch_equals_hand(tmp_path):
    model = _fnogno(batched=False)
    in_p, out_p = _latent_grid(), torch.rand(17, 2)
    hooked = HookedOperator(fnogno_call(model, in_p, out_p))
    f = torch.randn(3, 1, 8, 8)  # per-sample input function on the latent grid, channels first
    hooks = ["lifting.hook_out", LATENT, "gno.hook_out", "hook_out"]
    store = saeno.capture(hooked, f, hooks, tmp_path / "f.zarr", batch_size=1, progress=False)
    for i in range(3):
        tap = hand.Tap()
        with torch.no_grad():
            out = hand.fnogno(model, in_p, out_p, f[i].movedim(0, -1), tap)
        for h in hooks:
            np.testing.assert_allclose(store.read(h, [i]), tap.fields[h].numpy(), rtol=1e-5, atol=1e-6)
        with torch.no_grad():
            plain = model(in_p, out_p, f[i].movedim(0, -1))  # (n_out, C): capture hooks left it bit-identical
        np.testing.assert_array_equal(store.read("y_pred", [i])[0], plain.T.numpy())
        torch.testing.assert_close(plain, out)
    assert store.grid_of(LATENT) == (8, 8) and store.hook_info("gno.hook_out")["axes"] == ["channel", "point"]
    with pytest.raises(ShapeError, match="batch_size=1"):
        hooked(f[:2])


def test_fnogno_batched_capture_of_the_latent_grid(tmp_path):
    model = _fnogno(batched=True)
    in_p, out_p = _latent_grid(), torch.rand(17, 2)
    hooked = HookedOperator(fnogno_call(model, in_p, out_p))
    f = torch.randn(4, 1, 8, 8)
    store = saeno.capture(hooked, f, [LATENT, "hook_out"], tmp_path / "f.zarr", batch_size=2, progress=False)
    with torch.no_grad():
        plain = torch.cat([model(in_p, out_p, f[i : i + 2].movedim(1, -1)) for i in (0, 2)])
    np.testing.assert_array_equal(store.read("hook_out"), plain.movedim(-1, 1).numpy())
    assert store.read(LATENT).shape == (4, 4, 8, 8)
    assert store.hook_info(LATENT)["axes"] == ["channel", "latent_0", "latent_1"]


def test_keyword_call_refuses_what_it_cannot_pass():
    model = _gino()
    with pytest.raises(ShapeError, match="both the per-sample input and a shared input"):
        KeywordCall(model, "x", {"x": torch.zeros(1)})
    with pytest.raises(ShapeError, match="dict of query"):
        KeywordCall(model, "x", {"output_queries": {"a": torch.zeros(1, 2)}})
