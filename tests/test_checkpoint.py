"""Saving and loading SAEs: cfg.json + safetensors round trips for every architecture."""

from __future__ import annotations

import json

import pytest
import torch

import saeno
from saeno.sae import SAE, SAEFNO, FlatSAE
from saeno.sae.registry import UnknownArchitectureError
from saeno.train.checkpoint import CheckpointError, load_sae, save_sae

pytestmark = pytest.mark.usefixtures("one_thread_seeded")  # see conftest.py


MODELS = {
    "sae-batchtopk-lifted": lambda: SAE(3, 8, ndim=1, sparsity={"type": "batchtopk", "k": 2}, lifting=5),
    "flat-relu": lambda: FlatSAE(3, 8, grid=(6,), sparsity={"type": "relu", "l1": 0.01}),
    "sae-fno-jumprelu": lambda: SAEFNO(3, 8, ndim=1, modes=3, sparsity="jumprelu"),
    "sae-fno-complex": lambda: SAEFNO(3, 8, ndim=1, modes=3, complex="realimag"),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_save_load_round_trip(tmp_path, name):
    m = MODELS[name]()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    channels = m.real_channels
    m.set_normalization(torch.randn(channels), torch.rand(channels) + 0.5)
    m.forward_train(torch.randn(4, 3, 6, dtype=torch.complex64 if m.complex else torch.float32))
    m.eval()
    m.hook, m.model_fingerprint = "blocks.1.hook_out", "abc123"
    save_sae(m, tmp_path / "sae", metadata={"note": "test"})
    assert sorted(p.name for p in (tmp_path / "sae").iterdir()) == ["cfg.json", "sae_weights.safetensors"]
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["architecture"] == m.architecture and cfg["hook"] == "blocks.1.hook_out"
    assert cfg["versions"]["torch"] == torch.__version__
    assert len(cfg["normalization"]["mean"]) == channels
    loaded = saeno.load_sae(tmp_path / "sae")
    assert type(loaded) is type(m) and loaded.config() == m.config()
    assert loaded.model_fingerprint == "abc123" and loaded.metadata == {"note": "test"}
    for key, value in m.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    a = torch.randn(2, 3, 6, dtype=torch.complex64 if m.complex else torch.float32)
    torch.testing.assert_close(loaded(a), m(a))


def test_load_picks_latest_checkpoint_and_reports_bad_folders(tmp_path):
    m = SAE(2, 4)
    save_sae(m, tmp_path / "run" / "checkpoints" / "step_00000010")
    for name in ("trainer_state.json",):
        (tmp_path / "run" / "checkpoints" / "step_00000010" / name).write_text("{}")
    later = SAE(2, 4)
    save_sae(later, tmp_path / "run" / "checkpoints" / "step_00000020")
    (tmp_path / "run" / "checkpoints" / "step_00000020" / "trainer_state.json").write_text("{}")
    got = load_sae(tmp_path / "run")
    torch.testing.assert_close(got.W_dec, later.W_dec)

    with pytest.raises(CheckpointError, match="not an SAE folder"):
        load_sae(tmp_path / "nothing")
    bad = tmp_path / "bad"
    save_sae(m, bad)
    cfg = json.loads((bad / "cfg.json").read_text())
    (bad / "cfg.json").write_text(json.dumps({**cfg, "architecture": "gated"}))
    with pytest.raises(UnknownArchitectureError, match="unknown SAE architecture 'gated'"):
        load_sae(bad)
    (bad / "cfg.json").write_text(json.dumps({**cfg, "n_concepts": 5}))
    with pytest.raises(CheckpointError, match="do not match"):
        load_sae(bad)
