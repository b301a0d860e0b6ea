"""The store checks every verb shares: hook choice, model and SAE fingerprints, label decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from saeno.errors import HookNameError, LabelError, ModelMismatchError, StoreError
from saeno.evaluation import evaluate
from saeno.export.concepts import export_concepts
from saeno.hooking import HookedOperator, fingerprint
from saeno.sae import SAE
from saeno.store import ActivationStore, capture
from saeno.supervised.training import store_labels

HOOKS = ["blocks.0.hook_out", "blocks.1.hook_out"]


def tiny_fno(seed: int) -> torch.nn.Module:
    from neuralop.models import FNO

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return FNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=4, n_layers=2).eval()


class Labelled(Dataset):
    """Six samples whose ``family`` factor is given per sample by name."""

    labels = {"family": ["odd" if i % 2 else "even" for i in range(6)]}

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.randn(1, 8, 8, generator=torch.Generator().manual_seed(i))


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("checks")
    fno = tiny_fno(0)
    two = capture(HookedOperator(fno), Labelled(), HOOKS, root / "two.zarr", batch_size=4, progress=False)
    one = capture(HookedOperator(fno), Labelled(), HOOKS[:1], root / "one.zarr", batch_size=4, progress=False)
    other = capture(
        HookedOperator(tiny_fno(1)), Labelled(), HOOKS[:1], root / "other.zarr", batch_size=4, progress=False
    )
    return fno, two, one, other


def test_resolve_hook_names_the_store_its_hooks_and_the_fix(stores):
    _, two, one, _ = stores
    assert two.resolve_hook("blocks.1.hook_out") == "blocks.1.hook_out"
    assert one.resolve_hook() == HOOKS[0]  # the only hook
    assert two.resolve_hook(None, default="blocks.1.hook_out") == "blocks.1.hook_out"
    assert two.resolve_hook("blocks.0.hook_out", default="blocks.1.hook_out") == "blocks.0.hook_out"
    with pytest.raises(HookNameError, match=r"several hooks.*hook=.*--hook"):
        two.resolve_hook()
    with pytest.raises(HookNameError, match=r"'blocks.7.hook_out' is not in the store .*two\.zarr.*blocks.0"):
        two.resolve_hook("blocks.7.hook_out")
    with pytest.raises(HookNameError, match="not in the store"):
        two.resolve_hook(None, default="lifting.hook_out")  # an SAE's recorded hook is checked too
    with pytest.raises(HookNameError, match="not in the store"):  # reading goes through the same check
        two.stats("blocks.7.hook_out")


def test_model_checks_compare_fingerprints(stores):
    fno, two, _, other = stores
    assert two.check_model(fno) == fingerprint(fno) == two.fingerprint
    assert two.check_model(HookedOperator(fno)) == two.fingerprint
    with pytest.raises(ModelMismatchError, match=r"not the model that produced.*--model") as info:
        two.check_model(tiny_fno(1))
    assert isinstance(info.value, StoreError)  # callers that catch StoreError keep working
    sae = SAE(4, 8)
    two.check_sae(sae)  # records no fingerprint: nothing to compare
    sae.model_fingerprint = two.fingerprint
    two.check_sae(sae)
    sae.model_fingerprint = other.fingerprint
    with pytest.raises(ModelMismatchError, match=r"SAE was trained on activations of model.*--store"):
        two.check_sae(sae)
    two.check_same_model(ActivationStore.open(two.url))
    with pytest.raises(ModelMismatchError, match="another model"):
        two.check_same_model(other)


def test_label_codes_decode_per_sample_names(stores):
    _, two, _, _ = stores
    codes, factors = two.label_codes()
    assert factors == {"family": ["even", "odd"]}
    np.testing.assert_array_equal(codes["family"], np.arange(6) % 2)
    assert store_labels(two)[1] == factors  # the supervised trainer reads them through the same check


def test_unlabelled_store_raises_label_error(tmp_path):
    x = torch.randn(3, 1, 8, 8)
    store = capture(HookedOperator(tiny_fno(0)), x, HOOKS[:1], tmp_path / "s.zarr", progress=False)
    with pytest.raises(LabelError, match="no per-sample labels"):
        store.label_codes()


def test_export_and_evaluate_refuse_an_sae_of_another_model_alike(stores, tmp_path):
    _, _, one, other = stores
    sae = SAE(4, 8)
    sae.hook = HOOKS[0]
    sae.model_fingerprint = other.fingerprint
    with pytest.raises(ModelMismatchError, match="SAE was trained on activations"):
        evaluate(sae, one, HOOKS[0], progress=False)
    with pytest.raises(ModelMismatchError, match="SAE was trained on activations"):
        export_concepts(sae, one, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "concepts.json").exists()
    sae.model_fingerprint = one.fingerprint  # the same SAE with the store's model exports
    export_concepts(sae, one, tmp_path / "ok", n_top=2, max_concepts=2, progress=False)
    assert (tmp_path / "ok" / "concepts.json").exists()
