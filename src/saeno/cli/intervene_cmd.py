"""``saeno intervene``: change labels with a supervised SAE, splice the edit into the FNO, save the result."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``intervene`` verb."""
    p = subparsers.add_parser(
        "intervene",
        help="set labels of stored samples with a supervised SAE and run the edited FNO",
        description="For each selected store row: encode the hook activation with the row's labels "
        "and nuisance, switch the labels given by --set, add the decoded change to the activation, "
        "run the rest of the FNO. Writes an HDF5 file with the clean and the edited predictions. With "
        "--score (labelled benchmark stores), also the solver's counterfactual and the FNO on the "
        "counterfactual input, and prints relative L2 errors.",
    )
    p.add_argument("--sae", required=True, help="supervised SAE folder (saeno train --arch supervised)")
    p.add_argument("--store", required=True, help="store captured from a labelled dataset")
    p.add_argument(
        "--model", required=True, help="the FNO: burgers-labelled-fno, a zoo name, or a model folder"
    )
    p.add_argument(
        "--set",
        dest="assign",
        action="append",
        required=True,
        metavar="FACTOR=VALUE",
        help="label to set on every selected row (repeatable)",
    )
    p.add_argument(
        "--rows", default=None, help="rows to edit: 'a:b' or comma-separated indices (default: all)"
    )
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument(
        "--score",
        action="store_true",
        help="compare with the solver's counterfactual (burgers_labelled stores)",
    )
    p.add_argument(
        "--trust", action="store_true", help="allow unpickling a neuraloperator checkpoint you trust"
    )
    p.add_argument("--batch-size", type=int, default=64)
    from saeno.cli.common import add_device_option, add_progress_option

    add_device_option(p, default="cpu")
    add_progress_option(p, help="hide progress bars (intervene runs one pass and shows none)")
    p.set_defaults(func=run)


def parse_rows(spec: str | None, n: int):
    """Rows from ``None`` (all), ``"a:b"`` or ``"i,j,k"``; raises SaenoError when out of range."""
    import numpy as np

    from saeno.errors import SaenoError

    if spec is None:
        return np.arange(n)
    try:
        if ":" in spec:
            a, b = spec.split(":", 1)
            rows = np.arange(int(a or 0), int(b) if b else n)
        else:
            rows = np.array([int(s) for s in spec.split(",") if s.strip()], dtype=np.int64)
    except ValueError:
        raise SaenoError(f"--rows {spec!r}: write a:b or comma-separated integers") from None
    if len(rows) == 0 or rows.min() < 0 or rows.max() >= n:
        raise SaenoError(f"--rows {spec!r} selects no rows or rows outside [0, {n})")
    return rows


def load_model(name: str, trust: bool = False):
    """The benchmark FNO by name or folder, else whatever the zoo resolves."""
    from saeno.cli.common import load_any_model

    return load_any_model(name, trust=trust)


def run(args: argparse.Namespace) -> int:
    """Parse, call :func:`saeno.supervised.intervene.intervene`, write, print a summary."""
    from saeno.store import ActivationStore
    from saeno.supervised.intervene import intervene, write_intervention

    store = ActivationStore.open(args.store)
    rows = parse_rows(args.rows, store.n_rows)
    res = intervene(
        args.sae,
        store,
        load_model(args.model, trust=args.trust),
        args.assign,
        rows=rows,
        score_counterfactual=args.score,
        batch_size=args.batch_size,
        device=args.device,
    )
    if res["scores"] is not None:
        print(f"{'prediction':<16} {'relL2 vs solver':>16} {'relL2 vs FNO(x_cf)':>19}")
        for name, r in res["scores"].items():
            print(f"{name:<16} {r['vs_solver']:>16.4f} {r['vs_fno_cf']:>19.4f}")
    write_intervention(res, args.out, sae=str(args.sae))
    print(f"edited {len(rows)} rows ({res['changed']} label changes) at {res['hook']}; wrote {args.out}")
    return 0
