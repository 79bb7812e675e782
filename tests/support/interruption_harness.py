"""Interrupt `steer vectors build` / `steer sweep` in a subprocess and take stock of what is left.

Shared by tests/test_interruption.py (one interruption per case, at a point known to be mid-run)
and scripts/interruption_trials.py (many, at random points). Every run happens in a folder of its
own holding the recipe (with a `.git`, so the folder is the repository root), its prompt files,
its outputs under `out/` and its vector cache under `cache/`:

- `prepare` writes a recipe whose run takes a few seconds on a tiny model: several vectors (or
  layers) each extracted from a thousand-odd generated prompts, so every extracted vector is one
  cache entry and the run is demonstrably mid-way once the first entry exists;
- `interrupt` starts the command, signals it, then records the exit, the outputs (untouched, new,
  or partial), files next to them, and whether every cache entry loads through `VectorCache`;
  then it reruns the command and compares its outputs with a reference run's, byte for byte.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from recipe_engine.atomic import temporary_prefix
from recipe_engine.vectors.cache import CHECKPOINT_ENV, VectorCache

__all__ = [
    "COMMANDS",
    "Reference",
    "Trial",
    "interrupt",
    "outputs",
    "prepare",
    "reference_run",
]

COMMANDS = ("vectors", "sweep")
TIMEOUT_S = 300  # one steer run; generous for a loaded CI box (they take seconds)
ENTRY = re.compile(r"[0-9a-f]{2}/[0-9a-f]{64}\.safetensors")
TEMPORARY = re.compile(r"[0-9a-f]{2}/\.([0-9a-f]{64})\.safetensors\..+\.tmp")  # an entry's

WORDS = ["the", "a", "movie", "day", "food", "film", "book", "song", "cat", "dog", "good", "bad"]
WORDS += ["fine", "long", "short", "quiet", "busy", "warm", "cold", "city", "road", "river"]

VECTOR_RECIPE = """\
version: 1
name: interruptible-vectors
model: {id: builtin:tiny-random}
vectors:
  m0: {kind: mean_activation, prompts: {file: prompts.txt}, layer: 0, site: resid_post}
  m1: {kind: mean_activation, prompts: {file: prompts.txt}, layer: 1, site: resid_post}
  m2: {kind: mean_activation, prompts: {file: prompts.txt}, layer: 2, site: mlp_out}
  m3: {kind: mean_activation, prompts: {file: prompts.txt}, layer: 3, site: resid_post}
  r: {kind: random, seed: 3, norm: 2.0}
  e: {kind: expr, expr: "m3 - m0"}
run: {mode: trace, prompts: [x]}
"""

SWEEP_RECIPE = """\
version: 1
name: interruptible-sweep
model: {id: builtin:tiny-random}
vectors:
  v:
    kind: contrastive
    positive: {file: positive.txt}
    negative: {file: negative.txt}
    layer: 0
    site: resid_post
interventions:
  - {vector: v, op: add, layers: 0, site: resid_post, strength: 1.0}
run:
  mode: trace
  prompts: [The weather today is, "My opinion of it:", Hi there]
report:
  metrics:
    - {kind: token_prob, tokens: {vowels: [a, e, o]}}
    - {kind: kl_baseline}
"""
SWEEP_LAYERS = ["0", "1", "2"]  # one cache entry per layer: the vector is re-read at each
SWEEP_STRENGTHS = ["0", "40"]


def _lines(seed: int, count: int) -> str:
    rng = random.Random(seed)
    return "".join(" ".join(rng.choice(WORDS) for _ in range(8)) + "\n" for _ in range(count))


def prepare(command: str, folder: Path) -> list[str]:
    """Write the recipe and its data into `folder`; the steer arguments that run it."""
    (folder / ".git").mkdir(parents=True, exist_ok=True)
    recipe = folder / "recipe.yaml"
    if command == "vectors":
        (folder / "prompts.txt").write_text(_lines(0, 400), encoding="utf-8")
        recipe.write_text(VECTOR_RECIPE, encoding="utf-8")
        return ["vectors", "build", str(recipe), "--out", str(outputs(command, folder)[0])]
    (folder / "positive.txt").write_text(_lines(1, 250), encoding="utf-8")
    (folder / "negative.txt").write_text(_lines(2, 250), encoding="utf-8")
    recipe.write_text(SWEEP_RECIPE, encoding="utf-8")
    return [
        "sweep",
        str(recipe),
        "--layers",
        *SWEEP_LAYERS,
        "--strengths",
        *SWEEP_STRENGTHS,
        "--out",
        str(folder / "out"),
    ]


def outputs(command: str, folder: Path) -> list[Path]:
    if command == "vectors":
        return [folder / "out" / "vectors.safetensors"]
    return [folder / "out" / f"sweep.{ext}" for ext in ("csv", "json", "png")]


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "STEER_NO_CACHE"}
    env.update(
        STEER_CACHE_DIR=str(cache),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        NO_COLOR="1",
        # One thread: tiny models gain nothing from more, and the box is shared.
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    return env


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(
    argv: list[str], folder: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "recipe_engine", *argv],
        cwd=folder,
        env={**_env(folder / "cache"), **(extra_env or {})},
        # A shell without job control starts background commands with SIGINT ignored, and the
        # child would inherit that: Ctrl-C must reach it as it does from a terminal.
        preexec_fn=_default_sigint,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    return proc.returncode, stdout, stderr


def cache_files(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file()) if cache.is_dir() else []


def cache_keys(cache: Path) -> set[str]:
    return {p.stem for p in cache_files(cache) if ENTRY.fullmatch(p.relative_to(cache).as_posix())}


@dataclass
class Reference:
    """An uninterrupted run in a clean folder: what every rerun must reproduce."""

    outputs: dict[str, bytes]
    keys: set[str]
    seconds: float  # start to exit
    first_entry_s: float  # start to the first cache entry: startup, model load, first vector


def _wait(
    proc: subprocess.Popen[str],
    seconds: float,
    cache: Path | None = None,
    marker: Path | None = None,
) -> None:
    """Until `proc` exits, `seconds` pass, (given `cache`) a first entry is in it, or (given
    `marker`) that file exists."""
    deadline = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < deadline:
        if cache is not None and cache_keys(cache):
            return
        if marker is not None and marker.exists():
            return
        time.sleep(0.01)


def reference_run(command: str, folder: Path) -> Reference:
    argv = prepare(command, folder)
    began = time.monotonic()
    proc = _start(argv, folder)
    _wait(proc, TIMEOUT_S, folder / "cache")
    first_entry = time.monotonic() - began
    code, _, stderr = _finish(proc)
    if code != 0:
        raise AssertionError(f"reference `steer {' '.join(argv)}` failed ({code}):\n{stderr}")
    return Reference(
        {p.name: p.read_bytes() for p in outputs(command, folder)},
        cache_keys(folder / "cache"),
        time.monotonic() - began,
        first_entry,
    )


@dataclass
class Trial:
    command: str
    signal_name: str
    existing: bool  # the outputs existed (with other contents) before the run
    pid: int = 0
    signalled: bool = False  # the signal reached a process still running
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""
    entries_at_signal: int = 0
    state: str = ""  # outputs after the signal: "untouched", "new" (complete) or "partial"
    beside_outputs: list[str] = field(default_factory=list)  # other files in out/
    stray_temporaries: list[str] = field(default_factory=list)  # not the killed writer's
    killed_temporaries: list[str] = field(default_factory=list)  # the killed writer's
    cache_entries: int = 0
    cache_unloadable: int = 0
    cache_strays: list[str] = field(default_factory=list)  # neither entries nor its temporaries
    missing_keys: int = 0  # entries the reference has and the interrupted run did not write
    rerun_code: int = -1
    rerun_stderr: str = ""
    rerun_identical: bool = False
    rerun_leftovers: list[str] = field(default_factory=list)  # besides outputs after the rerun
    planted_removed: bool = True  # dead writers' temporaries gone after the rerun
    live_temporary_kept: bool = True  # a live writer's temporary left alone by the rerun

    @property
    def interrupted_cleanly(self) -> bool:
        """The exit a signal should give: 130 and one line for SIGINT, death for SIGKILL; a
        signal that came after the run had finished leaves it at 0 with its outputs written."""
        if not self.signalled or (self.returncode == 0 and self.state == "new"):
            return self.returncode == 0
        if self.signal_name == "SIGINT":
            return self.returncode == 130 and self.stderr.strip() == "steer: interrupted"
        return self.returncode == -signal.SIGKILL

    @property
    def failures(self) -> list[str]:
        found = []
        if not self.interrupted_cleanly:
            found.append(f"exit {self.returncode}, stderr {self.stderr[-500:]!r}")
        if self.state == "partial":
            found.append("outputs neither the previous ones nor complete new ones")
        if self.beside_outputs or self.stray_temporaries:
            found.append(
                f"files next to the outputs: {self.beside_outputs + self.stray_temporaries}"
            )
        if self.signal_name == "SIGINT" and self.killed_temporaries:
            found.append(f"temporary files after SIGINT: {self.killed_temporaries}")
        if self.cache_unloadable:
            found.append(f"{self.cache_unloadable} cache entries do not load")
        if self.cache_strays:
            found.append(f"stray files in the cache: {self.cache_strays}")
        if self.rerun_code != 0:
            found.append(f"rerun exit {self.rerun_code}: {self.rerun_stderr[-500:]!r}")
        elif not self.rerun_identical:
            found.append("rerun outputs differ from the reference run's")
        if self.rerun_leftovers:
            found.append(f"left after the rerun: {self.rerun_leftovers}")
        if not self.planted_removed:
            found.append("a dead writer's temporary file survived the rerun")
        if not self.live_temporary_kept:
            found.append("the rerun deleted a live writer's temporary file")
        return found


def _plant_previous(paths: list[Path]) -> dict[Path, bytes]:
    """Earlier outputs, distinct per file, that an interrupted run must leave as they are."""
    previous = {p: f"previous {p.name}, from an earlier run\n".encode() for p in paths}
    for path, data in previous.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return previous


def _state(paths: list[Path], previous: dict[Path, bytes], reference: Reference) -> str:
    """untouched: every output as before the run (absent or its previous bytes); new: every
    output complete and equal to the reference run's; anything else (a truncated file, a new
    CSV next to an old plot) is partial."""
    now = {p: (p.read_bytes() if p.is_file() else None) for p in paths}
    if all(now[p] == previous.get(p) for p in paths):
        return "untouched"
    if all(now[p] == reference.outputs[p.name] for p in paths):
        return "new"
    return "partial"


def _check_cache(trial: Trial, cache: Path, reference: Reference) -> None:
    """Every entry loads through the cache API; the only other files allowed are temporaries of
    the killed process (a SIGKILL can strand one)."""
    store = VectorCache(cache)
    for path in cache_files(cache):
        relative = path.relative_to(cache).as_posix()
        if ENTRY.fullmatch(relative):
            trial.cache_entries += 1
            if store.get(path.stem) is None:
                trial.cache_unloadable += 1
        elif (temp := TEMPORARY.fullmatch(relative)) and path.name.startswith(
            temporary_prefix(path.parent / f"{temp[1]}.safetensors", trial.pid)
        ):
            trial.killed_temporaries.append(relative)
        else:
            trial.cache_strays.append(relative)
    trial.missing_keys = len(reference.keys - cache_keys(cache))


def _plant_temporaries(trial: Trial, folder: Path, reference: Reference) -> list[Path]:
    """Temporary files as a killed writer (the trial's own, dead, process) would strand them:
    next to each output, and in the cache beside an entry the rerun still has to write."""
    cache = folder / "cache"
    targets = outputs(trial.command, folder)
    missing = sorted(reference.keys - cache_keys(cache))
    if missing:
        targets.append(cache / missing[0][:2] / f"{missing[0]}.safetensors")
    planted = []
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        stale = target.parent / f"{temporary_prefix(target, trial.pid)}planted.tmp"
        stale.write_bytes(b"half a file")
        planted.append(stale)
    return planted


def interrupt(
    command: str,
    sig: signal.Signals,
    folder: Path,
    reference: Reference,
    *,
    existing: bool,
    after_first_entry: bool = True,
    delay: float = 0.0,
    checkpoint: bool = False,
) -> Trial:
    """Run `command` in `folder`, send `sig`, take stock, rerun, compare with `reference`.

    The signal goes `delay` seconds after the first cache entry appears (by default at once:
    the run is then mid-way, with more vectors or layers to extract), or, with
    `after_first_entry=False`, `delay` seconds after the start.

    With `checkpoint`, the run itself stops after writing its first cache entry and waits for
    the signal (the $STEER_TEST_CHECKPOINT hook of recipe_engine.vectors.cache): the signal
    then always lands mid-run, however loaded the machine; without it, a run on a busy box
    could finish the remaining vectors between the first entry and the signal.
    """
    argv = prepare(command, folder)
    paths = outputs(command, folder)
    previous = _plant_previous(paths) if existing else {}
    cache = folder / "cache"
    trial = Trial(command, sig.name, existing)
    marker = folder / "checkpoint-reached"
    proc = _start(argv, folder, {CHECKPOINT_ENV: str(marker)} if checkpoint else None)
    trial.pid = proc.pid
    try:
        if checkpoint:
            _wait(proc, TIMEOUT_S, marker=marker)
        elif after_first_entry:
            _wait(proc, TIMEOUT_S, cache)
        _wait(proc, delay)
        trial.entries_at_signal = len(cache_keys(cache))
        if proc.poll() is None:
            trial.signalled = True
            proc.send_signal(sig)
        trial.returncode, trial.stdout, trial.stderr = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    trial.state = _state(paths, previous, reference)
    out = folder / "out"
    for path in sorted(out.iterdir()) if out.is_dir() else []:
        if path in paths:
            continue
        if any(path.name.startswith(temporary_prefix(p, trial.pid)) for p in paths):
            trial.killed_temporaries.append(path.name)
        elif path.name.endswith(".tmp"):
            trial.stray_temporaries.append(path.name)
        else:
            trial.beside_outputs.append(path.name)
    _check_cache(trial, cache, reference)

    # The rerun must also clear what a killed writer strands, and leave a live writer's file be.
    planted = _plant_temporaries(trial, folder, reference)
    live = out / f"{temporary_prefix(paths[0])}inflight.tmp"  # this process: alive
    out.mkdir(parents=True, exist_ok=True)
    live.write_bytes(b"being written")
    trial.rerun_code, _, trial.rerun_stderr = _finish(_start(argv, folder))
    trial.planted_removed = not any(p.exists() for p in planted)
    trial.live_temporary_kept = live.exists()
    live.unlink(missing_ok=True)
    if trial.rerun_code == 0:
        trial.rerun_identical = all(
            p.is_file() and p.read_bytes() == reference.outputs[p.name] for p in paths
        )
    trial.rerun_leftovers = [f"out/{p.name}" for p in sorted(out.iterdir()) if p not in paths]
    trial.rerun_leftovers += [
        f"cache/{rel}"
        for rel in (p.relative_to(cache).as_posix() for p in cache_files(cache))
        if not ENTRY.fullmatch(rel)
    ]
    if cache_keys(cache) != reference.keys:
        trial.rerun_leftovers.append("cache: entries differ from the reference run's")
    return trial
