"""benchmarks/gpu_bench.py's smoke mode runs every path on a CPU and agrees with HF.

Timings are printed, never asserted; what is checked is that each path ran and that the
engine's and plain nnsight's greedy tokens equal HF generate + hook's, and the engine's
extracted vector the raw early-stop forward's.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_bench_smoke_mode() -> None:
    args = ["--smoke", "--repeats", "1", "--new-tokens", "4", "--batches", "3", "--prompts", "16"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_bench.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = re.findall(r"^\| 3 \| (\w+) \|.*\| (yes|NO) \|$", done.stdout, re.MULTILINE)
    assert rows == [("hf", "yes"), ("nnsight", "yes"), ("engine", "yes")], done.stdout
    assert re.search(r"^\| engine \| ", done.stdout, re.MULTILINE), done.stdout
    diff = re.search(r"max \|diff\| / max \|entry\| = (\S+)", done.stdout)
    assert diff is not None and float(diff.group(1)) <= 1e-2, done.stdout
