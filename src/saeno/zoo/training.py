"""Train a zoo FNO on its benchmark: relative-L2 loss, Adam, one-cycle learning rate, seeded."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from saeno.errors import SaenoError
from saeno.metrics import relative_l2
from saeno.zoo.fast_forward import fast_forward
from saeno.zoo.operator import ZooOperator


@torch.no_grad()
def evaluate_rel_l2(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> float:
    """Mean relative L2 error of ``model(x)`` against ``y`` (raw fields), the model's convolutions on
    the fast execution of :func:`saeno.zoo.fast_forward.fast_forward` (the same function up to the
    order of floating-point sums)."""
    model.eval()
    errs = []
    with fast_forward(model):
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].to(device)
            yb = y[start : start + batch_size].to(device)
            errs.append(relative_l2(model(xb), yb).cpu())
    return float(torch.cat(errs).mean())


def passive_openmp() -> bool:
    """Whether OpenMP threads sleep at barriers (``OMP_WAIT_POLICY=PASSIVE``, set by saeno's CLI)."""
    return os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"


@contextlib.contextmanager
def cpu_threads(n: int | None, device: str | torch.device | None = None) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads on CPU under passive OpenMP waiting (else unchanged).

    neuraloperator's spectral convolutions contract complex tensors with ``einsum``, which PyTorch runs
    as many small batched products; with ``OMP_WAIT_POLICY=PASSIVE`` (saeno's CLI sets it, because
    spinning threads starve the capture's writer on small shared machines) every one of them wakes
    sleeping threads, and a training step was about 2x slower with 2 threads than with one. With
    OpenMP's default (spinning) policy two threads are faster, so the setting is left alone there.
    Measurements: ``benchmarks/results/zoo.md``. The thread count is restored afterwards.
    """
    if n is None or torch.device(device or "cpu").type != "cpu" or not passive_openmp():
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def channel_stats(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of ``(N, C, *grid)`` over samples and grid."""
    dims = [0] + list(range(2, a.ndim))
    return a.mean(dim=dims), a.std(dim=dims).clamp_min(1e-8)


def make_optimizer(params: Any, hp: dict[str, Any]) -> torch.optim.Optimizer:
    """The recipe's optimiser: ``hp["optimizer"]`` ``"adamw"`` (default) or ``"adam"``, at ``hp["lr"]``
    with ``hp["weight_decay"]``."""
    kind = hp.get("optimizer", "adamw")
    if kind not in ("adam", "adamw"):
        raise SaenoError(f"unknown optimizer {kind!r} in a zoo recipe: use 'adam' or 'adamw'")
    cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
    return cls(params, lr=hp["lr"], weight_decay=hp["weight_decay"])


def usable_cores() -> int:
    """CPU cores this process may run on (``os.sched_getaffinity`` where available)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - platforms without affinity
        return os.cpu_count() or 1


class HalvesStep:
    """One optimiser step's gradient as the sum of the gradients of the batch's two halves.

    The loss is the mean over the batch of per-sample terms, so its gradient is the sum over the two
    halves of ``d(sum of the half's terms / batch size)``: the same gradient up to the order of
    floating-point sums. Each half runs on ``threads_per_half`` intra-op threads. With at least two
    usable cores the halves run at once in two worker threads (one forward and backward per core, with
    no parallel region to wake per operation); otherwise one after the other in the calling thread, on
    the same thread count, so both ways give bit-identical gradients. The halves' gradients are added
    in a fixed order (first + second).
    """

    def __init__(self, model: torch.nn.Module, params: Sequence[torch.Tensor]) -> None:
        self.model = model
        self.params = list(params)
        self.threads_per_half = max(1, torch.get_num_threads() // 2)
        self.pool: ThreadPoolExecutor | None = None
        if usable_cores() >= 2:
            self.pool = ThreadPoolExecutor(
                2,
                thread_name_prefix="saeno-fit",
                initializer=torch.set_num_threads,
                initargs=(self.threads_per_half,),
            )

    def _half(self, xb: torch.Tensor, yb: torch.Tensor, n: int) -> tuple[float, list[torch.Tensor | None]]:
        loss = relative_l2(self.model(xb), yb).sum() / n
        grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        return float(loss.detach()), list(grads)

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> float:
        """Set every parameter's ``.grad`` to the gradient of the batch's mean loss; return the loss."""
        n = len(xb)
        cut = (n + 1) // 2
        parts = [(xb[:cut], yb[:cut])] + ([(xb[cut:], yb[cut:])] if n > cut else [])
        if self.pool is not None and len(parts) == 2:
            futures = [self.pool.submit(self._half, a, b, n) for a, b in parts]
            results = [f.result() for f in futures]
        else:
            old = torch.get_num_threads()
            torch.set_num_threads(self.threads_per_half)
            try:
                results = [self._half(a, b, n) for a, b in parts]
            finally:
                torch.set_num_threads(old)
        for i, p in enumerate(self.params):
            grads = [g for r in results if (g := r[1][i]) is not None]
            p.grad = None if not grads else grads[0] if len(grads) == 1 else grads[0] + grads[1]
        return sum(r[0] for r in results)

    def close(self) -> None:
        """Stop the worker threads."""
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None


def fit_loop(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    hp: dict[str, Any],
    *,
    device: torch.device,
    progress: bool = True,
    desc: str = "train fno",
    fast: bool = True,
    halves: bool = True,
) -> tuple[list[float], list[float]]:
    """Train ``model`` in place on raw ``(x, y)`` with the recipe ``hp``: the zoo's one FNO loop.

    Relative-L2 loss of the raw output, the recipe's optimiser (:func:`make_optimizer`), a one-cycle
    learning rate peaking at ``hp["lr"]`` after ``hp.get("pct_start", 0.2)`` of the steps, batches of
    ``hp["batch_size"]`` in an order seeded by ``hp["seed"]`` (the caller seeds the initialisation).
    With ``fast`` (default) the steps run the FNO's pointwise and spectral convolutions on
    :func:`saeno.zoo.fast_forward.fast_forward`'s path, and on CPU each step's gradient is computed
    as the sum of its two half-batches' (:class:`HalvesStep`, in parallel on two cores): the same
    function and gradient up to the order of floating-point sums, the model left a plain
    neuraloperator FNO. ``halves=False`` computes each step's gradient in one pass over the batch
    (torch's intra-op threads).

    Returns
    -------
    epoch_losses, step_losses : list of float
        Mean loss per epoch (weighted by batch size) and the loss of every step.
    """
    from tqdm.auto import tqdm

    opt = make_optimizer(model.parameters(), hp)
    steps_per_epoch = math.ceil(len(x) / hp["batch_size"])
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=hp["lr"], total_steps=hp["epochs"] * steps_per_epoch, pct_start=hp.get("pct_start", 0.2)
    )
    gen = torch.Generator().manual_seed(int(hp["seed"]))
    epoch_losses: list[float] = []
    step_losses: list[float] = []
    bar = tqdm(range(hp["epochs"]), desc=desc, disable=not progress, unit="epoch")
    split = None
    if fast and halves and torch.device(device).type == "cpu":
        split = HalvesStep(model, [p for p in model.parameters() if p.requires_grad])
    threads = torch.get_num_threads()
    try:
        with fast_forward(model) if fast else contextlib.nullcontext():
            for _ in bar:
                model.train()
                perm = torch.randperm(len(x), generator=gen)
                total = 0.0
                for i in range(0, len(x), hp["batch_size"]):
                    idx = perm[i : i + hp["batch_size"]]
                    xb, yb = x[idx].to(device), y[idx].to(device)
                    opt.zero_grad(set_to_none=True)
                    if split is not None:
                        step_loss = split(xb, yb)
                    else:
                        # the loss is the metric: relative L2 of the raw output
                        loss = relative_l2(model(xb), yb).mean()
                        loss.backward()
                        step_loss = float(loss.detach())
                    opt.step()
                    sched.step()
                    step_losses.append(step_loss)
                    total += step_losses[-1] * len(idx)
                epoch_losses.append(total / len(x))
                bar.set_postfix(loss=f"{epoch_losses[-1]:.4f}")
    finally:
        if split is not None:
            split.close()
        torch.set_num_threads(threads)  # the workers' setting also reaches torch's process-wide default
    model.eval()
    return epoch_losses, step_losses


def fit(
    spec: dict[str, Any],
    train_xy: tuple[torch.Tensor, torch.Tensor],
    device: str | torch.device | None = None,
    progress: bool = True,
    normalize: bool = True,
    fast: bool = True,
    halves: bool = True,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train the model of ``spec`` on raw ``(x, y)`` tensors.

    Parameters
    ----------
    spec : dict
        A zoo recipe from :func:`saeno.zoo.specs.get_spec`.
    train_xy : tuple of torch.Tensor
        Raw inputs and outputs ``(N, C, *grid)`` at the training resolution.
    device : str or torch.device, optional
        Where to train (default CPU).
    progress : bool
        Show a tqdm bar over epochs.
    normalize : bool
        Wrap the FNO in a :class:`ZooOperator` with per-channel normalisers from the data (True, the
        zoo's models), or train the bare FNO on the raw fields (the labelled benchmark's FNO,
        :mod:`saeno.zoo.labelled`).
    fast : bool
        Train on the fast execution of :func:`saeno.zoo.fast_forward.fast_forward` (see
        :func:`fit_loop`).
    halves : bool
        On CPU, each step's gradient from its two half-batches in parallel (see :func:`fit_loop`).

    Returns
    -------
    model : ZooOperator or FNO
        Trained, in eval mode, on ``device``.
    history : dict
        ``{"train_loss": [per epoch], "step_loss": [per step], "wall_time_s", "cpu_time_s" (process
        CPU time, all threads), ...}``.
    """
    from neuralop.models import FNO

    hp = spec["train"]
    seed = int(hp["seed"])
    device = torch.device(device or "cpu")
    torch.manual_seed(seed)
    np.random.seed(seed)
    x, y = train_xy
    fno_kwargs = dict(
        spec["fno"], n_modes=tuple(spec["fno"]["n_modes"]), in_channels=x.shape[1], out_channels=y.shape[1]
    )
    model: torch.nn.Module = FNO(**fno_kwargs)
    if normalize:
        x_mean, x_std = channel_stats(x)
        y_mean, y_std = channel_stats(y)
        model = ZooOperator(model, x.shape[1], y.shape[1], x_mean, x_std, y_mean, y_std)
    model = model.to(device)
    start = time.perf_counter()
    cpu_start = time.process_time()
    history, steps = fit_loop(
        model,
        x,
        y,
        hp,
        device=device,
        progress=progress,
        desc=f"train {spec['name']}",
        fast=fast,
        halves=halves,
    )
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    return model, {
        "train_loss": history,
        "step_loss": steps,
        "wall_time_s": wall,
        "cpu_time_s": cpu,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "fast_forward": bool(fast),
        "halves": bool(fast and halves and device.type == "cpu"),
        "platform": platform.platform(),
    }
