"""Probe fields against hand computations: gradients of analytic fields, the interface distance of a
disc, the band energy of a pure sine, Okubo-Weiss of a Taylor-Green vortex; registry and errors."""

import numpy as np
import pytest

import saeno.explain as E
from saeno.explain import fields as FL
from saeno.explain.probes import (
    ProbeContext,
    ProbeError,
    compute_probe_fields,
    select_probes,
)

DARCY_CARD = {
    "pde": "darcy",
    "domain": [[0.0, 1.0], [0.0, 1.0]],
    "grid": "vertices (i/n, j/n)",
    "parameters": {"high": 12.0, "low": 3.0},
}
TORUS_CARD = {"pde": "navier_stokes", "domain": [[0.0, 1.0], [0.0, 1.0]], "grid": "periodic points"}


def _ctx(x=None, y=None, y_pred=None, card=DARCY_CARD, n=64):
    from saeno.explain.probes import card_geometry

    grid = (n, n) if len(card["domain"]) == 2 else (n,)
    domain, periodic = card_geometry(card, len(grid))
    return ProbeContext(
        row=0, grid=grid, domain=domain, periodic=periodic, card=card, _x=x, _y=y, _y_pred=y_pred
    )


def _run(name, ctx):
    return E.registry()[name].fn(ctx)


@pytest.mark.parametrize("n", [32, 64])
def test_gradient_of_an_analytic_field_on_a_box_and_on_the_torus(n):
    for card in (DARCY_CARD, TORUS_CARD):
        ctx = _ctx(card=card, n=n)
        X, Y = ctx.coords
        u = np.sin(2 * np.pi * X) * np.cos(4 * np.pi * Y)
        exact = np.sqrt(
            (2 * np.pi * np.cos(2 * np.pi * X) * np.cos(4 * np.pi * Y)) ** 2
            + (4 * np.pi * np.sin(2 * np.pi * X) * np.sin(4 * np.pi * Y)) ** 2
        )
        got = _run("target_grad", _ctx(y=u[None], card=card, n=n))
        # second-order differences: error ~ (2 pi k h)^2 / 6 of the amplitude
        h = 1.0 / n
        tol = (4 * np.pi * h) ** 2 / 6 * 4 * np.pi * 1.5 + 1e-9
        assert np.max(np.abs(got - exact)) < (tol if card is TORUS_CARD else 3 * tol)
        lap = _run("target_laplacian", _ctx(y=u[None], card=card, n=n))
        interior = (slice(2, -2), slice(2, -2))
        np.testing.assert_allclose(
            lap[interior], -(20 * np.pi**2) * u[interior], atol=0.06 * 20 * np.pi**2 * (32 / n) ** 2
        )


def test_gradient_converges_at_second_order():
    errs = []
    for n in (32, 64, 128):
        ctx = _ctx(n=n)
        X, Y = ctx.coords
        u = np.exp(X) * np.sin(3 * Y)
        exact = np.hypot(np.exp(X) * np.sin(3 * Y), 3 * np.exp(X) * np.cos(3 * Y))
        errs.append(np.max(np.abs(ctx.grad_mag(u) - exact)))
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(orders > 1.8), orders


def test_signed_interface_distance_of_a_disc():
    n, r, c = 64, 0.3, (0.5, 0.45)
    ctx = _ctx(n=n)
    X, Y = ctx.coords
    a = np.where(np.hypot(X - c[0], Y - c[1]) < r, 12.0, 3.0)
    got = _run("interface_distance", _ctx(x=a[None], n=n))
    exact = r - np.hypot(X - c[0], Y - c[1])
    assert np.max(np.abs(got - exact)) < 1.0 / n  # within one grid spacing
    assert np.all(got[a > 7.5] > 0) and np.all(got[a < 7.5] < 0)
    np.testing.assert_array_equal(_run("phase_high", _ctx(x=a[None], n=n)), (a > 7.5).astype(float))
    np.testing.assert_array_equal(_run("phase_low", _ctx(x=a[None], n=n)), (a < 7.5).astype(float))


def test_band_energy_of_a_pure_sine():
    card = {"pde": "burgers", "domain": [[0.0, 1.0]], "grid": "periodic points i/n"}
    for n in (64, 128):
        ctx = _ctx(card=card, n=n)
        (X,) = ctx.coords
        for k, band in ((3, "band_low"), (6, "band_mid"), (11, "band_high")):
            u = 2.0 * np.sin(2 * np.pi * k * X + 0.3)
            for other in ("band_low", "band_mid", "band_high"):
                got = _run(other, _ctx(y=u[None], card=card, n=n))
                want = u**2 if other == band else np.zeros_like(u)
                np.testing.assert_allclose(got, want, atol=1e-9)
            assert np.isclose(_run(band, _ctx(y=u[None], card=card, n=n)).mean(), 2.0)


def test_burgers_and_navier_stokes_probes_by_hand():
    card = {"pde": "burgers", "domain": [[0.0, 1.0]], "grid": "periodic points i/n"}
    n = 256
    (X,) = _ctx(card=card, n=n).coords
    u = np.sin(2 * np.pi * X)
    shock = _run("shock", _ctx(y=u[None], card=card, n=n))
    np.testing.assert_allclose(shock, np.maximum(-2 * np.pi * np.cos(2 * np.pi * X), 0), atol=2e-3)
    np.testing.assert_array_equal(_run("sign_u", _ctx(y=u[None], card=card, n=n)), np.sign(u))
    # Taylor-Green on the unit torus: w = 2 k sin(kx) sin(ky) / ... gives OW = -(... ) analytically:
    # psi = sin(kx) sin(ky), w = 2 k^2 psi, u = k sin(kx) cos(ky), v = -k cos(kx) sin(ky)
    n, k = 64, 2 * np.pi
    X, Y = _ctx(card=TORUS_CARD, n=n).coords
    psi = np.sin(k * X) * np.sin(k * Y)
    w = 2 * k**2 * psi
    s_n = 2 * k**2 * np.cos(k * X) * np.cos(k * Y)
    s_s = 0 * X
    ow = _run("okubo_weiss", _ctx(y=w[None], card=TORUS_CARD, n=n))
    np.testing.assert_allclose(ow, s_n**2 + s_s**2 - w**2, atol=1e-6 * k**4)
    np.testing.assert_allclose(_run("vorticity_magnitude", _ctx(y=w[None], card=TORUS_CARD, n=n)), np.abs(w))


def test_boundary_distance_and_coordinates():
    n = 16
    ctx = _ctx(n=n)
    d = _run("boundary_distance", ctx)
    i = np.arange(n) / n
    exact = np.minimum(np.minimum(i[:, None], 1 - i[:, None]), np.minimum(i[None, :], 1 - i[None, :]))
    np.testing.assert_allclose(d, exact)
    np.testing.assert_allclose(_run("coord_y", ctx), np.broadcast_to(i[None, :], (n, n)))


def test_missing_arrays_and_non_applicable_probes_are_skipped_with_reasons():
    probes = select_probes(["input", "target", "error", "boundary_distance", "coord_z"], "navier_stokes")
    x = np.random.default_rng(0).normal(size=(3, 1, 8, 8))
    fields, skipped = compute_probe_fields(probes, rows=[5, 6, 7], x=x, y=None, y_pred=None, card=TORUS_CARD)
    assert set(fields) == {"input"}
    assert "targets 'y'" in skipped["target"] and "'y_pred'" in skipped["error"]
    assert "periodic" in skipped["boundary_distance"] and "axis" in skipped["coord_z"]
    np.testing.assert_array_equal(fields["input"], x[:, 0].astype(np.float32))


def test_unknown_probe_lists_the_available_ones():
    with pytest.raises(ProbeError) as err:
        select_probes(["target", "vortex_cores"], "darcy")
    msg = str(err.value)
    assert "'vortex_cores'" in msg and "interface_distance" in msg and "flux" in msg
    assert "okubo_weiss" not in msg  # only the ones for this dataset


def test_user_probe_by_decorator_and_a_failing_probe_names_probe_and_row():
    @E.probe("test_half_plane", datasets=["darcy"], description="x < 0.5")
    def half(ctx):
        return (ctx.coords[0] < 0.5).astype(float)

    @E.probe("test_broken", datasets=["darcy"])
    def broken(ctx):
        if ctx.row == 11:
            raise RuntimeError("boom")
        return ctx.x[0]

    try:
        assert "test_half_plane" in E.available_probes("darcy")
        assert "test_half_plane" not in E.available_probes("burgers")
        with pytest.raises(ProbeError, match="already exists"):
            E.probe("test_half_plane")(half)
        x = np.ones((3, 1, 4, 4))
        fields, _ = compute_probe_fields(
            select_probes(["test_half_plane"], "darcy"),
            rows=[9, 10, 11],
            x=x,
            y=None,
            y_pred=None,
            card=DARCY_CARD,
        )
        assert fields["test_half_plane"][0, :2].all() and not fields["test_half_plane"][0, 2:].any()
        with pytest.raises(ProbeError, match=r"'test_broken' failed on store row 11: RuntimeError: boom"):
            compute_probe_fields(
                select_probes(["test_broken"], "darcy"),
                rows=[9, 10, 11],
                x=x,
                y=None,
                y_pred=None,
                card=DARCY_CARD,
            )
    finally:
        E.unregister("test_half_plane")
        E.unregister("test_broken")


def test_signed_distance_without_an_interface():
    m = np.ones((4, 4), dtype=bool)
    assert np.all(FL.signed_distance(m, [0.25, 0.25]) > 0)
    assert np.all(FL.signed_distance(~m, [0.25, 0.25]) < 0)
