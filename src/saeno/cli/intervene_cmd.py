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
    p.add_argument("--model", required=True,
                   help="the FNO: burgers-labelled-fno, a zoo name, or a model folder")
    p.add_argument("--set", dest="assign", action="append", required=True, metavar="FACTOR=VALUE",
                   help="label to set on every selected row (repeatable)")
    p.add_argument("--rows", default=None,
                   help="rows to edit: 'a:b' or comma-separated indices (default: all)")
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--score", action="store_true",
                   help="compare with the solver's counterfactual (burgers_labelled stores)")
    p.add_argument("--trust", action="store_true", help="allow unpickling a neuraloperator checkpoint you trust")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
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
    """Edit, run, write, and print a summary."""
    import h5py
    import numpy as np
    import torch

    from saeno.errors import SaenoError
    from saeno.hooking import HookedOperator
    from saeno.hooking.fingerprint import fingerprint
    from saeno.sae.supervised import SupervisedSAE
    from saeno.store import ActivationStore
    from saeno.supervised import intervene as iv
    from saeno.supervised.training import store_labels
    from saeno.train.checkpoint import load_sae

    sae = load_sae(args.sae, device=args.device)
    if not isinstance(sae, SupervisedSAE):
        raise SaenoError(f"{args.sae} holds a {sae.architecture!r} SAE; intervene needs a supervised "
                         "one (saeno train --arch supervised)")
    store = ActivationStore.open(args.store)
    hook = sae.hook
    if hook not in store.hooks:
        raise SaenoError(f"the SAE was trained on hook {hook!r}, which the store does not hold "
                         f"({store.hooks})")
    model = load_model(args.model, trust=args.trust)
    if sae.model_fingerprint and fingerprint(model) != sae.model_fingerprint:
        raise SaenoError(f"model {args.model!r} is not the model the SAE was trained on "
                         "(fingerprints differ): pass the FNO that produced the store")
    hooked = HookedOperator(model).to(args.device).eval()
    codes, factors = store_labels(store)
    codes = {f: codes[f] for f in sae.factors}
    factors = {f: factors[f] for f in sae.factors}
    rows = parse_rows(args.rows, store.n_rows)
    assign = iv.parse_assignments(args.assign)
    old = {f: c[rows] for f, c in codes.items()}
    new = iv.set_label(old, factors, assign)
    x = torch.as_tensor(store.read("x", rows))
    clean = iv.run_edited(hooked, x, hook, None, batch_size=args.batch_size, device=args.device)
    edited = iv.run_edited(hooked, x, hook, iv.sae_edit(sae, old, new), batch_size=args.batch_size,
                           device=args.device)
    out = {"rows": rows, "x": x.numpy(), "y_pred": clean.numpy(), "y_edit": edited.numpy()}
    out.update({f"labels/{f}": old[f] for f in factors})
    out.update({f"new_labels/{f}": new[f] for f in factors})
    if args.score:
        from saeno.supervised import benchmark_data as bd

        card = (store.attrs.get("dataset") or {}).get("card") or {}
        if card.get("name") != bd.CARD:
            raise SaenoError(f"--score needs a store of the {bd.CARD} dataset; this one holds "
                             f"{card.get('name')!r}")
        index = store.read("index", rows)
        x_cf, y_cf = bd.counterfactual(index, new, split=card.get("split", "train"),
                                       seed=card.get("seed"), resolution=int(x.shape[-1]),
                                       card=card)
        fno_cf = iv.run_edited(hooked, x_cf, hook, None, batch_size=args.batch_size,
                               device=args.device)
        out.update({"x_cf": x_cf, "y_cf": y_cf, "y_fno_cf": fno_cf.numpy()})
        res = iv.score({"do nothing": clean, "supervised SAE": edited, "FNO(x_cf)": fno_cf}, y_cf,
                       fno_cf)
        print(f"{'prediction':<16} {'relL2 vs solver':>16} {'relL2 vs FNO(x_cf)':>19}")
        for name, r in res.items():
            print(f"{name:<16} {r['vs_solver']:>16.4f} {r['vs_fno_cf']:>19.4f}")
    with h5py.File(args.out, "w") as f:
        for k, v in out.items():
            f.create_dataset(k, data=np.asarray(v))
        f.attrs["set"] = ",".join(f"{k}={v}" for k, v in assign.items())
        f.attrs["sae"] = str(args.sae)
        f.attrs["hook"] = hook
        f.attrs["factors"] = __import__("json").dumps(factors)
    changed = int(sum((new[f] != old[f]).sum() for f in factors))
    print(f"edited {len(rows)} rows ({changed} label changes) at {hook}; wrote {args.out}")
    return 0
