"""``TrainConfig``: every option of :func:`saeno.train_sae`, in one dataclass.

The same object is the Python API of the trainer (``train_sae(sae, data, TrainConfig(steps=500))`` or
``train_sae(sae, data, steps=500)``), the source of the ``saeno train`` flags
(:func:`add_arguments`, :func:`from_arguments`) and the run record stored in checkpoints
(:meth:`TrainConfig.record`). Each field's docstring is its CLI help.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

from saeno.errors import SaenoError
from saeno.train.schedules import LR_SCHEDULES

NORMALIZE_MODES = ("channel", "center", "none")
#: fields whose CLI flag takes one of a fixed set of values
CHOICES = {"normalize": NORMALIZE_MODES, "lr_schedule": LR_SCHEDULES}

#: default training length when neither ``steps`` nor ``epochs`` is given: at least this many
#: optimiser steps, and at least one epoch
DEFAULT_MIN_STEPS = 2000


class TrainConfigError(SaenoError):
    """An option of :class:`TrainConfig` is out of range or unknown."""


@dataclass
class TrainConfig:
    """Options of one training run (see :func:`saeno.train_sae`)."""

    hook: str | None = None
    """Store hook to train on (default: the store's only hook)."""
    steps: int | None = None
    """Optimiser steps (may span several epochs). Default: at least 2000 steps and one epoch."""
    epochs: int | None = None
    """Passes over the data (instead of --steps)."""
    lr: float | None = None
    """Adam learning rate (default 2e-4 / sqrt(P / 16384), at most 1e-2, times the model's
    default_lr_scale: 2 for the SAE-FNO, 1 otherwise)."""
    batch_size: int | None = None
    """Points per batch for pointwise SAEs (default 4096), fields per batch otherwise (default 16);
    the global batch under torchrun."""
    device: str | None = None
    """Where to train (default: the model's device; cuda:LOCAL_RANK under torchrun with NCCL)."""
    normalize: str = "channel"
    """Normalisation of a fresh run: channel (per-channel mean and std), center (per-channel mean,
    one global scale) or none (keep the model's)."""
    aux_k: int | None = None
    """Dead concepts used by the AuxK loss (default min(P // 2, 256); 0 switches AuxK off)."""
    aux_coef: float = 1 / 32
    """Weight of the AuxK loss."""
    dead_window: int = 200
    """Steps without firing after which a concept counts as dead."""
    resample_every: int | None = None
    """Steps between resamplings of dead concepts (SAE-FNO only; default: never)."""
    lr_warmup_steps: int = 0
    """Steps of linear learning-rate warm-up."""
    lr_decay_frac: float = 0.2
    """Share of the steps over which the learning rate decays linearly to zero at the end."""
    lr_schedule: str = "linear"
    """Learning-rate schedule after the warm-up: linear (constant, then the linear decay of
    --lr-decay-frac) or cosine (half cosine from the full rate to 5% of it over all steps)."""
    shuffle_buffer: int | None = None
    """Rows (points or fields) the store loader mixes at a time (default: 16 batches or 65536
    points; 8 batches or 256 fields)."""
    cache_mib: int | None = None
    """MiB of decoded store chunks kept in memory for the epochs after the first (default: a
    quarter of the memory available, at most 4096; 0 reads every epoch from the store). Runs of
    one epoch or less, and torchrun runs, read the store each time."""
    checkpoint_dir: str | None = None
    """Folder of the step_* checkpoints (the CLI uses OUT/checkpoints)."""
    checkpoint_every: int | None = None
    """Steps between checkpoints (one is always written at the end when there is a folder)."""
    keep_checkpoints: int = 2
    """How many of the latest checkpoints to keep (0 keeps all)."""
    resume: bool | str = False
    """Continue from the latest checkpoint (or from this checkpoint folder in Python)."""
    log_csv: str | None = None
    """CSV log of the training (the CLI uses OUT/train_log.csv)."""
    log_every: int = 100
    """Steps between log rows (and between host synchronisations)."""
    tensorboard: bool | str = False
    """Also log to TensorBoard (a folder in Python; OUT/tensorboard in the CLI)."""
    wandb: bool = False
    """Also log to Weights & Biases."""
    progress: bool = True
    """Show a progress bar."""
    seed: int = 0
    """Seed of the initialisation and of the data order."""
    store_fingerprint: str | None = None
    """Model fingerprint saved with the SAE (default: the store's)."""

    def __post_init__(self) -> None:
        for name in ("checkpoint_dir", "log_csv"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, str(value))
        if self.resume not in (True, False):
            self.resume = str(self.resume)
        if self.tensorboard not in (True, False):
            self.tensorboard = str(self.tensorboard)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`TrainConfigError` for options out of range."""
        if self.lr_schedule not in LR_SCHEDULES:
            raise TrainConfigError(f"lr_schedule={self.lr_schedule!r} is unknown: use one of {LR_SCHEDULES}")
        if self.normalize not in NORMALIZE_MODES:
            raise TrainConfigError(f"normalize={self.normalize!r} is unknown: use one of {NORMALIZE_MODES}")
        if self.steps is not None and self.epochs is not None:
            raise TrainConfigError("give steps or epochs, not both")
        if self.cache_mib is not None and self.cache_mib < 0:
            raise TrainConfigError(f"cache_mib must be 0 (no cache) or more, got {self.cache_mib}")
        for name in ("steps", "epochs", "batch_size", "log_every", "dead_window"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise TrainConfigError(f"{name} must be >= 1, got {value}")
        if self.resample_every is not None and self.resample_every < 1:
            raise TrainConfigError(f"resample_every must be >= 1 or None, got {self.resample_every}")
        if self.lr is not None and not self.lr > 0:
            raise TrainConfigError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.lr_decay_frac <= 1:
            raise TrainConfigError(f"lr_decay_frac must be in [0, 1], got {self.lr_decay_frac}")

    @classmethod
    def build(cls, config: TrainConfig | None = None, **options: Any) -> TrainConfig:
        """``config`` (default: the defaults) with ``options`` replacing its fields."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TrainConfigError(f"unknown training option(s) {unknown}: the options are {sorted(known)}")
        base = config if config is not None else cls()
        return dataclasses.replace(base, **options) if options else base

    def record(self) -> dict[str, Any]:
        """The options as JSON-able values (stored in checkpoints and logs)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`record` (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})


@cache
def field_docs(cls: type = TrainConfig) -> dict[str, str]:
    """``{field: docstring}`` read from the class source (empty when the source is unavailable)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


#: fields the ``saeno train`` verb sets from other flags (``--out``) or does not offer
CLI_DERIVED = ("checkpoint_dir", "log_csv", "store_fingerprint")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = CLI_DERIVED) -> None:
    """Add one flag per :class:`TrainConfig` field (help from the field's docstring).

    Booleans become switches (``progress`` becomes ``--no-progress``; ``resume``, ``tensorboard``
    and ``wandb`` switch on); ``steps`` and ``epochs`` are mutually exclusive.
    """
    docs = field_docs(TrainConfig)
    length = parser.add_mutually_exclusive_group()
    for f in fields(TrainConfig):
        if f.name in exclude:
            continue
        help_text = docs.get(f.name, "").replace("%", "%%")  # argparse formats help with %
        default = f.default
        if f.name == "progress":
            parser.add_argument(
                "--no-progress", dest="progress", action="store_false", help="do not show a progress bar"
            )
            continue
        if isinstance(default, bool):
            parser.add_argument(_flag(f.name), dest=f.name, action="store_true", help=help_text)
            continue
        kind = _scalar_type(f.type)
        target = length if f.name in ("steps", "epochs") else parser
        shown = f" (default {default})" if default is not None and "default" not in help_text else ""
        target.add_argument(
            _flag(f.name),
            dest=f.name,
            type=kind,
            default=default,
            help=help_text + shown,
            **({"choices": CHOICES[f.name]} if f.name in CHOICES else {}),
        )


def _scalar_type(annotation: Any) -> type:
    text = str(annotation)
    if "float" in text:
        return float
    if "int" in text:
        return int
    return str


def from_arguments(args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    """The :class:`TrainConfig` of parsed :func:`add_arguments` flags, with ``overrides``."""
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    values.update(overrides)
    return TrainConfig(**values)


def config_from_args(args: argparse.Namespace, out: str | Path, **overrides: Any) -> TrainConfig:
    """The :class:`TrainConfig` of ``saeno train``'s parsed flags, with its files under ``out``
    (``out/checkpoints``, ``out/train_log.csv``, ``out/tensorboard``)."""
    out = Path(out)
    return from_arguments(
        args,
        checkpoint_dir=str(out / "checkpoints"),
        log_csv=str(out / "train_log.csv"),
        tensorboard=str(out / "tensorboard") if args.tensorboard else False,
        **overrides,
    )


def default_steps(n_batches: int | None) -> int:
    """The default length: at least :data:`DEFAULT_MIN_STEPS` steps and one epoch."""
    return max(DEFAULT_MIN_STEPS, n_batches or 0)


def as_path(value: str | Path | None) -> Path | None:
    """``value`` as a Path (None stays None)."""
    return Path(value) if value is not None else None
