"""``saeno zoo``: list, train and describe the pretrained FNOs."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``saeno zoo {list,train,info}``."""
    parser = subparsers.add_parser("zoo", help="list, train and inspect the zoo of FNOs")
    sub = parser.add_subparsers(dest="zoo_verb", metavar="ACTION", required=True)

    lst = sub.add_parser("list", help="list the zoo models and whether they are trained")
    lst.set_defaults(func=_list)

    train = sub.add_parser("train", help="train a zoo model (generates its data if needed)")
    train.add_argument("name")
    train.add_argument("--force", action="store_true", help="retrain even if cached")
    train.add_argument("--fast", action="store_true", help="tiny variant for smoke tests (seconds)")
    train.add_argument("--out", default=None, help="folder to write (default: the zoo cache)")
    train.add_argument("--device", default=None, help="torch device (default cpu)")
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(func=_train)

    info = sub.add_parser("info", help="config and training record of a zoo model or model folder")
    info.add_argument("name_or_path")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=_info)


def _list(args: argparse.Namespace) -> int:
    from saeno import zoo

    for name in zoo.names():
        i = zoo.info(name)
        l2 = i.get("record", {}).get("test_rel_l2", {}) if i["trained"] else {}
        state = "trained" if i["trained"] else "not trained (trains on first use)"
        errors = "  ".join(f"{r}: {v:.4f}" for r, v in l2.items())
        print(
            f"{name:20s} data {i['recipe']['dataset']:14s} res {i['recipe']['resolution']:4d}  {state}"
            + (f"  test rel L2 {errors}" if errors else "")
        )
    return 0


def _train(args: argparse.Namespace) -> int:
    from saeno import zoo

    folder = zoo.train(
        args.name,
        fast=args.fast or None,
        out=args.out,
        force=args.force,
        device=args.device,
        progress=not args.no_progress,
        seed=args.seed,
    )
    record = json.loads((folder / "record.json").read_text(encoding="utf-8"))
    print(folder)
    print(
        f"wall time {record['wall_time_s']:.1f} s; test relative L2: "
        + ", ".join(f"{r}: {v:.4f}" for r, v in record["test_rel_l2"].items())
    )
    return 0


def _info(args: argparse.Namespace) -> int:
    from saeno import zoo

    i = zoo.info(args.name_or_path)
    if args.json:
        print(json.dumps(i, indent=2))
        return 0
    rec = i.get("record", {})
    print(f"name: {i['name']}\nfolder: {i['folder']}\ntrained: {i['trained']}")
    if "recipe" in i:
        print(f"recipe: {json.dumps(i['recipe'])}")
    for key in (
        "epochs",
        "seed",
        "n_train",
        "n_test",
        "train_resolution",
        "wall_time_s",
        "total_wall_time_s",
        "torch_threads",
        "train_rel_l2",
        "test_rel_l2",
    ):
        if key in rec:
            print(f"{key}: {rec[key]}")
    return 0
