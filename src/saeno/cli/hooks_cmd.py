"""``saeno hooks``: list every hook point of a model with the shape and dtype of its activation."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``hooks`` verb."""
    p = subparsers.add_parser(
        "hooks",
        help="list the hook points of a model with shapes and dtypes",
        description="Run one random input through a model and print every hook name with its activation's "
        "shape and dtype.",
    )
    p.add_argument(
        "--model",
        required=True,
        help="zoo name, model folder or checkpoint, or a built-in example: "
        "example-fno1d, example-fno2d, example-fno3d, example-tfno2d",
    )
    p.add_argument("--resolution", type=int, default=None, help="grid points per dimension (default 32; 16 in 3D)")
    p.add_argument("--batch", type=int, default=1, help="batch size of the probe input (default 1)")
    p.add_argument("--trust", action="store_true", help="allow unpickling a neuraloperator checkpoint you trust")
    p.add_argument("--keep-padding", action="store_true", help="show block activations on the padded grid")
    p.set_defaults(func=run)


def format_table(rows: list[tuple[str, str, str]]) -> str:
    """Left-aligned text table with a header row."""
    rows = [("hook", "shape", "dtype")] + rows
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the hook table of ``args.model``."""
    import torch

    from saeno.cli.common import load_any_model
    from saeno.errors import SaenoError
    from saeno.hooking import HookedOperator

    if args.batch < 1 or (args.resolution is not None and args.resolution < 1):
        raise SaenoError("--batch and --resolution must be positive integers.")
    model = load_any_model(args.model, trust=args.trust)
    hooked = HookedOperator(model, keep_padding=args.keep_padding).eval()
    if hooked.ndim is None or hooked.in_channels is None:
        raise SaenoError(
            f"no hook preset tells the input shape of {type(model).__name__}; "
            "`saeno hooks` can only probe models a preset in hooks/ describes."
        )
    resolution = args.resolution or (16 if hooked.ndim >= 3 else 32)
    param = next(iter(model.parameters()), None)
    dtype = torch.float32
    if getattr(hooked.operator, "complex_data", False):
        dtype = torch.complex64
    device = param.device if param is not None else torch.device("cpu")
    x = torch.randn(args.batch, hooked.in_channels, *([resolution] * hooked.ndim), dtype=dtype, device=device)
    with torch.no_grad():
        _, cache = hooked.run_with_cache(x)
    rows = [
        (name, str(tuple(cache[name].shape)), str(cache[name].dtype).replace("torch.", ""))
        for name in hooked.hook_names
        if name in cache
    ]
    preset = hooked.preset["name"] if hooked.preset else "generic"
    where = f" at {hooked.operator_path!r}" if hooked.operator_path else ""
    print(f"{type(model).__name__}: preset {preset}{where}, input {tuple(x.shape)}")
    print(format_table(rows))
    return 0
