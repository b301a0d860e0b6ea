"""End to end on a UNO block that lives on its own (coarser) grid: capture, SAE-FNO training at that grid,
evaluation with the splice, and the concept export."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

import saeno
from saeno.evaluation import evaluate
from saeno.export.concepts import export_concepts
from saeno.export.schema import load_concepts

neuralop_models = pytest.importorskip("neuralop.models")

HOOK = "blocks.1.hook_out"  # the down-scaled block: 8 x 8 on a 16 x 16 input


@pytest.fixture()
def small_uno():
    with contextlib.redirect_stdout(io.StringIO()):
        torch.manual_seed(0)
        return neuralop_models.UNO(
            in_channels=1,
            out_channels=1,
            hidden_channels=4,
            lifting_channels=4,
            projection_channels=4,
            n_layers=3,
            uno_out_channels=[4, 6, 4],
            uno_n_modes=[[4, 4]] * 3,
            uno_scalings=[[1, 1], [0.5, 0.5], [2, 2]],
            channel_mlp_skip="linear",
        ).eval()


def test_uno_block_capture_train_evaluate_export(small_uno, tmp_path, one_thread_seeded):
    x = torch.randn(12, 1, 16, 16)
    with torch.no_grad():
        y = small_uno(x) + 0.01 * torch.randn(12, 1, 16, 16)
    hooked = saeno.HookedOperator(small_uno)
    store = saeno.capture(
        hooked,
        TensorDataset(x, y),
        [HOOK, "blocks.2.hook_out"],
        tmp_path / "uno.zarr",
        batch_size=5,
        progress=False,
    )
    assert store.grid == (16, 16)
    assert store.grid_of(HOOK) == (8, 8) and store.grid_of("blocks.2.hook_out") == (16, 16)
    with torch.no_grad():
        _, cache = hooked.run_with_cache(x[:3], HOOK)
    np.testing.assert_array_equal(store.read(HOOK, [0, 1, 2]), cache[HOOK].numpy())

    sae = saeno.SAEFNO(6, 5, ndim=2, modes=3, sparsity={"type": "topk", "k": 2})
    saeno.train_sae(sae, store, hook=HOOK, steps=4, batch_size=4, progress=False)
    saeno.save_sae(sae, tmp_path / "sae")

    report = evaluate(sae, store, HOOK, hooked=hooked, progress=False)
    res = report["results"][0]
    assert res["grid"] == [8, 8] and res["input_grid"] == [16, 16]
    # the splice replaced the block's output: a recomputation by hand gives the same operator error
    with torch.no_grad():
        spliced = hooked.run_with_hooks(x, fwd_hooks=[(HOOK, lambda a, hook: sae(a).to(a.dtype))])
    rel = (
        (
            torch.linalg.vector_norm((spliced - y).reshape(12, -1), dim=1)
            / torch.linalg.vector_norm(y.reshape(12, -1), dim=1)
        )
        .mean()
        .item()
    )
    clean = (
        (
            torch.linalg.vector_norm((small_uno(x).detach() - y).reshape(12, -1), dim=1)
            / torch.linalg.vector_norm(y.reshape(12, -1), dim=1)
        )
        .mean()
        .item()
    )
    assert res["splice_added_error"] == pytest.approx(rel / clean - 1.0, rel=1e-3, abs=1e-6)
    assert rel != clean  # the splice did act on the block

    out = tmp_path / "export"
    export_concepts(
        tmp_path / "sae", tmp_path / "uno.zarr", out, model=small_uno, n_top=2, max_concepts=2, progress=False
    )
    doc = load_concepts(out)
    assert doc["store"]["hook"] == HOOK and doc["store"]["grid"] == [8, 8]
    assert doc["ablation"]["done"]
    assert (out / "report.html").is_file()
    json.dumps(doc)
