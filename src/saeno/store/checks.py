"""The checks every verb makes on a store it is given: which hook, which model, which labels.

Each check raises one error type, with a message that names the fix in both interfaces' terms
(the Python argument and the CLI flag):

- :func:`resolve_hook`: the hook to use -> :class:`~saeno.errors.HookNameError`;
- :func:`check_model` and :func:`check_sae`: the FNO, or the model an SAE was trained on, is the one
  that produced the store -> :class:`~saeno.errors.ModelMismatchError`;
- :func:`label_codes`: per-row label codes and category names -> :class:`~saeno.errors.LabelError`.

:class:`~saeno.store.ActivationStore` offers them as methods (``store.resolve_hook(...)``); the
functions take any object with the store's attributes (``hooks``, ``fingerprint``, ``url``,
``attrs``, ``params``, ``labels``, ``n_rows``) so that the verbs also accept stand-ins in tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from saeno.errors import HookNameError, LabelError, ModelMismatchError


def _where(store: Any) -> str:
    url = getattr(store, "url", None)
    return f"the store {url}" if url else "the store"


def resolve_hook(store: Any, hook: str | None = None, *, default: str | None = None) -> str:
    """The store's hook to use: ``hook``; when None, ``default`` (an SAE's recorded hook), else the
    store's only hook.

    Raises
    ------
    HookNameError
        The hook is not in the store, or none is named and the store holds several.
    """
    hooks = [str(h) for h in getattr(store, "hooks", [])]
    if hook is None:
        hook = default
    if hook is None:
        if len(hooks) != 1:
            raise HookNameError(
                f"{_where(store)} holds several hooks ({', '.join(hooks)}) and none is named: "
                "choose one with hook= (CLI: --hook NAME)"
            )
        return hooks[0]
    if hook not in hooks:
        raise HookNameError(
            f"hook {hook!r} is not in {_where(store)}; it holds {hooks}. Pass one of these with "
            "hook= (CLI: --hook NAME), or capture that hook first (saeno capture --hooks ...)"
        )
    return str(hook)


def _stored_fingerprint(store: Any) -> str | None:
    fp = getattr(store, "fingerprint", None)
    return None if fp in (None, "", "None") else str(fp)


def check_model(store: Any, model: Any) -> str:
    """The fingerprint of ``model`` (a module or a HookedOperator), checked against the store's.

    Raises
    ------
    ModelMismatchError
        The model is not the one whose activations the store holds.
    """
    from saeno.hooking import fingerprint

    module = getattr(model, "model", model)
    got = str(fingerprint(module))
    stored = _stored_fingerprint(store)
    if stored is not None and got != stored:
        raise ModelMismatchError(
            f"the model given (fingerprint {got[:12]}) is not the model that produced "
            f"{_where(store)} (fingerprint {stored[:12]}): pass the FNO the store was captured "
            "from (model=..., CLI: --model), or capture a store from this model"
        )
    return got


def check_sae(store: Any, sae: Any) -> None:
    """Check that ``sae`` was trained on activations of the store's model (when both record one).

    Raises
    ------
    ModelMismatchError
        The SAE's recorded model fingerprint differs from the store's.
    """
    sae_fp = getattr(sae, "model_fingerprint", None)
    stored = _stored_fingerprint(store)
    if sae_fp and stored is not None and sae_fp != stored:
        raise ModelMismatchError(
            f"the SAE was trained on activations of model {str(sae_fp)[:12]} but {_where(store)} "
            f"comes from model {stored[:12]}: use a store captured from the FNO the SAE was "
            "trained on (store=..., CLI: --store)"
        )


def check_same_model(store: Any, other: Any) -> None:
    """Check that two stores come from the same model (ModelMismatchError otherwise)."""
    a, b = _stored_fingerprint(store), _stored_fingerprint(other)
    if a is not None and b is not None and a != b:
        raise ModelMismatchError(
            f"{_where(other)} was captured from another model ({b[:12]}) than {_where(store)} "
            f"({a[:12]}): every store must come from the same FNO"
        )


def label_codes(store: Any) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Per-row label codes ``{factor: (n_rows,) int64}`` and category names ``{factor: [names]}``.

    Reads per-sample ``params/label_<factor>`` codes (written by labelled benchmarks) with the
    category names of the dataset card in the store's attributes; else the ``labels`` attribute when
    it holds per-sample category names (one list of ``n_rows`` names per factor).

    Raises
    ------
    LabelError
        The store has no per-sample labels.
    """
    attrs = dict(getattr(store, "attrs", {}) or {})
    card = (attrs.get("dataset") or {}).get("card") or {}
    card_factors = {f: list(v) for f, v in (card.get("labels") or {}).items()}
    params = store.params
    codes, factors = {}, {}
    for f, cats in card_factors.items():
        if f"label_{f}" in params:
            codes[f] = np.asarray(params[f"label_{f}"]).astype(np.int64)
            factors[f] = cats
    if codes:
        return codes, factors
    per_sample = store.labels
    if per_sample and all(len(v) == store.n_rows and not isinstance(v, str) for v in per_sample.values()):
        for f, names in per_sample.items():
            cats = card_factors.get(f) or sorted(set(names))
            factors[f] = cats
            codes[f] = np.array([cats.index(s) for s in names], dtype=np.int64)
        return codes, factors
    raise LabelError(
        "this store has no per-sample labels: capture a labelled dataset (e.g. "
        "burgers_labelled) or pass the labels explicitly"
    )
