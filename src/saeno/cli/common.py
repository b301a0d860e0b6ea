"""Helpers shared by the CLI verbs: the common options, resolving models, the data-layout options, and
printing.

The common options have one spelling in every verb that runs a model (``tests/test_cli_vocabulary.py``):
``--device`` (:func:`add_device_option`), ``--no-progress`` (:func:`add_progress_option`) and the row
limit ``--max-samples`` (:func:`add_rows_option`; no torchrun option starts with it, so it also works
after ``torchrun ... -m saeno VERB``). Old spellings (``--n``, ``--n-rows``, ``--quiet``) still parse,
with a warning on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: the row-limit flag of every verb (Python: ``n_rows``)
ROWS_FLAG = "--max-samples"


class DeprecatedFlag(argparse.Action):
    """An old spelling of a flag: stores into the new flag's ``dest`` and warns on stderr."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "", **kwargs: Any) -> None:
        self.new = new
        kwargs.setdefault("help", argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        print(f"{parser.prog}: warning: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def add_device_option(p: Any, default: str | None = None, help: str | None = None) -> None:
    """``--device``: the torch device a verb runs on."""
    p.add_argument(
        "--device",
        default=default,
        help=help or f"torch device, e.g. cpu or cuda (default: {default or 'cpu'})",
    )


def add_progress_option(p: Any, *, old: tuple[str, ...] = (), help: str = "hide progress bars") -> None:
    """``--no-progress`` (``args.no_progress``), with deprecated spellings ``old`` (e.g. ``--quiet``)."""
    p.add_argument("--no-progress", action="store_true", help=help)
    for flag in old:
        p.add_argument(
            flag, dest="no_progress", action=DeprecatedFlag, new="--no-progress", nargs=0, const=True
        )


def add_rows_option(p: Any, help: str, *, default: int | None = None, old: tuple[str, ...] = ()) -> None:
    """The row limit ``--max-samples N`` (``args.max_samples``), with deprecated spellings ``old``."""
    p.add_argument(ROWS_FLAG, dest="max_samples", type=int, default=default, metavar="N", help=help)
    for flag in old:
        p.add_argument(flag, dest="max_samples", type=int, action=DeprecatedFlag, new=ROWS_FLAG, metavar="N")


def has_option(p: Any, flag: str) -> bool:
    """Whether an argparse parser defines ``flag``."""
    return any(flag in a.option_strings for a in p._actions)


def add_model_options(p: Any) -> None:
    """``--model-config`` for verbs that take ``--model`` (the architecture of a plain state dict)."""
    p.add_argument(
        "--model-config",
        default=None,
        metavar="JSON|FILE",
        help="architecture of a state-dict --model: neuraloperator class and keyword arguments as "
        'JSON (e.g. \'{"model_class": "FNO", "n_modes": [16, 16], "in_channels": 1, '
        '"out_channels": 1, "hidden_channels": 32}\') or a JSON/YAML file (a neuraloperator '
        "config works too)",
    )


def load_any_model(name_or_path: str, trust: bool = False, model_config: Any = None) -> Any:
    """A built-in example model (``example-fno2d`` ...), or whatever ``saeno.zoo.load_model`` resolves.

    Parameters
    ----------
    name_or_path
        An example name, a zoo name, a model folder, or a neuraloperator checkpoint.
    trust
        Allow unpickling a neuraloperator checkpoint (only for files you trust).
    model_config
        The architecture of a state-dict file (CLI ``--model-config``).
    """
    from saeno.errors import SaenoError
    from saeno.hooking.examples import example_model, example_names

    if name_or_path in example_names():
        return example_model(name_or_path)
    try:
        from saeno.zoo import load_model
    except ImportError as exc:  # pragma: no cover - the zoo ships with the package
        raise SaenoError(
            f"cannot load {name_or_path!r}: the model zoo is not available ({exc}). "
            f"Use one of the built-in examples: {', '.join(example_names())}."
        ) from exc
    return load_model(name_or_path, trust=trust, model_config=model_config)


def add_data_options(p: Any) -> None:
    """Options that tell the readers a user's file layout (``saeno capture``, ``saeno data info``)."""
    g = p.add_argument_group("data file layout (users' files; see `saeno data info FILE`)")
    g.add_argument("--x-key", default=None, metavar="KEY", help="input array (dict key, HDF5/Zarr path)")
    g.add_argument("--y-key", default=None, metavar="KEY", help="output array")
    g.add_argument(
        "--pairing",
        default=None,
        choices=["initial_final", "next"],
        help="time series: first -> last frame (default) or frame t -> t + STEP",
    )
    g.add_argument("--step", type=int, default=None, help="frames between input and output (--pairing next)")
    g.add_argument("--t-in", type=int, default=None, help="input frame (--pairing initial_final)")
    g.add_argument("--t-out", type=int, default=None, help="output frame (--pairing initial_final)")
    g.add_argument(
        "--fields",
        default=None,
        metavar="A,B",
        help="fields to use as channels (The Well, PDEBench CFD), comma-separated",
    )
    layout = g.add_mutually_exclusive_group()
    layout.add_argument("--channels-last", action="store_true", default=None, help="arrays are (N, *grid, C)")
    layout.add_argument(
        "--channels-first", action="store_true", default=None, help="arrays are (N, C, *grid)"
    )
    layout.add_argument("--no-channels", action="store_true", default=None, help="arrays are (N, *grid)")
    g.add_argument("--ndim", type=int, default=None, help="number of space axes (settles the layout)")
    g.add_argument(
        "--rows",
        default=None,
        metavar="START:STOP",
        help="sample rows of a file without splits, e.g. --rows 0:800 to train, --rows 800: to test",
    )


def data_keys(args: Any) -> dict[str, Any]:
    """Reader options from :func:`add_data_options` (only those given), plus ``trust``."""
    keys: dict[str, Any] = {}
    for name in ("x_key", "y_key", "pairing", "step", "t_in", "t_out", "ndim"):
        value = getattr(args, name, None)
        if value is not None:
            keys[name] = value
    if getattr(args, "fields", None):
        keys["fields"] = [f.strip() for f in args.fields.split(",") if f.strip()]
    for name in ("channels_last", "channels_first", "no_channels"):
        if getattr(args, name, None):
            # neuraloperator .pt files call "no channel axis" channels_squeezed
            keys[name] = True
    if getattr(args, "trust", False):
        keys["trust"] = True
    return keys


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (creating parent folders) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=float) + "\n", encoding="utf-8")
    return path
