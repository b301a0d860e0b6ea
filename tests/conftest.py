"""Test-session settings shared by every test file."""

import os

# OpenMP threads that spin-wait at barriers slow torch down by large factors when the two cores of a
# CI machine are shared with the store's writer thread or other processes; sleep instead.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MPLBACKEND", "Agg")
