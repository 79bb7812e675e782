"""One table of common flags that every subcommand follows (README, CLI section), held by
walking the argparse tree; and the behaviours behind it: usage errors before any work, the same
missing-path message and exit code everywhere, --debug after the command, did-you-mean."""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import pytest

from recipe_engine.cli.main import build_parser, main
from recipe_engine.sweep import DIRECTIONS
from tests.conftest import RECIPES, REPO

RECIPE = str(RECIPES / "activation-addition.yaml")

# The table of the README's CLI section, restated here as the reference the parser is held to.
RECIPE_COMMANDS = ("validate", "run", "explain", "sweep", "condition", "vectors build", "eval")
NO_CACHE_COMMANDS = ("run", "explain", "sweep", "condition", "vectors build", "eval")
OUT_COMMANDS = ("run", "sweep", "condition", "vectors build", "schema", "export")
ALL_COMMANDS = (*RECIPE_COMMANDS, "vectors inspect", "serve", "schema", "ls", "cp", "export")
ALL_COMMANDS += ("test", "lock")


def _subparser(words: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in words.split():
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[word]
    return parser


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {o: a for a in parser._actions for o in a.option_strings}


def test_every_command_of_the_tree_is_in_the_table() -> None:
    """A new subcommand must be added to the table (and so to the README) to pass."""

    def leaves(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return [prefix.strip()]
        return [n for name, p in subs[0].choices.items() for n in leaves(p, f"{prefix} {name}")]

    assert sorted(leaves(build_parser(), "")) == sorted(ALL_COMMANDS)


@pytest.mark.parametrize("command", RECIPE_COMMANDS)
def test_recipe_commands_share_the_common_flags(command: str) -> None:
    options = _options(_subparser(command))
    expected = {
        "--set": ("overrides", "append", None),
        "--allow-outside-root": ("allow_outside_root", "store_true", None),
        "--format": ("format", "store", None),
        "--backend": ("backend", "_BackendAction", ("local", "remote", "remote-local", "vllm")),
        "--debug": ("debug", "store_true", None),
    }
    for flag, (dest, kind, choices) in expected.items():
        assert flag in options, f"steer {command} has no {flag}"
        action = options[flag]
        assert action.dest == dest, (command, flag)
        action_kind = {
            argparse._AppendAction: "append",
            argparse._StoreTrueAction: "store_true",
            argparse._StoreAction: "store",
        }.get(type(action), type(action).__name__)
        assert action_kind == kind, (command, flag, type(action))
        if choices is not None:
            assert tuple(action.choices or ()) == choices
    fmt = options["--format"]
    assert fmt.default == "text" and {"text", "json"} <= set(fmt.choices or ())
    assert options["--set"].metavar == "PATH=VALUE"
    assert options["--set"].help == _options(_subparser("run"))["--set"].help


@pytest.mark.parametrize("command", NO_CACHE_COMMANDS)
def test_no_cache_everywhere_vectors_are_built(command: str) -> None:
    action = _options(_subparser(command))["--no-cache"]
    assert isinstance(action, argparse._StoreTrueAction) and action.dest == "no_cache"


@pytest.mark.parametrize("command", OUT_COMMANDS)
def test_out_is_one_flag_whose_meaning_each_command_states(command: str) -> None:
    parser = _subparser(command)
    action = _options(parser)["--out"]
    assert action.dest == "out"
    kind = parser.get_default("out_kind")
    assert kind, f"steer {command} --out states no kind"
    assert "PATH is" in (action.help or "") or "is a" in (action.help or "")


def test_debug_is_accepted_on_every_command() -> None:
    for command in ALL_COMMANDS:
        assert "--debug" in _options(_subparser(command)), command


def test_help_shows_defaults() -> None:
    text = _subparser("sweep").format_help()
    assert re.search(r"--kl-budget KL_BUDGET\s+.*\(default:\s+0\.5\)", text, re.S)
    assert "(default: 0)" in text  # --intervention: a zero default is still shown
    assert "(default: text)" in text


def test_sweep_direction_choices_are_the_engines() -> None:
    assert tuple(_options(_subparser("sweep"))["--direction"].choices or ()) == DIRECTIONS


def test_schema_out_and_its_deprecated_alias(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for flag in ("--out", "--output", "-o"):
        target = tmp_path / f"schema{flag.strip('-')}.json"
        assert main(["schema", flag, str(target)]) == 0
        assert json.loads(target.read_text())["title"]
    assert _options(_subparser("schema"))["--output"].help == argparse.SUPPRESS


# -- behaviours --------------------------------------------------------------------------------


def test_debug_after_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--debug", "schema", "--check"], ["schema", "--check", "--debug"]):
        parsed = build_parser().parse_args(argv)
        assert parsed.debug is True, argv
    assert build_parser().parse_args(["schema"]).debug is False


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["sweep", RECIPE, "--layers", "0", "--strengths", "1", "--kl-budgt", "3"], "--kl-budget"),
        (["run", RECIPE, "--allow-outside-rot"], "--allow-outside-root"),
        (["validate", RECIPE, "--chek-model"], "--check-model"),
        (["vectors", "inspect", "x.safetensors", "--modle", "m"], "--model"),
        (["rnu", RECIPE], "'run'"),
    ],
)
def test_a_misspelled_flag_or_command_gets_did_you_mean(
    argv: list[str], hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"did you mean {hint}?" in err, err


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "{missing}"],
        ["run", "{missing}"],
        ["explain", "{missing}"],
        ["sweep", "{missing}", "--layers", "0", "--strengths", "1"],
        ["condition", "{missing}", "--data", "{missing}"],
        ["condition", RECIPE, "--data", "{missing}"],
        ["vectors", "build", "{missing}", "--out", "{tmp}/v.safetensors"],
        ["vectors", "inspect", "{missing}"],
    ],
)
def test_a_missing_path_is_the_same_usage_error_everywhere(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope.yaml")
    filled = [a.format(missing=missing, tmp=tmp_path) for a in argv]
    assert main(filled) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"steer: error: {missing}: no such file or directory"]


def test_validate_json_lists_a_missing_path_among_several(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope.yaml")
    assert main(["validate", RECIPE, missing, "--format", "json"]) == 2
    out = capsys.readouterr().out
    payload = json.loads(out)
    assert [f["path"] for f in payload["files"]][1] == missing
    entry = payload["files"][1]
    assert entry["valid"] is False and entry["diagnostics"][0]["code"] == "no-such-file"
    assert payload["files"][0]["valid"] is True
    assert payload["summary"]["files"] == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # sweep: a directory; a name that looks like one of its files is a mistake
        (
            ["sweep", RECIPE, "--layers", "0", "--strengths", "1", "--out", "{tmp}/x.json"],
            "directory",
        ),
        (["sweep", RECIPE, "--layers", "0", "--strengths", "1", "--out", "{file}"], "is a file"),
        # run: a .json file, or a directory
        (["run", RECIPE, "--out", "{file}"], "is a file"),
        (["run", RECIPE, "--out", "{file}/r.json"], "is a file, not a directory"),
        (["run", RECIPE, "--out", "{dir}.json"], "is a directory"),
        # vectors build: a .safetensors file
        (["vectors", "build", RECIPE, "--out", "{tmp}/v.bin"], "must end in .safetensors"),
        (["vectors", "build", RECIPE, "--out", "{dir}.safetensors"], "is a directory"),
        (["schema", "--out", "{tmp}"], "is a directory"),
    ],
)
def test_a_bad_out_is_a_usage_error_before_any_work(
    argv: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir.json").mkdir()
    (tmp_path / "dir.safetensors").mkdir()

    def no_work(*args: object, **kw: object) -> None:
        raise AssertionError("the command started working before checking --out")

    monkeypatch.setattr("recipe_engine.api.load_recipe", no_work)
    monkeypatch.setattr("recipe_engine.pipeline.load_recipe", no_work)  # sweep's cells
    filled = [a.format(tmp=tmp_path, file=tmp_path / "file", dir=tmp_path / "dir") for a in argv]
    assert main(filled) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("steer: error: --out ") and message in err[0], err


def test_run_out_json_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "report.json"
    assert main(["run", str(RECIPES / "activation-addition.yaml"), "--out", str(target)]) == 0
    assert target.is_file() and json.loads(target.read_text())["recipe"]["name"]


def test_no_cache_flag_turns_the_cache_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from recipe_engine.cli.common_flags import apply_no_cache

    # setenv first: monkeypatch then restores the variable's original state (absent, in
    # tests) after apply_no_cache has set it, so no later test runs without the cache.
    monkeypatch.setenv("STEER_NO_CACHE", "")
    monkeypatch.delenv("STEER_NO_CACHE")
    apply_no_cache(build_parser().parse_args(["explain", RECIPE]))
    assert "STEER_NO_CACHE" not in os.environ
    apply_no_cache(build_parser().parse_args(["explain", RECIPE, "--no-cache"]))
    assert os.environ["STEER_NO_CACHE"] == "1"


def test_validate_takes_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", RECIPE, "--set", "interventions.0.strenght=2"])
    assert code == 1
    assert "unknown key 'strenght'" in capsys.readouterr().out


def test_the_readme_table_lists_every_common_flag() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Common flags") :]
    for flag in ("--set", "--format", "--out", "--allow-outside-root", "--backend", "--no-cache"):
        assert f"`{flag}" in section, flag
    assert "`--debug`" in section
