"""Run one fuzz case through `steer validate` in-process and check what every input must satisfy.

Properties, whatever the input:
- no Python traceback and no "internal error" in the output, no exception out of `main`;
- exit status 0 (valid) or 1 (invalid); 3 only with --check-model and only when every error
  is an environment problem (a hub model not in the local cache: `model-not-cached`, the one
  environment code the README documents); and the status agrees with the printed summary;
- every diagnostic carries FILE:LINE:COL with LINE and COL >= 1 (text), a line and column
  (json), file= line= col= (github), on one output line, and LINE lies within that file;
- the output parses (json), ends with the summary (text, github), is encodable as UTF-8 (a
  real terminal would raise on a lone surrogate), and nothing goes to stderr but the one-line
  note that later checks were skipped (`steer: note: FILE: fix the N schema errors...`);
- nothing is created, changed or deleted in the repository or next to it (a YAML tag that
  executed would create a marker file);
- it finishes: a SIGALRM timer turns a hang (an alias bomb that slipped through) into a
  reported problem instead of a stuck run.

Used by tests/test_fuzz_recipes.py and scripts/fuzz_campaign.py.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from recipe_engine.cli.main import main
from tests.support.fuzz_strategies import MARKER_NAME, FuzzCase, write_case

__all__ = ["PROBLEM_KINDS", "FuzzRunner", "Outcome", "check_output"]

# What `steer validate` may exit with 3 for (README: "3 environment failure, for example a hub
# model that is not in the local cache"). Kept here rather than imported, so the fuzzer checks
# the documented contract, not whatever the code currently does.
ENVIRONMENT_CODES = frozenset({"model-not-cached"})

PROBLEM_KINDS = (
    "traceback",  # a traceback, "internal error", or an exception out of main()
    "exit-code",
    "no-line",  # a diagnostic without FILE:LINE:COL (or with LINE < 1)
    "line-past-end",
    "bad-output",
    "not-utf8-output",
    "wrote-files",
    "slow",
)

LOCATION = re.compile(r"^(?P<file>.+?):(?P<line>-?\d+):(?P<col>-?\d+): (?P<rest>.*)$")
CODE = re.compile(r" \[(?P<code>[a-z0-9-]+)\](?: \(included from .*\))?$")
SUMMARY = re.compile(
    r"^(?P<files>\d+) files? checked: (?P<valid>\d+) valid, (?P<invalid>\d+) invalid "
    r"\((?P<errors>\d+) errors?, (?P<warnings>\d+) warnings?\)$"
)
GITHUB_LINE = re.compile(r"^::(?P<level>error|warning) (?P<props>[^:]*)::(?P<message>.*)$")
GITHUB_SUMMARY = re.compile(r"^(?P<files>\d+) files? checked: (?P<valid>\d+) valid, \d+ invalid$")


@dataclass(frozen=True)
class Reported:
    code: str
    severity: str
    file: str
    line: int
    column: int


@dataclass
class Outcome:
    argv: list[str]
    exit_code: int | None
    stdout: str
    stderr: str
    elapsed: float
    diagnostics: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def kinds(self) -> set[str]:
        return {kind for kind, _ in self.problems}

    def describe(self, limit: int = 4000) -> str:
        problems = "\n".join(f"  [{kind}] {detail}" for kind, detail in self.problems)
        return (
            f"steer {' '.join(self.argv)}\nexit {self.exit_code} in {self.elapsed:.2f}s\n"
            f"problems:\n{problems}\n--- stdout\n{self.stdout[:limit]}\n"
            f"--- stderr\n{self.stderr[:limit]}"
        )


class _Timeout(BaseException):
    """Raised by the alarm; a BaseException so that main()'s `except Exception` lets it out."""


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def fire(signum: int, frame: FrameType | None) -> None:
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry below root (symlinks not followed): size, mtime, mode."""
    found: dict[str, tuple[int, int, int]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            found[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return found


def _line_count(path: Path) -> int | None:
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    # The most line breaks any reader could see: YAML also breaks lines at \r, \x85, \u2028.
    return len(raw.decode("utf-8", "replace").splitlines())


def _parse_text(stdout: str, problems: list[tuple[str, str]]) -> list[Reported]:
    lines = stdout.splitlines()
    found: list[Reported] = []
    summary = SUMMARY.match(lines[-1]) if lines else None
    if summary is None:
        problems.append(("bad-output", f"last line is not the summary: {lines[-1:]!r}"))
    for line in lines[:-1] if summary else lines:
        where, code = LOCATION.match(line), CODE.search(line)
        if where is None or code is None:
            problems.append(("no-line", f"rejection without FILE:LINE:COL: {line[:300]!r}"))
            continue
        row, col = int(where["line"]), int(where["col"])
        if row < 1 or col < 1:
            problems.append(("no-line", f"line/column below 1: {line[:300]!r}"))
        severity = "warning" if ": warning: " in where["rest"] else "error"
        found.append(Reported(code["code"], severity, where["file"], row, col))
    if summary:
        errors = sum(r.severity == "error" for r in found)
        warnings = len(found) - errors
        if (errors, warnings) != (int(summary["errors"]), int(summary["warnings"])):
            problems.append(
                ("bad-output", f"summary says {summary[0]!r}, printed {errors}E/{warnings}W")
            )
    return found


def _parse_json(stdout: str, problems: list[tuple[str, str]]) -> list[Reported]:
    try:
        payload = json.loads(stdout)
        files = payload["files"]
        summary = payload["summary"]
        assert payload["version"] == 1
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        problems.append(("bad-output", f"JSON output does not parse: {exc!r}"))
        return []
    found: list[Reported] = []
    for entry in files:
        file_errors = 0
        for diag in entry.get("diagnostics", []):
            line, column, where = diag.get("line"), diag.get("column"), diag.get("file")
            if not (
                isinstance(line, int) and line >= 1 and isinstance(column, int) and column >= 1
            ) or not (isinstance(where, str) and where):
                problems.append(("no-line", f"diagnostic without a location: {diag!r:.300}"))
                continue
            if not re.fullmatch(r"[a-z0-9-]+", str(diag.get("code"))) or diag.get(
                "severity"
            ) not in ("error", "warning"):
                problems.append(("bad-output", f"malformed diagnostic {diag!r:.300}"))
            file_errors += diag.get("severity") == "error"
            found.append(Reported(str(diag["code"]), str(diag["severity"]), where, line, column))
        if entry.get("valid") != (file_errors == 0):
            problems.append(("bad-output", f"{entry.get('path')!r}: valid disagrees with errors"))
    errors = sum(r.severity == "error" for r in found)
    if summary.get("errors") != errors or summary.get("warnings") != len(found) - errors:
        problems.append(("bad-output", f"summary {summary} disagrees with the diagnostics"))
    return found


def _unescape_property(text: str) -> str:
    for escaped, char in (("%2C", ","), ("%3A", ":"), ("%0A", "\n"), ("%0D", "\r"), ("%25", "%")):
        text = text.replace(escaped, char)
    return text


def _parse_github(stdout: str, problems: list[tuple[str, str]]) -> list[Reported]:
    lines = stdout.splitlines()
    if not lines or not GITHUB_SUMMARY.match(lines[-1]):
        problems.append(("bad-output", f"last line is not the summary: {lines[-1:]!r}"))
    found: list[Reported] = []
    for line in lines[:-1]:
        match = GITHUB_LINE.match(line)
        props = (
            dict(p.split("=", 1) for p in match["props"].split(",") if "=" in p) if match else {}
        )
        if not match or not {"file", "line", "col", "title"} <= props.keys():
            problems.append(("no-line", f"annotation without file/line/col: {line[:300]!r}"))
            continue
        row, col = int(props["line"]), int(props["col"])
        if row < 1 or col < 1:
            problems.append(("no-line", f"line/column below 1: {line[:300]!r}"))
        found.append(
            Reported(props["title"], match["level"], _unescape_property(props["file"]), row, col)
        )
    return found


PARSERS = {"text": _parse_text, "json": _parse_json, "github": _parse_github}


def check_output(case: FuzzCase, outcome: Outcome) -> None:
    """Append to outcome.problems every property the output breaks."""
    problems = outcome.problems
    both = outcome.stdout + outcome.stderr
    if "_Timeout" in outcome.stderr:
        # the alarm fired inside a garbage-collector callback, where Python prints the
        # exception ("Exception ignored in ...") and carries on: a hang, not a crash
        problems.append(("slow", f"no answer after {outcome.elapsed:.0f}s (alarm in GC)"))
    elif "Traceback (most recent call last)" in both or "internal error" in both:
        problems.append(("traceback", both[-1500:]))
    # stderr carries at most the one-line notes that later checks were skipped (README,
    # validation phases), never anything else.
    others = [
        line
        for line in outcome.stderr.splitlines()
        if not (line.startswith("steer: note: ") and line.endswith("once the schema passes"))
    ]
    if others:
        problems.append(("bad-output", f"stderr: {outcome.stderr[:300]!r}"))
    try:
        both.encode("utf-8")
    except UnicodeEncodeError as exc:
        problems.append(("not-utf8-output", str(exc)))
    reported = PARSERS[case.fmt](outcome.stdout, problems)
    outcome.diagnostics = len(reported)
    counts: dict[str, int | None] = {}  # a file can carry thousands of diagnostics
    for item in reported:
        if item.file not in counts:
            counts[item.file] = _line_count(Path(item.file))
        count = counts[item.file]
        if count is not None and item.line > count + 1:
            problems.append(
                ("line-past-end", f"{item.file}:{item.line} but the file has {count} lines")
            )
    errors = [r for r in reported if r.severity == "error"]
    failing = bool(errors) or ("--strict" in case.flags and bool(reported))
    if outcome.exit_code == 3:
        allowed = (
            "--check-model" in case.flags
            and bool(errors)
            and all(r.code in ENVIRONMENT_CODES for r in errors)
        )
        if not allowed:
            problems.append(("exit-code", "exit 3 without an environment-only failure"))
    elif outcome.exit_code not in (0, 1):
        problems.append(("exit-code", f"exit {outcome.exit_code}"))
    elif (outcome.exit_code == 1) != failing and "traceback" not in outcome.kinds():
        problems.append(("exit-code", f"exit {outcome.exit_code} but {len(errors)} errors"))


class FuzzRunner:
    """A fake repository (a folder with .git) in `base`; each case gets a fresh folder in it."""

    def __init__(self, base: Path, *, timeout: float = 60.0, slow: float = 10.0) -> None:
        self.base = base
        self.repo = base / "repo"
        (self.repo / ".git").mkdir(parents=True, exist_ok=True)
        self.outside = base / "outside.txt"  # a file references must not reach
        self.outside.write_text("outside the repository\n", encoding="utf-8")
        self.timeout = timeout
        self.slow = slow
        self.count = 0

    def run(self, case: FuzzCase) -> Outcome:
        self.count += 1
        case_dir = self.repo / "cases" / f"c{self.count}"
        case_dir.mkdir(parents=True)
        try:
            recipe = write_case(case, case_dir, self.outside)
            before = _snapshot(self.base)
            outcome = self._invoke(case.argv(case_dir if case.validate_dir else recipe))
            check_output(case, outcome)
            after = _snapshot(self.base)
            if before != after:
                changed = sorted(set(before.items()) ^ set(after.items()))[:5]
                outcome.problems.append(("wrote-files", f"changed: {changed}"))
            if (case_dir / MARKER_NAME).exists():
                outcome.problems.append(("wrote-files", "a YAML tag was executed"))
            if outcome.elapsed > self.slow and "slow" not in outcome.kinds():
                outcome.problems.append(("slow", f"took {outcome.elapsed:.1f}s"))
            return outcome
        finally:
            shutil.rmtree(case_dir, ignore_errors=True)

    def _invoke(self, argv: list[str]) -> Outcome:
        out, err = io.StringIO(), io.StringIO()
        start = time.perf_counter()
        code: int | None = None
        problems: list[tuple[str, str]] = []
        try:
            with _alarm(self.timeout), redirect_stdout(out), redirect_stderr(err):
                code = main(argv)
        except _Timeout:
            problems.append(("slow", f"no answer after {self.timeout:.0f}s (killed)"))
        except SystemExit as exc:  # argparse: the fuzzer built a bad command line
            problems.append(("exit-code", f"SystemExit({exc.code}) from argparse"))
        except KeyboardInterrupt:
            raise
        except BaseException:  # whatever escapes main() is a finding
            problems.append(("traceback", traceback.format_exc()[-1500:]))
        elapsed = time.perf_counter() - start
        return Outcome(argv, code, out.getvalue(), err.getvalue(), elapsed, problems=problems)
