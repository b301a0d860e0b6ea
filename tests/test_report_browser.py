"""Open the report of a real export in headless Chromium: no console errors, every image loads,
the concept table sorts. Skipped (with a message) where Debian's chromium is not installed."""

import json
import re
import shutil
import subprocess

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium): the report was not opened"
)

# Injected first in <head>: records errors, console.error/warn, CSP violations and failed resource
# loads; after the load event checks every image's naturalWidth and, on the index, clicks the
# "sample density" header twice and reads the order back. The result goes into <pre id=...>.
CHECKER = """<script>
(function () {
  var log = [];
  window.__saenoLog = log;
  window.addEventListener('error', function (e) {
    var t = e.target;
    log.push(t && t !== window && t.tagName ? 'load failed: ' + t.tagName + ' ' + (t.src || t.href)
             : 'error: ' + e.message);
  }, true);
  document.addEventListener('securitypolicyviolation', function (e) {
    log.push('csp: ' + e.blockedURI);
  });
  ['error', 'warn'].forEach(function (level) {
    var orig = console[level];
    console[level] = function () { log.push(level + ': ' + Array.prototype.join.call(arguments, ' ')); orig.apply(console, arguments); };
  });
  window.addEventListener('load', function () {
    var imgs = Array.prototype.slice.call(document.images);
    var result = {n_images: imgs.length, log: log,
                  broken: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                              .map(function (i) { return i.getAttribute('src'); })};
    var table = document.getElementById('concepts');
    if (table) {
      var col = Array.prototype.findIndex.call(table.tHead.rows[0].cells,
                                               function (c) { return c.textContent === 'sample density'; });
      var read = function () {
        return Array.prototype.map.call(table.tBodies[0].rows, function (r) {
          return parseFloat(r.cells[col].getAttribute('data-value'));
        });
      };
      table.tHead.rows[0].cells[col].click();
      result.ascending = read();
      table.tHead.rows[0].cells[col].click();
      result.descending = read();
    }
    var pre = document.createElement('pre');
    pre.id = 'saeno-check';
    pre.textContent = JSON.stringify(result);
    document.body.appendChild(pre);
  });
})();
</script>"""


def open_in_chromium(page, tmp_path):
    """Copy ``page`` beside itself with the checker injected, load it headless, return the result
    and the console lines Chromium logged."""
    probe = page.with_name("_probe_" + page.name)
    html = page.read_text(encoding="utf-8")
    probe.write_text(html.replace("<head>", "<head>\n" + CHECKER, 1), encoding="utf-8")
    profile = tmp_path / f"profile_{page.stem}"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probe.as_uri(),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink()
    match = re.search(r'<pre id="saeno-check">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"chromium did not run the page's scripts: {proc.stderr[-2000:]}"
    result = json.loads(
        match.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    )
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return result, console


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from saeno.export.concepts import export_concepts
    from test_export_concepts import build_tiny_pipeline

    root = tmp_path_factory.mktemp("browser")
    fno, store = build_tiny_pipeline(root)
    out = root / "export"
    export_concepts(root / "sae_fno", store, out, model=fno, n_top=3, max_concepts=3, progress=False)
    return out


def test_report_opens_without_errors_and_all_images_load(report, tmp_path):
    doc = json.loads((report / "concepts.json").read_text())
    pages = [report / "report.html"] + [report / c["page"] for c in doc["concepts"] if c["page"]]
    assert len(pages) == 1 + len(doc["figures_for"])
    for page in pages:
        result, console = open_in_chromium(page, tmp_path)
        assert console == [], f"{page.name}: console output {console}"
        assert result["log"] == [], f"{page.name}: {result['log']}"
        assert result["broken"] == [], f"{page.name}: images that did not load {result['broken']}"
        assert result["n_images"] >= (1 if page.name == "report.html" else 4)
    index, _ = open_in_chromium(report / "report.html", tmp_path)
    # one thumbnail per exported concept, the density overview
    assert index["n_images"] == len(doc["figures_for"]) + 1
    densities = [c["stats"]["sample_density"] for c in doc["concepts"] if not c["stats"]["dead"]]
    assert index["ascending"] == pytest.approx(sorted(densities))
    assert index["descending"] == pytest.approx(sorted(densities, reverse=True))


def test_single_file_report_opens_alone(report, tmp_path):
    """The single-file report, copied away from its figures, still shows every image."""
    from saeno.export.html_report import write_report

    doc = json.loads((report / "concepts.json").read_text())
    single = write_report(doc, report, inline=True)
    alone = tmp_path / "alone" / "report.html"
    alone.parent.mkdir()
    alone.write_text(single.read_text(encoding="utf-8"), encoding="utf-8")
    write_report(doc, report)  # restore the multi-page index for the other tests
    result, console = open_in_chromium(alone, tmp_path)
    assert console == [] and result["log"] == [] and result["broken"] == []
    n_pages = len(doc["figures_for"])
    assert result["n_images"] >= 1 + n_pages * 5


def test_checker_catches_broken_images_and_script_errors(report, tmp_path):
    """The probe itself must be able to fail: a page with a missing image and a script error."""
    bad = report / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
        '<img src="figures/missing.png"><script>undefinedFunction();</script>'
        "</body></html>"
    )
    result, console = open_in_chromium(bad, tmp_path)
    bad.unlink()
    assert result["broken"] == ["figures/missing.png"]
    assert any("undefinedFunction" in line for line in result["log"] + console)
