"""README figures copied from recorded benchmark results, never typed.

README.md marks each copied block with two comments,
``<!-- results:NAME -->`` and ``<!-- results:NAME end -->``; ``sync_readme``
fills every block from ``benchmarks/results/NAME.md``: its first table (or
all its tables with ``<!-- results:NAME all-tables -->``), the summary lines
that start with ``Ensemble`` or ``What limits``, and the machine line, at the
marker's indentation. ``benchmarks/run_all.py`` calls it after assembling
BENCHMARKS.md, and so does each script that records a block's result.

    .venv/bin/python benchmarks/readme_blocks.py      # copy again
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"
START = re.compile(r"^(?P<indent>[ \t]*)<!-- results:(?P<name>[\w-]+)(?P<all> all-tables)? -->$", re.M)
SUMMARY_STARTS = ("Ensemble", "What limits")


def block_lines(name: str, all_tables: bool) -> list[str]:
    """The lines copied from ``results/NAME.md``: table(s), summary lines, then the machine line."""
    lines = (RESULTS / f"{name}.md").read_text().splitlines()
    tables: list[list[str]] = []
    for i, line in enumerate(lines):
        if line.startswith("|"):
            if i == 0 or not lines[i - 1].startswith("|"):
                tables.append([])
            tables[-1].append(line)
    if not tables:
        raise ValueError(f"benchmarks/results/{name}.md has no table to copy")
    rows = [row for table in (tables if all_tables else tables[:1]) for row in [*table, ""]]
    summary = [line for line in lines if line.startswith(SUMMARY_STARTS)]
    machine = next((line for line in lines if line.startswith(("Machine:", "Date:"))), "")
    return [*rows, *[s for line in summary for s in (line, "")], f"({machine or 'machine not recorded'}; "
            f"copied from benchmarks/results/{name}.md)"]


def sync_readme(readme: Path = README) -> list[str]:
    """Refill every results block of ``readme``; returns the names refilled."""
    text = readme.read_text()
    names = []
    for m in reversed(list(START.finditer(text))):
        name, indent = m["name"], m["indent"]
        end_marker = f"{indent}<!-- results:{name} end -->"
        end = text.index(end_marker, m.end())
        body = "\n".join((indent + line).rstrip() for line in block_lines(name, bool(m["all"])))
        text = text[: m.end()] + "\n" + body + "\n" + text[end:]
        names.append(name)
    readme.write_text(text)
    return names[::-1]


if __name__ == "__main__":
    print("refilled:", ", ".join(sync_readme()) or "no blocks")
