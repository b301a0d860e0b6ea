"""The model zoo: FNOs trained on saeno's benchmarks, cached on first use, loaded without pickle.

>>> import saeno
>>> model = saeno.zoo.load("darcy-fno")      # doctest: +SKIP  (trains once, ~1-2 min on 2 cores)
>>> model.saeno_record["test_rel_l2"]        # doctest: +SKIP
{'16': ..., '32': ..., '64': ...}

Layout of a cached model, ``saeno.paths.zoo_dir() / NAME``: ``config.json`` (name, dataset, resolution,
FNO kwargs, normaliser), ``model.safetensors``, ``record.json`` (training record). The fast variant
(``fast=True`` or ``SAENO_ZOO_FAST=1``) lives in ``NAME-fast``.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import torch

from saeno.errors import SaenoError
from saeno.paths import zoo_dir
from saeno.zoo.io import (
    CONFIG,
    find_checkpoint,
    load_folder,
    load_neuralop_checkpoint,
    load_user_file,
    read_json,
    save_model,
)
from saeno.zoo.operator import ZooOperator
from saeno.zoo.specs import SPECS, fast_default, get_spec

__all__ = ["ZooOperator", "info", "load", "load_model", "model_dir", "names", "save_model", "train"]


def names() -> list[str]:
    """Names of the zoo models."""
    return sorted(SPECS)


def model_dir(name: str, fast: bool = False) -> Path:
    """Cache folder of a zoo model."""
    get_spec(name)
    return zoo_dir() / (f"{name}-fast" if fast else name)


def train(
    name: str,
    fast: bool | None = None,
    out: str | Path | None = None,
    force: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    seed: int | None = None,
) -> Path:
    """Train a zoo model on its benchmark (generated if needed) and save it.

    Parameters
    ----------
    name : str
        A name from :func:`names`.
    fast : bool, optional
        Tiny variant (few samples, 2 epochs, small FNO) for tests; default from ``SAENO_ZOO_FAST``.
    out : str or Path, optional
        Folder to write (default: the cache folder :func:`model_dir`).
    force : bool
        Retrain even if the folder holds a model.
    device : str or torch.device, optional
        Training device (default CPU).
    progress : bool
        Progress bars.
    seed : int, optional
        Override the recipe's seed.

    Returns
    -------
    Path
        The model folder.
    """
    import saeno
    from saeno.zoo.training import cpu_threads, evaluate_rel_l2, fit

    fast = fast_default() if fast is None else fast
    spec = get_spec(name, fast=fast)
    if seed is not None:
        spec["train"]["seed"] = int(seed)
    folder = Path(out) if out is not None else model_dir(name, fast)
    if (folder / CONFIG).is_file() and not force:
        return folder
    hp = spec["train"]
    dataset = spec["dataset"]
    t_start = time.perf_counter()
    train_ds = saeno.datasets.load(
        dataset, split="train", resolution=spec["resolution"], n=hp["n_train"], progress=progress
    )
    with cpu_threads(hp.get("cpu_threads"), device):
        model, history = fit(spec, train_ds.tensors(), device=device, progress=progress)
        test_l2: dict[str, float] = {}
        for res in train_ds.card["stored_resolutions"]:
            test_ds = saeno.datasets.load(
                dataset, split="test", resolution=res, n=hp["n_train"], progress=progress
            )
            x, y = test_ds.tensors()
            test_l2[str(res)] = evaluate_rel_l2(model, x[: hp["n_test"]], y[: hp["n_test"]], device=device)
        x, y = train_ds.tensors()  # on as many training samples as test samples: a quick check
        train_l2 = evaluate_rel_l2(model, x[: hp["n_test"]], y[: hp["n_test"]], device=device)
    total_wall = time.perf_counter() - t_start
    card = {k: v for k, v in train_ds.card.items() if k not in ("file",)}
    model.saeno_config = {
        "name": name,
        "dataset": dataset,
        "resolution": spec["resolution"],
        "fast": fast,
        "train": hp,
    }
    model.saeno_record = {
        "name": name,
        "dataset_card": card,
        "data_seed": card.get("seed"),
        "n_train": len(train_ds),
        "n_test": int(hp["n_test"]),
        "epochs": hp["epochs"],
        "seed": hp["seed"],
        "hyperparameters": hp,
        "train_rel_l2": train_l2,
        "train_rel_l2_samples": int(min(len(train_ds), hp["n_test"])),
        "test_rel_l2": test_l2,
        "train_resolution": spec["resolution"],
        "train_loss": history["train_loss"],
        "wall_time_s": history["wall_time_s"],
        "total_wall_time_s": total_wall,
        "cpu_time_s": history["cpu_time_s"],
        "device": history["device"],
        "torch_threads": history["torch_threads"],
        "halves": history.get("halves", False),
        "platform": history["platform"],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "saeno": saeno.__version__,
    }
    save_model(model.cpu(), folder)
    return folder


def load(
    name: str, device: str | torch.device | None = None, progress: bool = True, fast: bool | None = None
) -> ZooOperator:
    """A zoo model mapping raw ``x`` to raw ``y``; trained and cached on first use.

    Parameters
    ----------
    name : str
        A name from :func:`names`.
    device : str or torch.device, optional
        Where to put the model.
    progress : bool
        Progress bars while generating data and training.
    fast : bool, optional
        The fast variant (default from ``SAENO_ZOO_FAST``).

    Returns
    -------
    ZooOperator
        In eval mode, with ``saeno_config`` and ``saeno_record``.
    """
    folder = train(name, fast=fast, progress=progress)
    model = load_folder(folder, device=device)
    return model.eval()


def load_model(
    name_or_path: str | Path,
    trust: bool = False,
    device: str | torch.device | None = None,
    model_config: Any = None,
) -> torch.nn.Module:
    """Load an operator: a zoo name, a saeno model folder, or neuraloperator checkpoint files.

    Parameters
    ----------
    name_or_path : str or Path
        A zoo name (trained on first use), or ``burgers-labelled-fno`` (the supervised benchmark's
        FNO); a folder with ``config.json`` + ``model.safetensors``; or neuraloperator
        ``save_checkpoint`` files (the folder, or the ``{name}_state_dict.pt`` path); or a user's file: a
        plain state dict (with ``model_config``) or a whole module saved with ``torch.save(model)`` (with
        ``trust``), see :func:`saeno.zoo.io.load_user_file`.
    trust : bool
        Allow unpickling neuraloperator checkpoints and whole-module files (pickles: only trusted files).
    device : str or torch.device, optional
        Where to put the model.
    model_config : dict, str or Path, optional
        The architecture of a state-dict file: neuraloperator class and keyword arguments, or a
        neuraloperator config (dict, JSON string, or JSON/YAML file).

    Returns
    -------
    torch.nn.Module
        A :class:`ZooOperator`, or the bare neuraloperator FNO of a labelled benchmark.

    Raises
    ------
    UntrustedFileError
        For neuraloperator checkpoints without ``trust=True``.
    SaenoError
        When the name or path matches nothing.
    """
    from saeno.zoo import labelled

    if str(name_or_path) in SPECS and not Path(name_or_path).exists():
        return load(str(name_or_path), device=device)
    if str(name_or_path) == labelled.NAME and not Path(name_or_path).exists():
        return labelled.load_or_train(device=device).eval()  # the labelled benchmark's FNO
    path = Path(name_or_path)
    if path.is_dir() and (path / CONFIG).is_file():
        cfg = read_json(path / CONFIG)
        if "normalizer" not in cfg and "fno" in cfg:  # a bare FNO saved by labelled.save
            return labelled.load_folder(path, device=device).eval()
        return load_folder(path, device=device).eval()
    ckpt = find_checkpoint(path)
    if ckpt is not None:
        return load_neuralop_checkpoint(ckpt[0], ckpt[1], trust=trust, device=device).eval()
    if path.is_file():
        from saeno.zoo import io

        config = model_config if model_config is not None else io.CLI_MODEL_CONFIG
        return load_user_file(path, model_config=config, trust=trust, device=device)
    raise SaenoError(
        f"{name_or_path!r} is not a zoo model ({', '.join(names())}), a folder with config.json + "
        "model.safetensors, neuraloperator checkpoint files ({name}_state_dict.pt + {name}_metadata.pkl), "
        "or a model file (a state dict with model_config=, or torch.save(model) with trust=True)"
    )


def info(name_or_path: str | Path) -> dict[str, Any]:
    """The config and training record of a zoo model or model folder, without training it."""
    path = Path(name_or_path)
    if str(name_or_path) in SPECS and not path.exists():
        spec = get_spec(str(name_or_path), fast=fast_default())
        path = model_dir(str(name_or_path), fast=spec["fast"])
        out: dict[str, Any] = {
            "name": str(name_or_path),
            "recipe": spec,
            "trained": (path / CONFIG).is_file(),
        }
    else:
        out = {"name": path.name, "trained": (path / CONFIG).is_file()}
    out["folder"] = str(path)
    if out["trained"]:
        out["config"] = read_json(path / CONFIG)
        record = path / "record.json"
        out["record"] = read_json(record) if record.is_file() else {}
    return out
