"""The SAE-FNO recovers a planted convolutional dictionary (CI size, the real threshold 0.85).

``x = sum_k kappa_k * z_k`` in 1D with smooth atoms, two concepts per sample, each at one random
location. Recovery is Hungarian matching on ``|cos|`` of atoms maximised over circular shifts; its
chance level is that of an independent draw of atoms of the same kind (about 0.6 here), computed in
the test.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment

from saeno.sae import SAEFNO
from saeno.train.trainer import train_sae

C, N, P, S = 3, 32, 4, 2


def _atoms(g: torch.Generator) -> torch.Tensor:
    t = torch.arange(N) / N
    atoms = torch.zeros(P, C, N)
    for w in range(1, 4):  # band-limited
        phase = 2 * torch.pi * torch.rand(P, C, 1, generator=g)
        atoms += torch.randn(P, C, 1, generator=g) * torch.cos(2 * torch.pi * w * t + phase)
    return atoms / atoms.flatten(1).norm(dim=1).view(P, 1, 1)


def _data(m: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    atoms = _atoms(g)
    which = torch.rand(m, P, generator=g).argsort(1)[:, :S]
    shift = torch.randint(0, N, (m, S), generator=g)
    amp = torch.rand(m, S, generator=g) + 0.5
    pos = (torch.arange(N).view(1, 1, N) - shift.unsqueeze(-1)) % N
    x = torch.zeros(m, C, N)
    for j in range(S):
        x += amp[:, j, None, None] * atoms[which[:, j]].gather(2, pos[:, j, None, :].expand(m, C, N))
    return atoms, x


def _matched(true: torch.Tensor, learned: torch.Tensor) -> torch.Tensor:
    a = learned / learned.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    shifted = torch.stack([a.roll(r, -1) for r in range(N)])
    cos = torch.einsum("pcn,rqcn->pqr", true, shifted).abs().amax(-1).numpy()
    rows, cols = linear_sum_assignment(-cos)
    return torch.as_tensor(cos[rows, cols])


def test_sae_fno_recovers_a_planted_convolutional_dictionary_in_ci():
    atoms, x = _data(3000, seed=5)
    chance = _matched(atoms, _atoms(torch.Generator().manual_seed(99))).mean()
    torch.manual_seed(0)
    # the exact adjoint at the full spectral rate (docs/sae_fno.md: the best setting on this data)
    sae = SAEFNO(
        C,
        8,
        ndim=1,
        modes=4,
        encoder_init="adjoint",
        spectral_lr_scale=1.0,
        sparsity={"type": "topk", "k": S, "group": "concept", "domain_frac": 1 / N, "domain_peaks": 1},
    )
    before = _matched(atoms, sae.concepts(N)).mean()
    train_sae(sae, x, steps=300, batch_size=32, progress=False, log_every=100, normalize="center")
    after = _matched(atoms, sae.concepts(N))
    assert 0.4 < chance < 0.75, chance
    assert after.mean() >= 0.85 and after.mean() > max(before, chance) + 0.2, (chance, before, after)
