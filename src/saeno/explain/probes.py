"""Probe fields: physical fields of the problem a concept's code map is compared with.

A probe is a function ``fn(ctx) -> (*grid) array`` of one sample, where ``ctx`` is a
:class:`ProbeContext` holding what an activation store has for that sample (the FNO's input ``x``,
the target ``y``, the prediction ``y_pred``, the grid coordinates) and the dataset card. Probes are
registered by name, for every dataset or for some (matched against the card's ``pde`` or ``name``)::

    import saeno.explain

    @saeno.explain.probe("wall_layer", datasets=["darcy"], description="u below 10% of its max")
    def wall_layer(ctx):
        u = ctx.y[0]
        return (u < 0.1 * u.max()).astype(float)

A probe that reads ``ctx.y`` or ``ctx.y_pred`` on a store without them is skipped, and the result
says which probes were skipped and why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from saeno.errors import SaenoError
from saeno.explain import fields as FL


class ExplainError(SaenoError):
    """An explanation that cannot be computed with the given SAE, store, probes or options."""


class ProbeError(ExplainError):
    """A probe name that is unknown, or a probe that failed on a sample."""


class MissingFieldError(ExplainError, LookupError):
    """A probe asked for an array (``y`` or ``y_pred``) that the store does not hold."""


class NotApplicable(Exception):
    """Raised by a probe that does not apply to this data (e.g. a boundary on a periodic domain).

    The probe is skipped with the exception's message as the reason.
    """


@dataclass(frozen=True)
class Probe:
    """A registered probe field."""

    name: str
    fn: Callable[[ProbeContext], np.ndarray]
    datasets: tuple[str, ...] | None  # None: every dataset
    description: str = ""
    builtin: bool = False

    def applies_to(self, dataset: str | None) -> bool:
        """Whether the probe is meant for ``dataset`` (a card's ``pde`` or ``name``)."""
        return self.datasets is None or (dataset is not None and dataset in self.datasets)


_REGISTRY: dict[str, Probe] = {}


def probe(
    name: str, datasets: Iterable[str] | None = None, description: str = "", *, replace: bool = False
) -> Callable[[Callable[[ProbeContext], np.ndarray]], Callable[[ProbeContext], np.ndarray]]:
    """Decorator registering ``fn(ctx) -> field`` as the probe ``name``.

    Parameters
    ----------
    name : str
        Probe name (letters, digits, ``_`` and ``.``); used in ``probes=`` and ``--probes``.
    datasets : iterable of str, optional
        Datasets (card ``pde`` or ``name``) the probe is for; default every dataset.
    description : str
        One line saying what the field is (shown in the report); default the function's docstring.
    replace : bool
        Allow replacing an existing probe of that name.
    """
    if not name or not all(ch.isalnum() or ch in "_." for ch in name):
        raise ProbeError(f"probe name {name!r} must be non-empty letters, digits, '_' or '.'")

    def register(fn: Callable[[ProbeContext], np.ndarray]) -> Callable[[ProbeContext], np.ndarray]:
        if name in _REGISTRY and not replace:
            raise ProbeError(
                f"a probe named {name!r} already exists: choose another name or pass replace=True"
            )
        text = description or (fn.__doc__ or "").strip().split("\n")[0]
        _REGISTRY[name] = Probe(
            name,
            fn,
            None if datasets is None else tuple(datasets),
            text,
            builtin=fn.__module__ == "saeno.explain.builtin",
        )
        return fn

    return register


def unregister(name: str) -> None:
    """Remove a registered probe (no error when absent)."""
    _REGISTRY.pop(name, None)


def registry() -> dict[str, Probe]:
    """Every registered probe by name (built-ins included)."""
    from saeno.explain import builtin  # noqa: F401  (registers the built-in probes)

    return dict(_REGISTRY)


def available_probes(dataset: str | None = None) -> list[str]:
    """Names of the probes for ``dataset`` (every probe when ``None``), in registration order."""
    return [n for n, p in registry().items() if dataset is None or p.applies_to(dataset)]


def select_probes(names: Sequence[str] | None, dataset: str | None) -> list[Probe]:
    """The probes to use: ``names`` (checked), or every probe for ``dataset``."""
    reg = registry()
    if names is None:
        return [p for p in reg.values() if p.applies_to(dataset)]
    unknown = [n for n in names if n not in reg]
    if unknown:
        raise ProbeError(
            f"unknown probe(s) {', '.join(map(repr, unknown))}; available"
            f"{' for ' + dataset if dataset else ''}: {', '.join(available_probes(dataset))}"
            " (register more with @saeno.explain.probe)"
        )
    out = [reg[n] for n in dict.fromkeys(names)]
    return out


# ---------------------------------------------------------------------------------------------
# the context of one sample


@dataclass
class ProbeContext:
    """What a probe sees of one sample.

    Attributes
    ----------
    row : int
        Store row of the sample.
    grid : tuple of int
        Grid shape.
    domain : list of (lo, hi)
        Physical box per axis (from the card; ``[0, 1]`` per axis when unknown).
    periodic : bool
        Whether the domain is periodic.
    card : dict
        The dataset card (may be empty).
    params : dict
        Per-sample parameters stored with the sample.
    """

    row: int
    grid: tuple[int, ...]
    domain: list[tuple[float, float]]
    periodic: bool
    card: Mapping[str, Any]
    params: Mapping[str, float] = field(default_factory=dict)
    _x: np.ndarray | None = None
    _y: np.ndarray | None = None
    _y_pred: np.ndarray | None = None

    @property
    def x(self) -> np.ndarray:
        """The FNO's input ``(C_in, *grid)``."""
        return self._need(self._x, "x")

    @property
    def y(self) -> np.ndarray:
        """The target (the PDE's solution) ``(C_out, *grid)``."""
        return self._need(self._y, "y")

    @property
    def y_pred(self) -> np.ndarray:
        """The FNO's prediction ``(C_out, *grid)``."""
        return self._need(self._y_pred, "y_pred")

    @staticmethod
    def _need(value: np.ndarray | None, name: str) -> np.ndarray:
        if value is None:
            raise MissingFieldError(name)
        return value

    @property
    def spacing(self) -> list[float]:
        """Grid spacing per axis, ``L_i / n_i``."""
        return [(hi - lo) / n for (lo, hi), n in zip(self.domain, self.grid)]

    @property
    def lengths(self) -> list[float]:
        """Domain length per axis."""
        return [hi - lo for lo, hi in self.domain]

    @property
    def coords(self) -> list[np.ndarray]:
        """Coordinates of the grid points, one ``(*grid)`` array per axis (``lo + i L / n``)."""
        axes = [lo + np.arange(n) * h for (lo, _), n, h in zip(self.domain, self.grid, self.spacing)]
        return list(np.meshgrid(*axes, indexing="ij"))

    # helpers probes use
    def grad_mag(self, f: np.ndarray) -> np.ndarray:
        """``|grad f|`` on this grid."""
        return FL.gradient_magnitude(f, self.spacing, self.periodic)

    def grad(self, f: np.ndarray) -> list[np.ndarray]:
        """Partial derivatives of ``f`` along every axis."""
        return FL.gradient(f, self.spacing, self.periodic)

    def laplacian(self, f: np.ndarray) -> np.ndarray:
        """Laplacian of ``f`` on this grid."""
        return FL.laplacian(f, self.spacing, self.periodic)


def card_geometry(card: Mapping[str, Any] | None, ndim: int) -> tuple[list[tuple[float, float]], bool]:
    """``(domain, periodic)`` from a dataset card; the unit box, non-periodic, when unknown."""
    card = card or {}
    domain = card.get("domain")
    if not domain or len(domain) != ndim:
        domain = [(0.0, 1.0)] * ndim
    domain = [(float(lo), float(hi)) for lo, hi in domain]
    if "periodic" in card:
        periodic = bool(card["periodic"])
    else:
        periodic = "periodic" in str(card.get("grid", "")).lower()
    return domain, periodic


def dataset_key(card: Mapping[str, Any] | None) -> str | None:
    """The name probes are matched against: the card's ``pde``, else its ``name``."""
    card = card or {}
    return card.get("pde") or card.get("name")


def compute_probe_fields(
    probes: Sequence[Probe],
    *,
    rows: Sequence[int],
    x: np.ndarray | None,
    y: np.ndarray | None,
    y_pred: np.ndarray | None,
    card: Mapping[str, Any] | None,
    params: Mapping[str, np.ndarray] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Evaluate ``probes`` on every sample.

    Parameters
    ----------
    probes
        The probes.
    rows
        Store rows of the samples (named in errors).
    x, y, y_pred
        ``(N, C, *grid)`` arrays, or None when the store lacks them.
    card
        Dataset card.
    params
        Per-sample parameters ``{name: (N,)}``.

    Returns
    -------
    (fields, skipped)
        ``{probe: (N, *grid) float32}`` and ``{probe: reason}`` for the probes that need an array
        the store does not have.

    Raises
    ------
    ProbeError
        A probe raised, or returned a field of the wrong shape or with non-finite values; the
        message names the probe and the store row.
    """
    ref = next(a for a in (x, y, y_pred) if a is not None)
    grid = tuple(int(g) for g in ref.shape[2:])
    domain, periodic = card_geometry(card, len(grid))
    params = params or {}
    out: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    n = ref.shape[0]
    for p in probes:
        values = np.empty((n, *grid), dtype=np.float32)
        for i in range(n):
            ctx = ProbeContext(
                row=int(rows[i]),
                grid=grid,
                domain=domain,
                periodic=periodic,
                card=card or {},
                params={k: float(v[i]) for k, v in params.items()},
                _x=None if x is None else np.asarray(x[i], dtype=np.float64),
                _y=None if y is None else np.asarray(y[i], dtype=np.float64),
                _y_pred=None if y_pred is None else np.asarray(y_pred[i], dtype=np.float64),
            )
            try:
                f = p.fn(ctx)
            except MissingFieldError as exc:
                what = {"y": "targets 'y'", "y_pred": "predictions 'y_pred'", "x": "inputs 'x'"}[str(exc)]
                skipped[p.name] = f"the store has no {what}"
                break
            except NotApplicable as exc:
                skipped[p.name] = str(exc) or "does not apply to this data"
                break
            except Exception as exc:  # a user's probe: report which probe and which sample
                raise ProbeError(
                    f"probe {p.name!r} failed on store row {ctx.row}: {type(exc).__name__}: {exc}"
                ) from exc
            f = np.asarray(f, dtype=np.float64)
            if f.shape != grid:
                raise ProbeError(
                    f"probe {p.name!r} returned shape {f.shape} on store row {ctx.row}; "
                    f"a probe must return one value per grid point, shape {grid}"
                )
            if not np.all(np.isfinite(f)):
                raise ProbeError(f"probe {p.name!r} returned non-finite values on store row {ctx.row}")
            values[i] = f
        else:
            out[p.name] = values
    return out, skipped


__all__ = [
    "ExplainError",
    "MissingFieldError",
    "NotApplicable",
    "Probe",
    "ProbeContext",
    "ProbeError",
    "available_probes",
    "card_geometry",
    "compute_probe_fields",
    "dataset_key",
    "probe",
    "registry",
    "select_probes",
    "unregister",
]
