"""``saeno hooks``: list every hook point of a model with the shape and dtype of its activation.

The model is a zoo name, a model folder, a neuraloperator checkpoint, a built-in example, or an
architecture (``--architecture``: a JSON object or file with ``model_class`` and the constructor's
arguments) with optional weights (``--model`` a state-dict file). Families whose forward takes more than
a grid field (FNOGNO, GINO: point clouds; CODANO: variables) are probed with a small synthetic input of
the right kind.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

NON_GRID_FAMILIES = (
    "neuralop-fnogno",
    "neuralop-gino",
    "neuralop-codano",
)  # inputs other than one grid field


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
        default=None,
        help="zoo name, model folder or checkpoint, or a built-in example: "
        "example-fno1d, example-fno2d, example-fno3d, example-tfno2d; with --architecture, a state-dict "
        "file (.safetensors or .pt of tensors) to load into it (omit it for random weights)",
    )
    p.add_argument(
        "--architecture",
        default=None,
        help="a neuraloperator architecture as JSON (inline or a .json file): "
        '{"model_class": "UNO", "in_channels": 1, ...}; a UQNO takes "base_model": {...}',
    )
    p.add_argument(
        "--resolution", type=int, default=None, help="grid points per dimension (default 32; 16 in 3D)"
    )
    p.add_argument("--batch", type=int, default=1, help="batch size of the probe input (default 1)")
    p.add_argument(
        "--trust", action="store_true", help="allow unpickling a neuraloperator checkpoint you trust"
    )
    p.add_argument("--keep-padding", action="store_true", help="show block activations on the padded grid")
    p.set_defaults(func=run)


def format_table(rows: list[tuple[str, str, str]]) -> str:
    """Left-aligned text table with a header row."""
    rows = [("hook", "shape", "dtype"), *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def read_architecture(text: str) -> dict[str, Any]:
    """The architecture dict of ``--architecture``: inline JSON or the path of a JSON file."""
    from saeno.errors import SaenoError

    path = Path(text)
    try:
        raw = path.read_text(encoding="utf-8") if path.suffix == ".json" and path.is_file() else text
        cfg = json.loads(raw)
    except (OSError, json.JSONDecodeError) as exc:
        raise SaenoError(
            f"--architecture is neither a JSON object nor a readable .json file ({exc})."
        ) from exc
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model_class"), str):
        raise SaenoError(
            '--architecture must be a JSON object with "model_class" (e.g. "UNO") and the '
            "model's constructor arguments."
        )
    return cfg


def build_architecture(cfg: dict[str, Any]) -> Any:
    """An untrained neuraloperator model of any family (``UQNO`` builds its ``base_model`` first)."""
    from saeno.zoo.architecture import build_neuralop

    return build_neuralop(cfg, "--architecture")


def _load_state(model: Any, path: str) -> None:
    from saeno.errors import SaenoError
    from saeno.zoo.io import describe_torch_file, read_state

    file = Path(path)
    if not file.is_file():
        raise SaenoError(f"--model {path}: with --architecture, --model must be a state-dict file.")
    if describe_torch_file(file) not in ("state_dict", "safetensors"):
        raise SaenoError(f"--model {path} is not a state dict of tensors (.safetensors or a .pt of tensors).")
    state = read_state(file)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        raise SaenoError(f"--model {path} does not fit the --architecture: {exc}") from exc


def probe_input(hooked: Any, resolution: int | None, batch: int) -> tuple[tuple, dict]:
    """A random input of the kind the hooked model's family takes: ``(args, kwargs)`` of its forward."""
    import torch

    from saeno.errors import SaenoError

    op = hooked.operator
    family = hooked.preset["name"] if hooked.preset else None
    param = next(iter(hooked.model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    if family in ("neuralop-fnogno", "neuralop-gino"):
        ndim = int(op.in_coord_dim)
        n = resolution or 8
        axes = torch.linspace(0, 1, n, device=device)
        latent = torch.stack(torch.meshgrid(*([axes] * ndim), indexing="ij"), -1)
        out_points = torch.rand(2 * n, op.gno_coord_dim, device=device)
        if family == "neuralop-fnogno":
            f = torch.randn(*([n] * ndim), op.lifting.in_channels - ndim, device=device)
            return (latent,), {"out_p": out_points, "f": f}
        geom = torch.rand(1, 4 * n, op.gno_coord_dim, device=device)
        x = torch.randn(batch, 4 * n, op.in_channels, device=device)
        kwargs = {"latent_queries": latent.unsqueeze(0), "output_queries": out_points.unsqueeze(0), "x": x}
        return (geom,), kwargs
    if family == "neuralop-codano":
        n = resolution or 32
        ids = list(op.variable_ids or ["a"])
        x = torch.randn(batch, len(ids), *([n] * op.n_dim), device=device)
        kwargs: dict[str, Any] = {}
        if op.use_positional_encoding:
            kwargs["input_variable_ids"] = ids
        if op.static_channel_dim:
            kwargs["static_channel"] = torch.randn(
                batch, op.static_channel_dim, *([n] * op.n_dim), device=device
            )
        return (x,), kwargs
    if hooked.ndim is None or hooked.in_channels is None:
        raise SaenoError(
            f"no hook preset tells the input shape of {type(hooked.model).__name__}; "
            "`saeno hooks` can only probe models a preset in hooks/ describes."
        )
    resolution = resolution or (16 if hooked.ndim >= 3 else 32)
    dtype = torch.complex64 if getattr(op, "complex_data", False) else torch.float32
    x = torch.randn(batch, hooked.in_channels, *([resolution] * hooked.ndim), dtype=dtype, device=device)
    return (x,), {}


def run(args: argparse.Namespace) -> int:
    """Print the hook table of the model."""
    import torch

    from saeno.cli.common import load_any_model
    from saeno.errors import SaenoError
    from saeno.hooking import HookedOperator

    if args.batch < 1 or (args.resolution is not None and args.resolution < 1):
        raise SaenoError("--batch and --resolution must be positive integers.")
    if args.architecture is not None:
        model = build_architecture(read_architecture(args.architecture))
        if args.model is not None:
            _load_state(model, args.model)
    elif args.model is None:
        raise SaenoError("give --model (a zoo name, folder, checkpoint or example) or --architecture.")
    else:
        model = load_any_model(args.model, trust=args.trust)
    hooked = HookedOperator(model, keep_padding=args.keep_padding).eval()
    note = ""
    if hooked.preset and hooked.preset["name"] in NON_GRID_FAMILIES and hooked.operator_path:
        # a wrapper (a zoo ZooOperator) forwards one grid field only: probe the operator it holds
        note = (
            f" (probed on the {type(hooked.operator).__name__} inside the wrapper; 'hook_out' is its output)"
        )
        operator = hooked.operator
        assert operator is not None
        hooked = HookedOperator(operator, keep_padding=args.keep_padding).eval()
    inputs, kwargs = probe_input(hooked, args.resolution, args.batch)
    with torch.no_grad():
        _, cache = hooked.run_with_cache(*inputs, **kwargs)
    rows = [
        (name, str(tuple(cache[name].shape)), str(cache[name].dtype).replace("torch.", ""))
        for name in hooked.hook_names
        if name in cache
    ]
    preset = hooked.preset["name"] if hooked.preset else "generic"
    where = f" at {hooked.operator_path!r}" if hooked.operator_path else ""
    shapes = ", ".join(
        str(tuple(t.shape)) for t in [*inputs, *kwargs.values()] if isinstance(t, torch.Tensor)
    )
    print(f"{type(model).__name__}: preset {preset}{where}, input {shapes}{note}")
    print(format_table(rows))
    return 0
