"""The labelled benchmark's FNO is a zoo recipe: trained by zoo.training.fit, cached, loaded by the zoo."""

from __future__ import annotations

import numpy as np
import torch

from saeno.zoo import labelled, load_model
from saeno.zoo.training import fit_loop


def test_train_fno_is_the_zoo_loop_on_a_bare_fno():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 2, 32)).astype(np.float32)
    y = rng.normal(size=(24, 1, 32)).astype(np.float32)
    model, record = labelled.train_fno(x, y, epochs=2, batch_size=8, seed=4)
    assert not hasattr(model, "fno")  # a bare neuraloperator FNO, no normaliser around it
    torch.manual_seed(4)  # by hand: the same build and the zoo's loop with the recipe
    ref = labelled.build()
    hp = dict(labelled.RECIPE, epochs=2, batch_size=8, lr=3e-3, seed=4)
    _, steps = fit_loop(
        ref, torch.as_tensor(x), torch.as_tensor(y), hp, device=torch.device("cpu"), progress=False
    )
    for k, v in ref.state_dict().items():
        if torch.is_tensor(v):
            torch.testing.assert_close(model.state_dict()[k], v)
    assert record["final_train_rel_l2"] == np.mean(steps[-20:])


def test_saved_folder_loads_through_the_zoo(tmp_path):
    torch.manual_seed(0)
    kwargs = {"n_modes": [4], "in_channels": 2, "out_channels": 1, "hidden_channels": 4, "n_layers": 1}
    model = labelled.build(kwargs).eval()
    folder = labelled.save(model, tmp_path / "fno", {"name": "tiny", "fno": kwargs, "record": {"a": 1}})
    loaded = load_model(folder)
    x = torch.randn(3, 2, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert loaded.saeno_record == {"a": 1}
