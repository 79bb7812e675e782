"""Run the hostile-input matrix (tests/support/hostile_cases.py) and print it as a table.

    .venv/bin/python scripts/hostile_matrix.py [--markdown]

One row per case: the hostile input, the `steer` command run on it, its exit status, and the
first line of what it printed (the error). tests/test_hostile_inputs.py asserts the same rows;
this prints them, for a review or a release note. Each case runs in a fresh temporary folder, as
the command's working directory, so paths in the messages are short (`repo/r.yaml`). Exit status
1 if a row's exit status is not the expected one, or if planted code ran.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a file; `python -m scripts.NAME` needs no help
    sys.path.insert(0, str(REPO))  # the repo root, which holds tests/support/

# Like the tests: nothing is downloaded, extracted vectors go to a throwaway cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("NO_COLOR", "1")
os.environ.setdefault("STEER_CACHE_DIR", tempfile.mkdtemp(prefix="steer-hostile-cache-"))
for _name in ("STEER_MAX_PROMPT_FILE_BYTES", "STEER_MAX_PROMPT_LINE_BYTES"):
    os.environ.pop(_name, None)  # rows set the limits they test

from tests.support.hostile_cases import CASES, Case, Outcome, Site, run_case  # noqa: E402


def _command(item: Case, outcome: Outcome) -> str:
    env = " ".join(f"{k}={v}" for k, v in item.env.items() if not k.startswith("HF_"))
    where = " (subprocess)" if item.subprocess else ""
    return f"{env + ' ' if env else ''}steer {' '.join(outcome.argv)}{where}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)  # tiny models: threads only add synchronisation
    rows: list[tuple[str, str, str, str]] = []
    failed: list[str] = []
    for item in CASES:
        with tempfile.TemporaryDirectory(prefix="hostile-") as folder:
            site = Site(Path(folder))
            outcome = run_case(item, site)
            if outcome.exit != item.exit:
                failed.append(f"{item.id}: exit {outcome.exit}, expected {item.exit}")
            if item.marker and site.marker.exists():
                failed.append(f"{item.id}: planted code ran")
        rows.append((item.input, _command(item, outcome), str(outcome.exit), outcome.first_line))

    header = ("input", "command", "exit", "first line of the error")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    else:
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(3)]
        for row in (header, *rows):
            print(" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])), end="")
            print(f" | {row[3]}")
    print(f"\n{len(rows)} rows, {len(rows) - len(failed)} as expected", file=sys.stderr)
    for line in failed:
        print(f"UNEXPECTED {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
