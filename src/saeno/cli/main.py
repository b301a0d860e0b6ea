"""Entry point of the ``saeno`` command: dispatches to one module per verb.

Each verb module in ``saeno.cli`` defines ``add_parser(subparsers)``, which registers its sub-command
and sets ``func(args) -> int`` as the parser default. Verb modules import heavy libraries inside
``func`` only, so that ``saeno --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# OpenMP's wait policy is read once, when torch loads, so it is chosen here from the verb. `saeno capture`
# lets OpenMP threads sleep at barriers: spinning threads starve the store's writer thread on small shared
# machines (capture 3.6x slower with the cores loaded). Every other verb keeps OpenMP's default, which
# trains FNOs and SAE-FNOs 1.5-2.4x faster on idle cores (benchmarks/results/zoo.md). A user's own
# OMP_WAIT_POLICY wins.
PASSIVE_OPENMP_VERBS = ("capture",)


def _choose_openmp_wait_policy(argv: list[str]) -> None:
    if len(argv) > 1 and argv[1] in PASSIVE_OPENMP_VERBS:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


_choose_openmp_wait_policy(sys.argv)

from saeno import __version__
from saeno.errors import SaenoError

# verb module names in the order ``saeno --help`` lists them (the pipeline's order)
VERB_MODULES = [
    "demo",
    "data",
    "zoo",
    "hooks",
    "capture",
    "store",
    "train",
    "eval",
    "export",
    "intervene",
]


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available verb."""
    parser = argparse.ArgumentParser(
        prog="saeno",
        description="Sparse autoencoders for auditing Fourier Neural Operators.",
    )
    parser.add_argument("--version", action="version", version=f"saeno {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in VERB_MODULES:
        try:
            module = importlib.import_module(f"saeno.cli.{name}_cmd")
        except ModuleNotFoundError as exc:
            if exc.name == f"saeno.cli.{name}_cmd":
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``saeno`` command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        from saeno.cli.validate import check, disk_error

        check(args)  # every argument, before anything is read or written
        return int(args.func(args) or 0)
    except SaenoError as exc:
        print(f"saeno {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        message = disk_error(exc)  # a full or read-only disk: a message, not a traceback
        if message is None:
            raise
        print(f"saeno {args.verb}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"saeno {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
