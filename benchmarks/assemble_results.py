"""Assemble benchmarks/RESULTS.md from the per-area result pages in benchmarks/results/*.md.

Each page is written by its benchmark's author with the exact command that produced it; this script
only concatenates them (headings demoted one level) under the summary in RESULTS_HEADER.md.
Run: python benchmarks/assemble_results.py
"""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = [
    "hook_overhead",
    "hook_overhead_families",
    "zoo",
    "busy_machine",
    "capture",
    "train_speed",
    "train_defaults",
    "darcy_sae",
    "pareto",
    "pareto_darcy",
    "explain",
    "audit",
    "recovery",
    "recovery_sae_fno_fix",
    "supervised",
    "supervised_seeds345",
    "scaling",
    "report",
    "demo",
]


def main() -> None:
    parts = [(HERE / "RESULTS_HEADER.md").read_text(encoding="utf-8").rstrip() + "\n"]
    pages = {p.stem: p for p in sorted((HERE / "results").glob("*.md"))}
    for name in ORDER + sorted(set(pages) - set(ORDER)):
        if name not in pages:
            continue
        text = pages[name].read_text(encoding="utf-8")
        text = re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", text, flags=re.M)
        # figures are referenced relative to results/
        text = re.sub(r"\]\((?!https?:)([^)/]+\.png)\)", r"](results/\1)", text)
        parts.append(text.rstrip() + "\n")
    (HERE / "RESULTS.md").write_text("\n".join(parts), encoding="utf-8")
    print(f"wrote {HERE / 'RESULTS.md'} from {len(parts) - 1} pages")


if __name__ == "__main__":
    main()
