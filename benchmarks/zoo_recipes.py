"""Train a zoo model with recipe overrides and print its test relative L2 and time.

    python benchmarks/zoo_recipes.py darcy-fno --epochs 8 --batch-size 32 --lr 1e-2 --modes 8 8 \
        [--threads 1] [--out /tmp/zexp]

Used to choose the recipes in ``src/saeno/zoo/specs.py`` (results in ``benchmarks/results/zoo.md``).
The data comes from (or goes to) ``$SAENO_HOME``; the model goes to ``--out/<tag>``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--modes", type=int, nargs="+")
    p.add_argument("--hidden", type=int)
    p.add_argument("--threads", type=int, help="intra-op threads on CPU (recipe's cpu_threads)")
    p.add_argument("--out", default="/tmp/zoo_recipes")
    args = p.parse_args()

    import saeno.zoo as zoo
    from saeno.zoo import specs

    train = {
        k: v
        for k, v in (
            ("epochs", args.epochs),
            ("batch_size", args.batch_size),
            ("lr", args.lr),
            ("cpu_threads", args.threads),
        )
        if v is not None
    }
    fno = {k: v for k, v in (("n_modes", args.modes), ("hidden_channels", args.hidden)) if v is not None}
    specs.SPECS[args.name]["train"].update(train)
    specs.SPECS[args.name]["fno"].update(fno)
    tag = "_".join([args.name] + [f"{k}{v}" for k, v in {**train, **fno}.items()]).replace(" ", "")
    t = time.perf_counter()
    folder = zoo.train(args.name, out=Path(args.out) / tag, force=True, progress=False)
    rec = json.loads((folder / "record.json").read_text())
    print(
        json.dumps(
            {
                "tag": tag,
                "test_rel_l2": rec["test_rel_l2"],
                "train_rel_l2": rec["train_rel_l2"],
                "fit_s": round(rec["wall_time_s"], 1),
                "total_s": round(time.perf_counter() - t, 1),
                "threads": rec["torch_threads"],
            }
        )
    )


if __name__ == "__main__":
    main()
