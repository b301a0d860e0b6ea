"""CPU thread and OpenMP wait-policy settings that stay fast on a busy machine.

OpenMP's default wait policy lets idle threads spin at barriers. On idle cores that is fastest, but when
the cores are shared (other jobs, the capture's writer thread) spinning threads steal the time the working
ones need and training slows by large factors. Passive waiting (threads sleep at barriers) never collapses,
but waking sleeping threads costs time in every parallel region, which hurts operations made of many small
parallel regions: neuraloperator's spectral convolutions contract complex tensors with ``einsum``, run as
many small batched products, and are slower with two sleeping threads than with one.

saeno's default (:data:`DEFAULT`, ``"passive"``, applied by the ``saeno`` command for every verb, and
available to Python users through :func:`configure` before torch is imported and :func:`apply` after):
``OMP_WAIT_POLICY=PASSIVE`` (a user's own setting wins) with torch's thread count, the zoo's FNO training
included (a recipe may still name its own count, ``saeno.zoo.training.cpu_threads``).

Policies (``SAENO_THREADS`` or ``apply(policy)``): ``"passive"`` (the default), ``"spectral1"`` (passive
waiting, and one intra-op thread inside every neuraloperator spectral convolution, forward and backward,
through a global module hook), ``"passive1"`` (passive waiting, one thread everywhere), ``"spin"``
(OpenMP's default policy: nothing changed), ``"off"`` (saeno changes nothing).

Measurements, idle and beside two busy processes, all policies in the same run:
``benchmarks/results/busy_machine.md`` (``python benchmarks/busy_machine.py``). Spinning collapsed there
(4-59x slower than the best setting); the three passive settings stayed within the noise of a machine
whose load others changed during the run, and ``"spectral1"`` showed no gain over plain passive waiting.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger(__name__)

POLICIES = ("passive", "spectral1", "passive1", "spin", "off")
DEFAULT = "passive"
ENV = "SAENO_THREADS"
# module classes run with one intra-op thread under the "spectral1" policy
SINGLE_THREAD_MODULES = ("SpectralConv", "SpectralConv1d", "SpectralConv2d", "SpectralConv3d")

_state: dict[str, Any] = {"policy": None, "handles": [], "depth": 0, "saved": None}


def policy_from_env(default: str = DEFAULT) -> str:
    """The policy named by ``SAENO_THREADS`` (or ``default``); an unknown name falls back with a warning."""
    name = os.environ.get(ENV, default).strip().lower() or default
    if name not in POLICIES:
        logger.warning("%s=%r is not one of %s; using %r", ENV, name, POLICIES, default)
        return default
    return name


def configure(policy: str | None = None) -> str:
    """Set the OpenMP wait policy for ``policy``; call before torch is imported (it reads it once).

    Returns the policy. A user's ``OMP_WAIT_POLICY`` always wins. Called after torch was imported, it
    still records the policy for :func:`apply` but cannot change the wait policy (logged).
    """
    policy = policy or policy_from_env()
    if policy not in POLICIES:
        raise ValueError(f"unknown thread policy {policy!r}; choose one of {POLICIES}")
    if policy in ("passive", "spectral1", "passive1"):
        if "torch" in sys.modules and "OMP_WAIT_POLICY" not in os.environ:
            logger.info("torch is already imported: OMP_WAIT_POLICY=PASSIVE cannot take effect any more")
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    _state["policy"] = policy
    return policy


def passive_waiting() -> bool:
    """Whether OpenMP threads sleep at barriers in this process."""
    return os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with one intra-op thread (nested uses are fine); restores the count afterwards."""
    _enter_single()
    try:
        yield
    finally:
        _leave_single()


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """Run the block with ``torch.use_deterministic_algorithms(True, warn_only=True)``; restores the
    previous setting afterwards.

    On CPU this makes the accumulating scatters of multi-threaded backward passes run in a fixed
    order, so a training on several intra-op threads is reproducible bit for bit (an op without a
    deterministic implementation warns instead of failing).
    """
    import torch

    was = torch.are_deterministic_algorithms_enabled()
    was_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=was_warn)


def _enter_single() -> None:
    import torch

    if _state["depth"] == 0:
        _state["saved"] = torch.get_num_threads()
        if _state["saved"] != 1:
            torch.set_num_threads(1)
    _state["depth"] += 1


def _leave_single() -> None:
    import torch

    if _state["depth"] == 0:
        return
    _state["depth"] -= 1
    if _state["depth"] == 0 and _state["saved"] not in (None, 1):
        torch.set_num_threads(_state["saved"])


def _is_single_thread_module(module: Any) -> bool:
    cls = type(module)  # neuraloperator's spectral convolutions (saeno's own contract contiguous operands)
    return cls.__name__ in SINGLE_THREAD_MODULES and cls.__module__.startswith("neuralop")


def _pre_hook(module: Any, args: Any) -> None:
    if _is_single_thread_module(module):
        _enter_single()


def _post_hook(module: Any, args: Any, output: Any) -> None:
    if not _is_single_thread_module(module):
        return
    _leave_single()
    import torch

    if not torch.is_grad_enabled():
        return
    # backward: one thread from the gradient of the output until the gradient of the input is ready
    out = output[0] if isinstance(output, (tuple, list)) else output
    inp = args[0] if args else None
    if (
        isinstance(out, torch.Tensor)
        and out.requires_grad
        and isinstance(inp, torch.Tensor)
        and inp.requires_grad
    ):
        out.register_hook(_grad_enter)
        inp.register_hook(_grad_leave)


def _grad_enter(grad: Any) -> None:
    _enter_single()


def _grad_leave(grad: Any) -> None:
    _leave_single()


def apply(policy: str | None = None, threads: int | None = None) -> str:
    """Apply a policy's thread counts to torch (after import); idempotent.

    Parameters
    ----------
    policy : str, optional
        One of :data:`POLICIES` (default: the one :func:`configure` recorded, else ``SAENO_THREADS``,
        else :data:`DEFAULT`).
    threads : int, optional
        Intra-op threads for dense operations (default: torch's, i.e. the cores or ``OMP_NUM_THREADS``).

    Returns
    -------
    str
        The policy applied.
    """
    import torch

    policy = policy or _state["policy"] or policy_from_env()
    if policy not in POLICIES:
        raise ValueError(f"unknown thread policy {policy!r}; choose one of {POLICIES}")
    remove()
    _state["policy"] = policy
    if threads is not None:
        torch.set_num_threads(int(threads))
    if policy == "passive1":
        torch.set_num_threads(1)
    elif policy == "spectral1":
        from torch.nn.modules.module import (
            register_module_forward_hook,
            register_module_forward_pre_hook,
        )

        _state["handles"] = [
            register_module_forward_pre_hook(_pre_hook),
            register_module_forward_hook(_post_hook),
        ]
    logger.debug(
        "thread policy %s: %d intra-op threads, passive waiting %s",
        policy,
        torch.get_num_threads(),
        passive_waiting(),
    )
    return policy


def remove() -> None:
    """Undo :func:`apply`'s hooks (thread counts set by ``passive1`` or ``threads`` stay)."""
    for handle in _state["handles"]:
        handle.remove()
    _state["handles"] = []
    _state["depth"] = 0


def describe() -> str:
    """A one-line description of the settings in force (for logs and benchmarks)."""
    import torch

    return (
        f"policy {_state['policy'] or 'none'}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}, "
        f"{torch.get_num_threads()} intra-op threads"
    )
