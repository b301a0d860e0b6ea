"""report.html and the concept pages: escaping, offline resources, links and table contents."""

import re
from html.parser import HTMLParser

from saeno.export.html_report import write_report
from test_export_schema import make_doc

EVIL = '<script>alert("x")</script>&'


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []
        self.text = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(path):
    c = _Collect()
    c.feed(path.read_text(encoding="utf-8"))
    return c


def _touch_figures(doc, out):
    for c in doc["concepts"]:
        for rel in c["figures"].values():
            if rel:
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                (out / rel).write_bytes(b"png")


def test_names_and_labels_are_escaped(tmp_path):
    doc = make_doc(n=2, label=EVIL, name="concept <u>")
    doc["concepts"][0]["params"] = {"<i>nu</i>": doc["concepts"][0]["params"]["nu"]}
    doc["store"]["hook"] = "blocks.<1>.hook_out"
    _touch_figures(doc, tmp_path)
    index = write_report(doc, tmp_path)
    pages = [index] + [tmp_path / c["page"] for c in doc["concepts"]]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<script>alert" not in text
        assert "<u>" not in text and "<i>nu" not in text and "<1>" not in text
        parsed = _parse(page)
        # the escaped text reads back as the original string
        assert any(EVIL in t for t in parsed.text)
        assert any("concept <u>" in t for t in parsed.text)
        # only our own inline scripts: the sorter
        scripts = [a for t, a in parsed.tags if t == "script"]
        assert len(scripts) == 1 and "src" not in scripts[0]


def test_report_is_offline_and_links_resolve(tmp_path):
    doc = make_doc(n=3)
    doc["concepts"][2]["page"] = None
    doc["concepts"][2]["figures"] = {}
    doc["figures_for"] = [0, 1]
    _touch_figures(doc, tmp_path)
    index = write_report(doc, tmp_path)
    pages = [index] + [tmp_path / c["page"] for c in doc["concepts"] if c["page"]]
    assert not (tmp_path / "concepts" / "concept_00002.html").exists()
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"(src|href)\s*=\s*\"(https?:)?//", text)
        assert "@import" not in text and "url(" not in text
        for tag, attrs in _parse(page).tags:
            ref = attrs.get("src") if tag == "img" else attrs.get("href") if tag == "a" else None
            if ref:
                assert (page.parent / ref).resolve().exists(), f"{page.name}: {ref}"


def test_index_table_has_one_row_per_live_concept_and_dead_ones_in_one_line(tmp_path):
    doc = make_doc(n=4)
    doc["concepts"][3]["stats"]["dead"] = True
    _touch_figures(doc, tmp_path)
    index = write_report(doc, tmp_path)
    parsed = _parse(index)
    tables = [a for t, a in parsed.tags if t == "table" and a.get("id") == "concepts"]
    assert tables and "sortable" in tables[0]["class"]
    rows = [a for t, a in parsed.tags if t == "tr"]
    assert len(rows) == 1 + 3 + 5  # header, one per live concept, the 5 rows of the meta table
    text = index.read_text()
    line = re.search(r'<p class="dead-summary">(.*?)</p>', text).group(1)
    assert "1 of 4 concepts" in line and line.rstrip().endswith(": 3")
    numeric = [a for t, a in parsed.tags if t == "th" and a.get("data-type") == "number"]
    assert len(numeric) >= 6


def _evaluation():
    metrics = dict(
        explained_variance=0.9731,
        rel_l2=0.1,
        loss_recovered=0.8812,
        splice_added_error=0.0512,
        dead_fraction=0.25,
        L0_concepts=4.0,
        L0_per_point=1.5,
        domain_fraction=0.3,
    )
    return {
        "source": "given",
        "note": None,
        "results": [
            {"grid": [16, 16], "training_resolution": True, "samples": 8, **metrics},
            {
                "grid": [32, 32],
                "training_resolution": False,
                "samples": 8,
                **{**metrics, "explained_variance": 0.9512},
            },
            {"grid": [8, 8], "training_resolution": False, "skipped": "grid too coarse"},
        ],
    }


def test_evaluation_is_at_the_top_of_the_index(tmp_path):
    doc = make_doc(n=2)
    doc["evaluation"] = _evaluation()
    _touch_figures(doc, tmp_path)
    text = write_report(doc, tmp_path).read_text()
    table = text[text.index('<table class="eval"') :]
    table = table[: table.index("</table>")]
    assert text.index('<table class="eval"') < text.index('id="concepts"')
    assert "16x16 (training)" in table and "32x32" in table and "grid too coarse" in table
    for value in ("0.973", "0.951", "0.881", "0.0512", "0.25"):
        assert value in table
    for head in ("explained variance", "loss recovered", "error added by splicing", "dead share"):
        assert head in table


def test_single_file_report_inlines_every_image_and_links_sections(tmp_path):
    doc = make_doc(n=3)
    _touch_figures(doc, tmp_path)
    index = write_report(doc, tmp_path, inline=True)
    text = index.read_text()
    parsed = _parse(index)
    srcs = [a["src"] for t, a in parsed.tags if t == "img"]
    assert srcs and all(src.startswith("data:image/png;base64,") for src in srcs)
    import base64

    assert base64.b64decode(srcs[0].split(",", 1)[1]) == b"png"
    ids = {a["id"] for t, a in parsed.tags if a.get("id")}
    hrefs = [a["href"] for t, a in parsed.tags if t == "a" and "href" in a]
    assert hrefs and all(h.startswith("#") for h in hrefs)
    assert {h[1:] for h in hrefs} <= ids  # every link lands on a section of the same file
    sections = [a for t, a in parsed.tags if t == "section"]
    assert len(sections) == sum(1 for c in doc["concepts"] if c["page"])
    assert 'src="figures/' not in text and "../" not in text


def test_skipped_ablation_is_explained(tmp_path):
    doc = make_doc(n=1)
    doc["model"] = None
    doc["ablation"] = {"done": False, "method": "m", "reason": "no model was given"}
    doc["concepts"][0]["effect"] = None
    _touch_figures(doc, tmp_path)
    index = write_report(doc, tmp_path)
    assert "no model was given" in index.read_text()
    assert "Not computed: no model was given" in (tmp_path / doc["concepts"][0]["page"]).read_text()
