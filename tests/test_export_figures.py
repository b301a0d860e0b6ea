"""Figures from hand-made arrays: files are real PNGs of the expected size; spectra put energy
at the right frequencies."""

import numpy as np
import pytest
from PIL import Image

from saeno.export import figures as F


def _png_size(path):
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


@pytest.mark.parametrize("grid", [(16,), (8, 8), (6, 6, 4)])
def test_every_figure_writes_a_png(tmp_path, grid):
    rng = np.random.default_rng(0)
    atom = rng.normal(size=(3, *grid))
    atom_fine = rng.normal(size=(3, *(2 * g for g in grid)))
    n = 3
    paths = [
        F.plot_atom({"a": atom, "b": atom_fine}, tmp_path / "atom.png", title="c <1>"),
        F.plot_spectrum(F.amplitude_spectrum(atom_fine), tmp_path / "spec.png", title="s"),
        F.plot_code_maps(
            np.abs(rng.normal(size=(n, *grid))),
            tmp_path / "codes.png",
            rows=[4, 1, 7],
            activations=[3.0, 2.0, 1.0],
            x=rng.normal(size=(n, 1, *grid)),
            y_pred=rng.normal(size=(n, 1, *grid)),
            y=rng.normal(size=(n, 1, *grid)),
            title="t",
        ),
        F.plot_density(
            np.array([0, 2, 5, 1]),
            np.linspace(0, 1, 5),
            tmp_path / "dens.png",
            sample_density=0.4,
            point_density=0.1,
            quantiles=[0.3, 0.6],
        ),
        F.plot_density_overview(np.array([0.0, 0.01, 0.5, 1.0]), tmp_path / "overview.png"),
        F.plot_effect(
            rng.normal(size=(2, 1, *grid)),
            rng.normal(size=(2, 1, *grid)),
            tmp_path / "effect.png",
            rows=[0, 1],
            err_clean=[0.1, 0.2],
            err_ablated=[0.3, 0.4],
        ),
    ]
    for p in paths:
        w, h = _png_size(p)
        assert w > 50 and h > 50


def test_mosaic_size_follows_panels_and_dpi(tmp_path):
    # 2D panels go into one image: more columns make it wider, more rows taller, and doubling the
    # dpi doubles both sides
    codes = np.ones((2, 4, 4))
    fields = dict(x=np.ones((2, 1, 4, 4)), y_pred=np.ones((2, 1, 4, 4)), y=np.ones((2, 1, 4, 4)))

    def size(name, n_rows, dpi, **kw):
        return _png_size(
            F.plot_code_maps(
                codes[:n_rows],
                tmp_path / name,
                rows=list(range(n_rows)),
                activations=[1] * n_rows,
                dpi=dpi,
                **kw,
            )
        )

    one, two = size("a.png", 1, 72), size("b.png", 2, 72)
    assert one[0] == two[0] and two[1] > one[1]
    wide = size("c.png", 2, 72, **fields)
    assert wide[0] > two[0] and wide[1] == two[1]
    hi = size("d.png", 2, 144, **fields)
    assert abs(hi[0] - 2 * wide[0]) <= 2 and abs(hi[1] - 2 * wide[1]) <= 2


def test_default_dpi_gives_readable_text():
    # labels at least 12 px tall on screen (72 dpi figures had ~5 px labels)
    assert F.FONT_LABEL * F.DEFAULT_DPI / 72 >= 12
    assert F.FONT_TICK * F.DEFAULT_DPI / 72 >= 11


def test_mosaic_pixels_show_the_field_and_its_colour_bar(tmp_path):
    # a code map that is zero except on its right half: right half of the panel is bright
    code = np.zeros((1, 8, 8))
    code[0, 4:, :] = 1.0  # first axis is x (drawn horizontally)
    p = F.plot_code_maps(code, tmp_path / "c.png", rows=[0], activations=[1.0], dpi=72)
    with Image.open(p) as img:
        rgb = np.asarray(img.convert("L"), dtype=float)
    top, left = F.GAP_PT // 2 + F.TITLE_PT, F.GAP_PT
    panel = rgb[top : top + F.PANEL_PT, left : left + F.PANEL_PT]
    assert panel[:, 80:].mean() > panel[:, :40].mean() + 100
    # the colour bar beside it runs from dark (bottom, 0) to bright (top, 1)
    bx = left + F.PANEL_PT + F.CBAR_GAP_PT + F.CBAR_PT // 2
    bar = rgb[top + 3 : top + F.PANEL_PT - 3, bx]
    assert bar[:10].mean() > bar[-10:].mean() + 100


def test_constant_atom_is_drawn_as_channel_bars(tmp_path):
    vec = np.array([1.0, -2.0, 0.5])
    atom = np.broadcast_to(vec[:, None, None], (3, 8, 8))
    assert F.is_spatially_constant(atom)
    assert not F.is_spatially_constant(atom + np.eye(8)[None])
    p = F.plot_atom({"8x8": atom}, tmp_path / "bars.png", dpi=50)
    w, h = _png_size(p)
    assert h == 140  # one bar chart of 2.8 inches, not one row of image panels


def test_amplitude_spectrum_peaks_at_the_mode_and_is_resolution_free():
    for n in (16, 32):
        x = np.arange(n) / n
        atom = np.stack([np.cos(2 * np.pi * 3 * x)[:, None] * np.ones((1, n))])  # mode (3, 0)
        spec = F.amplitude_spectrum(atom)
        centre = n // 2
        peaks = sorted(zip(*np.nonzero(spec > 0.1)))
        assert peaks == [(centre - 3, centre), (centre + 3, centre)]
        assert spec[centre + 3, centre] == pytest.approx(0.5)  # cos = (e^{+} + e^{-}) / 2
        radial = F.radial_spectrum(spec)
        assert int(np.argmax(radial)) == 3
        assert radial.size == n // 2 + 1


def test_canvas_text_is_drawn_where_matplotlib_aligns_it(tmp_path):
    # save_canvas draws each text with PIL: ink centred on x for ha="center", starting at y for
    # va="top", ending at y for va="bottom", literal "$" (no mathtext), RGB of the canvas's size
    from saeno.export.panels import save_canvas

    canvas = np.full((200, 300, 4), 255, dtype=np.uint8)
    texts = [
        (108.0, 20.0, "centred", "center", "top", 11),  # points: at dpi 144, pixels are twice these
        (10.0, 90.0, "$\\frac{1}{$ low", "left", "bottom", 9),
    ]
    p = save_canvas(canvas, texts, tmp_path / "t.png", dpi=144)
    with Image.open(p) as img:
        assert img.size == (300, 200) and img.mode == "RGB"
        assert round(img.info["dpi"][0]) == 144
        ink = np.asarray(img.convert("L")) < 128
    top_rows = np.nonzero(ink[:100].any(axis=1))[0]
    cols = np.nonzero(ink[:100].any(axis=0))[0]
    assert abs((cols.min() + cols.max()) / 2 - 216) <= 3  # centred on x = 108 pt = 216 px
    assert 40 <= top_rows.min() <= 46  # the box's top at y = 20 pt = 40 px (the ink a little below)
    low = np.nonzero(ink[100:].any(axis=1))[0] + 100
    assert 170 <= low.max() <= 181  # the box's bottom at y = 90 pt = 180 px
    left_cols = np.nonzero(ink[100:].any(axis=0))[0]
    assert 20 <= left_cols.min() <= 24  # starts at x = 10 pt = 20 px


def test_dollar_signs_in_axes_figures_stay_literal(tmp_path):
    # titles and labels holding "$" (user strings) are drawn as plain text, not parsed as mathtext
    bad = "$\\frac{1}{$"
    p = F.plot_channel_vector(np.array([1.0, -1.0]), tmp_path / "v.png", title=bad, ylabel=bad)
    assert _png_size(p)[0] > 50
    p = F.plot_spectrum(np.ones((8, 8)), tmp_path / "s.png", title=bad)
    assert _png_size(p)[0] > 50
