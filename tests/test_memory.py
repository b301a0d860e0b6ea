"""keep_freed_memory: freed tensors' pages are reused instead of being faulted in again."""

import platform
import subprocess
import sys

import pytest

CHILD = """
import resource, sys, torch
from saeno.memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory() and keep_freed_memory()
else:  # glibc's initial setting, held fixed (by default it adapts to the blocks freed so far)
    import ctypes
    assert ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024) == 1
x = torch.ones(1 << 20)  # 4 MiB


def step():  # like a training step: a burst of 4 MiB intermediates, all freed at its end
    held = [x * float(i) for i in range(24)]
    return sum(float(t[0]) for t in held)


for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only"
)
def test_freed_tensors_are_reused_without_page_faults():
    def faults(mode):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, mode],
            capture_output=True,
            text=True,
            check=True,
            env={"OMP_NUM_THREADS": "1", "PATH": ""},
        )
        return int(out.stdout.split()[-1])

    plain, kept = faults("plain"), faults("keep")
    # 20 steps of 24 fresh 4 MiB blocks (1024 pages each): mapped and faulted in afresh every
    # time above glibc's mmap threshold; kept, the pages are reused
    assert plain > 20 * 24 * 900, plain
    assert kept < 20 * 24 * 60, kept
