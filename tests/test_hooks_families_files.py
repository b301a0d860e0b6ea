"""``saeno hooks --model`` and ``saeno.zoo.load_model`` for every family, from the files users have.

- neuraloperator ``save_checkpoint`` files (FNO, TFNO, UQNO with a copied or a separate residual model,
  FNOGNO, GINO; UNO and CODANO have no ``save_checkpoint`` in neuraloperator 2.0);
- a state dict (``torch.save(model.state_dict())``, which for neuraloperator's models also pickles a
  ``_metadata`` entry, or ``.safetensors``) plus the architecture (``--architecture`` in the CLI,
  ``model_config=`` in Python), for every family, a UQNO's ``base_model`` nested in it.

Each loaded model lists exactly the original's hook names, and its weights equal the original's.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch
from safetensors.torch import save_file

from saeno.cli.main import main
from saeno.hooking import HookedOperator, fingerprint
from saeno.zoo import load_model
from saeno.zoo.architecture import build_neuralop, fno_kwargs
from test_hooks_cmd_families import ARCHS, FNO, _rows

pytest.importorskip("neuralop.models")

pytestmark = pytest.mark.usefixtures("one_thread_seeded")

FAMILIES = {
    **ARCHS,
    "FNO": FNO,
    "TFNO": {**FNO, "model_class": "TFNO"},
    "UQNO-separate": {"model_class": "UQNO", "base_model": FNO, "residual_model": {**FNO, "n_layers": 1}},
}
CHECKPOINTED = ["FNO", "TFNO", "UQNO", "UQNO-separate", "FNOGNO", "GINO"]


def _build(family):
    with contextlib.redirect_stdout(io.StringIO()):
        return build_neuralop(FAMILIES[family]).eval()


def _names(model):
    return HookedOperator(model).hook_names


def _weights_equal(a, b):
    sa = {k: v for k, v in a.state_dict().items() if isinstance(v, torch.Tensor)}
    sb = {k: v for k, v in b.state_dict().items() if isinstance(v, torch.Tensor)}
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("family", CHECKPOINTED)
def test_hooks_from_a_neuralop_checkpoint(family, tmp_path, capsys):
    model = _build(family)
    model.save_checkpoint(tmp_path, "model")
    assert main(["hooks", "--model", str(tmp_path), "--trust", "--resolution", "8"]) == 0
    out = capsys.readouterr().out
    kind = FAMILIES[family]["model_class"].lower()
    assert f"preset neuralop-{kind}" in out.splitlines()[0]
    assert list(_rows(out)) == _names(model)  # every advertised hook fired on the probe
    loaded = load_model(tmp_path, trust=True)
    inner = getattr(loaded, "fno", loaded)  # a ZooOperator holds it; a UQNO comes bare
    assert type(inner) is type(model) and _weights_equal(inner, model)


def test_a_uqno_checkpoint_without_trust_is_refused(tmp_path, capsys):
    _build("UQNO").save_checkpoint(tmp_path, "model")
    assert main(["hooks", "--model", str(tmp_path), "--resolution", "8"]) == 2
    err = capsys.readouterr().err
    assert "--trust" in err and "Traceback" not in err


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_hooks_from_a_state_dict_and_architecture(family, suffix, tmp_path, capsys):
    model = _build(family)
    torch.manual_seed(1)
    with torch.no_grad():  # weights unlike a fresh build's, so loading them is visible
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    path = tmp_path / f"state{suffix}"
    if suffix == ".pt":
        torch.save(model.state_dict(), path)  # neuraloperator's models add a pickled _metadata entry
    else:
        state = {k: v.contiguous() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
        save_file(state, str(path))
    arch = json.dumps(FAMILIES[family])
    assert main(["hooks", "--architecture", arch, "--model", str(path), "--resolution", "8"]) == 0
    out = capsys.readouterr().out
    assert list(_rows(out)) == _names(model)
    loaded = load_model(path, model_config=arch)
    assert _weights_equal(loaded, model) and fingerprint(loaded) == fingerprint(model)


@pytest.mark.parametrize("family", ["UQNO-separate", "FNOGNO", "GINO"])  # UNO, CODANO keep no _init_kwargs
def test_the_architecture_read_from_a_model_rebuilds_it(family):
    model = _build(family)
    rebuilt = build_neuralop(json.loads(json.dumps(fno_kwargs(model))))
    assert _names(rebuilt) == _names(model)
    rebuilt.load_state_dict(model.state_dict())
    assert _weights_equal(rebuilt, model)
