"""One vocabulary across the Python verbs: ``device``, ``progress`` and the row limit ``n_rows``; old
names (``capture(n=)``, ``audit(max_rows=)``) still work, with a DeprecationWarning."""

from __future__ import annotations

import inspect
import uuid

import pytest
import torch

import saeno
from saeno.deprecation import UNSET, renamed
from saeno.errors import SaenoError


def _verbs():
    from saeno.audit import audit
    from saeno.distributed.capture import capture_distributed
    from saeno.evaluation import evaluate
    from saeno.explain import explain_concepts
    from saeno.export.concepts import export_concepts
    from saeno.store import capture

    return {
        "capture": capture,
        "evaluate": evaluate,
        "explain": explain_concepts,
        "export": export_concepts,
        "audit": audit,
        "capture_distributed": capture_distributed,
    }


@pytest.mark.parametrize("name", ["capture", "evaluate", "explain", "export", "audit", "capture_distributed"])
def test_every_python_verb_takes_device_progress_and_n_rows(name):
    params = inspect.signature(_verbs()[name]).parameters
    for arg in ("device", "progress", "n_rows"):
        assert arg in params and params[arg].kind is inspect.Parameter.KEYWORD_ONLY, (name, arg)


def test_train_sae_takes_device_and_progress_through_its_config():
    from saeno.train import TrainConfig

    fields = TrainConfig.__dataclass_fields__
    assert "device" in fields and "progress" in fields


def test_renamed_passes_the_new_value_warns_on_the_old_and_refuses_a_conflict():
    assert renamed(3, UNSET, new="n_rows", old="n") == 3
    with pytest.warns(DeprecationWarning, match="n= is deprecated: pass n_rows="):
        assert renamed(None, 4, new="n_rows", old="n") == 4
    with pytest.warns(DeprecationWarning), pytest.raises(SaenoError, match="pass n_rows= only"):
        renamed(3, 4, new="n_rows", old="n")


def test_capture_old_n_still_limits_the_rows_with_a_warning():
    hooked = saeno.HookedOperator(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1)))
    x = torch.randn(5, 1, 4, 4)
    with pytest.warns(DeprecationWarning, match="n= is deprecated"):
        old = saeno.capture(hooked, x, "*", f"memory://{uuid.uuid4().hex}", n=3, progress=False)
    new = saeno.capture(hooked, x, "*", f"memory://{uuid.uuid4().hex}", n_rows=3, progress=False)
    assert old.n_rows == new.n_rows == 3
