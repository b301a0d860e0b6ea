"""Export a pointwise SAE to SAELens's on-disk format (``cfg.json`` + ``sae_weights.safetensors``).

SAELens runs ``z = s((x - b_dec) W_enc + b_enc)``, ``x_hat = z W_dec + b_dec`` on raw activations
``x`` of ``d_in`` channels. saeno's pointwise SAE runs the same formula in its normalised (and,
with lifting, lifted) space, ``x_n = (x - mean) / scale``; the export folds the normalisation and
the lift into the weights so that SAELens, given the raw activation vector of one grid point,
returns saeno's reconstruction of that point. With ``m`` the mean, ``s`` the scale (diagonal),
``P (L, C)`` and ``Q (C, L)`` the lift (identity without lifting)::

    W_enc' = diag(1/s) P^T W_enc          (C, p)
    W_dec' = W_dec Q^T diag(s)            (p, C)
    b_dec' = s * (b_dec Q^T) + m          (C,)
    b_enc' = b_enc - b_dec W_enc + (b_dec Q^T) P^T W_enc   (p,)  (= b_enc without lifting)

The sparsity maps to SAELens's architectures: TopK per point -> ``topk`` (same ``k``), ReLU ->
``standard``, JumpReLU -> ``jumprelu`` (the same thresholds: pre-activations are unchanged).
Field SAEs (SAE-FNO, flat), complex activations, per-sample TopK, BatchTopK and domain
sparsity have no SAELens equivalent and are refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from saeno.errors import SaenoError
from saeno.sae.pointwise import SAE
from saeno.sae.sparsity import JumpReLU, ReLUL1, TopK

#: SAELens's file names (the same as saeno's own SAE folder)
SAELENS_CFG = "cfg.json"
SAELENS_WEIGHTS = "sae_weights.safetensors"
SAELENS_FORMAT_VERSION = "6.0.0"


class SAELensExportError(SaenoError):
    """An SAE that SAELens's format cannot hold."""


def _architecture(sae: SAE) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    sp = sae.sparsity
    if getattr(sp, "domain_frac", None) is not None or getattr(sp, "domain_l1", 0.0) > 0:
        raise SAELensExportError(
            "domain sparsity has no SAELens equivalent: export an SAE trained without domain_frac / domain_l1"
        )
    if type(sp) is TopK:
        return "topk", {"k": int(sp.k), "rescale_acts_by_decoder_norm": False}, {}
    if type(sp) is ReLUL1:
        return "standard", {}, {}
    if type(sp) is JumpReLU:
        return "jumprelu", {}, {"threshold": sp.log_threshold.detach().exp().clone()}
    raise SAELensExportError(
        f"sparsity {sp.name!r} has no SAELens inference equivalent: "
        "SAELens's format holds TopK (per point), ReLU and JumpReLU SAEs"
    )


@torch.no_grad()
def saelens_weights(sae: SAE) -> dict[str, torch.Tensor]:
    """The SAELens tensors ``W_enc (C, p)``, ``b_enc (p,)``, ``W_dec (p, C)``, ``b_dec (C,)``.

    The normalisation and the lift are folded in (see the module docstring); float32 on CPU.
    """
    dt = torch.float64
    m, s = sae.norm_mean.to(dt).cpu(), sae.norm_scale.to(dt).cpu()
    w_enc, b_enc = sae.W_enc.to(dt).cpu(), sae.b_enc.to(dt).cpu()
    w_dec, b_dec = sae.W_dec.to(dt).cpu(), sae.b_dec.to(dt).cpu()
    if sae.lift is not None:
        p_up = sae.lift.P.to(dt).cpu()  # (L, C): x_L = x P^T
        q_down = sae.lift.Q.to(dt).cpu()  # (C, L): y = y_L Q^T
        enc_core = p_up.T @ w_enc  # (C, p)
        dec_core = w_dec @ q_down.T  # (p, C)
        b_dec_c = b_dec @ q_down.T  # (C,)
        b_enc_new = b_enc - b_dec @ w_enc + b_dec_c @ enc_core
    else:
        enc_core, dec_core, b_dec_c, b_enc_new = w_enc, w_dec, b_dec, b_enc
    out = {
        "W_enc": enc_core / s[:, None],
        "b_enc": b_enc_new,
        "W_dec": dec_core * s[None, :],
        "b_dec": s * b_dec_c + m,
    }
    return {k: v.to(torch.float32).contiguous() for k, v in out.items()}


def export_saelens(
    sae: Any, path: str | Path, *, hook_name: str | None = None, model_name: str | None = None
) -> Path:
    """Write a pointwise SAE as a SAELens folder that ``sae_lens.SAE.load_from_disk`` reads.

    SAELens then maps the raw activation vector of one grid point ``(..., C)`` (channels last) to
    saeno's reconstruction of that point.

    Parameters
    ----------
    sae : saeno.SAE
        A pointwise SAE with real activations.
    path : path-like
        Folder to write (created). Do not use saeno's own SAE folder: the files have the same names.
    hook_name, model_name : str, optional
        Written to SAELens's metadata (default: the SAE's hook and model fingerprint).

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    SAELensExportError
        If the SAE is not a pointwise SAE, has complex activations, or a sparsity SAELens cannot
        run at inference.
    """
    from safetensors.torch import save_file

    if not isinstance(sae, SAE):
        raise SAELensExportError(
            f"only pointwise SAEs (saeno.SAE) can be exported to SAELens, not {type(sae).__name__}: "
            "SAELens's SAEs act on one activation vector, an SAE-FNO or flat SAE on whole fields"
        )
    if sae.complex is not None:
        raise SAELensExportError(
            "an SAE of complex activations (complex='realimag') has no "
            "SAELens equivalent: SAELens reads real vectors"
        )
    arch, extra, extra_tensors = _architecture(sae)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {**saelens_weights(sae), **extra_tensors}
    tensors = {k: v.to(torch.float32).contiguous() for k, v in tensors.items()}
    save_file(tensors, str(path / SAELENS_WEIGHTS))
    cfg = {
        "architecture": arch,
        "d_in": int(sae.in_channels),
        "d_sae": int(sae.n_concepts),
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        **extra,
        "metadata": {
            # the SAELens config layout written here (version 6); older layouts are converted
            # by SAELens on loading, and a missing version would mark this one as old
            "sae_lens_version": SAELENS_FORMAT_VERSION,
            "hook_name": hook_name or sae.hook or "",
            "model_name": model_name or sae.model_fingerprint or "",
            "exported_by": "saeno.sae.saelens.export_saelens",
        },
    }
    (path / SAELENS_CFG).write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    return path


__all__ = ["SAELensExportError", "export_saelens", "saelens_weights"]
