"""Public data API: benchmark datasets by name (generated and cached) and users' own files.

>>> import saeno
>>> train = saeno.datasets.load("darcy", split="train", resolution=32)   # doctest: +SKIP
>>> train[0]["x"].shape                                                  # doctest: +SKIP
torch.Size([1, 32, 32])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from saeno.errors import DataFormatError
from saeno.pde.cards import apply_variant, card_names, load_card, split_variant
from saeno.pde.dataset import FieldDataset
from saeno.pde.generate import find_cached
from saeno.pde.generate import generate as _generate
from saeno.pde.readers import read_file

__all__ = ["FieldDataset", "card", "generate", "load", "names"]


def names() -> list[str]:
    """Names of the benchmark datasets saeno can generate (one card each in ``datasets/``)."""
    return card_names()


def card(name: str) -> dict[str, Any]:
    """The dataset card of a benchmark (a dict; schema in ``datasets/README.md``)."""
    return load_card(name)


def generate(
    name: str,
    n: int | None = None,
    resolutions: Sequence[int] | None = None,
    seed: int | None = None,
    progress: bool = True,
    n_test: int | None = None,
    force: bool = False,
    workers: int | None = None,
    variant: str | None = None,
) -> Path:
    """Generate a benchmark dataset (or return its cached file).

    Parameters
    ----------
    name : str
        A name from :func:`names`.
    n : int, optional
        Training samples (default: the card's ``n_train``).
    resolutions : sequence of int, optional
        Resolutions to store, each dividing the card's ``solve_resolution``.
    seed : int, optional
        Base seed (default: the card's).
    progress : bool
        Show a progress bar.
    n_test : int, optional
        Test samples (default: the card's, scaled with ``n``).
    force : bool
        Regenerate even when cached.
    workers : int, optional
        Solver processes (default: chosen from the time of the first chunk; the file is the same
        for any number).
    variant : str, optional
        A named shifted variant from the card (``card(name)["variants"]``).

    Returns
    -------
    Path
        The cached HDF5 file (under ``saeno.paths.data_dir()``).
    """
    return _generate(
        name,
        n=n,
        resolutions=resolutions,
        seed=seed,
        progress=progress,
        n_test=n_test,
        force=force,
        workers=workers,
        variant=variant,
    )


def load(
    name_or_path: str | Path,
    split: str | None = None,
    resolution: int | None = None,
    n: int | None = None,
    seed: int | None = None,
    progress: bool = True,
    rows: Any = None,
    variant: str | None = None,
    **keys: Any,
) -> FieldDataset:
    """Load a benchmark by name (generating it on first use) or a user's data file.

    Parameters
    ----------
    name_or_path : str or Path
        A benchmark name (see :func:`names`) or a path: neuraloperator ``.pt``, PDEBench HDF5,
        The Well HDF5, a saeno HDF5, or a generic HDF5 file / Zarr folder with named arrays.
    split : {"train", "test"}, optional
        Which split: for a benchmark (default ``"train"``) or a file with splits. A file without splits
        (a ``.pt``, PDEBench or The Well file) refuses a split: pick sample rows with ``rows`` instead.
    resolution : int, optional
        Points per side: one of the stored resolutions (default: the card's ``default_resolution``).
    n : int, optional
        Only the first ``n`` samples. For a benchmark, a cached file with at least ``n`` training
        samples is reused; otherwise ``n`` training samples are generated.
    seed : int, optional
        Generation seed for a benchmark (default: the card's).
    progress : bool
        Progress bar while generating.
    rows : str, tuple or slice, optional
        Sample rows ``START:STOP`` of a file, to split one file into train and test (``"0:800"``,
        ``"800:"``).
    variant : str, optional
        A named shifted variant of a benchmark (``saeno data list`` shows them), e.g.
        ``load("darcy", variant="contrast")``; equivalent to the name ``"darcy@contrast"``.
    **keys
        Reader options for files (``x_key``, ``y_key``, ``pairing``, ``step``, ``trust``, ...; see
        :func:`saeno.pde.readers.read_file`).

    Returns
    -------
    FieldDataset
    """
    path = Path(name_or_path)
    base, named_variant = split_variant(str(name_or_path))
    variant = variant or named_variant
    is_name = base in card_names() and not path.exists()
    if variant is not None and not is_name:
        raise DataFormatError(
            f"variant={variant!r} needs a benchmark name ({', '.join(card_names())}), "
            f"not the file {name_or_path!r}"
        )
    if is_name:
        split = "train" if split is None else split
        if split not in ("train", "test"):
            raise DataFormatError(f"split must be 'train' or 'test', got {split!r}")
        if keys:
            raise DataFormatError(f"{name_or_path}: options {sorted(keys)} apply to files, not to benchmarks")
        the_card = apply_variant(load_card(base), variant)
        resolutions = the_card["resolutions"]
        if resolution is not None and int(resolution) not in resolutions:
            raise DataFormatError(
                f"{the_card['name']}: resolution {resolution} is not available; available: {resolutions} "
                f"(others dividing {the_card['solve_resolution']} can be generated with "
                f"saeno.datasets.generate(name, resolutions=[...]))"
            )
        use_seed = int(the_card["seed"] if seed is None else seed)
        file = find_cached(the_card, n or int(the_card["n_train"]), use_seed, resolution)
        if file is None:
            file = _generate(base, n=n, seed=use_seed, progress=progress, variant=variant)
        out = read_file(file, split=split, resolution=resolution, n=n, format="saeno", rows=rows)
        name = the_card["name"]
    else:
        if not path.exists():
            raise DataFormatError(
                f"{name_or_path!r} is neither a dataset name ({', '.join(card_names())}) nor an existing file"
            )
        out = read_file(path, split=split, resolution=resolution, n=n, rows=rows, **keys)
        name = path.stem
    return FieldDataset(
        out["x"], out["y"], name=name, card=out["card"], params=out["params"], labels=out["labels"]
    )
