"""No file of the repository names a repository path that does not exist (docs, docstrings, comments)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: top-level folders whose paths are checked when a text names them
FOLDERS = ("docs", "benchmarks", "tests", "src", "hooks", "datasets", "tutorials", ".ci")
PATH = re.compile(r"(?<![\w./<$~-])((?:" + "|".join(re.escape(f) for f in FOLDERS) + r")/[\w./-]*[\w])")
TOP_FILES = re.compile(r"(?<![\w./<$~-])((?:README|DESIGN)\.md)\b")


def _tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    extra = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [
        ROOT / p
        for p in (out + extra).split()
        if p.endswith((".md", ".py", ".toml", ".json", ".sh")) or p == ".ci/run"
    ]


def _exists(ref: str) -> bool:
    if any(c in ref for c in "*?{}"):
        return True  # a glob or a pattern, not one file
    ref = ref.rstrip(".")
    return (ROOT / ref).exists()


def test_every_named_repository_path_exists():
    missing = []
    for path in _tracked():
        if not path.is_file() or "results" in path.parts and path.suffix == ".json":
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path == Path(__file__).resolve():
            continue
        for m in PATH.finditer(text):
            ref = m.group(1)
            if text[m.end() : m.end() + 1] in ("<", "*", "{", "["):
                continue  # a pattern such as tests/test_<module>.py or tests/test_faults_*.py
            if not _exists(ref):
                line = text.count("\n", 0, m.start()) + 1
                missing.append(f"{path.relative_to(ROOT)}:{line}: {ref}")
    assert not missing, "\n".join(missing)


def test_the_checker_sees_a_missing_path(tmp_path):
    assert PATH.search("see `docs/never-written.md`").group(1) == "docs/never-written.md"
    assert not _exists("docs/never-written.md") and _exists("docs/method.md")


def test_no_file_cites_material_outside_the_repository():
    """The method is ``docs/method.md``: nothing points at notes that are not shipped."""
    outside = re.compile(r"\bMETHOD\.md\b|\bANCHORS\.md\b|\bARCHITECTURE\.md\b|\.\./shared\b")
    hits = [
        f"{p.relative_to(ROOT)}"
        for p in _tracked()
        if p.is_file() and p != Path(__file__).resolve() and outside.search(p.read_text(errors="replace"))
    ]
    assert not hits
