"""Benchmark: checking the locks of the embedded gallery, on an unchanged checkout.

    python benchmarks/lock_bench.py [--repeats 7]

Copies recipes/ (its embedded-model recipes, their data, fragments and vectors) to a temporary
folder, writes each recipe's lock, then times, in this one process: (a) loading and validating
every recipe (what any run does first), (b) the same plus check_lock on each, with the file
hash cache warm (sizes and mtimes unchanged: no file is re-read), and (c) check_lock with the
hash cache cold (every file hashed again). Medians; prints (b) and the ratios (b)/(a), (c)/(a).
Nothing is asserted (machines are noisy); the README quotes a run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    from recipe_engine.api import check_lock, load_recipe, write_lock
    from recipe_engine.lock import hashes

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / ".git").mkdir()  # the copied recipes' repository root
        shutil.copytree(REPO / "recipes", root / "recipes", ignore=shutil.ignore_patterns("real"))
        os.environ["STEER_HASH_CACHE"] = str(root / "hashes.json")
        recipes = sorted((root / "recipes").glob("*.yaml"))
        for path in recipes:
            loaded = load_recipe(path)
            write_lock(loaded.recipe, loaded.document)

        def load_all() -> list[object]:
            return [load_recipe(p) for p in recipes]

        def check_all(cold: bool) -> None:
            for path in recipes:
                loaded = load_recipe(path)
                if cold:
                    (root / "hashes.json").unlink(missing_ok=True)
                assert check_lock(loaded.recipe, loaded.document) == [], path

        def median(fn: object) -> float:
            samples = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                fn()  # type: ignore[operator]
                samples.append(time.perf_counter() - start)
            return statistics.median(samples)

        load = median(load_all)
        warm = median(lambda: check_all(False))
        cold = median(lambda: check_all(True))
        assert hashes  # imported: the cache module the warm case relies on
    print(f"{len(recipes)} embedded-gallery recipes, each with a lock, unchanged checkout")
    print(f"  (a) load + validate all        {load * 1000:8.1f} ms")
    print(f"  (b) (a) + check_lock, warm     {warm * 1000:8.1f} ms   ratio b/a {warm / load:.2f}")
    print(f"  (c) (a) + check_lock, cold     {cold * 1000:8.1f} ms   ratio c/a {cold / load:.2f}")
    print(f"  lock check alone, warm: {(warm - load) * 1000 / len(recipes):.1f} ms per recipe")


if __name__ == "__main__":
    main()
