"""``saeno capture``: run a model over a dataset and stream hook activations into a Zarr store."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``capture`` verb."""
    p = subparsers.add_parser(
        "capture",
        help="capture hook activations of a model over a dataset into a Zarr store",
        description="Run a model over a dataset and write the activation fields of the chosen hooks, the "
        "inputs, targets and outputs to a resumable Zarr v3 store.",
    )
    p.add_argument(
        "--model", required=True, help="zoo name, model folder or checkpoint, or example-fno2d ..."
    )
    p.add_argument("--dataset", required=True, help="dataset name or HDF5 path (see `saeno data`)")
    p.add_argument(
        "--hooks", required=True, help="hook name or glob, e.g. 'blocks.*.hook_out' (see `saeno hooks`)"
    )
    p.add_argument("--out", required=True, metavar="STORE", help="store path or URL (memory://, s3://, ...)")
    p.add_argument("--resolution", type=int, default=None, help="grid resolution of the dataset")
    p.add_argument(
        "--split",
        default=None,
        help="dataset split: test (the default for benchmarks and files with splits) or train; "
        "for a file without splits use --rows",
    )
    from saeno.cli.common import add_device_option, add_progress_option, add_rows_option

    add_rows_option(p, "capture only the first N samples", old=("--n",))
    p.add_argument("--batch-size", type=int, default=32, help="samples per forward pass (default 32)")
    p.add_argument("--dtype", choices=["float32", "float16"], default="float32", help="storage dtype")
    p.add_argument("--chunk-size", type=int, default=None, help="samples per chunk (default: about 4 MiB)")
    add_device_option(p, help="device of the forward pass (default cpu, e.g. cuda)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted capture into STORE")
    p.add_argument("--overwrite", action="store_true", help="replace an existing saeno store at STORE")
    p.add_argument(
        "--allow-nonfinite", action="store_true", help="keep NaN/inf activations instead of stopping"
    )
    p.add_argument(
        "--trust",
        action="store_true",
        help="allow unpickling the model checkpoint and the data file (only files you trust)",
    )
    add_progress_option(p)
    from saeno.cli.common import add_data_options, add_model_options

    add_model_options(p)
    add_data_options(p)
    p.set_defaults(func=run)


def _load_dataset(name_or_path: str, split: str | None, resolution: int | None, **keys):
    from saeno import datasets

    return datasets.load(name_or_path, split=split, resolution=resolution, **keys)


def _split_and_keys(args: argparse.Namespace) -> tuple[str | None, dict]:
    """The split to capture (test for benchmarks and files with splits) and the reader options."""
    from pathlib import Path

    from saeno import datasets
    from saeno.cli.common import data_keys
    from saeno.errors import SaenoError

    keys = data_keys(args)
    if args.rows:
        keys["rows"] = args.rows
    if not Path(args.dataset).exists():  # a benchmark name (or a mistake datasets.load reports)
        keys.pop("trust", None)
        layout = sorted(set(keys) - {"rows"})
        if layout and args.dataset in datasets.names():
            raise SaenoError(
                f"{args.dataset} is a benchmark: the data-layout options "
                f"({', '.join('--' + k.replace('_', '-') for k in layout)}) apply to users' files only"
            )
        return args.split or "test", keys
    if args.split is not None:
        return args.split, keys
    from saeno.pde.readers import file_splits

    names = {k: v for k, v in keys.items() if k in ("x_key", "y_key")}
    return ("test" if "test" in file_splits(args.dataset, **names) else None), keys


def _part(args: argparse.Namespace, data, split: str | None) -> str:
    """Which part of the dataset was captured, for the summary line."""
    card = getattr(data, "card", {}) or {}
    used = card.get("split", split)
    if used in (None, "all"):
        span = card.get("rows")
        return f"rows {span[0]}:{span[1]} of {args.dataset}" if span else f"all of {args.dataset}"
    other = "train" if used == "test" else "test"
    return f"the {used} split of {args.dataset} (pass --split {other} for the {other} split)"


def run(args: argparse.Namespace) -> int:
    """Capture ``args.hooks`` of ``args.model`` over ``args.dataset`` into ``args.out``."""
    from saeno.cli.common import load_any_model
    from saeno.hooking import HookedOperator
    from saeno.store import capture
    from saeno.store.activation_store import format_bytes

    model = load_any_model(args.model, trust=args.trust, model_config=args.model_config)
    if args.device:
        model = model.to(args.device)
    split, keys = _split_and_keys(args)
    data = _load_dataset(args.dataset, split, args.resolution, **keys)
    part = _part(args, data, split)
    from saeno.distributed.env import launched_by_torchrun

    if launched_by_torchrun():  # torchrun --nproc-per-node N -m saeno capture ...
        from saeno.distributed.cli import capture_from_args

        return capture_from_args(args, model, data)
    store = capture(
        HookedOperator(model),
        data,
        args.hooks,
        args.out,
        batch_size=args.batch_size,
        dtype=args.dtype,
        n_rows=args.max_samples,
        resume=args.resume,
        overwrite=args.overwrite,
        allow_nonfinite=args.allow_nonfinite,
        device=args.device,
        chunk_size=args.chunk_size,
        progress=not args.no_progress,
    )
    print(
        f"captured {store.n_rows} samples of {len(store.hooks)} hooks from {part} to {store.url} "
        f"({format_bytes(store.nbytes_stored())} stored)"
    )
    return 0
