"""The built-in probe fields (registered on import by :func:`saeno.explain.probes.registry`).

For every dataset (first channel of ``x`` and ``y``; add probes for other channels with
``@saeno.explain.probe``): the input and its gradient magnitude; the target solution, its gradient
magnitude and Laplacian; the prediction and its error ``|y_pred - y|`` (RMS over channels); the
coordinates; the distance to the domain boundary (non-periodic domains only); the local energy of the
solution in three wavenumber bands (``1 <= |k| < 4``, ``4 <= |k| < 8``, ``|k| >= 8``, integer cycles
per domain length).

Per PDE: darcy: each coefficient phase, the signed distance to the phase interface (positive in
the high phase), the flux magnitude ``|a grad u|``; burgers: the shock indicator ``max(-du/dx, 0)``
and the sign of ``u``; navier_stokes: the vorticity's sign and magnitude and the Okubo-Weiss
parameter (strain minus rotation).
"""

from __future__ import annotations

import numpy as np

from saeno.explain import fields as FL
from saeno.explain.probes import NotApplicable, ProbeContext, probe

#: wavenumber bands of the band-energy probes, ``[lo, hi)`` in integer cycles per domain length
BANDS = {"low": (1.0, 4.0), "mid": (4.0, 8.0), "high": (8.0, float("inf"))}

AXES = ("x", "y", "z")


def _rms(a: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(a * a, axis=0))


# -- every dataset -------------------------------------------------------------------------------


@probe("input", description="the FNO's input (first channel)")
def _input(ctx: ProbeContext) -> np.ndarray:
    return ctx.x[0]


@probe("input_grad", description="gradient magnitude of the input |grad x|")
def _input_grad(ctx: ProbeContext) -> np.ndarray:
    return ctx.grad_mag(ctx.x[0])


@probe("target", description="the target solution y (first channel)")
def _target(ctx: ProbeContext) -> np.ndarray:
    return ctx.y[0]


@probe("target_grad", description="gradient magnitude of the solution |grad y|")
def _target_grad(ctx: ProbeContext) -> np.ndarray:
    return ctx.grad_mag(ctx.y[0])


@probe("target_laplacian", description="Laplacian of the solution")
def _target_laplacian(ctx: ProbeContext) -> np.ndarray:
    return ctx.laplacian(ctx.y[0])


@probe("prediction", description="the FNO's prediction (first channel)")
def _prediction(ctx: ProbeContext) -> np.ndarray:
    return ctx.y_pred[0]


@probe("error", description="prediction error |y_pred - y| (RMS over channels)")
def _error(ctx: ProbeContext) -> np.ndarray:
    return _rms(ctx.y_pred - ctx.y)


def _coordinate(axis: int):
    def fn(ctx: ProbeContext) -> np.ndarray:
        if axis >= len(ctx.grid):
            raise NotApplicable(f"the grid has {len(ctx.grid)} axis(es)")
        return ctx.coords[axis]

    return fn


for _axis, _name in enumerate(AXES):
    # a coordinate beyond the grid's dimension is skipped (NotApplicable)
    probe(f"coord_{_name}", description=f"coordinate {_name} of the grid point")(_coordinate(_axis))


@probe("boundary_distance", description="distance to the domain boundary (non-periodic domains)")
def _boundary_distance(ctx: ProbeContext) -> np.ndarray:
    if ctx.periodic:
        raise NotApplicable("the domain is periodic: it has no boundary")
    return FL.boundary_distance(ctx.coords, ctx.domain)


def _band(lo: float, hi: float):
    def fn(ctx: ProbeContext) -> np.ndarray:
        return FL.band_energy(ctx.y[0], lo, hi)

    return fn


for _band_name, (_lo, _hi) in BANDS.items():
    _hi_txt = "" if np.isinf(_hi) else f" < {_hi:g}"
    probe(
        f"band_{_band_name}", description=f"local energy of the solution's modes with {_lo:g} <= |k|{_hi_txt}"
    )(_band(_lo, _hi))


# -- darcy ---------------------------------------------------------------------------------------


def _phase_threshold(ctx: ProbeContext) -> float:
    par = ctx.card.get("parameters") or {}
    if "high" in par and "low" in par:
        return 0.5 * (float(par["high"]) + float(par["low"]))
    a = ctx.x[0]
    return 0.5 * (float(a.max()) + float(a.min()))


@probe("phase_high", datasets=("darcy",), description="indicator of the high-permeability phase")
def _phase_high(ctx: ProbeContext) -> np.ndarray:
    return (ctx.x[0] > _phase_threshold(ctx)).astype(np.float64)


@probe("phase_low", datasets=("darcy",), description="indicator of the low-permeability phase")
def _phase_low(ctx: ProbeContext) -> np.ndarray:
    return (ctx.x[0] <= _phase_threshold(ctx)).astype(np.float64)


@probe(
    "interface_distance",
    datasets=("darcy",),
    description="signed distance to the phase interface (positive in the high phase)",
)
def _interface_distance(ctx: ProbeContext) -> np.ndarray:
    return FL.signed_distance(ctx.x[0] > _phase_threshold(ctx), ctx.spacing)


@probe("flux", datasets=("darcy",), description="flux magnitude |a grad u|")
def _flux(ctx: ProbeContext) -> np.ndarray:
    return np.abs(ctx.x[0]) * ctx.grad_mag(ctx.y[0])


# -- burgers -------------------------------------------------------------------------------------


@probe(
    "shock",
    datasets=("burgers", "burgers_labelled"),
    description="shock indicator max(-du/dx, 0) of the solution",
)
def _shock(ctx: ProbeContext) -> np.ndarray:
    return np.maximum(-ctx.grad(ctx.y[0])[0], 0.0)


@probe("sign_u", datasets=("burgers", "burgers_labelled"), description="sign of the solution u")
def _sign_u(ctx: ProbeContext) -> np.ndarray:
    return np.sign(ctx.y[0])


# -- navier_stokes -------------------------------------------------------------------------------


@probe("vorticity_sign", datasets=("navier_stokes",), description="sign of the vorticity")
def _vorticity_sign(ctx: ProbeContext) -> np.ndarray:
    return np.sign(ctx.y[0])


@probe("vorticity_magnitude", datasets=("navier_stokes",), description="|vorticity|")
def _vorticity_magnitude(ctx: ProbeContext) -> np.ndarray:
    return np.abs(ctx.y[0])


@probe(
    "okubo_weiss",
    datasets=("navier_stokes",),
    description="Okubo-Weiss parameter s_n^2 + s_s^2 - w^2 (> 0 strain, < 0 rotation)",
)
def _okubo_weiss(ctx: ProbeContext) -> np.ndarray:
    return FL.okubo_weiss(ctx.y[0], ctx.lengths)
