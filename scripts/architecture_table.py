"""Write the README's Architectures table from the tests' own results.

tests/test_architecture_matrix.py holds every site's status per architecture in
tests/data/architecture_matrix.json and tests/test_export_families.py the `export --format hf`
status in tests/data/export_matrix.json; this renders both between the README's
`<!-- architecture-table -->` markers. tests/test_architecture_table.py fails when the README
differs from what this writes, so the table cannot drift from the tests.

    python -m scripts.architecture_table          # rewrite README.md
    python -m scripts.architecture_table --check  # exit 1 if README.md is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
SITES = REPO / "tests" / "data" / "architecture_matrix.json"
EXPORT = REPO / "tests" / "data" / "export_matrix.json"
BEGIN, END = "<!-- architecture-table -->", "<!-- /architecture-table -->"


def _cell(outcome: dict[str, Any] | None, notes: dict[str, int]) -> str:
    if outcome is None or outcome["status"] == "n/a":
        return "n/a"
    if outcome["status"] == "ok":
        return "ok"
    message = str(outcome["message"]).replace("|", "\\|")
    number = notes.setdefault(message, len(notes) + 1)
    return f"refused [{number}]"


def table() -> str:
    sites = json.loads(SITES.read_text())
    export = json.loads(EXPORT.read_text())
    site_cells, export_cells = sites["cells"], export["cells"]
    notes: dict[str, int] = {}
    header = ["architecture", *site_cells, *(f"export {c}" for c in export_cells)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in sorted(set(sites["architectures"]) | set(export["architectures"])):
        row = sites["architectures"].get(name, {})
        baked = export["architectures"].get(name, {})
        cells = [_cell(row.get(c), notes) for c in site_cells]
        cells += [_cell(baked.get(c, baked.get("all")), notes) for c in export_cells]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"[{n}] {message}  " for message, n in notes.items()]
    return "\n".join(lines).rstrip() + "\n"


def rendered(readme: str) -> str:
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table()}{END}{tail}"


def main(argv: list[str]) -> int:
    current = README.read_text()
    wanted = rendered(current)
    if "--check" in argv:
        if current != wanted:
            print("README.md's architecture table is stale: python -m scripts.architecture_table")
            return 1
        return 0
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
