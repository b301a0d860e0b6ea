"""TrainConfig as the trainer's API, the CLI's flags and the run record; default length; warnings."""

from __future__ import annotations

import argparse
import dataclasses
import json
import warnings

import pytest
import torch

import saeno.train.config as config_mod
from saeno.errors import SaenoError
from saeno.sae import SAE
from saeno.train.config import CLI_DERIVED, TrainConfig, TrainConfigError, add_arguments
from saeno.train.trainer import ConvergenceWarning, convergence_warnings, train_sae

pytestmark = pytest.mark.usefixtures("one_thread_seeded")  # see conftest.py


def _rows(n: int = 512, c: int = 4) -> torch.Tensor:
    return torch.randn(n, c, generator=torch.Generator().manual_seed(0))


def test_every_field_has_a_docstring_and_a_cli_flag():
    docs = config_mod.field_docs(TrainConfig)
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    assert set(docs) == set(names) and all(docs.values())
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = {opt for action in parser._actions for opt in action.option_strings}
    for name in names:
        if name in CLI_DERIVED:
            continue
        flag = "--no-progress" if name == "progress" else "--" + name.replace("_", "-")
        assert flag in flags, name
    # the parsed defaults are the dataclass's defaults
    got = config_mod.from_arguments(parser.parse_args([]))
    assert got == TrainConfig()
    got = config_mod.from_arguments(
        parser.parse_args(
            [
                "--aux-coef",
                "0.5",
                "--lr-warmup-steps",
                "7",
                "--keep-checkpoints",
                "0",
                "--no-progress",
                "--resume",
                "--steps",
                "9",
            ]
        )
    )
    assert (got.aux_coef, got.lr_warmup_steps, got.keep_checkpoints, got.progress, got.resume, got.steps) == (
        0.5,
        7,
        0,
        False,
        True,
        9,
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["--steps", "3", "--epochs", "2"])


def test_config_object_and_keyword_options_train_the_same_model(tmp_path):
    x = _rows()
    a, b = SAE(4, 8), SAE(4, 8)
    b.load_state_dict(a.state_dict())
    cfg = TrainConfig(steps=7, batch_size=64, progress=False, checkpoint_dir=str(tmp_path / "ck"))
    train_sae(a, x, cfg)
    train_sae(b, x, steps=7, batch_size=64, progress=False)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    # the checkpoint holds the run record, which rebuilds the config
    state = json.loads((tmp_path / "ck" / "step_00000007" / "trainer_state.json").read_text())
    assert TrainConfig.from_record(state["trainer"]["signature"]["config"]) == cfg
    with pytest.raises(TrainConfigError, match="unknown training option"):
        train_sae(SAE(4, 8), x, stpes=3)
    with pytest.raises(TrainConfigError, match="lr_decay_frac"):
        TrainConfig(lr_decay_frac=2.0)
    assert issubclass(TrainConfigError, SaenoError)


def test_default_length_is_at_least_the_minimum_and_one_epoch(monkeypatch):
    monkeypatch.setattr(config_mod, "DEFAULT_MIN_STEPS", 20)
    res = train_sae(SAE(4, 8), _rows(512), batch_size=64, progress=False)  # 8 batches per epoch
    assert res.steps == 20 and res.samples == 20 * 64
    res = train_sae(SAE(4, 8), _rows(64 * 30), batch_size=64, progress=False)  # 30 per epoch
    assert res.steps == 30


def test_unconverged_runs_warn_and_say_why():
    with pytest.warns(ConvergenceWarning, match="explained variance"):
        res = train_sae(
            SAE(4, 2, sparsity={"type": "topk", "k": 1}),
            _rows() * 10,
            steps=2,
            batch_size=64,
            progress=False,
            log_every=1,
        )
    assert res.warnings and "explained variance" in res.warnings[0]
    falling = [{"step": 10 * i, "loss": 1.0 - 0.1 * i, "ev": 0.9} for i in range(8)]
    flat = [{"step": 10 * i, "loss": 1.0, "ev": 0.9} for i in range(8)]
    assert any("still falling" in w for w in convergence_warnings(falling))
    assert convergence_warnings(flat) == []
    # a loss that falls only in the final learning-rate decay is not "still falling"
    annealed = flat + [{"step": 80 + 10 * i, "loss": 0.9 - 0.1 * i, "ev": 0.9} for i in range(3)]
    assert convergence_warnings(annealed, decay_start=75) == []
    assert convergence_warnings(annealed) != []
    assert any("explained variance" in w for w in convergence_warnings([{"loss": 1, "ev": 0.2}]))


def test_param_groups_of_the_model_give_the_optimiser_its_rates():
    class Grouped(SAE):
        def param_groups(self, lr):
            enc = [self.W_enc, self.b_enc]
            rest = [p for p in self.parameters() if all(p is not q for q in enc)]
            return [{"params": enc, "lr": lr}, {"params": rest, "lr": lr * 10}]

    from saeno.train.trainer import build_optimizer

    sae = Grouped(4, 8)
    opt = build_optimizer(sae, 1e-3)
    assert [g["base_lr"] for g in opt.param_groups] == [1e-3, 1e-2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        train_sae(sae, _rows(), steps=3, batch_size=64, progress=False)


def test_train_sae_accepts_a_store_path(tmp_path):
    from neuralop.models import FNO

    from saeno.hooking import HookedOperator
    from saeno.store import capture

    torch.manual_seed(0)
    fno = FNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=4, n_layers=1).eval()
    path = tmp_path / "acts.zarr"
    capture(
        HookedOperator(fno),
        torch.randn(8, 1, 8, 8),
        ["blocks.0.hook_out"],
        path,
        batch_size=4,
        progress=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = train_sae(SAE(4, 8, ndim=2), str(path), steps=3, batch_size=64, progress=False)
        res2 = train_sae(SAE(4, 8, ndim=2), path, steps=3, batch_size=64, progress=False)
    assert res.sae.hook == res2.sae.hook == "blocks.0.hook_out" and res.steps == 3
