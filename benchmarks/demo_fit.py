"""Time the darcy-fno recipe's fit with the plain and the fast forward, same data and seed, one run.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/demo_fit.py [--epochs E] [--threads T]

Prints per-step times and the test relative L2 at 32x32 (the recipe's 200 test samples) of both models.
Reads the darcy dataset through ``saeno.datasets.load`` (generated on first use).
"""

from __future__ import annotations

import argparse
import time

import torch

import saeno
from saeno.zoo.specs import get_spec
from saeno.zoo.training import evaluate_rel_l2, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the recipe's)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--modes", default="fast,plain", help="which forwards, in order")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = get_spec("darcy-fno")
    if args.epochs:
        spec["train"]["epochs"] = args.epochs
    hp = spec["train"]
    train = saeno.datasets.load("darcy", split="train", resolution=32, n=hp["n_train"], progress=False)
    test = saeno.datasets.load("darcy", split="test", resolution=32, n=hp["n_train"], progress=False)
    xt, yt = test.tensors()
    steps = hp["epochs"] * -(-hp["n_train"] // hp["batch_size"])
    print(f"threads {torch.get_num_threads()}, {steps} steps of batch {hp['batch_size']}")
    for mode in args.modes.split(","):
        t0 = time.perf_counter()
        model, history = fit(spec, train.tensors(), progress=False, fast=mode == "fast")
        wall = time.perf_counter() - t0
        err = evaluate_rel_l2(model, xt[: hp["n_test"]], yt[: hp["n_test"]])
        print(
            f"{mode:6s} fit {wall:6.1f} s  {1e3 * wall / steps:6.1f} ms/step  "
            f"final train loss {history['train_loss'][-1]:.4f}  test rel. L2 (32) {err:.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
