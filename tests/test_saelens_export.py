"""Pointwise SAEs exported to SAELens's format: the folded weights reproduce ``sae(x)`` (checked
here with plain torch), and ``sae_lens`` loads the folder and runs it to the same reconstruction
(skipped where sae_lens is not installed: ``pip install saeno[saelens]``)."""

import json

import pytest
import torch
from safetensors.torch import load_file

import saeno
from saeno.sae.saelens import SAELensExportError, export_saelens


def _trained_like(sae, seed=0):
    """Random weights and normalisation far from the initial ones (b_dec, mean, scale non-zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        sae.normalize_decoder_()
    c = sae.real_channels
    sae.set_normalization(torch.randn(c, generator=g), torch.rand(c, generator=g) + 0.5)
    return sae


SPARSITIES = [{"type": "topk", "k": 3}, {"type": "relu", "l1": 1e-3}, {"type": "jumprelu", "threshold": 0.05}]


def _folded_forward(folder, x):
    """SAELens's formula, written out: z = s((x - b_dec) W_enc + b_enc), x_hat = z W_dec + b_dec."""
    cfg = json.loads((folder / "cfg.json").read_text())
    w = load_file(str(folder / "sae_weights.safetensors"))
    pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    if cfg["architecture"] == "topk":
        vals, idx = pre.topk(cfg["k"], dim=-1)
        z = torch.zeros_like(pre).scatter_(-1, idx, vals.relu())
    elif cfg["architecture"] == "jumprelu":
        z = pre.relu() * (pre > w["threshold"])
    else:
        z = pre.relu()
    return z @ w["W_dec"] + w["b_dec"]


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("lifting", [None, 10])
def test_folded_weights_reproduce_the_sae(tmp_path, sparsity, lifting):
    torch.manual_seed(0)
    sae = _trained_like(saeno.SAE(6, 16, sparsity=sparsity, lifting=lifting)).eval()
    folder = export_saelens(sae, tmp_path / "lens")
    x = torch.randn(200, 6) * 2 + 1
    torch.testing.assert_close(_folded_forward(folder, x), sae(x).detach(), rtol=1e-4, atol=1e-5)


def test_field_saes_and_unsupported_sparsities_are_refused(tmp_path):
    with pytest.raises(SAELensExportError, match="pointwise"):
        export_saelens(saeno.SAEFNO(4, 8, ndim=2, modes=3), tmp_path / "a")
    with pytest.raises(SAELensExportError, match="batchtopk"):
        export_saelens(saeno.SAE(4, 8, sparsity={"type": "batchtopk", "k": 2}), tmp_path / "b")


@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_sae_lens_loads_and_runs_the_export(tmp_path, sparsity):
    sae_lens = pytest.importorskip("sae_lens")
    torch.manual_seed(1)
    ours = _trained_like(saeno.SAE(8, 24, sparsity=sparsity), seed=1).eval()
    ours.hook = "blocks.1.hook_out"
    folder = export_saelens(ours, tmp_path / "lens")
    theirs = sae_lens.SAE.load_from_disk(str(folder), device="cpu")
    assert theirs.cfg.d_in == 8 and theirs.cfg.d_sae == 24
    assert theirs.cfg.metadata.hook_name == "blocks.1.hook_out"
    # a field (B, C, H, W) of activations: SAELens reads channels last
    field = torch.randn(3, 8, 5, 5) * 1.5 - 0.5
    with torch.no_grad():
        got = theirs(field.movedim(1, -1)).movedim(-1, 1)
        want = ours(field)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        codes = theirs.encode(field.movedim(1, -1)).movedim(-1, 1)
        torch.testing.assert_close(codes, ours.encode(field), rtol=1e-4, atol=1e-5)
