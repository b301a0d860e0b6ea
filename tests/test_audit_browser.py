"""Open the audit page in headless Chromium like the report: no console errors, every image loads,
the score table sorts. Skipped where Debian's chromium is not installed."""

import json

import pytest

from test_report_browser import CHROMIUM, open_in_chromium

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    import saeno
    from saeno.export.audit_page import write_audit_page
    from test_audit import capture, culprit_model, identity_sae, sparse_inputs, target

    root = tmp_path_factory.mktemp("audit_browser")
    model = culprit_model()
    x_tr, x_te, x_sh = sparse_inputs(60, 0), sparse_inputs(30, 1), sparse_inputs(30, 2, scale=10.0)
    train = capture(model, x_tr, target(x_tr, 0), root / "train.zarr")
    test = capture(model, x_te, target(x_te, 1), root / "test.zarr")
    shift = capture(model, x_sh, target(x_sh, 2), root / "shift<&>.zarr")  # a name that needs escaping
    res = saeno.audit(identity_sae(), train, [shift], model=model, id_store=test, n_boot=50, progress=False)
    res.save(root / "out")
    return write_audit_page(res, root / "out"), res


def test_audit_page_opens_without_errors_and_all_images_load(page, tmp_path):
    path, _res = page
    html = path.read_text()
    assert "shift&lt;&amp;&gt;.zarr" in html and "shift<&>.zarr" not in html
    result, console = open_in_chromium(path, tmp_path)
    assert console == [] and result["log"] == [] and result["broken"] == []
    # ROC, 2 error maps, 2 attribution figures
    assert result["n_images"] == 5


def test_audit_score_table_sorts(page, tmp_path):
    path, res = page
    probe = path.with_name("sort_probe.html")
    script = """<script>window.addEventListener('load', function () {
      var t = document.getElementById('scores');
      var col = Array.prototype.findIndex.call(t.tHead.rows[0].cells,
                function (c) { return c.textContent === 'AUROC mahalanobis'; });
      t.tHead.rows[0].cells[col].click();
      var pre = document.createElement('pre'); pre.id = 'saeno-check';
      pre.textContent = JSON.stringify({n_images: 0, log: [], broken: [],
        value: parseFloat(t.tBodies[0].rows[0].cells[col].getAttribute('data-value'))});
      document.body.appendChild(pre);
    });</script>"""
    probe.write_text(path.read_text().replace("</body>", script + "</body>"))
    import re
    import subprocess

    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'prof'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r'<pre id="saeno-check">(.*?)</pre>', proc.stdout, re.DOTALL)
    assert match, proc.stderr[-1000:]
    got = json.loads(match.group(1).replace("&quot;", '"'))
    assert got["value"] == pytest.approx(res.shifts[0].detection["mahalanobis"]["auroc"])
