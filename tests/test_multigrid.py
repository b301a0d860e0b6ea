"""Training on several grids: the mixed batch source, the bias field fitted in mode space, the errors,
the CLI with two stores, and the gain at the finer grid on planted data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import saeno
from saeno.errors import SaenoError, ShapeError
from saeno.sae import SAE, SAEFNO, FlatSAE
from saeno.sae.bias_field import BiasField
from saeno.train import MultiGrid
from saeno.train.data import make_source
from saeno.train.guards import ResumeMismatchError
from saeno.train.multigrid import MultiGridSource


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def planted_mean(grid: int, channels: int = 3) -> torch.Tensor:
    """A band-limited field (frequencies below 3) per channel, sampled on ``grid`` points per side."""
    x = torch.arange(grid, dtype=torch.float64) / grid
    X, Y = torch.meshgrid(x, x, indexing="ij")
    fields = [
        1.0 + torch.cos(2 * math.pi * X),
        torch.sin(2 * math.pi * (X + 2 * Y)) - 0.5,
        0.3 * torch.cos(2 * math.pi * 2 * Y) + torch.sin(2 * math.pi * X),
    ]
    return torch.stack(fields[:channels])


def test_planted_mean_field_is_recovered_from_batches_at_two_grids():
    gen = torch.Generator().manual_seed(0)
    a16 = planted_mean(16).unsqueeze(0) + 0.3 * torch.randn(64, 3, 16, 16, generator=gen, dtype=torch.float64)
    a32 = planted_mean(32).unsqueeze(0) + 0.3 * torch.randn(64, 3, 32, 32, generator=gen, dtype=torch.float64)
    sae = SAEFNO(3, 8, ndim=2, modes=4)
    sae.set_normalization(np.zeros(3), np.ones(3))
    # batches at two grids in one iterable: fitted per grid, averaged in mode space
    batches = [a16[:32].float(), a32[:32].float(), a16[32:].float(), a32[32:].float()]
    sae.fit_bias_field_(batches)
    for grid in (16, 32, 48):  # 48: a grid none of the batches had
        got = sae.bias_field((grid, grid))[0].detach().double()
        want = planted_mean(grid)
        assert float((got - want).norm() / want.norm()) < 0.02, grid
    # the noise of both grids averages: the fit is closer than from one grid's batches alone
    one = SAEFNO(3, 8, ndim=2, modes=4)
    one.set_normalization(np.zeros(3), np.ones(3))
    one.fit_bias_field_([a16[:32].float(), a16[32:].float()])
    err_two = (sae.bias_field((48, 48))[0].detach().double() - planted_mean(48)).norm()
    err_one = (one.bias_field((48, 48))[0].detach().double() - planted_mean(48)).norm()
    assert err_two < err_one


def test_mode_space_fit_averages_only_the_grids_that_resolve_a_mode():
    # K = 4 keeps frequencies |w| < 4; a 5-point grid resolves |w| <= 2 only
    n_fine = 16
    x = torch.arange(n_fine, dtype=torch.float64) / n_fine
    fine = (torch.cos(2 * math.pi * x) + 0.5 * torch.cos(2 * math.pi * 3 * x)).unsqueeze(0)
    xc = torch.arange(5, dtype=torch.float64) / 5
    coarse = torch.cos(2 * math.pi * xc).unsqueeze(0)  # the same field without the unresolved mode
    bf = BiasField(1, 4, 1).double()
    bf.fit_([coarse, fine])
    w = torch.view_as_complex(bf.coef)[0]
    # mode 1 held by both (0.5 each in forward-normalised rfft), mode 3 by the fine grid alone
    assert torch.allclose(w[1], torch.tensor(0.5, dtype=w.dtype), atol=1e-12)
    assert torch.allclose(w[3], torch.tensor(0.25, dtype=w.dtype), atol=1e-12)
    # weights: a weighted mean of the per-grid coefficients
    bf2 = BiasField(1, 4, 1).double()
    bf2.fit_([coarse * 3, fine], weights=[1.0, 3.0])
    assert torch.allclose(torch.view_as_complex(bf2.coef)[0, 1], torch.tensor((1.5 + 1.5) / 4, dtype=w.dtype))


def labelled(n: int, grid: int, offset: float) -> torch.Tensor:
    """Fields ``(n, 2, grid, grid)`` whose channel 0 is the sample's label ``offset + i`` everywhere."""
    a = torch.zeros(n, 2, grid, grid)
    a[:, 0] = (offset + torch.arange(n, dtype=torch.float32)).view(n, 1, 1)
    a[:, 1] = torch.randn(n, grid, grid)
    return a


def test_mixed_source_alternates_grids_with_equal_points_and_the_right_rows():
    a16, a32 = labelled(40, 16, 0.0), labelled(30, 32, 1000.0)
    src = make_source(MultiGrid([a16, a32]), view="field", batch_size=8, seed=3, hook=None)
    assert isinstance(src, MultiGridSource)
    # equal points: 8 fields of 16x16 = 2 fields of 32x32
    assert [s.batch_size for s in src.sources] == [8, 2]
    assert src.n_batches == 2 * min(40 // 8, 30 // 2)
    batches = list(src.epoch(0))
    assert len(batches) == src.n_batches
    grids = [b.shape[-1] for b in batches]
    assert grids == [16, 32] * (len(batches) // 2)
    assert all(b.shape[0] * b.shape[-1] ** 2 == 8 * 256 for b in batches)  # same points per batch
    labels16 = torch.cat([b[:, 0, 0, 0] for b in batches if b.shape[-1] == 16])
    labels32 = torch.cat([b[:, 0, 0, 0] for b in batches if b.shape[-1] == 32])
    assert labels16.max() < 40 and labels32.min() >= 1000  # each grid's batches from its own tensor
    assert len(set(labels16.tolist())) == len(labels16) == 40  # a permutation of the 16x16 samples
    assert len(set(labels32.tolist())) == len(labels32)
    # a resumed epoch continues with exactly the same batches
    again = list(src.epoch(0, skip=3))
    assert len(again) == len(batches) - 3
    assert all(torch.equal(x, y) for x, y in zip(again, batches[3:]))
    # the next epoch shuffles differently
    assert not torch.equal(next(iter(src.epoch(1))), batches[0])
    # equal fields on request
    src_f = make_source(
        MultiGrid([a16, a32], grid_batches="fields"), view="field", batch_size=8, seed=3, hook=None
    )
    assert [s.batch_size for s in src_f.sources] == [8, 8]


def test_mixed_source_rows_for_a_pointwise_sae_and_pooled_moments():
    a16, a32 = labelled(8, 16, 0.0), labelled(4, 32, 1000.0)
    src = make_source(MultiGrid([a16, a32]), view="points", batch_size=256, seed=0, hook=None)
    batches = list(src.epoch(0))
    assert all(b.shape == (256, 2) for b in batches)
    first, second = batches[0][:, 0], batches[1][:, 0]
    assert first.max() < 8 and second.min() >= 1000  # rows from the 16x16 fields, then from the 32x32
    mean, var = src.moments()
    # equal weight per grid, by hand
    m16, m32 = a16.double().mean(dim=(0, 2, 3)), a32.double().mean(dim=(0, 2, 3))
    s16, s32 = a16.double().pow(2).mean(dim=(0, 2, 3)), a32.double().pow(2).mean(dim=(0, 2, 3))
    want_mean = (m16 + m32) / 2
    want_var = (s16 + s32) / 2 - want_mean**2
    assert np.allclose(mean, want_mean.numpy()) and np.allclose(var, want_var.numpy(), rtol=1e-6)
    # and a pointwise SAE trains on it
    sae = SAE(2, 4, ndim=2, sparsity={"type": "topk", "k": 1})
    res = saeno.train_sae(sae, MultiGrid([a16, a32]), steps=4, batch_size=256, progress=False)
    assert res.steps == 4 and res.samples == 4 * 256


def test_mismatched_grids_data_raise_saeno_errors():
    a16 = torch.randn(8, 3, 16, 16)
    with pytest.raises(ShapeError, match="channel counts"):
        make_source(
            MultiGrid([a16, torch.randn(8, 4, 32, 32)]), view="field", batch_size=4, seed=0, hook=None
        )
    with pytest.raises(ShapeError, match="dimensions"):
        make_source(MultiGrid([a16, torch.randn(8, 3, 32)]), view="field", batch_size=4, seed=0, hook=None)
    with pytest.raises(ShapeError, match="one grid"):
        make_source(MultiGrid([a16, torch.randn(8, 3)]), view="field", batch_size=4, seed=0, hook=None)
    with pytest.raises(SaenoError, match="MultiGrid entry 1"):
        make_source(MultiGrid([a16, 3.0]), view="field", batch_size=4, seed=0, hook=None)
    with pytest.raises(SaenoError, match="grid_batches"):
        MultiGrid([a16], grid_batches="rows")
    data = MultiGrid([a16, torch.randn(8, 3, 32, 32)])
    with pytest.raises(ShapeError, match="works on its grid"):
        saeno.train_sae(FlatSAE(3, 4, grid=(16, 16)), data, steps=1, progress=False)
    with pytest.raises(ShapeError, match="resolves at most 4 Fourier modes"):
        saeno.train_sae(SAEFNO(3, 4, ndim=2, modes=6), MultiGrid([torch.randn(8, 3, 7, 7), a16]), steps=1)
    with pytest.raises(ShapeError, match="is 1D"):
        saeno.train_sae(SAEFNO(3, 4, ndim=1, modes=4), data, steps=1, progress=False)


# ------------------------------------------------------------------- stores and the CLI


@pytest.fixture(scope="module")
def two_grid_stores(tmp_path_factory):
    """The same 1D example FNO captured at 32 and 64 points (and a store of another hook)."""
    from saeno.hooking import HookedOperator
    from saeno.hooking.examples import example_model

    torch.manual_seed(0)
    hooked = HookedOperator(example_model("example-fno1d")).eval()
    root = tmp_path_factory.mktemp("grids")
    x64 = torch.randn(24, 1, 64)
    paths = {}
    for n, x in ((32, x64[..., ::2]), (64, x64)):
        paths[n] = root / f"acts_{n}.zarr"
        saeno.capture(hooked, x, "blocks.1.hook_out", str(paths[n]), batch_size=8, progress=False)
    paths["other"] = root / "other.zarr"
    saeno.capture(hooked, x64, "blocks.0.hook_out", str(paths["other"]), batch_size=8, progress=False)
    return paths


def test_train_sae_on_a_list_of_stores(two_grid_stores, tmp_path):
    paths = [str(two_grid_stores[32]), str(two_grid_stores[64])]
    sae = SAEFNO(
        saeno.ActivationStore.open(paths[0]).hook_info("blocks.1.hook_out")["shape"][0], 8, ndim=1, modes=4
    )
    ckpt = tmp_path / "ck"
    res = saeno.train_sae(
        sae, paths, steps=6, batch_size=4, progress=False, checkpoint_dir=ckpt, checkpoint_every=3
    )
    assert res.steps == 6 and sae.hook == "blocks.1.hook_out"
    assert sae.model_fingerprint == saeno.ActivationStore.open(paths[0]).fingerprint
    # 4 fields at 32 points, 2 at 64: equal points per batch
    assert res.samples == 3 * 4 + 3 * 2
    # resume continues the same two-grid run
    res2 = saeno.train_sae(
        SAEFNO(sae.in_channels, 8, ndim=1, modes=4),
        paths,
        steps=8,
        batch_size=4,
        progress=False,
        checkpoint_dir=ckpt,
        resume=True,
    )
    assert res2.steps == 8
    # ... and refuses to continue it on one grid, naming the grids
    with pytest.raises(ResumeMismatchError, match="training grids"):
        saeno.train_sae(
            SAEFNO(sae.in_channels, 8, ndim=1, modes=4),
            paths[0],
            steps=10,
            batch_size=4,
            progress=False,
            checkpoint_dir=ckpt,
            resume=True,
        )


def test_cli_trains_on_two_stores_and_names_mismatches_in_flags(two_grid_stores, tmp_path, capsys):
    from saeno.cli.main import main

    out = tmp_path / "fno"
    base = [
        "train",
        "--arch",
        "sae-fno",
        "--modes",
        "4",
        "--concepts",
        "8",
        "--k",
        "3",
        "--steps",
        "3",
        "--batch-size",
        "4",
        "--no-progress",
    ]
    stores = ["--store", str(two_grid_stores[32]), "--store", str(two_grid_stores[64])]
    assert main([*base, *stores, "--out", str(out)]) == 0
    assert "saved:" in capsys.readouterr().out
    fno = saeno.load_sae(out)
    assert fno.metadata["store"] == [str(two_grid_stores[32]), str(two_grid_stores[64])]
    assert fno.metadata["samples"] == 4 + 2 + 4  # 32, 64, 32 points per field: 4, 2, 4 fields
    # another hook in the second store: named with the flag
    code = main(
        [
            *base,
            "--store",
            str(two_grid_stores[32]),
            "--store",
            str(two_grid_stores["other"]),
            "--out",
            str(tmp_path / "x"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--store" in err and "Traceback" not in err
    # the flat SAE trains on one grid
    code = main(
        ["train", "--arch", "flat", "--concepts", "4", *stores, "--out", str(tmp_path / "y"), "--no-progress"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "one --store" in err


# ------------------------------------------------------------------- the gain at the finer grid


def synthetic_activations(n: int, grid: int, seed: int) -> torch.Tensor:
    """FNO-like 1D activations ``(n, 4, grid)``: two smooth channels (tanh of random fields) and two
    responses to the fields' sign changes that are two cells wide at every grid, as an FNO's response to
    a piecewise-constant input's interfaces is: a finer grid carries finer structure the coarse one lacks."""
    gen = torch.Generator().manual_seed(seed)
    k = torch.arange(1, 7, dtype=torch.float64)
    coef = torch.randn(n, 2, 6, generator=gen, dtype=torch.float64) / k
    x = torch.arange(grid, dtype=torch.float64) / grid
    u = torch.einsum("ncf,fx->ncx", coef, torch.sin(2 * math.pi * k[:, None] * x[None] + 0.3 * k[:, None]))
    s = torch.sign(u)
    edge = (s.roll(-1, -1) - s).abs() / 2  # 1 on the cell before each sign change
    response = edge + 0.5 * edge.roll(1, -1) + 0.5 * edge.roll(-1, -1)
    return torch.stack(
        [torch.tanh(2 * u[:, 0]), torch.tanh(2 * u[:, 1]), response[:, 0], response[:, 1]], 1
    ).float()


def test_two_grid_training_lowers_the_error_at_the_finer_and_an_unseen_grid():
    train16, train32 = synthetic_activations(200, 16, 0), synthetic_activations(200, 32, 0)
    tests = {n: synthetic_activations(64, n, 1) for n in (16, 32, 64)}

    def errors(data) -> dict[int, float]:
        torch.manual_seed(0)
        sae = SAEFNO(4, 16, ndim=1, modes=4, sparsity={"type": "topk", "k": 4})
        saeno.train_sae(sae, data, steps=150, batch_size=16, seed=0, progress=False)
        sae.eval()
        out = {}
        with torch.no_grad():
            for n, t in tests.items():
                x = sae.normalize(t)
                out[n] = float((sae.normalize(sae(t)) - x).norm() / (x - x.mean(0)).norm())
        return out

    one = errors(train16)
    both = errors(MultiGrid([train16, train32]))
    assert one[32] > 1.2 * one[16]  # the planted gap: one grid's dictionary loses at the finer grid
    assert both[32] < 0.95 * one[32], (both, one)  # the second training grid closes part of it
    assert both[64] < 0.9 * one[64], (both, one)  # and at 64 points, a grid neither model saw


def test_evaluation_marks_every_training_grid(two_grid_stores, tmp_path):
    from saeno.evaluation import evaluate

    stores = [saeno.ActivationStore.open(two_grid_stores[n]) for n in (32, 64)]
    channels = stores[0].hook_info("blocks.1.hook_out")["shape"][0]
    both = SAEFNO(channels, 8, ndim=1, modes=4)
    saeno.train_sae(
        both, [str(two_grid_stores[32]), str(two_grid_stores[64])], steps=2, batch_size=4, progress=False
    )
    one = SAEFNO(channels, 8, ndim=1, modes=4)
    saeno.train_sae(one, str(two_grid_stores[32]), steps=2, batch_size=4, progress=False)
    assert both.metadata["train_grids"] == [[32], [64]] and one.metadata["train_grids"] == [[32]]
    # the record survives saving, and evaluation reads it: listed first or not, 64 is a training grid
    saeno.save_sae(both, tmp_path / "both")
    loaded = saeno.load_sae(tmp_path / "both")
    for sae, expected in ((loaded, {64: True, 32: True}), (one, {64: False, 32: True})):
        report = evaluate(sae, stores[1], "blocks.1.hook_out", other_stores=[stores[0]])
        marks = {r["grid"][0]: r["training_resolution"] for r in report["results"]}
        assert marks == expected
