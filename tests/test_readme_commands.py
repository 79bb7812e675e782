"""Every shell command of the README, run in order as a new user would, works as written
(issue 19, must-show).

What counts as a command, read generically so that new README sections are picked up:
- every line of a fenced ```bash / ```sh / ```shell block (comments and blank lines skipped,
  `\\` continuations joined), and the `$ ` lines of a ```console block or of an unlabeled one;
- the lines after a `$ ` line, up to the next `$ ` line, are its shown output; an unlabeled
  block that comes right after a bash block (only prose between) is the shown output of that
  block's last command. Every shown line must appear in what the command printed (spaces
  collapsed), so the README's numbers stay true.

Each command runs with `bash -c` in a scratch copy of the repository (its outputs never dirty
the checkout), with this interpreter's environment (`.venv/bin`) first on PATH and `.venv`
linked into the copy, HF_HUB_OFFLINE=1 and no NDIF_API_KEY. It must exit 0, unless its shown
output is a `steer: error:` line (a documented failure: exit 1, 2 or 3 and that line), or it
is in ALLOWED below, which says what is done instead and why.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.float_tolerance import shown_line_printed

pytestmark = pytest.mark.slow

README = REPO / "README.md"
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")


@dataclass
class Command:
    text: str
    line: int  # 1-based line of the README where it starts
    shown: list[str] = field(default_factory=list)  # output the README shows for it


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def extract_commands(markdown: str) -> list[Command]:
    commands: list[Command] = []
    lines = markdown.splitlines()
    i = 0
    previous_fence: str | None = None  # language of the last fenced block seen
    output_of: Command | None = None  # the command an output block after a bash block shows
    while i < len(lines):
        fence = re.match(r"^```\s*([\w+-]*)\s*$", lines[i])
        if not fence:
            if lines[i].startswith("#"):  # a new section: a block below it shows no output
                output_of = None
            i += 1
            continue
        language = fence.group(1).lower()
        start = i + 1
        end = start
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        body = lines[start:end]
        if language in ("bash", "sh", "shell"):
            block = _script_commands(body, start + 1)
            commands.extend(block)
            # Shown output belongs to the block's last command that this test runs.
            runnable = [c for c in block if _runnable_parts(c.text)]
            output_of = runnable[-1] if runnable else None
        elif language in ("console", "", "text"):
            if any(line.startswith("$ ") for line in body):
                commands.extend(_console_commands(body, start + 1))
            elif previous_fence in ("bash", "sh", "shell") and output_of and language == "":
                output_of.shown.extend(line for line in body if line.strip())
        previous_fence = language
        i = end + 1
    return commands


def _script_commands(body: list[str], first_line: int) -> list[Command]:
    found: list[Command] = []
    pending = ""
    pending_line = 0
    for k, raw in enumerate(body):
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not pending:
            pending_line = first_line + k
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        found.append(Command(pending + line.strip(), pending_line))
        pending = ""
    return found


def _console_commands(body: list[str], first_line: int) -> list[Command]:
    found: list[Command] = []
    for k, line in enumerate(body):
        if line.startswith("$ "):
            found.append(Command(line[2:].strip(), first_line + k))
        elif found and line.strip():
            found[-1].shown.append(line)
    return found


# -- what cannot run here, matched by pattern; each with its reason ---------------------------

SKIPPED_PARTS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"^python3? -m venv\b"),
        "creates the virtual environment this test already runs in (.ci/run creates it fresh)",
    ),
    (
        re.compile(r"^(\S*/)?(pip3?|python3? -m pip) install\b"),
        "installs packages (needs the index; .ci/run runs the install itself)",
    ),
    (
        re.compile(r"^(\S*/)?python3? -m pytest\b"),
        "runs the test suite this test is part of (CI runs it as its own step)",
    ),
]


def _remote_without_key(outcome: Outcome) -> None:
    assert outcome.returncode == 3, outcome
    assert "NDIF_API_KEY" in outcome.stderr and "Traceback" not in outcome.stderr, outcome


# Commands run, but expected to behave otherwise than exit 0, with the reason.
EXPECTED_INSTEAD: list[tuple[re.Pattern[str], str, Callable[[Outcome], None]]] = [
    (
        re.compile(r"(^|/)steer (run|sweep|vectors build)\b.*--backend remote(?!-)"),
        "sends work to NDIF: needs a real key and the network; without a key it must stop "
        "at once with exit 3 and the NDIF_API_KEY message",
        _remote_without_key,
    ),
]

EXPORT = re.compile(r"^export (\w+)=(.*)$")
# Placeholder secrets are never exported: a real NDIF key would send work to NDIF.
NOT_EXPORTED = {
    "NDIF_API_KEY": "a placeholder for your own key; the remote commands are run "
    "without one (EXPECTED_INSTEAD)"
}


def _runnable_parts(text: str) -> list[str]:
    """The parts of an `a && b && c` line that this test runs (SKIPPED_PARTS removed)."""
    parts = [p.strip() for p in text.split(" && ")]
    return [p for p in parts if not any(pattern.search(p) for pattern, _ in SKIPPED_PARTS)]


def _scratch_copy(target: Path) -> Path:
    """The repository's files (tracked, and untracked ones git does not ignore) in `target`."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=False,
    )
    if listed.returncode == 0 and listed.stdout:
        for name in listed.stdout.decode().split("\0"):
            source = REPO / name
            if name and source.is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)
    else:  # not a git checkout (an unpacked sdist): everything but environments and caches
        ignore = shutil.ignore_patterns(".venv", ".git", "*cache*", "steer-out", "build", "dist")
        shutil.copytree(REPO, target, ignore=ignore, dirs_exist_ok=True)
    (target / ".git").mkdir(exist_ok=True)  # the copy is its own repository root
    (target / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return target


def test_the_readme_has_commands_to_run() -> None:
    commands = extract_commands(README.read_text(encoding="utf-8"))
    texts = [c.text for c in commands]
    # The README's main demo, the sweep and the Backends walk-through are all picked up.
    assert any("steer run recipes/activation-addition.yaml" in t for t in texts)
    assert any(t.startswith("steer sweep") for t in texts)
    assert any("--backend remote-local" in t for t in texts)
    demo = next(c for c in commands if "steer run recipes/activation-addition.yaml" in c.text)
    assert any("token_prob:positive" in line for line in demo.shown)
    pytest_line = next(c for c in commands if "-m pytest" in c.text)
    assert not _runnable_parts(pytest_line.text) and not pytest_line.shown


def test_the_parser_reads_blocks_as_documented() -> None:
    markdown = (
        "```bash\n# a comment\nsteer a \\\n  --x 1   # trailing\n\nsteer b\n```\n"
        "prose\n```\nshown 1\n```\n"
        "```yaml\nkey: value\n```\n"
        "```\n$ steer c\nout c\n$ steer d\n```\n"
        "```console\n$ steer e\n```\n"
        "```\nnot output: the fence before was not bash\n```\n"
    )
    got = [(c.text, c.shown) for c in extract_commands(markdown)]
    assert got == [
        ("steer a --x 1   # trailing", []),
        ("steer b", ["shown 1"]),
        ("steer c", ["out c"]),
        ("steer d", []),
        ("steer e", []),
    ]
    assert _runnable_parts("python3 -m venv .venv && .venv/bin/pip install -e . && steer x") == [
        "steer x"
    ]


def test_every_readme_command_works_as_written(tmp_path: Path) -> None:
    root = _scratch_copy(tmp_path / "repo")
    env = {k: v for k, v in os.environ.items() if k != "NDIF_API_KEY"}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        NO_COLOR="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    commands = extract_commands(README.read_text(encoding="utf-8"))
    failures: list[str] = []
    ran = 0
    for command in commands:
        exported = EXPORT.match(command.text.split("#", 1)[0].strip())
        if exported:
            name, value = exported.groups()
            if name not in NOT_EXPORTED:
                env[name] = value.strip().strip("'\"")
            continue
        parts = _runnable_parts(command.text)
        if not parts:
            continue
        script = " && ".join(parts)
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        ran += 1
        outcome = Outcome(done.returncode, done.stdout, done.stderr)
        where = f"README.md:{command.line}: {script}"
        special = [check for pattern, _, check in EXPECTED_INSTEAD if pattern.search(script)]
        try:
            if special:
                for check in special:
                    check(outcome)
            elif command.shown and command.shown[0].startswith("steer: error:"):
                assert outcome.returncode in (1, 2, 3), outcome
            else:
                assert outcome.returncode == 0, outcome
            printed = outcome.stdout + "\n" + outcome.stderr
            for line in command.shown:
                # numbers to their last printed digit, +-1 (float32 noise across CPUs)
                assert shown_line_printed(line, printed), f"shown line not printed: {line!r}"
        except AssertionError as exc:
            failures.append(
                f"{where}\n  {exc}\n  stdout: {done.stdout[-1500:]}\n"
                f"  stderr: {done.stderr[-1500:]}"
            )
    assert ran >= 5
    assert not failures, "\n\n".join(failures)
    # The commands wrote only into the scratch copy.
    assert not (REPO / "vectors" / "sentiment-70b.safetensors").exists()


def test_the_ndif_key_is_exported_before_the_first_remote_command() -> None:
    """Issue 19 item 7: the Backends block ran `--backend remote` before `export NDIF_API_KEY`,
    so a reader following it in order got exit 3."""
    commands = [c.text for c in extract_commands(README.read_text(encoding="utf-8"))]
    remote = [i for i, t in enumerate(commands) if re.search(r"--backend remote(?!-)", t)]
    exports = [i for i, t in enumerate(commands) if t.startswith("export NDIF_API_KEY=")]
    assert remote and exports
    assert exports[0] < remote[0], (commands[exports[0]], commands[remote[0]])
