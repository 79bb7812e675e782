"""Property tests: `steer validate` survives generated and mutated recipes, and says where.

Every example is a broken (or, by chance, valid) recipe built by
tests/support/fuzz_strategies.py from the example recipes in recipes/: mutated as data (deleted
keys, wrong types, huge and non-finite numbers, odd unicode, deep nesting) and as text and bytes
(truncation, splices, YAML tags, alias bombs, duplicate keys, tabs, CRLF, a BOM, long lines,
random bytes, other encodings), with include graphs and file references gone wrong. Each runs
through `steer validate` in-process, in a fresh folder of a fake repository, and must satisfy
the properties checked by tests/support/fuzz_harness.py: no traceback, exit 0 or 1 (3 only for
an environment problem with --check-model), a FILE:LINE:COL on every rejection, parsable JSON,
nothing written.

The run is bounded for CI (about 450 examples, well under a minute on two cores); with CI set
it is derandomized, so it is the same on every run. scripts/fuzz_campaign.py runs the same
generators for tens of thousands of examples.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.fuzz_harness import FuzzRunner
from tests.support.fuzz_strategies import (
    FuzzCase,
    data_mutated,
    fuzz_cases,
    include_graphs,
    merge_bomb,
    raw_garbage,
    references,
    seed_texts,
    structural,
    text_mutated,
)

_COMMON = settings(
    deadline=None,  # examples differ in cost by design (an alias bomb vs an empty file)
    database=None,  # no .hypothesis/ folder in the repository
    print_blob=True,  # a failure prints the line that reproduces it
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)
settings.register_profile("recipe-fuzz-ci", _COMMON, derandomize=True)
settings.register_profile("recipe-fuzz-dev", _COMMON)
# Chosen per decorator rather than with settings.load_profile(), which would change the
# defaults of every other hypothesis test in the session.
PROFILE = settings.get_profile("recipe-fuzz-ci" if os.environ.get("CI") else "recipe-fuzz-dev")


def budget(examples: int) -> settings:
    return settings(PROFILE, max_examples=examples)


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzRunner]:
    # Module-scoped: hypothesis refuses function-scoped fixtures, and every case gets its own
    # folder inside this fake repository anyway.
    yield FuzzRunner(tmp_path_factory.mktemp("fuzz"), timeout=60.0, slow=20.0)


def _check(runner: FuzzRunner, case: FuzzCase) -> None:
    outcome = runner.run(case)
    assert outcome.ok, f"{case.label} {case.steps}\n{outcome.describe()}"


@budget(100)
@given(fuzz_cases(data_mutated()))
def test_data_level_mutations(runner: FuzzRunner, case: FuzzCase) -> None:
    _check(runner, case)


@budget(100)
@given(fuzz_cases(text_mutated()))
def test_text_and_byte_level_mutations(runner: FuzzRunner, case: FuzzCase) -> None:
    _check(runner, case)


@budget(30)
@given(fuzz_cases(structural()))
def test_alias_bombs_and_deep_nesting(runner: FuzzRunner, case: FuzzCase) -> None:
    _check(runner, case)


@budget(40)
@given(fuzz_cases(raw_garbage()))
def test_garbage_files(runner: FuzzRunner, case: FuzzCase) -> None:
    _check(runner, case)


@budget(60)
@given(fuzz_cases(include_graphs()))
def test_include_graphs(runner: FuzzRunner, case: FuzzCase) -> None:
    _check(runner, case)


@budget(80)
@given(fuzz_cases(references()))
def test_file_references(runner: FuzzRunner, case: FuzzCase) -> None:
    _check(runner, case)


@budget(40)
@given(fuzz_cases().map(lambda case: replace(case, fmt="json")))
def test_json_output_of_any_case(runner: FuzzRunner, case: FuzzCase) -> None:
    _check(runner, case)


# -- the harness itself --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
def test_every_example_recipe_passes_unchanged(runner: FuzzRunner, fmt: str) -> None:
    """The seeds are valid, so a failure of the properties above is the mutation's doing."""
    for name, text in seed_texts().items():
        outcome = runner.run(FuzzCase(text.encode(), fmt=fmt, label=name))
        assert outcome.ok, outcome.describe()
        assert outcome.exit_code == 0, outcome.describe()


def test_harness_reports_a_crash(runner: FuzzRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """A property checker that never fails proves nothing: make validation crash."""

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("recipe_engine.validate.validate_file", crash)
    outcome = runner.run(FuzzCase(b"version: 1\n"))
    assert "traceback" in outcome.kinds(), outcome.describe()


@pytest.mark.parametrize(
    ("stdout", "kind"),
    [
        ("r.yaml:0:1: /: bad [code]\n1 file checked: 0 valid, 1 invalid (1 error, 0 warnings)\n",
         "no-line"),
        ("/: bad [code]\n1 file checked: 0 valid, 1 invalid (1 error, 0 warnings)\n", "no-line"),
        ("r.yaml:1:1: /: two\nlines [code]\n1 file checked: 0 valid, 1 invalid "
         "(1 error, 0 warnings)\n", "no-line"),
        ("1 file checked: 0 valid, 1 invalid (1 error, 0 warnings)\n", "bad-output"),
    ],
)  # fmt: skip
def test_harness_reports_a_missing_location(stdout: str, kind: str) -> None:
    from tests.support.fuzz_harness import Outcome, check_output

    outcome = Outcome(["validate"], 1, stdout, "", 0.0)
    check_output(FuzzCase(b""), outcome)
    assert kind in outcome.kinds(), outcome.describe()


@budget(5)
@given(st.data())
def test_cases_round_trip_through_json(data: st.DataObject) -> None:
    case = data.draw(fuzz_cases())
    assert FuzzCase.from_json(case.to_json()) == case


def test_known_crashers(runner: FuzzRunner) -> None:
    """Inputs that once crashed `steer validate` (each fixed; unit tests pin the diagnostics)."""
    base = b"version: 1\nname: x\nmodel: {id: builtin:tiny-random}\nrun: {prompts: [hi]}\n"
    crashers = [
        base + b"x: !!int abc\n",
        base + b"x: !!bool maybe\n",
        base + b"x: !!float ''\n",
        base + b"x: 0b_\n",
        base + b"x: 1" + b"1" * 5000 + b"\n",
        base + b"!!int zz: 1\n",
        b"version: 1" + b"0" * 5000 + b"\n",
        base + b'include: "a\\0b"\n',
        base + b"include: " + b"x" * 300 + b"\n",
        base + b"x: a\x01b\n",
        base + b'vectors: {"a\\nb": {kind: random}}\ninterventions: [{vector: c, layers: 0}]\n',
        base.replace(b"[hi]", b'{file: "p\\0.txt"}'),
        base.replace(b"[hi]", b"{file: " + b"p" * 300 + b".txt}"),
        base.replace(b"[hi]", b"{file: loop.txt}"),
        base + b"include: loop.yaml\n",
        base + merge_bomb(12, 10).encode(),  # 10^12 pairs if expanded
        base + b"vectors: {a: {kind: random}, b: {kind: expr, expr: '" + b"-" * 1500 + b"a'}}\n",
    ]
    links = (("loop.txt", "loop.txt"), ("loop.yaml", "loop.yaml"))
    for raw in crashers:
        for fmt in ("text", "json", "github"):
            outcome = runner.run(FuzzCase(raw, links=links, fmt=fmt))
            assert outcome.ok, outcome.describe()
            assert outcome.exit_code == 1, outcome.describe()
