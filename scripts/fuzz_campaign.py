"""A long fuzzing campaign against `steer validate`: the generators of the CI fuzz tests, run
for tens of thousands of examples.

    .venv/bin/python scripts/fuzz_campaign.py [--examples 20000] [--seed 0] [--out fuzz-out]
    .venv/bin/python scripts/fuzz_campaign.py --replay fuzz-out/traceback-....json

Every example is a recipe from tests/support/fuzz_strategies.py (mutated examples, garbage, alias
bombs, include graphs, broken file references) run in-process through `steer validate` and
checked by tests/support/fuzz_harness.py: no traceback, exit 0 or 1 (3 only for an environment
problem), a FILE:LINE:COL on every rejection, parsable output, nothing written. Each failing
input is saved (atomically: written to a temporary name, then renamed) under --out as JSON
that --replay runs again; inputs failing the same way are saved once.

At the end: examples run, exit-code histogram, tracebacks seen, rejections without a line
number, other problems, elapsed time. Exit status 1 if any traceback or missing line number
was seen (or any other property broke), else 0.
"""

from __future__ import annotations

import argparse
import faulthandler
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a file; `python -m scripts.NAME` needs no help
    sys.path.insert(0, str(ROOT))  # the repo root, which holds tests/support/

os.environ.setdefault("NO_COLOR", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from tests.support.fuzz_harness import FuzzRunner, Outcome  # noqa: E402
from tests.support.fuzz_strategies import FuzzCase, fuzz_cases  # noqa: E402


def _write_atomically(path: Path, payload: dict[str, Any]) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _signature(kind: str, detail: str) -> str:
    """Failures of one kind with the same last line (exception, message) count as one."""
    lines = [ln for ln in detail.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    # the case folder, quoted values and numbers differ per example; keep the message's shape
    last = " ".join(w for w in last.split() if "/cases/c" not in w)
    last = re.sub(r"\d+", "N", re.sub(r"'[^']*'", "'.'", last))
    return hashlib.sha256(f"{kind}\n{last[:200]}".encode()).hexdigest()[:12]


class Campaign:
    def __init__(self, out: Path, total: int, runner: FuzzRunner, progress: int) -> None:
        self.out = out
        self.total = total
        self.runner = runner
        self.progress = progress
        self.start = time.monotonic()
        self.examples = 0
        self.exit_codes: Counter[str] = Counter()
        self.labels: Counter[str] = Counter()
        self.problems: Counter[str] = Counter()
        self.failing_examples: Counter[str] = Counter()
        self.saved: dict[str, Path] = {}
        self.diagnostics = 0
        self.slowest = (0.0, "")

    def record(self, case: FuzzCase) -> None:
        outcome = self.runner.run(case)
        if outcome.exit_code == 130:  # steer's own answer to Ctrl-C: stop the campaign
            raise KeyboardInterrupt
        self.examples += 1
        self.labels[case.label] += 1
        self.exit_codes[str(outcome.exit_code)] += 1
        self.diagnostics += outcome.diagnostics
        if outcome.elapsed > self.slowest[0]:
            self.slowest = (outcome.elapsed, f"{case.label} {list(case.steps)!r:.120}")
        for kind in outcome.kinds():
            self.failing_examples[kind] += 1
        for kind, detail in outcome.problems:
            self.problems[kind] += 1
            self._save(case, outcome, kind, detail)
        if self.examples % self.progress == 0 or self.examples == self.total:
            self._print_progress()

    def _save(self, case: FuzzCase, outcome: Outcome, kind: str, detail: str) -> None:
        signature = _signature(kind, detail)
        if signature in self.saved:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{kind}-{signature}.json"
        payload = {
            "kind": kind,
            "detail": detail[-4000:],
            "argv": [*outcome.argv[:-1], "RECIPE"],
            "exit_code": outcome.exit_code,
            "stdout": outcome.stdout[-4000:],
            "stderr": outcome.stderr[-4000:],
            "case": case.to_json(),
        }
        _write_atomically(path, payload)
        self.saved[signature] = path
        print(f"  ! {kind}: saved {path}", file=sys.stderr, flush=True)

    def _print_progress(self) -> None:
        elapsed = time.monotonic() - self.start
        rate = self.examples / elapsed if elapsed else 0.0
        bad = sum(self.failing_examples.values())
        print(
            f"[{self.examples}/{self.total}] {elapsed:.0f}s ({rate:.0f}/s) "
            f"exit {dict(sorted(self.exit_codes.items()))} problems {bad}",
            file=sys.stderr,
            flush=True,
        )

    def summary(self) -> tuple[str, bool]:
        elapsed = time.monotonic() - self.start
        tracebacks = self.failing_examples["traceback"]
        no_line = self.problems["no-line"]
        others = {
            k: v for k, v in self.failing_examples.items() if k not in ("traceback", "no-line")
        }
        lines = [
            "fuzz campaign summary",
            f"  examples run:               {self.examples}",
            "  by generator:               "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.labels.items())),
            "  exit-code histogram:        "
            + ", ".join(f"{k}: {v}" for k, v in sorted(self.exit_codes.items())),
            f"  diagnostics checked:        {self.diagnostics}",
            f"  tracebacks seen:            {tracebacks}",
            f"  rejections without a line:  {no_line}",
            "  other problems (examples):  "
            + (", ".join(f"{k} {v}" for k, v in sorted(others.items())) or "none"),
            f"  slowest example:            {self.slowest[0]:.2f}s ({self.slowest[1]})",
            f"  failing inputs saved:       {len(self.saved)}"
            + (f" under {self.out}" if self.saved else ""),
            f"  elapsed:                    {elapsed:.1f}s",
        ]
        return "\n".join(lines), not self.problems


def _limit_memory(gib: float) -> None:
    """Cap this process's address space: an alias bomb that slips through then fails with
    MemoryError (reported as a crash) instead of taking the machine's memory with it; the
    alarm in the harness cannot interrupt a single huge allocation."""
    if gib <= 0:
        return
    import resource

    limit = int(gib * (1 << 30))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def run_campaign(args: argparse.Namespace) -> int:
    _limit_memory(args.max_memory_gib)
    base = Path(tempfile.mkdtemp(prefix="steer-fuzz-"))
    runner = FuzzRunner(base, timeout=args.timeout, slow=args.slow)
    campaign = Campaign(Path(args.out), args.examples, runner, args.progress)
    print(f"fuzzing steer validate: {args.examples} examples, seed {args.seed}", file=sys.stderr)

    @seed(args.seed)
    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        derandomize=False,
        # Only generation: problems are recorded, never raised, so there is nothing to shrink,
        # and one run covers all the failures instead of stopping at the first.
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(fuzz_cases())
    def one(case: FuzzCase) -> None:
        campaign.record(case)

    try:
        one()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    text, clean = campaign.summary()
    print(text)
    return 0 if clean else 1


def replay(path: Path) -> int:
    payload = json.loads(path.read_text(encoding="utf-8"))
    case = FuzzCase.from_json(payload.get("case", payload))
    base = Path(tempfile.mkdtemp(prefix="steer-fuzz-replay-"))
    try:
        outcome = FuzzRunner(base).run(case)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(outcome.describe())
    print("steps:", *case.steps, sep="\n  ")
    return 0 if outcome.ok else 1


def main(argv: list[str] | None = None) -> int:
    # `kill -USR1 PID` prints every thread's stack: what a seemingly stuck campaign is doing
    faulthandler.register(signal.SIGUSR1)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=20_000, help="examples to run")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (reproducible)")
    parser.add_argument("--out", default="fuzz-out", help="folder for failing inputs")
    parser.add_argument("--progress", type=int, default=500, help="print progress every N")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a hang")
    parser.add_argument("--slow", type=float, default=10.0, help="seconds that count as slow")
    parser.add_argument(
        "--max-memory-gib", type=float, default=4.0, help="address-space cap (0: none)"
    )
    parser.add_argument("--replay", type=Path, help="rerun one saved failing input")
    args = parser.parse_args(argv)
    if args.replay is not None:
        return replay(args.replay)
    return run_campaign(args)


if __name__ == "__main__":
    sys.exit(main())
