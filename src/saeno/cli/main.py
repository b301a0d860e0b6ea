"""Entry point of the ``saeno`` command: dispatches to one module per verb.

Each verb module in ``saeno.cli`` defines ``add_parser(subparsers)``, which registers its sub-command
and sets ``func(args) -> int`` as the parser default. Verb modules import heavy libraries inside
``func`` only, so that ``saeno --help`` is fast.

Before any verb runs, :func:`main` applies saeno's thread policy (:mod:`saeno.threads`: passive OpenMP
waiting, chosen before torch loads, which is why it happens at import here), seeds every random number
generator from the verb's ``--seed`` (0 when it has none), and gives verbs that take ``--model`` a
``--model-config`` option. Errors caused by user input are printed in CLI terms, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from saeno import threads

threads.configure()  # OMP_WAIT_POLICY is read once, when torch loads

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
    "explain",
    "export",
    "intervene",
    "audit",
]
DEFAULT_SEED = 0


def _add_model_config(parsers: dict[str, argparse.ArgumentParser]) -> None:
    from saeno.cli.common import add_model_options, has_option

    for parser in parsers.values():
        if has_option(parser, "--model") and not has_option(parser, "--model-config"):
            add_model_options(parser)


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
    _add_model_config(sub.choices)
    return parser


def seed_everything(seed: int | None) -> int:
    """Seed Python's, numpy's and torch's generators (``DEFAULT_SEED`` for ``None``); returns the seed."""
    import random

    import numpy as np
    import torch

    seed = DEFAULT_SEED if seed is None else int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds the legacy global generator users may call
    torch.manual_seed(seed)
    return seed


def _prepare(args: argparse.Namespace) -> None:
    """Thread policy, seeds and ``--model-config``, before the verb runs."""
    threads.apply()
    seed_everything(getattr(args, "seed", None))
    from saeno.zoo import io

    io.CLI_MODEL_CONFIG = getattr(args, "model_config", None)


def _quiet_broken_pipe() -> int:
    """``saeno ... | head``: the reader left; stop without a traceback (and without one at exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # pragma: no cover - stdout already gone
        pass
    return 141  # 128 + SIGPIPE, what a shell reports for a command killed by a closed pipe


def main(argv: list[str] | None = None) -> int:
    """Run the ``saeno`` command line; returns the process exit code."""
    from saeno.cli.messages import cli_message

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        from saeno.cli.validate import check, disk_error

        check(args)  # every argument, before anything is read or written
        _prepare(args)
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except SaenoError as exc:
        print(f"saeno {args.verb}: error: {cli_message(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except OSError as exc:
        from saeno.cli.validate import disk_error

        message = disk_error(exc)  # a full or read-only disk: a message, not a traceback
        if message is None:
            raise
        print(f"saeno {args.verb}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"saeno {args.verb}: interrupted", file=sys.stderr)
        return 130
    finally:  # main() may run in-process: the verb's settings end with it
        threads.remove()
        from saeno.zoo import io

        io.CLI_MODEL_CONFIG = None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
