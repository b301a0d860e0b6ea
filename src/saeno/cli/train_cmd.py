"""``saeno train``: train a sparse autoencoder on one hook of an activation store."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from saeno.train.config import add_arguments, config_from_args
from saeno.train.trainer import summary_lines

ARCHS = {"sae": "sae", "flat": "flat", "sae-fno": "sae-fno", "saefno": "sae-fno", "supervised": "supervised"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``train`` verb."""
    p = subparsers.add_parser(
        "train",
        help="train an SAE (pointwise, flat or SAE-FNO) on a store's hook",
        description="Train a sparse autoencoder on the activations of one hook and save it as a "
        "folder (cfg.json + sae_weights.safetensors, checkpoints in OUT/checkpoints).",
    )
    p.add_argument(
        "--store",
        required=True,
        action="append",
        metavar="STORE",
        help="activation store written by `saeno capture`; repeat it to train on several grids (the same "
        "hook of the same model captured at each grid; batches alternate between them, equal points "
        "per batch, see docs/sae_fno.md)",
    )
    p.add_argument(
        "--arch",
        choices=sorted(set(ARCHS)),
        default="sae",
        help="sae (pointwise), flat (SAE-MLP baseline) or sae-fno",
    )
    p.add_argument(
        "--concepts",
        type=int,
        default=None,
        metavar="P",
        help="dictionary size (all architectures but supervised, whose concepts are the labels)",
    )
    p.add_argument("--lifting", type=int, default=None, metavar="L", help="lifted width (L >= C)")
    p.add_argument("--modes", type=int, default=8, metavar="K", help="SAE-FNO Fourier modes per dim")
    p.add_argument("--sparsity", choices=["topk", "batchtopk", "relu", "jumprelu"], default="topk")
    p.add_argument(
        "--k",
        type=int,
        default=None,
        help="TopK/BatchTopK: concepts kept (default 16 per sample for sae-fno, else 8)",
    )
    p.add_argument(
        "--labels",
        nargs="+",
        default=None,
        metavar="FACTOR",
        help="supervised: label factors used as concepts (default: all)",
    )
    p.add_argument(
        "--holdout",
        action="append",
        default=[],
        metavar="F=C[,F=C]",
        help="supervised: label combination never trained on (repeatable)",
    )
    p.add_argument("--block-size", type=int, default=4, help="supervised: code channels per label")
    p.add_argument("--nuisance-size", type=int, default=4, help="supervised: nuisance channels")
    p.add_argument("--hidden", type=int, default=32, help="supervised: decoder hidden width (0: linear)")
    p.add_argument(
        "--decorrelate",
        type=float,
        default=10.0,
        help="supervised: weight of the nuisance-label decorrelation penalty",
    )
    p.add_argument(
        "--group",
        choices=["point", "concept"],
        default=None,
        help="where TopK selects (default: point for sae/flat, concept for sae-fno)",
    )
    p.add_argument("--l1", type=float, default=1e-3, help="ReLU: L1 coefficient")
    p.add_argument("--l0", type=float, default=1e-3, help="JumpReLU: L0 coefficient")
    p.add_argument(
        "--domain-l1",
        type=float,
        default=0.0,
        metavar="LAMBDA",
        help="domain sparsity: L1 penalty on function-valued codes",
    )
    p.add_argument(
        "--domain-frac",
        type=float,
        default=None,
        metavar="F",
        help="domain sparsity: keep this share of grid points in each active concept, or with "
        "--domain-pool sample this share on average over the kept concepts (default for sae-fno with "
        "TopK over concepts: 0.0625, pooled; 1 keeps all)",
    )
    p.add_argument(
        "--domain-pool",
        choices=["concept", "sample"],
        default=None,
        help="domain sparsity: 'concept' keeps --domain-frac of the points in each active concept, "
        "'sample' shares one budget of --domain-frac x points x k among a sample's k kept concepts "
        "(default: the SAE-FNO's default for sae-fno with TopK over concepts, else concept)",
    )
    p.add_argument(
        "--complex",
        choices=["realimag"],
        default=None,
        help="treatment of complex activations (stack real and imaginary parts)",
    )
    p.add_argument(
        "--out",
        required=True,
        help="output folder (checkpoints in OUT/checkpoints, log in OUT/train_log.csv)",
    )
    add_arguments(p)  # one flag per TrainConfig field: --steps, --lr, --aux-coef, --resume, ...
    p.set_defaults(func=run)


def build_sae(args: argparse.Namespace, channels: int, grid: tuple[int, ...]):
    """The model the arguments describe, for activations with ``channels`` and ``grid``."""
    from saeno.errors import SaenoError
    from saeno.sae import SAE, SAEFNO, FlatSAE
    from saeno.sae.sae_fno import DEFAULT_SPARSITY

    arch = ARCHS[args.arch]
    fno_default = arch == "sae-fno" and args.sparsity == "topk" and args.group in (None, "concept")
    # the SAE-FNO's measured default (docs/sae_fno.md) fills in what the flags leave open
    spec: dict = dict(DEFAULT_SPARSITY) if fno_default else {}
    given = {"domain_frac": args.domain_frac, "domain_pool": args.domain_pool, "group": args.group}
    spec.update({"type": args.sparsity, "domain_l1": args.domain_l1})
    spec.update({key: value for key, value in given.items() if value is not None})
    spec.setdefault("domain_frac", None)
    if spec.get("domain_pool") == "sample" and spec["domain_frac"] is None:
        raise SaenoError(
            "--domain-pool sample shares --domain-frac among the kept concepts: give --domain-frac"
        )
    if args.sparsity in ("topk", "batchtopk"):
        spec["k"] = (
            args.k
            if args.k is not None
            else (min(DEFAULT_SPARSITY["k"], args.concepts) if fno_default else 8)
        )
    elif args.sparsity == "relu":
        spec["l1"] = args.l1
    else:
        spec["l0"] = args.l0
    common = {"sparsity": spec, "lifting": args.lifting, "complex": args.complex}
    if arch == "sae":
        return SAE(channels, args.concepts, ndim=len(grid), **common)
    if arch == "flat":
        return FlatSAE(channels, args.concepts, grid=grid, **common)
    return SAEFNO(channels, args.concepts, ndim=len(grid), modes=args.modes, **common)


def open_training_stores(paths: list[str], hook: str | None, arch: str) -> tuple[list, str]:
    """The stores of the ``--store`` flags and the hook to train on, checked against each other.

    Several stores are several grids of one hook of one model (``saeno.train.MultiGrid``).
    """
    from saeno.errors import SaenoError
    from saeno.store import ActivationStore
    from saeno.train.data import resolve_hook

    stores = [ActivationStore.open(p) for p in paths]
    if len(stores) == 1:
        return stores, resolve_hook(stores[0], hook)
    from saeno.distributed.env import launched_by_torchrun

    if arch in ("flat", "supervised"):
        raise SaenoError(f"--arch {arch} trains on one grid: give one --store (several are for sae, sae-fno)")
    if launched_by_torchrun():
        raise SaenoError("several --store flags do not run under torchrun yet: run them as one process")
    from saeno.train.multigrid import check_grid_parts

    names = [f"--store {p}" for p in paths]
    chosen, _ = check_grid_parts(stores, hook, names, hook_hint="pass --hook NAME")
    return stores, str(chosen)


def run(args: argparse.Namespace) -> int:
    """Train, save and print a summary."""
    from saeno.train.checkpoint import save_sae
    from saeno.train.trainer import ConvergenceWarning, train_sae

    stores, hook = open_training_stores(args.store, args.hook, ARCHS[args.arch])
    store = stores[0]
    data = stores[0] if len(stores) == 1 else stores
    from saeno.distributed.env import launched_by_torchrun

    if launched_by_torchrun() and ARCHS[args.arch] == "supervised":
        from saeno.errors import SaenoError

        raise SaenoError("--arch supervised does not run under torchrun yet: run it as one process")
    if ARCHS[args.arch] == "supervised":
        from saeno.supervised.training import train_from_store

        path = train_from_store(
            store,
            hook,
            args.out,
            labels=args.labels,
            holdout=args.holdout,
            steps=args.steps or 2000,
            batch_size=args.batch_size or 32,
            lr=args.lr or 3e-3,
            block_size=args.block_size,
            nuisance_size=args.nuisance_size,
            modes=args.modes,
            hidden=args.hidden,
            decorrelate=args.decorrelate,
            seed=args.seed,
            device=args.device or "cpu",
            progress=args.progress,
        )
        print(f"trained supervised SAE on {hook}: saved {path}")
        return 0
    if args.concepts is None:
        from saeno.errors import SaenoError

        raise SaenoError(f"--concepts P is required for --arch {args.arch}")
    info = store.hook_info(hook)
    channels, grid = int(info["shape"][0]), tuple(info["shape"][1:])
    if info.get("complex") and args.complex is None:
        from saeno.errors import ShapeError

        raise ShapeError(f"hook {hook!r} holds complex activations: pass --complex realimag")
    if ARCHS[args.arch] == "sae-fno":
        from saeno.cli.validate import check_modes

        for other in stores:  # every training grid must resolve the modes
            check_modes(args.modes, tuple(other.hook_info(hook)["shape"][1:]))
    import torch

    torch.manual_seed(args.seed)  # the SAE's initial weights depend on the seed too
    sae = build_sae(args, channels, grid)
    out = Path(args.out)
    if launched_by_torchrun():  # torchrun --nproc-per-node N -m saeno train ...
        from saeno.distributed.cli import train_from_args

        args.store = args.store[0]  # one store here: several are refused under torchrun
        return train_from_args(args, sae, store, hook, out)
    config = config_from_args(args, out, hook=hook)
    with warnings.catch_warnings():  # the summary prints them
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = train_sae(sae, data, config)
    save_sae(
        res.sae,
        out,
        metadata={
            "store": str(args.store[0]) if len(args.store) == 1 else [str(p) for p in args.store],
            "steps": res.steps,
            "samples": res.samples,
            "train_config": config.record(),
        },
    )
    for line in summary_lines(res, sae, hook):
        print(line)
    print(f"saved: {out}")
    return 0
