"""The trainer: planted dictionary recovery, exact resume, stores, AuxK, logs and bad input."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from saeno.errors import HookNameError, SaenoError
from saeno.sae import SAE, SAEFNO, FlatSAE
from saeno.train.schedules import default_lr, lr_factor
from saeno.train.trainer import train_sae

pytestmark = pytest.mark.usefixtures("one_thread_seeded")  # see conftest.py


def planted(n: int, c: int, p: int, s: int, seed: int = 123) -> tuple[torch.Tensor, torch.Tensor]:
    """docs/method.md section 4, Euclidean case: x = D c + offset, s non-negative active atoms per row."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(p, c, generator=g)
    d /= d.norm(dim=1, keepdim=True)
    idx = torch.rand(n, p, generator=g).argsort(1)[:, :s]
    codes = torch.zeros(n, p).scatter_(1, idx, torch.rand(n, s, generator=g) + 0.5)
    return codes @ d + 0.3, d


def matched_cos(learned: torch.Tensor, true: torch.Tensor) -> np.ndarray:
    a = learned / learned.norm(dim=1, keepdim=True)
    cos = (true @ a.T).abs().numpy()
    rows, cols = linear_sum_assignment(-cos)
    return cos[rows, cols]


def test_pointwise_topk_recovers_a_planted_dictionary():
    x, d = planted(10000, c=16, p=32, s=3)
    sae = SAE(16, 64, sparsity={"type": "topk", "k": 3})
    res = train_sae(sae, x, steps=800, batch_size=256, progress=False, log_every=200)
    cos = matched_cos(sae.concepts(), d)  # raw-unit concepts: normalisation is undone
    assert cos.mean() >= 0.95, cos
    # an untrained dictionary of the same size does not match
    assert matched_cos(SAE(16, 64).concepts(), d).mean() < 0.6
    assert res.final["ev"] > 0.85 and res.steps == 800 and res.samples == 800 * 256


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    x = torch.randn(512, 4, 16)
    kw = dict(steps=12, batch_size=32, progress=False, log_every=3, seed=3, dead_window=2, aux_k=4)

    def fresh():
        torch.manual_seed(1)
        return SAEFNO(4, 16, ndim=1, modes=4, sparsity={"type": "batchtopk", "k": 3})

    full = fresh()
    train_sae(full, x, checkpoint_dir=tmp_path / "a", checkpoint_every=6, keep_checkpoints=0, **kw)
    # the run stopped after its step-6 checkpoint: resume from there
    resumed = fresh()
    res = train_sae(resumed, x, resume=tmp_path / "a" / "step_00000006", **kw)
    assert res.steps == 12
    assert any(row["aux"] > 0 for row in res.history)  # AuxK was active and is part of the state
    for key, value in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_train_half_save_then_resume_equals_one_run(tmp_path):
    x, _ = planted(4000, c=8, p=16, s=2)
    kw = dict(batch_size=64, progress=False, log_every=5, seed=0, lr_decay_frac=0.0)

    def fresh():
        torch.manual_seed(2)
        return SAE(8, 24, sparsity={"type": "topk", "k": 2}, lifting=12)

    once = fresh()
    train_sae(once, x, steps=40, **kw)
    twice = fresh()
    train_sae(twice, x, steps=20, checkpoint_dir=tmp_path / "ck", **kw)
    other = fresh()  # the stopped process is gone: a new model object resumes
    train_sae(other, x, steps=40, checkpoint_dir=tmp_path / "ck", resume=True, **kw)
    for key, value in once.state_dict().items():
        torch.testing.assert_close(other.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_auxk_trains_dead_concepts_only_when_enabled():
    x, _ = planted(2000, c=8, p=8, s=2)

    def run(aux_k):
        torch.manual_seed(0)
        sae = SAE(8, 32, sparsity={"type": "topk", "k": 2})
        with torch.no_grad():
            sae.W_enc[:, 16:] *= 0.01  # handicap half of the concepts: never in the top k
        before = sae.W_dec.detach().clone()
        res = train_sae(
            sae, x, steps=60, batch_size=128, aux_k=aux_k, dead_window=5, log_every=5, progress=False, lr=3e-3
        )
        return before, sae, res

    before, sae, res = run(aux_k=0)
    never = (sae.W_dec.detach() - before).norm(dim=1) == 0
    assert never.any(), "the set-up must produce concepts that never fire"
    assert all(row["aux"] == 0 for row in res.history)
    before2, sae2, res2 = run(aux_k=8)
    moved = (sae2.W_dec.detach() - before2).norm(dim=1) > 0
    assert moved[never].all() and any(row["aux"] > 0 for row in res2.history)


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: SAEFNO(3, 12, ndim=2, modes=3, sparsity={"type": "topk", "k": 4}), (64, 3, 8, 8)),
        (lambda: FlatSAE(3, 12, grid=(8,), sparsity={"type": "relu", "l1": 1e-3}), (256, 3, 8)),
        (
            lambda: SAEFNO(
                3,
                12,
                ndim=1,
                modes=4,
                lifting=6,
                sparsity={"type": "jumprelu", "l0": 1e-3, "threshold": 0.01, "bandwidth": 0.05},
            ),
            (128, 3, 16),
        ),
    ],
)
def test_training_reduces_the_loss_and_writes_a_csv(tmp_path, make, shape):
    torch.manual_seed(0)
    base = torch.randn(4, *shape[1:])  # low-rank fields: something to learn
    x = torch.einsum("nr,r...->n...", torch.randn(shape[0], 4), base) + 2.0
    sae = make()
    res = train_sae(
        sae, x, epochs=6, batch_size=16, log_csv=tmp_path / "log.csv", log_every=4, progress=False
    )
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert len(rows) == len(res.history) >= 3
    assert {"step", "loss", "mse", "ev", "l0", "dead_fraction"} <= set(rows[0])
    assert float(rows[-1]["mse"]) < 0.5 * float(rows[0]["mse"])
    torch.testing.assert_close(sae.norm_mean, x.mean(dim=(0, *range(2, x.dim()))), rtol=1e-4, atol=1e-4)
    assert not sae.training


class FakeStore:
    """The ActivationStore surface the trainer uses (hooks, loader, stats, fingerprint)."""

    def __init__(self, data: torch.Tensor) -> None:
        self.data, self.hooks, self.fingerprint = data, ["blocks.0.hook_out"], "fp-123"
        self.n_rows, self.grid = data.shape[0], tuple(data.shape[2:])
        self.views: list[str] = []

    def stats(self, hook):
        x = self.data.movedim(1, -1).reshape(-1, self.data.shape[1]).double()
        return x.mean(0).numpy(), x.var(0, unbiased=False).numpy()

    def loader(self, hook, view="field", batch_size=16, shuffle_buffer=0, normalize=False, seed=0, rows=None):
        assert not normalize
        self.views.append(view)
        x = self.data
        if view == "points":
            x = x.movedim(1, -1).reshape(-1, x.shape[1])
        perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
        for i in range(0, x.shape[0] - batch_size + 1, batch_size):
            yield x[perm[i : i + batch_size]].numpy()


def test_training_from_a_store_uses_its_stats_view_and_fingerprint():
    data = torch.randn(32, 3, 8, 8) * torch.tensor([1.0, 2.0, 5.0]).view(1, 3, 1, 1) + 1.0
    store = FakeStore(data)
    sae = SAE(3, 8, ndim=2, sparsity={"type": "topk", "k": 2})
    res = train_sae(sae, store, hook="blocks.0.hook_out", steps=5, batch_size=256, progress=False)
    assert store.views and set(store.views) == {"points"}
    assert res.samples == 5 * 256
    mean, var = store.stats(None)
    torch.testing.assert_close(sae.norm_scale, torch.tensor(np.sqrt(var), dtype=torch.float32))
    assert sae.hook == "blocks.0.hook_out" and sae.model_fingerprint == "fp-123"
    fno = SAEFNO(3, 8, ndim=2, modes=2)
    train_sae(fno, store, steps=2, batch_size=4, progress=False)  # single hook: no name needed
    assert store.views[-1] == "field"


def test_bad_training_requests_raise_clear_errors():
    store = FakeStore(torch.randn(8, 3, 4))
    with pytest.raises(
        HookNameError,
        match=r"'blocks.9.hook_out' is not in the store.*"
        r"blocks.0.hook_out",
    ):
        train_sae(SAE(3, 4), store, hook="blocks.9.hook_out", steps=1, progress=False)
    with pytest.raises(SaenoError, match="steps or epochs"):
        train_sae(SAE(3, 4), torch.randn(8, 3), steps=1, epochs=1, progress=False)
    with pytest.raises(SaenoError, match="fields"):
        train_sae(SAEFNO(3, 4, ndim=1), torch.randn(8, 3), steps=1, progress=False)
    with pytest.raises(SaenoError, match="checkpoint_dir"):
        train_sae(SAE(3, 4), torch.randn(8, 3), steps=1, resume=True, progress=False)


def test_learning_rate_defaults_and_schedule():
    assert default_lr(16384) == pytest.approx(2e-4)
    assert default_lr(64) == pytest.approx(2e-4 * 16)
    assert default_lr(4) == 1e-2  # capped
    assert [lr_factor(s, 10, warmup_steps=2, decay_frac=0.5) for s in (0, 1, 4, 5, 9)] == [
        0.5,
        1.0,
        1.0,
        1.0,
        0.2,
    ]
    assert math.isclose(lr_factor(100, None, 0, 0.5), 1.0)


def _shift_cos(true: torch.Tensor, learned: torch.Tensor) -> np.ndarray:
    """``|cos|`` between atoms ``(p, C, N)``, maximised over circular shifts (codes may shift)."""
    a = learned / learned.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    n = true.shape[-1]
    shifted = torch.stack([a.roll(r, -1) for r in range(n)])  # (n, q, C, N)
    return torch.einsum("pcn,rqcn->pqr", true, shifted).abs().amax(-1).numpy()


@pytest.mark.slow
def test_sae_fno_recovers_a_planted_convolutional_dictionary():
    """docs/method.md section 4 in 1D: x = sum_k kappa_k * z_k, smooth atoms, one location per concept."""
    g = torch.Generator().manual_seed(5)
    c, n, p, s, m = 3, 32, 4, 2, 3000
    t = torch.arange(n) / n
    atoms = torch.zeros(p, c, n)
    for w in range(1, 4):  # band-limited atoms
        phase = 2 * torch.pi * torch.rand(p, c, 1, generator=g)
        atoms += torch.randn(p, c, 1, generator=g) * torch.cos(2 * torch.pi * w * t + phase)
    atoms /= atoms.flatten(1).norm(dim=1).view(p, 1, 1)
    which = torch.rand(m, p, generator=g).argsort(1)[:, :s]
    shift = torch.randint(0, n, (m, s), generator=g)
    amp = torch.rand(m, s, generator=g) + 0.5
    pos = (torch.arange(n).view(1, 1, n) - shift.unsqueeze(-1)) % n  # (m, s, n)
    x = torch.zeros(m, c, n)
    for j in range(s):
        picked = atoms[which[:, j]]  # (m, c, n)
        x += amp[:, j, None, None] * picked.gather(2, pos[:, j, None, :].expand(m, c, n))
    torch.manual_seed(0)
    sae = SAEFNO(
        c,
        8,
        ndim=1,
        modes=4,
        encoder_init="adjoint",
        spectral_lr_scale=1.0,
        sparsity={"type": "topk", "k": s, "group": "concept", "domain_frac": 1 / n},
    )

    def matched(model):
        cos = _shift_cos(atoms, model.concepts(n))
        rows, cols = linear_sum_assignment(-cos)
        return cos[rows, cols]

    before = matched(sae).mean()
    train_sae(sae, x, steps=600, batch_size=32, progress=False, log_every=100, normalize="center")
    after = matched(sae)
    assert after.mean() >= 0.85 and after.mean() > before + 0.2, (before, after)


def test_resampling_revives_dead_sae_fno_concepts():
    """resample_every re-initialises concepts dead for dead_window steps from batch residuals; they
    then fire (without it, the handicapped concepts stay dead)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(256, 2, 16, generator=g)

    def run(resample_every):
        torch.manual_seed(0)
        sae = SAEFNO(2, 8, ndim=1, modes=4, sparsity={"type": "topk", "k": 2, "group": "concept"})
        with torch.no_grad():
            sae.b_e[4:] = -100.0  # concepts 4-7 can never fire
        res = train_sae(
            sae,
            x,
            steps=60,
            batch_size=32,
            aux_k=0,
            dead_window=10,
            log_every=20,
            resample_every=resample_every,
            progress=False,
            lr=3e-3,
        )
        with torch.no_grad():
            fired = (sae.encode(x) != 0).flatten(2).any(-1).any(0)
        return sae, res, fired

    sae, res, fired = run(None)
    assert not fired[4:].any() and res.final["dead_fraction"] >= 0.5
    sae2, res2, fired2 = run(20)
    assert (sae2.b_e.detach()[4:] > -50).all()  # re-initialised
    assert fired2[4:].any() and res2.final["dead_fraction"] < res.final["dead_fraction"]
    torch.testing.assert_close(sae2.concept_norms().detach(), torch.ones(8))


def test_resampling_needs_a_model_that_supports_it():
    with pytest.raises(SaenoError, match="resample"):
        train_sae(SAE(3, 4), torch.randn(8, 3), steps=1, resample_every=10, progress=False)
