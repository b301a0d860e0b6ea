"""Sparsity mechanisms: TopK, BatchTopK, ReLU + L1 and JumpReLU, with optional domain sparsity.

Every mechanism is an ``nn.Module`` mapping pre-activations to codes: ``codes, penalty = s(pre)``.
Pre-activations have the concepts on dimension 1: rows ``(N, p)`` (pointwise SAEs, flat SAEs) or
function-valued codes ``(B, p, *grid)`` (SAE-FNO). ``penalty`` is a scalar tensor to add to the loss, or
``None``.

Two levels of sparsity (``docs/method.md`` section 2):

- ``group="point"``: the selection (TopK, BatchTopK) runs over the concepts at each grid point (the
  pointwise SAE's "k per point"); for rows this is the only meaning.
- ``group="concept"``: concepts are scored per sample by their norm ``||relu(z_k)||_{L2(Omega)}``
  (root-mean-square over the grid, so that scores do not depend on the resolution) and the top ones are
  kept whole: concept sparsity for function-valued codes.
- domain sparsity, for function-valued codes: ``domain_l1`` adds ``lambda_d * sum_k ||z_k||_1`` (mean over
  grid points and samples) to the loss; ``domain_frac`` keeps, inside each active concept, only the largest
  ``ceil(domain_frac * n_points)`` grid points; ``domain_peaks=r`` restricts that choice to peaks (peak
  picking, i.e. non-maximum suppression): a point is kept only if its code is the largest in its
  ``(2r+1)^d`` periodic neighbourhood, so two neighbours of one bump are never both picked (with
  ``domain_frac=None`` every peak is kept). ReLU and JumpReLU act per grid point and so are domain
  sparsity mechanisms by themselves. With ``domain_pool="sample"`` (TopK over concepts only) the
  ``k`` kept concepts of a sample share one budget instead: the largest ``ceil(domain_frac * n_points * k)``
  values over all of them and all grid points, so a broad concept can take more of the domain than a
  localised one at the same codes per point.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from saeno.errors import SaenoError
from saeno.sae.selection import (
    concept_scores,
    expand_like,
    keep_top_domain,
    keep_top_pooled,
    peak_mask,
    select_top_concepts,
    topk_codes,
)

GROUPS = ("point", "concept")
#: how domain_frac is applied: per concept, or one budget per sample shared by its kept concepts
DOMAIN_POOLS = ("concept", "sample")
#: TopK load-balancing rules (:class:`TopK`)
BALANCE_RULES = ("uniform", "revive")


class SparsityConfigError(SaenoError, ValueError):
    """A sparsity specification that cannot be built."""


class Sparsity(nn.Module):
    """Base class: ``forward(pre) -> (codes, penalty)``.

    Parameters
    ----------
    group : {"point", "concept"}
        Where selections run (only TopK and BatchTopK select).
    domain_l1 : float
        Weight ``lambda_d`` of the L1 domain penalty on function-valued codes (0: off).
    domain_frac : float or None
        Share of grid points kept inside each active concept (None: all).
    domain_peaks : int or None
        Peak-picking radius r: only local maxima over ``(2r+1)^d`` neighbourhoods are kept (None: off).
    domain_pool : {"concept", "sample"}
        ``"concept"``: every active concept keeps its own ``domain_frac`` of the points.
        ``"sample"``: the ``k`` concepts a TopK over concepts keeps share one budget of
        ``ceil(domain_frac * n_points * k)`` values per sample (same codes per point).
    """

    name: ClassVar[str] = ""

    def __init__(
        self,
        *,
        group: str = "point",
        domain_l1: float = 0.0,
        domain_frac: float | None = None,
        domain_peaks: int | None = None,
        domain_pool: str = "concept",
    ) -> None:
        super().__init__()
        if domain_pool not in DOMAIN_POOLS:
            raise SparsityConfigError(f"domain_pool={domain_pool!r} is unknown: use one of {DOMAIN_POOLS}")
        if domain_pool == "sample" and (
            group != "concept" or domain_frac is None or type(self).pooled_budget is Sparsity.pooled_budget
        ):
            raise SparsityConfigError(
                "domain_pool='sample' shares domain_frac among the concepts a TopK keeps per sample: "
                "use it with type='topk', group='concept' and a domain_frac"
            )
        self.domain_pool = domain_pool
        if group not in GROUPS:
            raise SparsityConfigError(f"sparsity group {group!r} is unknown: use one of {GROUPS}")
        if domain_l1 < 0:
            raise SparsityConfigError(f"domain_l1 must be >= 0, got {domain_l1}")
        if domain_frac is not None and not 0 < domain_frac <= 1:
            raise SparsityConfigError(f"domain_frac must be in (0, 1], got {domain_frac}")
        if domain_peaks is not None and int(domain_peaks) < 1:
            raise SparsityConfigError(f"domain_peaks must be >= 1 or None, got {domain_peaks}")
        self.domain_peaks = None if domain_peaks is None else int(domain_peaks)
        self.group = group
        self.domain_l1 = float(domain_l1)
        self.domain_frac = None if domain_frac is None else float(domain_frac)

    def check(self, n_concepts: int) -> None:
        """Raise if this mechanism cannot run with ``n_concepts`` concepts."""

    def pooled_budget(self, n_points: int) -> int:
        """Values kept per sample under ``domain_pool="sample"`` (mechanisms that select concepts)."""
        raise SparsityConfigError(f"domain_pool='sample' is not available for sparsity {self.name!r}")

    def activate(self, pre: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Map pre-activations to codes (before domain sparsity)."""
        raise NotImplementedError

    def penalty(self, pre: Tensor, z: Tensor) -> Tensor | None:
        """Mechanism-specific loss term (None when there is none)."""
        return None

    def forward(self, pre: Tensor) -> tuple[Tensor, Tensor | None]:
        z = self.activate(pre)
        if self.domain_peaks is not None:
            z = z * peak_mask(z.detach(), self.domain_peaks).to(z.dtype)
        if self.domain_frac is not None:
            if self.domain_pool == "sample" and z.dim() > 2:
                z = keep_top_pooled(z, self.pooled_budget(z[0, 0].numel()))
            else:
                z = keep_top_domain(z, self.domain_frac)
        pen = self.penalty(pre, z)
        if self.domain_l1 > 0:
            dom = self.domain_l1 * z.abs().sum(1).mean()
            pen = dom if pen is None else pen + dom
        return z, pen

    def extra_config(self) -> dict[str, Any]:
        """Mechanism-specific constructor arguments."""
        return {}

    def config(self) -> dict[str, Any]:
        """JSON-able description that :func:`make_sparsity` turns back into this module."""
        return {
            "type": self.name,
            "group": self.group,
            "domain_l1": self.domain_l1,
            "domain_frac": self.domain_frac,
            "domain_peaks": self.domain_peaks,
            **({"domain_pool": self.domain_pool} if self.domain_pool != "concept" else {}),
            **self.extra_config(),
        }


class TopK(Sparsity):
    """TopK: exactly ``k`` concepts kept (per point, or per sample with ``group="concept"``).

    Parameters
    ----------
    k : int
        Concepts kept per point or per sample.
    balance : float
        Rate of the loss-free load balancing (0: off). Each concept carries an offset
        (buffer ``balance_offset``, saved with the weights) that is added to its selection score
        only, so it changes which concepts win the TopK, never the kept values or the gradients.
        After every training forward pass the offset of a concept chosen less often than the
        average ``k / p`` rises by ``balance`` times the mean kept score and that of one chosen
        more often falls by as much (the sign rule of DeepSeek-V3's auxiliary-loss-free balancing).
        Concepts whose scores stay small but positive then win again; a concept with no positive
        score is never chosen on account of its offset.
    balance_rule : {"uniform", "revive"}
        ``"uniform"``: the sign rule above, towards equal loads. ``"revive"``: only concepts not
        chosen in the batch are raised (by the same step); a raised offset falls back towards 0 by
        that step whenever its concept is chosen, and offsets never go below 0, so frequently
        used concepts are never pushed down.
    """

    name = "topk"

    def __init__(self, k: int, balance: float = 0.0, balance_rule: str = "uniform", **kw: Any) -> None:
        super().__init__(**kw)
        if int(k) < 1:
            raise SparsityConfigError(f"TopK needs k >= 1, got {k}")
        if not balance >= 0:
            raise SparsityConfigError(f"balance must be >= 0, got {balance}")
        if balance_rule not in BALANCE_RULES:
            raise SparsityConfigError(f"balance_rule={balance_rule!r} is unknown: use one of {BALANCE_RULES}")
        self.k = int(k)
        self.balance = float(balance)
        self.balance_rule = balance_rule
        if self.balance > 0:
            self.register_buffer("balance_offset", torch.zeros(0))

    def pooled_budget(self, n_points: int) -> int:
        assert self.domain_frac is not None
        return max(1, math.ceil(self.domain_frac * n_points * self.k))

    def check(self, n_concepts: int) -> None:
        if self.k > n_concepts:
            raise SparsityConfigError(
                f"k={self.k} is larger than the number of concepts ({n_concepts}): lower k"
            )
        if self.balance > 0 and self.balance_offset.numel() != n_concepts:
            self.balance_offset = torch.zeros(n_concepts, device=self.balance_offset.device)

    def select_concepts(self, pre: Tensor) -> Tensor:
        """The ``(B, k)`` concepts kept per sample of ``pre`` ``(B, p, *grid)`` (``group="concept"``).

        The selection :meth:`activate` makes, balancing offsets included (and updated while
        training), for callers that compute the kept codes themselves (the SAE-FNO's fast path).
        """
        offset = self._offset(pre)
        raw = concept_scores(pre.detach().relu())
        idx = select_top_concepts(raw, self.k, offset)
        if offset is not None and self.training:
            self._update_balance(pre, idx, raw)
        return idx

    def _offset(self, pre: Tensor) -> Tensor | None:
        """The balancing offsets in ``pre``'s dtype (None without balancing)."""
        if self.balance <= 0:
            return None
        if self.balance_offset.numel() != pre.shape[1]:
            self.check(pre.shape[1])
        return self.balance_offset.to(pre.dtype)

    def activate(self, pre: Tensor) -> Tensor:
        offset = self._offset(pre)
        codes, idx = topk_codes(pre, self.k, self.group, offset)
        if offset is not None and self.training:
            self._update_balance(pre, idx)
        return codes

    @torch.no_grad()
    def _update_balance(self, pre: Tensor, idx: Tensor, scores: Tensor | None = None) -> None:
        """Update the offsets after a selection ``idx`` on ``pre`` (``scores``: its concept
        scores when the caller has them already, ``group="concept"`` only)."""
        p = pre.shape[1]
        counts = torch.zeros(p, dtype=torch.float64, device=pre.device)
        counts.scatter_add_(
            0, idx.reshape(-1), torch.ones(idx.numel(), dtype=counts.dtype, device=pre.device)
        )
        load = counts / counts.sum().clamp_min(1.0)  # share of the selections each concept got
        if self.group == "concept" and pre.dim() > 2:
            kept = (concept_scores(pre.detach().relu()) if scores is None else scores).gather(1, idx)
        else:
            kept = pre.detach().gather(1, idx).relu()
        scale = (self.balance * kept.mean().clamp_min(1e-12)).to(self.balance_offset.dtype)
        if self.balance_rule == "revive":  # raise the unchosen, let raised offsets decay once chosen
            unchosen = (counts == 0).to(self.balance_offset.dtype)
            decay = torch.minimum(self.balance_offset, scale) * (1 - unchosen)
            self.balance_offset.add_(scale * unchosen - decay)
            return
        self.balance_offset.add_(scale * torch.sign(1.0 / p - load).to(scale.dtype))
        self.balance_offset.sub_(self.balance_offset.mean())  # only differences matter

    def extra_config(self) -> dict[str, Any]:
        bal = {"balance": self.balance, "balance_rule": self.balance_rule} if self.balance > 0 else {}
        return {"k": self.k, **bal}


class BatchTopK(TopK):
    """BatchTopK: ``k * rows`` activations kept over the whole batch while training.

    A row is a grid point (``group="point"``) or a sample (``group="concept"``, scored by L2 norm). The
    threshold for inference is an exponential moving average (decay 0.99) of the smallest kept value,
    stored in the buffer ``threshold``; in ``eval()`` mode the module is a JumpReLU with that threshold.
    """

    name = "batchtopk"

    def __init__(self, k: int, **kw: Any) -> None:
        if kw.get("balance"):
            raise SparsityConfigError("balance is an option of TopK, not of BatchTopK")
        super().__init__(k, **kw)
        self.register_buffer("threshold", torch.zeros(()))
        self.register_buffer("n_updates", torch.zeros((), dtype=torch.long))

    def _update_threshold(self, kept_min: Tensor) -> None:
        kept_min = kept_min.detach().to(self.threshold.dtype)
        first = self.n_updates == 0
        self.threshold.copy_(torch.where(first, kept_min, 0.99 * self.threshold + 0.01 * kept_min))
        self.n_updates.add_(1)

    def activate(self, pre: Tensor) -> Tensor:
        r = pre.relu()
        by_concept = self.group == "concept" and pre.dim() > 2
        scores = concept_scores(r) if by_concept else r
        if not self.training:
            keep = scores > self.threshold
            return r * expand_like(keep.to(r.dtype), r) if by_concept else r * keep
        if by_concept:
            rows = scores.shape[0]
            flat = scores.reshape(-1)
        else:
            rows = r.numel() // r.shape[1]
            flat = r.reshape(-1)  # contiguous view for rows; copies for point-wise fields
        n = min(self.k * rows, flat.numel())
        vals, idx = flat.topk(n, sorted=False)
        mask = torch.zeros_like(flat).scatter_(0, idx, 1.0)
        pos = vals > 0
        kept_min = torch.where(pos, vals, torch.full_like(vals, float("inf"))).min()
        self._update_threshold(torch.where(pos.any(), kept_min, self.threshold))
        if by_concept:
            return r * expand_like(mask.view_as(scores), r)
        return r * mask.view_as(r)


class ReLUL1(Sparsity):
    """ReLU codes with an L1 penalty ``l1 * sum_k |z_k|`` (mean over rows and grid points)."""

    name = "relu"

    def __init__(self, l1: float = 1e-3, **kw: Any) -> None:
        super().__init__(**kw)
        if l1 < 0:
            raise SparsityConfigError(f"l1 must be >= 0, got {l1}")
        self.l1 = float(l1)

    def activate(self, pre: Tensor) -> Tensor:
        return pre.relu()

    def penalty(self, pre: Tensor, z: Tensor) -> Tensor | None:
        return self.l1 * z.sum(1).mean() if self.l1 > 0 else None

    def extra_config(self) -> dict[str, Any]:
        return {"l1": self.l1}


class _JumpReLUFn(torch.autograd.Function):
    """``x * H(x - theta)`` with the rectangle-kernel pseudo-gradient for ``theta``.

    Rajamanoharan et al. (2024), "Jumping ahead": d/dtheta = -(theta / eps) K((x - theta) / eps),
    K the unit rectangle; the gradient for x is passed where the unit is active.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, theta: Tensor, eps: float) -> Tensor:
        ctx.save_for_backward(x, theta)
        ctx.eps = eps
        return x * (x > theta)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, Tensor, None]:
        x, theta = ctx.saved_tensors
        eps = ctx.eps
        gx = g * (x > theta)
        rect = ((x - theta).abs() < eps / 2).to(g.dtype)
        gtheta = (-(theta / eps) * rect * g).sum_to_size(theta.shape)
        return gx, gtheta, None


class _StepFn(torch.autograd.Function):
    """``H(x - theta)`` with pseudo-gradient ``-(1/eps) K((x - theta)/eps)`` for ``theta`` only."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, theta: Tensor, eps: float) -> Tensor:
        ctx.save_for_backward(x, theta)
        ctx.eps = eps
        return (x > theta).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, Tensor, None]:
        x, theta = ctx.saved_tensors
        eps = ctx.eps
        rect = ((x - theta).abs() < eps / 2).to(g.dtype)
        gtheta = (-(1.0 / eps) * rect * g).sum_to_size(theta.shape)
        return torch.zeros_like(x), gtheta, None


class JumpReLU(Sparsity):
    """JumpReLU codes ``z = x H(x - theta_k)`` with a learned threshold per concept and an L0 penalty.

    Parameters
    ----------
    n_concepts : int
        Number of thresholds.
    l0 : float
        Weight of the L0 penalty ``l0 * sum_k H(x - theta_k)`` (mean over rows and grid points).
    threshold : float
        Initial threshold (in normalised units).
    bandwidth : float
        Width ``eps`` of the rectangle kernel of the pseudo-gradients.
    """

    name = "jumprelu"

    def __init__(
        self, n_concepts: int, l0: float = 1e-3, threshold: float = 1e-3, bandwidth: float = 1e-3, **kw: Any
    ) -> None:
        super().__init__(**kw)
        if threshold <= 0 or bandwidth <= 0 or l0 < 0:
            raise SparsityConfigError("JumpReLU needs threshold > 0, bandwidth > 0 and l0 >= 0")
        self.l0 = float(l0)
        self.bandwidth = float(bandwidth)
        self.n_concepts = int(n_concepts)
        self.log_threshold = nn.Parameter(torch.full((n_concepts,), math.log(threshold)))

    def check(self, n_concepts: int) -> None:
        if n_concepts != self.n_concepts:
            raise SparsityConfigError(f"JumpReLU built for {self.n_concepts} concepts used with {n_concepts}")

    def _theta(self, pre: Tensor) -> Tensor:
        return self.log_threshold.exp().view(1, -1, *([1] * (pre.dim() - 2)))

    def activate(self, pre: Tensor) -> Tensor:
        return _JumpReLUFn.apply(pre, self._theta(pre), self.bandwidth)

    def penalty(self, pre: Tensor, z: Tensor) -> Tensor | None:
        if self.l0 <= 0:
            return None
        return self.l0 * _StepFn.apply(pre, self._theta(pre), self.bandwidth).sum(1).mean()

    def extra_config(self) -> dict[str, Any]:
        return {"n_concepts": self.n_concepts, "l0": self.l0, "bandwidth": self.bandwidth}


MECHANISMS: dict[str, type[Sparsity]] = {cls.name: cls for cls in (TopK, BatchTopK, ReLUL1, JumpReLU)}


def make_sparsity(
    spec: str | dict[str, Any] | Sparsity | None, n_concepts: int, default_group: str = "point"
) -> Sparsity:
    """Build a sparsity module from a name, a config dict or an existing module.

    Parameters
    ----------
    spec : str, dict, Sparsity or None
        ``"topk"`` etc. (defaults: k=8), ``{"type": "topk", "k": 16, "group": "concept", ...}``, a module
        (returned as is), or None (TopK with k = min(8, n_concepts)).
    n_concepts : int
        The model's number of concepts (checked against k; JumpReLU's threshold count).
    default_group : str
        Group used when ``spec`` does not name one.

    Returns
    -------
    Sparsity
    """
    if isinstance(spec, Sparsity):
        spec.check(n_concepts)
        return spec
    if spec is None:
        spec = {"type": "topk", "k": min(8, n_concepts)}
    if isinstance(spec, str):
        spec = {"type": spec}
    spec = dict(spec)
    kind = str(spec.pop("type", "topk")).lower().replace("-", "").replace("_", "")
    if kind not in MECHANISMS:
        raise SparsityConfigError(f"unknown sparsity {kind!r}: use one of {sorted(MECHANISMS)}")
    spec.setdefault("group", default_group)
    cls = MECHANISMS[kind]
    if cls is JumpReLU:
        spec["n_concepts"] = n_concepts
    elif cls in (TopK, BatchTopK):
        spec.setdefault("k", min(8, n_concepts))
    try:
        module = cls(**spec)
    except TypeError as exc:
        raise SparsityConfigError(f"bad options for sparsity {kind!r}: {exc}") from None
    module.check(n_concepts)
    return module
