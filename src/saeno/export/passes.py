"""The passes over the store behind an export: activations of every concept, code maps of the top
samples, atoms rendered at each resolution and split into a smooth and a pointwise part."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from saeno.errors import SaenoError
from saeno.export import stats as S
from saeno.export.inputs import (
    ExportError,
    read_rows,
    real_parts,
    res_label,
    to_device,
)
from saeno.export.supervised_codes import (
    Encoder,
)


@torch.no_grad()
def scan(
    sae: torch.nn.Module,
    encode: Encoder,
    store: Any,
    hook: str,
    n_rows: int,
    batch_size: int,
    device: torch.device,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Encode every row: per-sample activations ``(N, p)``, non-zero code counts, points per sample."""
    from tqdm.auto import tqdm

    acts = np.zeros((n_rows, sae.n_concepts), dtype=np.float32)
    nonzero = None
    n_points = 1
    for start in tqdm(
        range(0, n_rows, batch_size), desc=f"encode {hook}", disable=not progress, unit="batch"
    ):
        rows = list(range(start, min(start + batch_size, n_rows)))
        z = encode(to_device(read_rows(store, hook, rows), device), rows)
        acts[rows[0] : rows[-1] + 1] = S.concept_activations(z).float().cpu().numpy()
        nz = S.nonzero_points(z)
        if nz is not None:
            nonzero = nz.cpu().numpy() if nonzero is None else nonzero + nz.cpu().numpy()
            n_points = int(np.prod(z.shape[2:]))
    return acts, nonzero, n_points


@torch.no_grad()
def compute_code_maps(
    encode: Encoder,
    store: Any,
    hook: str,
    concepts: Sequence[int],
    top_rows: np.ndarray,
    device: torch.device,
    batch_size: int,
) -> np.ndarray:
    """``(n_exp, n_top, *code_grid)`` code maps of each concept on its top rows (zeros where -1)."""
    wanted = sorted({int(r) for r in top_rows.ravel() if r >= 0})
    codes: dict[int, torch.Tensor] = {}
    for start in range(0, len(wanted), batch_size):
        rows = wanted[start : start + batch_size]
        z = encode(to_device(read_rows(store, hook, rows), device), rows).cpu()
        for i, r in enumerate(rows):
            codes[r] = z[i]
    shape = next(iter(codes.values())).shape[1:] if codes else ()
    out = np.zeros((len(concepts), top_rows.shape[1], *shape), dtype=np.float32)
    for i, k in enumerate(concepts):
        for j, r in enumerate(top_rows[i]):
            if r >= 0:
                out[i, j] = codes[int(r)][k].numpy()
    return out


@torch.no_grad()
def render_atoms(
    sae: torch.nn.Module, concepts: Sequence[int], resolutions: Sequence[tuple[int, ...]]
) -> tuple[dict[tuple[int, ...], np.ndarray], np.ndarray | None]:
    """Atoms of the chosen concepts at each resolution the SAE can render (others are skipped).

    Returns ``({resolution: (n, C, *grid)}, vectors)`` where ``vectors`` is ``(n, C)`` for an SAE
    whose concepts are channel vectors (the pointwise SAE: rendered on a grid, such a concept is a
    point mass at the origin), else None.
    """
    idx = torch.as_tensor(list(concepts), dtype=torch.long)

    def pick(rendered: torch.Tensor) -> np.ndarray:
        return real_parts(rendered.detach().index_select(0, idx.to(rendered.device))).float().cpu().numpy()

    vectors = None
    try:
        plain = sae.concepts(None)
    except (SaenoError, ValueError, RuntimeError, TypeError):
        plain = None
    if plain is not None and plain.ndim == 2:
        vectors = pick(plain)
    atoms = {}
    for res in resolutions:
        try:
            rendered = sae.concepts(res)
        except (SaenoError, ValueError, RuntimeError):
            continue
        atoms[res] = pick(rendered)
    if not atoms:
        raise ExportError(
            f"the SAE could not render its concepts at any of {list(resolutions)}: "
            "pass resolutions= (--resolutions) with its training grid"
        )
    return atoms, vectors


@torch.no_grad()
def split_point_mass(
    sae: torch.nn.Module, concepts: Sequence[int], atoms: Mapping[tuple[int, ...], np.ndarray]
) -> tuple[dict[tuple[int, ...], np.ndarray], np.ndarray, str] | None:
    """Split rendered atoms into a smooth part and a pointwise part at the origin.

    An SAE-FNO concept rendered on N points is a resolution-free function ``kappa_k`` (the spectral
    kernel) plus a channel vector at the origin point whose value grows like N (a point mass).
    Drawn together, the point dominates the colour scale. The split uses only the renderings: at two
    grids ``N1 < N2`` the kernel's origin value is the same, so ``d = atom_2(0) - atom_1(0)`` is the
    growth of the point mass and the point part on N points is ``d * N / (N2 - N1)``.

    Returns ``({resolution: smooth atoms}, vectors (n, C), unit)`` with the pointwise vectors as
    their value on one cell of the SAE's mode grid (``G`` cells, when the SAE stores
    ``spectral_gain``) or else on the first grid; None when the atoms have no point part.
    """
    if not atoms:
        return None
    first = min(atoms, key=lambda r: int(np.prod(r)))
    second = tuple(2 * g for g in first)
    if second in atoms:
        a2 = atoms[second]
    else:
        try:
            rendered = sae.concepts(second)
        except (SaenoError, ValueError, RuntimeError):
            return None
        idx = torch.as_tensor(list(concepts), dtype=torch.long)
        a2 = real_parts(rendered.index_select(0, idx.to(rendered.device))).float().cpu().numpy()
    a1 = atoms[first]
    origin = (slice(None), slice(None), *([0] * len(first)))
    n1, n2 = int(np.prod(first)), int(np.prod(second))
    d = (a2[origin].astype(np.float64) - a1[origin]) / (n2 - n1)  # point part per grid point
    scale = max(float(np.abs(a1).max()), 1e-30)
    if float(np.abs(d).max()) * n1 <= 1e-6 * scale:
        return None
    smooth = {}
    for res, a in atoms.items():
        part = a.astype(np.float64).copy()
        part[origin] -= d * int(np.prod(res))
        smooth[res] = part.astype(np.float32)
    gain = getattr(sae, "spectral_gain", None)
    if gain:
        return smooth, (d * float(gain)).astype(np.float32), f"one mode-grid cell (G = {int(gain)})"
    return smooth, (d * n1).astype(np.float32), f"one cell of the {res_label(first)} grid"
