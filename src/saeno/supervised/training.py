"""Fit a :class:`~saeno.sae.supervised.SupervisedSAE` on activations and labels, holding out combinations.

Training runs through :func:`saeno.train_sae` (the one training loop) on ``(activations, label mask)``
pairs; the model's ``forward_train`` supplies its loss terms (reconstruction and the nuisance-label
decorrelation penalty). Held-out label combinations are removed from the rows *before* the data reach the
trainer: no batch can contain a held-out row. A held-out specification is a dict
``{factor: category}`` naming some or all factors; every sample that matches all its entries is held out
(``{"viscosity": "low", "drift": "right"}`` holds out that pair under every ``ic``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saeno.errors import SaenoError
from saeno.sae.supervised import LabelError, SupervisedSAE, nuisance_label_correlation

Holdout = Sequence[Mapping[str, str]]


@dataclass
class SupervisedFit:
    """A trained supervised SAE and what it was trained on.

    Attributes
    ----------
    sae : SupervisedSAE
        The model (eval mode).
    train_rows : numpy.ndarray
        Rows the batches were drawn from (held-out rows excluded).
    losses : list of float
        Training loss (channel-averaged normalised MSE plus the decorrelation penalty), the mean of
        every ``log_every`` steps.
    """

    sae: SupervisedSAE
    train_rows: np.ndarray
    losses: list[float] = field(default_factory=list)


def parse_holdout(specs: Sequence[str] | None) -> list[dict[str, str]]:
    """Parse CLI strings ``"viscosity=low,drift=right"`` into holdout dicts."""
    out = []
    for spec in specs or []:
        d = {}
        for part in spec.split(","):
            if "=" not in part:
                raise LabelError(f"held-out combination {spec!r}: write factor=category[,factor=...]")
            k, v = part.split("=", 1)
            d[k.strip()] = v.strip()
        out.append(d)
    return out


def holdout_mask(
    codes: Mapping[str, np.ndarray], factors: Mapping[str, Sequence[str]], holdout: Holdout | None
) -> np.ndarray:
    """Boolean ``(N,)``: samples matching any held-out specification."""
    n = len(next(iter(codes.values())))
    out = np.zeros(n, dtype=bool)
    for spec in holdout or []:
        hit = np.ones(n, dtype=bool)
        for f, cat in spec.items():
            if f not in factors:
                raise LabelError(f"held-out factor {f!r} is unknown: factors are {list(factors)}")
            if cat not in factors[f]:
                raise LabelError(
                    f"held-out category {cat!r} of {f!r} is unknown: choose among {list(factors[f])}"
                )
            hit &= np.asarray(codes[f]) == list(factors[f]).index(cat)
        out |= hit
    return out


def pick_holdout(factors: Mapping[str, Sequence[str]], k: int, seed: int = 0) -> list[dict[str, str]]:
    """``k`` full label combinations to hold out, chosen at random among those that leave every
    pair of category values (of two different factors) in the training set."""
    combos = list(itertools.product(*[[(f, c) for c in cats] for f, cats in factors.items()]))
    rng = np.random.default_rng(seed)
    for _ in range(1000):
        pick = [combos[i] for i in rng.choice(len(combos), size=k, replace=False)]
        rest = [c for c in combos if c not in pick]
        pairs = {p for c in rest for p in itertools.combinations(c, 2)}
        need = {p for c in combos for p in itertools.combinations(c, 2)}
        if pairs == need:
            return [dict(c) for c in pick]
    raise SaenoError(
        f"cannot hold out {k} combinations of {dict(factors)} and keep every pair "
        "of categories in training: hold out fewer"
    )


def store_labels(store: Any) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Per-row label codes and category names of an activation store.

    Reads per-sample ``params/label_<factor>`` codes (written by labelled benchmarks) with the category
    names of the dataset card in the store's attributes; else the ``labels`` attribute when it holds
    per-sample category names (one list of ``n_rows`` names per factor).
    """
    from saeno.store.checks import label_codes

    return label_codes(store)


def fit_supervised(
    acts: torch.Tensor | np.ndarray,
    codes: Mapping[str, np.ndarray],
    factors: Mapping[str, Sequence[str]],
    *,
    holdout: Holdout | None = None,
    rows: np.ndarray | None = None,
    steps: int = 2000,
    batch_size: int = 32,
    lr: float = 3e-3,
    block_size: int = 4,
    nuisance_size: int = 4,
    modes: int = 8,
    nuisance_modes: int | None = None,
    hidden: int = 32,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    decorrelate: float = 10.0,
    log_every: int = 10,
) -> SupervisedFit:
    """Train a supervised SAE by reconstruction, never showing it a held-out combination.

    The run is :func:`saeno.train_sae` with Adam at ``lr`` under a cosine decay to 5%, per-channel
    normalisation from the training rows, no AuxK, and batches of ``batch_size`` fields reshuffled
    every epoch.

    Parameters
    ----------
    acts : Tensor or ndarray
        Raw activations ``(N, C, *grid)``.
    codes : dict
        ``{factor: (N,) int codes}``.
    factors : dict
        ``{factor: [category names]}`` (the SAE's concepts, in this order).
    holdout : list of dict, optional
        Label combinations never used in training (see the module docstring).
    rows : ndarray, optional
        Restrict training to these rows (before removing held-out ones).
    steps, batch_size, lr : int, int, float
        Adam steps, fields per batch, peak learning rate (cosine decay to 5%).
    block_size, nuisance_size, modes, nuisance_modes, hidden : int
        :class:`~saeno.sae.supervised.SupervisedSAE` sizes.
    seed : int
        Initialisation and batch order.
    device : str or torch.device
        Where to train.
    progress : bool
        Show a progress bar.
    decorrelate : float
        Weight of :func:`~saeno.sae.supervised.nuisance_label_correlation` in the loss (0: plain
        reconstruction only). It keeps the label information out of the nuisance, so that the label
        blocks carry it.
    log_every : int
        Steps per entry of :attr:`SupervisedFit.losses`.

    Returns
    -------
    SupervisedFit
    """
    from saeno.train.trainer import train_sae

    a = torch.as_tensor(np.asarray(acts), dtype=torch.float32)
    n = a.shape[0]
    factors = {f: list(c) for f, c in factors.items()}
    for f in factors:
        if f not in codes or len(codes[f]) != n:
            raise LabelError(f"factor {f!r} needs {n} label codes, one per activation row")
    pool = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    pool = pool[~holdout_mask({f: np.asarray(codes[f])[pool] for f in factors}, factors, holdout)]
    if len(pool) == 0:
        raise SaenoError("no training rows left after removing the held-out combinations")
    torch.manual_seed(seed)
    sae = SupervisedSAE(
        a.shape[1],
        factors=factors,
        ndim=a.dim() - 2,
        block_size=block_size,
        nuisance_size=nuisance_size,
        modes=modes,
        nuisance_modes=nuisance_modes,
        hidden=hidden,
        decorrelate=decorrelate,
    )
    mask = sae.label_mask({f: np.asarray(codes[f])[pool] for f in factors}).cpu()
    res = train_sae(
        sae,
        (a[torch.as_tensor(pool)], mask),
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        lr_schedule="cosine",
        aux_k=0,
        normalize="channel",
        log_every=log_every,
        device=str(device),
        progress=progress,
        seed=seed,
    )
    channels = a.shape[1]
    losses = [row["loss"] / channels for row in res.history]  # the channel-averaged MSE + penalty
    sae.metadata.update(
        {
            "holdout": [dict(h) for h in holdout or []],
            "steps": steps,
            "n_train_rows": int(len(pool)),
            "seed": seed,
            "nuisance": "amortised band-limited spectral encoder",
        }
    )
    return SupervisedFit(sae.eval(), pool, losses)


def train_from_store(
    store: str | Path | Any,
    hook: str,
    out: str | Path,
    *,
    labels: Sequence[str] | None = None,
    holdout: Sequence[str] | None = None,
    steps: int = 2000,
    batch_size: int = 32,
    lr: float = 3e-3,
    block_size: int = 4,
    nuisance_size: int = 4,
    modes: int = 8,
    hidden: int = 32,
    decorrelate: float = 10.0,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
) -> Path:
    """Train a supervised SAE on one hook of a store and save it (the ``saeno train --arch supervised``
    entry point).

    Parameters
    ----------
    store : path or ActivationStore
        A store captured from a labelled dataset.
    hook : str
        The hook to train on.
    out : path
        Output SAE folder (``cfg.json`` + ``sae_weights.safetensors``).
    labels : list of str, optional
        Factors to use as concepts (default: every factor of the store).
    holdout : list of str, optional
        Held-out combinations as ``"factor=category,factor=category"`` strings.
    steps, batch_size, lr, block_size, nuisance_size, modes, hidden, decorrelate, seed, device, progress
        See :func:`fit_supervised`.

    Returns
    -------
    Path
        The SAE folder.
    """
    from saeno.store.activation_store import ActivationStore
    from saeno.store.checks import resolve_hook
    from saeno.train.checkpoint import save_sae

    st = store if hasattr(store, "read") else ActivationStore.open(store)
    hook = resolve_hook(st, hook)
    codes, factors = store_labels(st)
    if labels:
        unknown = [f for f in labels if f not in factors]
        if unknown:
            raise LabelError(f"unknown label factors {unknown}: the store has {list(factors)}")
        factors = {f: factors[f] for f in labels}
    acts = st.read(hook, np.arange(st.n_rows))
    fit = fit_supervised(
        acts,
        codes,
        factors,
        holdout=parse_holdout(holdout),
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        block_size=block_size,
        nuisance_size=nuisance_size,
        modes=modes,
        hidden=hidden,
        decorrelate=decorrelate,
        seed=seed,
        device=device or "cpu",
        progress=progress,
    )
    fit.sae.hook = hook
    fit.sae.model_fingerprint = st.fingerprint
    fit.sae.metadata["final_loss"] = float(np.mean(fit.losses[-5:]))
    return save_sae(fit.sae, out)


__all__ = [
    "SupervisedFit",
    "parse_holdout",
    "holdout_mask",
    "pick_holdout",
    "store_labels",
    "fit_supervised",
    "train_from_store",
    "nuisance_label_correlation",
]
