"""Benchmark: `steer validate` on 100 recipes in one call, next to a bare interpreter start.

    python benchmarks/validate_bench.py [--recipes 100] [--repeats 7]

Machines here are noisy, so nothing is asserted: the script prints medians of wall time for
(a) `python -c pass`, (b) `python -c "import recipe_engine.cli.main"` and (c) the full
`steer validate DIR` on N copies of the shipped examples (with their data and vector files),
all measured in the same run, and the ratio of (c) to (a).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _time(cmd: list[str], repeats: int, cwd: Path) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        samples.append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(
                f"command failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}{done.stderr}"
            )
    return statistics.median(samples)


def _make_recipes(target: Path, count: int) -> int:
    shutil.copytree(REPO / "recipes", target / "recipes")
    (target / ".git").mkdir()
    examples = [p for p in (target / "recipes").glob("*.yaml")]
    made = len(examples)
    i = 0
    while made < count:
        source = examples[i % len(examples)]
        text = source.read_text(encoding="utf-8").replace("\nname: ", f"\nname: copy{i}-", 1)
        (source.parent / f"copy{i:03d}-{source.name}").write_text(text, encoding="utf-8")
        made += 1
        i += 1
    return made


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--check-model", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        count = _make_recipes(root, args.recipes)
        py = sys.executable
        bare = _time([py, "-c", "pass"], args.repeats, root)
        imports = _time([py, "-c", "import recipe_engine.cli.main"], args.repeats, root)
        cmd = [py, "-m", "recipe_engine", "validate", "recipes"]
        if args.check_model:
            cmd.append("--check-model")
        full = _time(cmd, args.repeats, root)
    print(f"recipes validated in one call : {count}")
    print(f"bare interpreter start        : {bare * 1000:7.1f} ms (median of {args.repeats})")
    print(f"import of the CLI             : {imports * 1000:7.1f} ms")
    print(
        f"steer validate ({count} recipes) : {full * 1000:7.1f} ms  "
        f"= {full / bare:.1f}x a bare start; {(full - imports) / count * 1000:.2f} ms per recipe"
    )
    print(f"target < 1000 ms: {'met' if full < 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
