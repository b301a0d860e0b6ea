"""`saeno explain` end to end on a real store (seeded example FNO, untrained SAE), its errors, and the
explanations shown by `saeno export` (page and sortable index columns)."""

import json

import numpy as np
import pytest
import torch

import saeno
from saeno.explain.result import SCHEMA_NAME, SCHEMA_VERSION, load_explanations

pytest.importorskip("neuralop")

HOOK = "blocks.1.hook_out"
CARD = {
    "name": "darcy",
    "pde": "darcy",
    "domain": [[0.0, 1.0], [0.0, 1.0]],
    "grid": "vertices (i/n, j/n)",
    "parameters": {"high": 12.0, "low": 3.0},
}


@pytest.fixture()
def setup(tmp_path, one_thread_seeded):
    from scipy.ndimage import gaussian_filter

    from saeno.hooking.examples import example_model

    hooked = saeno.HookedOperator(example_model("example-fno2d"))
    rng = np.random.default_rng(0)
    g = np.stack([gaussian_filter(rng.normal(size=(16, 16)), 2.0, mode="wrap") for _ in range(24)])
    x = torch.as_tensor(np.where(g > 0, 12.0, 3.0)[:, None], dtype=torch.float32)
    y = torch.as_tensor(rng.normal(size=(24, 1, 16, 16)), dtype=torch.float32)
    data = torch.utils.data.TensorDataset(x, y)
    store = saeno.capture(hooked, data, HOOK, tmp_path / "s.zarr", progress=False, dataset_card=CARD)
    mean, var = store.stats(HOOK)
    sae = saeno.SAE(16, 12, ndim=2, sparsity={"type": "topk", "k": 3, "group": "point"})
    sae.set_normalization(mean, np.sqrt(var) + 1e-6)
    sae.hook = HOOK
    saeno.save_sae(sae, tmp_path / "sae")
    return tmp_path, hooked


def _io(tmp, out: str) -> dict:
    """The SAE, the store and an output folder of ``setup``, as CLI flags."""
    return {"sae": tmp / "sae", "store": tmp / "s.zarr", "out": tmp / out}


def test_explain_writes_versioned_json_and_prints_a_summary(setup, capsys, saeno_cli):
    tmp, _ = setup
    rc = saeno_cli("explain", **_io(tmp, "ex"), no_progress=True, null_seeds=1, model="example-fno2d")
    captured = capsys.readouterr()
    out = captured.out
    assert rc == 0, captured.err
    doc = json.loads((tmp / "ex" / "explanations.json").read_text())
    assert doc["schema"] == SCHEMA_NAME and doc["version"] == SCHEMA_VERSION
    assert len(doc["concepts"]) == 12
    ex = load_explanations(tmp / "ex")
    assert f"explained: {ex.summary.n_explained} of {ex.summary.n_live} live" in out
    assert not set(ex.protocol["rows_select"]) & set(ex.protocol["rows_heldout"])
    live = [c for c in ex.concepts if c.live]
    assert live and all(c.effect is not None for c in live)  # --model: ablation effects measured
    assert ex.protocol["effects"]


def test_explain_cli_errors_are_clean(setup, capsys, saeno_cli):
    tmp, _ = setup
    rc = saeno_cli("explain", "--probes", "target_grad", "vortex", **_io(tmp, "ex"), no_progress=True)
    err = capsys.readouterr().err
    assert rc == 2 and "unknown probe(s) 'vortex'" in err and "interface_distance" in err
    assert "Traceback" not in err
    rc = saeno_cli("explain", **_io(tmp, "ex"), list_probes=True)
    out = capsys.readouterr().out
    assert rc == 0 and "flux" in out and "okubo_weiss" not in out


def test_export_shows_explanations_on_pages_and_in_the_index(setup, capsys, saeno_cli):
    tmp, _ = setup
    assert saeno_cli("explain", **_io(tmp, "ex"), no_progress=True, no_random_null=True) == 0
    ex = load_explanations(tmp / "ex")
    explanations = tmp / "ex" / "explanations.json"
    assert (
        saeno_cli("export", **_io(tmp, "rep"), no_progress=True, max_concepts=4, explanations=explanations)
        == 0
    )
    capsys.readouterr()
    doc = json.loads((tmp / "rep" / "concepts.json").read_text())
    assert doc["explanations"]["summary"]["n_live"] == ex.summary.n_live
    index = (tmp / "rep" / "report.html").read_text()
    for header in ("explained by", "held-out rho", "null (99%)", "AUROC"):
        assert f">{header}</th>" in index
    paged = [c for c in doc["concepts"] if c.get("page")]
    assert paged
    for c in paged:
        e = ex.concepts[c["index"]]
        assert c["explanation"]["status"] == e.status
        page = (tmp / "rep" / c["page"]).read_text()
        assert "Explanation" in page
        if e.live:
            assert f"{e.rho:.3g}" in page and e.probes[0] in page
    # an explanations file of another SAE is refused
    other = ex.to_dict()
    other["sae"]["n_concepts"] = 99
    (tmp / "bad.json").write_text(json.dumps(other))
    rc = saeno_cli("export", **_io(tmp, "rep2"), no_progress=True, explanations=tmp / "bad.json")
    assert rc == 2 and "99 concepts" in capsys.readouterr().err
