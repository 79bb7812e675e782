"""Kill `steer vectors build` and `steer sweep` at random points, rerun, and tally what was left.

    .venv/bin/python scripts/interruption_trials.py [--trials N] [--seed S] [--keep]

For each command (vectors build, sweep) and signal (SIGINT, SIGKILL): one uninterrupted
reference run in a clean folder, then N trials, each in a fresh folder with a fresh cache, whose
outputs either do not exist yet or hold earlier contents (alternately). A trial signals the run
at a random moment, takes stock, then reruns it (tests/support/interruption_harness.py has the
details). The moment is drawn against the run's own progress, not the clock alone, so that a
busy machine does not push every signal past the end: a third of the trials between 1 s after
the start and the reference's first cache entry (startup, model load, first extraction; before
1 s Python is still importing the engine, where a Ctrl-C gets Python's own traceback), the rest
between the first cache entry and as long after it as the reference ran on (the other
extractions, the sweep's points, rendering, writing, teardown; some signals come after the end,
which must change nothing). Columns:

  partial files seen       trials whose outputs were neither as before nor complete and new
                           (a truncated file, a new CSV next to an old plot), or that left an
                           unexpected file next to them
  cache entries unloadable cache entries, over all trials, that failed to load
  rerun ok                 trials whose rerun exited 0, left nothing but outputs and complete
                           entries, deleted a killed writer's temporaries, kept a live one's
  rerun identical          trials whose rerun wrote byte-identical outputs to the reference
  exit ok                  SIGINT: 130 and the one line "steer: interrupted"; SIGKILL: killed
  temps stranded           trials where the killed process left a temporary file (SIGKILL
                           only; deleted by the rerun)
  after end                trials whose signal came after the run had exited

Exit status 1 if any trial failed a check (each failure is listed), else 0.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a file; `python -m scripts.NAME` needs no help
    sys.path.insert(0, str(REPO))  # the repo root, which holds tests/support/

from tests.support.interruption_harness import COMMANDS, Trial, interrupt, reference_run  # noqa: E402

SIGNALS = (signal.SIGINT, signal.SIGKILL)
COLUMNS = (
    "command",
    "signal",
    "trials",
    "partial files seen",
    "cache entries unloadable",
    "rerun ok",
    "rerun identical",
    "exit ok",
    "temps stranded",
    "after end",
)


def _row(command: str, sig: signal.Signals, trials: list[Trial]) -> list[str]:
    def count(test: Callable[[Trial], object]) -> str:
        return str(sum(1 for t in trials if test(t)))

    return [
        "vectors build" if command == "vectors" else command,
        sig.name,
        str(len(trials)),
        count(lambda t: t.state == "partial" or t.beside_outputs or t.stray_temporaries),
        str(sum(t.cache_unloadable for t in trials)),
        count(
            lambda t: (
                t.rerun_code == 0
                and not t.rerun_leftovers
                and t.planted_removed
                and t.live_temporary_kept
            )
        ),
        count(lambda t: t.rerun_identical),
        count(lambda t: t.interrupted_cleanly),
        count(lambda t: t.killed_temporaries),
        count(lambda t: not t.signalled),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10, help="per command and signal")
    parser.add_argument("--seed", type=int, default=0, help="for the kill moments")
    parser.add_argument("--keep", action="store_true", help="keep the trial folders")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="steer-interruption-trials-"))
    rows: list[list[str]] = []
    failures: list[str] = []
    try:
        for command in COMMANDS:
            reference = reference_run(command, root / f"{command}-reference")
            print(
                f"{command}: reference run {reference.seconds:.1f} s, first entry at "
                f"{reference.first_entry_s:.1f} s, {len(reference.keys)} cache entries",
                file=sys.stderr,
            )
            for sig in SIGNALS:
                trials = []
                for index in range(args.trials):
                    early = rng.random() < 1 / 3
                    if early:
                        delay = rng.uniform(1.0, max(1.0, reference.first_entry_s))
                        moment = f"{delay:.2f} s after the start"
                    else:
                        delay = rng.uniform(0.0, reference.seconds - reference.first_entry_s)
                        moment = f"{delay:.2f} s after the first entry"
                    folder = root / f"{command}-{sig.name}-{index}"
                    trial = interrupt(
                        command,
                        sig,
                        folder,
                        reference,
                        existing=index % 2 == 1,
                        after_first_entry=not early,
                        delay=delay,
                    )
                    trials.append(trial)
                    state = trial.state if trial.signalled else "after end"
                    print(
                        f"  {command} {sig.name} #{index}: signal {moment}, "
                        f"exit {trial.returncode}, outputs {state}, "
                        f"{trial.cache_entries}/{len(reference.keys)} entries",
                        file=sys.stderr,
                    )
                    failures += [
                        f"{command} {sig.name} #{index} (signal {moment}, "
                        f"{'existing' if trial.existing else 'fresh'} outputs): {problem}"
                        for problem in trial.failures
                    ]
                rows.append(_row(command, sig, trials))
    finally:
        if args.keep:
            print(f"trial folders kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    for row in [list(COLUMNS), *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    for failure in failures:
        print(f"FAIL {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
