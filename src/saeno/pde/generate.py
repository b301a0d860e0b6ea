"""Generate a benchmark dataset from its card: deterministic by seed, cached as HDF5.

Each sample ``i`` of split ``s`` draws its random input from its own generator
``numpy.random.default_rng([seed, s, i])`` (``s`` = 0 for train, 1 for test), so the first ``n`` samples
are the same whatever the total size. The PDE is solved once on the card's ``solve_resolution`` grid and
every stored resolution is an exact subsample of it (every ``solve_resolution / r``-th point).

A card parameter ``input_noise`` = s adds Gaussian noise of standard deviation ``s * std(x_i)`` to each
input ``x_i`` after the solve (the target stays the solution of the clean input), drawn from its own
generator ``default_rng([seed, s, i, NOISE_STREAM])`` so the clean part equals the noise-free dataset's.

File layout (``format = "saeno-dataset-1"``)::

    attrs: format, card (JSON), seed, n_train, n_test, resolutions (JSON)
    /{train,test}/x/{r}        (N, C_in, r[, r]) float32
    /{train,test}/y/{r}        (N, C_out, r[, r]) float32
    /{train,test}/params/{p}   (N,) float64   per-sample parameters
    /{train,test}/labels/{f}   (N,) int64     category codes into card["labels"][f]
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm.auto import tqdm

from saeno.errors import SaenoError
from saeno.paths import data_dir
from saeno.pde import burgers, darcy, navier_stokes
from saeno.pde.cards import apply_variant, card_hash, load_card
from saeno.pde.grf import sample_grf

FORMAT = "saeno-dataset-1"
NOISE_STREAM = 7919
SPLITS = {"train": 0, "test": 1}

# a sampler returns (x, y, params); params may hold "_labels": {factor: int codes}
Sampler = Callable[[dict[str, Any], list[np.random.Generator]], tuple[np.ndarray, np.ndarray, dict]]


def _sample_darcy(
    card: dict[str, Any], rngs: list[np.random.Generator]
) -> tuple[np.ndarray, np.ndarray, dict]:
    p = card["parameters"]
    n = int(card["solve_resolution"])
    a = np.stack(
        [darcy.sample_coefficients(1, n, r, p["alpha"], p["tau"], p["high"], p["low"])[0] for r in rngs]
    )
    u = darcy.solve_darcy_many(a, p.get("forcing", 1.0))  # bit-identical to solve_darcy per sample
    return a[:, None], u[:, None], {"high_fraction": (a == p["high"]).mean(axis=(1, 2))}


def _sample_burgers(
    card: dict[str, Any], rngs: list[np.random.Generator]
) -> tuple[np.ndarray, np.ndarray, dict]:
    p = card["parameters"]
    n = int(card["solve_resolution"])
    u0 = np.stack([sample_grf(1, (n,), p["alpha"], p["tau"], p["sigma"], rng=r)[0] for r in rngs])
    u = burgers.solve_burgers(u0, p["t_final"], p["viscosity"], cfl=p.get("cfl", 0.5))
    params = {"viscosity": np.full(len(rngs), p["viscosity"]), "u0_std": u0.std(axis=1)}
    return u0[:, None], u[:, None], params


def _sample_navier_stokes(
    card: dict[str, Any], rngs: list[np.random.Generator]
) -> tuple[np.ndarray, np.ndarray, dict]:
    p = card["parameters"]
    n = int(card["solve_resolution"])
    w0 = np.stack([sample_grf(1, (n, n), p["alpha"], p["tau"], p["sigma"], rng=r)[0] for r in rngs])
    forcing = navier_stokes.fno_forcing(n, p.get("forcing_amplitude", 0.1))
    w = navier_stokes.solve_navier_stokes(w0, p["t_final"], p["viscosity"], forcing, cfl=p.get("cfl", 0.5))
    params = {
        "viscosity": np.full(len(rngs), p["viscosity"]),
        "w0_std": w0.std(axis=(1, 2)),
        "wT_std": w.std(axis=(1, 2)),
    }
    return w0[:, None], w[:, None], params


SAMPLERS: dict[str, Sampler] = {
    "darcy": _sample_darcy,
    "burgers": _sample_burgers,
    "navier_stokes": _sample_navier_stokes,
}


def _plugin_sampler(card: dict[str, Any]) -> Sampler | None:
    """Import the card's ``sampler_module`` (a ``saeno.*`` module that registers its pde in ``SAMPLERS``)."""
    module = card.get("sampler_module")
    if not module:
        return None
    if not str(module).startswith("saeno."):
        raise SaenoError(f"card {card['name']!r}: sampler_module must be a saeno module, got {module!r}")
    import importlib

    importlib.import_module(module)
    return SAMPLERS.get(card["pde"])


def restrict(field: np.ndarray, factor: int, ndim: int) -> np.ndarray:
    """Subsample the last ``ndim`` axes of ``field`` by ``factor`` (every ``factor``-th point from 0)."""
    index = (Ellipsis,) + (slice(None, None, factor),) * ndim
    return field[index]


def _sizes(card: dict[str, Any], n: int | None, n_test: int | None) -> tuple[int, int]:
    n_train = int(card["n_train"]) if n is None else int(n)
    if n_test is None:
        n_test = (
            int(card["n_test"])
            if n is None
            else max(1, math.ceil(n_train * card["n_test"] / card["n_train"]))
        )
    if n_train < 1 or n_test < 1:
        raise SaenoError(f"sizes must be positive, got n={n_train}, n_test={n_test}")
    return n_train, int(n_test)


def cache_path(
    card: dict[str, Any], n_train: int, n_test: int, seed: int, resolutions: Sequence[int]
) -> Path:
    """The cache file of a generated dataset (under ``saeno.paths.data_dir()``)."""
    res = "-".join(str(int(r)) for r in sorted(resolutions))
    return data_dir() / f"{card['name']}-s{seed}-n{n_train}-t{n_test}-r{res}-{card_hash(card)}.h5"


def find_cached(card: dict[str, Any], n_train: int, seed: int, resolution: int | None = None) -> Path | None:
    """A cached file with at least ``n_train`` training samples (and ``resolution``, if given), else None."""
    best = None
    for path in sorted(data_dir().glob(f"{card['name']}-s{seed}-n*-{card_hash(card)}.h5")):
        parts = path.stem.split("-")
        try:
            have = int(parts[2][1:])
            stored = [int(r) for r in path.stem.split("-r", 1)[1].rsplit("-", 1)[0].split("-")]
        except (IndexError, ValueError):
            continue
        if have >= n_train and (resolution is None or int(resolution) in stored):
            if best is None or have < best[0]:
                best = (have, path)
    return None if best is None else best[1]


def _sampler(card: dict[str, Any]) -> Sampler | None:
    return SAMPLERS.get(card["pde"]) or _plugin_sampler(card)


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Run the block with one BLAS thread (the solvers' small LAPACK calls; chunks run in parallel).

    OpenBLAS's threads wait by spinning: on a shared machine its two threads made one banded
    Cholesky solve of the Darcy matrix tens of times slower than one thread.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a declared dependency
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _solve_chunk(card: dict[str, Any], seed: int, split: str, start: int, stop: int) -> tuple:
    """Solve samples ``start..stop-1`` of a split (module level so worker processes can run it)."""
    rngs = [np.random.default_rng([seed, SPLITS[split], i]) for i in range(start, stop)]
    sampler = _sampler(card)
    assert sampler is not None, card["pde"]
    with _one_blas_thread():
        x, y, params = sampler(card, rngs)
    noise = float(card["parameters"].get("input_noise", 0.0) or 0.0)
    if noise > 0:
        x = np.array(x, dtype=np.float64, copy=True)
        for j, i in enumerate(range(start, stop)):
            rng = np.random.default_rng([seed, SPLITS[split], i, NOISE_STREAM])
            x[j] += noise * x[j].std() * rng.standard_normal(x[j].shape)
    return x, y, params


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start spawned workers without re-running the user's script.

    A spawned process imports the parent's ``__main__`` (from its ``__spec__`` or ``__file__``) before it
    runs its task; a plain script that calls ``saeno.zoo.load(...)`` at top level, without an
    ``if __name__ == "__main__":`` guard, would then run again in every worker and start pools of its own.
    The workers run only :func:`_solve_chunk` from this module, so the main module is hidden from them.
    """
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    try:
        if main is not None:
            main.__dict__.pop("__file__", None)
            main.__dict__["__spec__"] = None
        yield
    finally:
        if main is not None:
            main.__dict__.pop("__spec__", None)
            main.__dict__.update(saved)


def _worker_init() -> None:
    """A worker process solves its chunk's samples one after the other (the processes share the
    cores), reusing freed memory (:func:`saeno.memory.keep_freed_memory`)."""
    from saeno.memory import keep_freed_memory

    darcy.SOLVE_THREADS = 1
    keep_freed_memory()


def _solve_all(
    card: dict[str, Any], seed: int, tasks: list[tuple[str, int, int]], workers: int | None
) -> Iterator[tuple[tuple[str, int, int], tuple]]:
    """Yield ``(task, (x, y, params))`` in task order; chunks after the first in worker processes
    when that pays (see :func:`generate`)."""
    if not tasks:
        return
    t0 = time.perf_counter()
    yield tasks[0], _solve_chunk(card, seed, *tasks[0])
    rest = tasks[1:]
    if workers is None:
        per_sample = (time.perf_counter() - t0) / max(1, tasks[0][2] - tasks[0][1])
        left = per_sample * sum(stop - start for _, start, stop in rest)
        workers = min(4, os.cpu_count() or 1, len(rest)) if left > 10.0 else 1
    if workers <= 1 or not rest:
        for task in rest:
            yield task, _solve_chunk(card, seed, *task)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent may hold OpenMP / torch threads that a forked child would inherit
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init
    )
    try:
        with _main_module_hidden():  # the workers start here, and need only this module
            futures = [pool.submit(_solve_chunk, card, seed, *task) for task in rest]
        for task, fut in zip(rest, futures):
            yield task, fut.result()
    finally:  # on an error (or Ctrl-C) do not wait for the chunks still queued
        pool.shutdown(wait=True, cancel_futures=True)


def generate(
    name: str | Path,
    n: int | None = None,
    resolutions: Sequence[int] | None = None,
    seed: int | None = None,
    progress: bool = True,
    n_test: int | None = None,
    chunk: int = 50,
    force: bool = False,
    workers: int | None = None,
    variant: str | None = None,
) -> Path:
    """Generate (or find in the cache) the dataset described by a card.

    Parameters
    ----------
    name : str or Path
        Card name (``darcy``, ``burgers``, ``navier_stokes``) or path to a card JSON file.
    n : int, optional
        Training samples (default: the card's ``n_train``).
    resolutions : sequence of int, optional
        Stored resolutions, each dividing the card's ``solve_resolution`` (default: the card's).
    seed : int, optional
        Base seed (default: the card's).
    progress : bool
        Show a tqdm progress bar.
    n_test : int, optional
        Test samples (default: the card's ``n_test``, scaled by ``n / n_train`` when ``n`` is given).
    chunk : int
        Samples solved per batch.
    force : bool
        Regenerate even if the file is cached.
    workers : int, optional
        Processes solving chunks in parallel (the file is the same for any number). Default: after
        timing the first chunk, up to 4 (and the CPU count) when the rest would take over 10 s,
        else 1.
    variant : str, optional
        One of the card's named variants (``saeno.pde.cards.apply_variant``); cached under its own
        name ``<base>@<variant>``.

    Returns
    -------
    Path
        The HDF5 file.
    """
    card = apply_variant(load_card(name), variant)
    seed = int(card["seed"] if seed is None else seed)
    n_train, n_test = _sizes(card, n, n_test)
    fine = int(card["solve_resolution"])
    resolutions = sorted({int(r) for r in (resolutions or card["resolutions"])})
    bad = [r for r in resolutions if r <= 0 or fine % r]
    if bad:
        raise SaenoError(
            f"resolutions {bad} do not divide the solve resolution {fine} of {card['name']!r}; "
            f"choose among divisors of {fine} such as {card['resolutions']}"
        )
    path = cache_path(card, n_train, n_test, seed, resolutions)
    if path.is_file() and not force:
        return path
    if _sampler(card) is None:
        raise SaenoError(
            f"card {card['name']!r} names an unknown pde {card['pde']!r}; known: {sorted(SAMPLERS)}"
        )
    if workers is not None and workers < 1:
        raise SaenoError(f"workers must be at least 1, got {workers}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    ndim = int(card["ndim"])
    factors = card.get("labels", {})
    bar = tqdm(total=n_train + n_test, desc=f"generate {card['name']}", disable=not progress, unit="sample")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(
                format=FORMAT,
                card=json.dumps(card),
                seed=seed,
                n_train=n_train,
                n_test=n_test,
                resolutions=json.dumps(resolutions),
            )
            totals = {split: n_train if split == "train" else n_test for split in SPLITS}
            tasks = [
                (split, start, min(totals[split], start + chunk))
                for split in SPLITS
                for start in range(0, totals[split], chunk)
            ]
            groups = {split: f.create_group(split) for split in SPLITS}
            for (split, start, stop), (x, y, params) in _solve_all(card, seed, tasks, workers):
                group, total = groups[split], totals[split]
                codes = params.pop("_labels", {})  # {factor: (B,) int codes}, for cards with labels
                for r in resolutions:
                    for key, field in (("x", x), ("y", y)):
                        data = restrict(field, fine // r, ndim).astype(np.float32)
                        name_ = f"{key}/{r}"
                        if name_ not in group:
                            group.create_dataset(name_, shape=(total, *data.shape[1:]), dtype="float32")
                        group[name_][start:stop] = data
                for key, values in params.items():
                    if f"params/{key}" not in group:
                        group.create_dataset(f"params/{key}", shape=(total,), dtype="float64")
                    group[f"params/{key}"][start:stop] = values
                for factor in factors:
                    if factor not in codes:
                        raise SaenoError(
                            f"card {card['name']!r} declares label factor {factor!r} but its pde "
                            f"{card['pde']!r} does not produce it; remove it from the card's 'labels'"
                        )
                    if f"labels/{factor}" not in group:
                        group.create_dataset(f"labels/{factor}", shape=(total,), dtype="int64")
                    group[f"labels/{factor}"][start:stop] = codes[factor]
                bar.update(stop - start)
        os.replace(tmp, path)
    finally:
        bar.close()
        if tmp.exists():
            tmp.unlink()
    return path
