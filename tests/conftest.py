"""Test-session settings shared by every test file."""

import os

# OpenMP threads that spin-wait at barriers slow torch down by large factors when the two cores of a
# CI machine are shared with the store's writer thread or other processes; sleep instead.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture()
def one_thread_seeded():
    """One intra-op thread and torch seed 0 for the test, the thread count restored afterwards.

    The test machine is shared: intra-op threads under contention are pathologically slow, and one
    thread also makes float reductions reproducible between runs.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(n)


def _flags(**flags) -> list[str]:
    """``--flag value`` pairs from keyword arguments (``n_top=4`` -> ``--n-top 4``; True -> the bare flag)."""
    out: list[str] = []
    for name, value in flags.items():
        if value is False or value is None:
            continue
        out.append("--" + name.replace("_", "-"))
        if value is not True:
            out.append(str(value))
    return out


@pytest.fixture()
def saeno_cli():
    """``run(verb, *args, **flags) -> exit code``: ``saeno VERB ARGS --flag value ...`` in-process."""
    from saeno.cli.main import main

    def run(*args: str, **flags) -> int:
        return main([*map(str, args), *_flags(**flags)])

    return run
