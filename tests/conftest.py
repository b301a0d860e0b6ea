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
