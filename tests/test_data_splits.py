"""Evaluation hygiene over the shipped data files (recipes/data/): what a setting is chosen on,
what a vector is built from and what a claim is measured on never overlap.

- In every shipped recipe, no line and no sentence of the files its vectors read is in the
  files its run prompts and metrics read (the gallery test's ablation text included).
- The tuning prompts (data/neutral-tune.txt, context-tune.txt, topic-tune.txt: where strengths
  and layers are chosen, by `steer eval` and tests/test_gallery_tuning.py; and
  topic-labelled.jsonl, where `steer condition` chose conditional-steering's threshold) share no
  line with any test prompt file a recipe runs, nor with a prompt written in a recipe (inline
  prompts are test prompts too).
- training/prompts.py's held-out lists, which "no vector ever sees", are the shipped files'
  contents, and no vector data file contains one of their prompts (or a held-out text's
  sentence).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from recipe_engine.api import load_recipe
from recipe_engine.format.file_fields import file_fields
from recipe_engine.format.prompts import ChatPrompt
from recipe_engine.format.vectors import ProbeVector
from recipe_engine.training import prompts as P
from tests.conftest import RECIPES

DATA = RECIPES / "data"
TUNING = {"neutral-tune.txt", "context-tune.txt", "topic-tune.txt", "topic-labelled.jsonl"}
VECTOR_DATA = ["positive.txt", "negative.txt", "sentiment.jsonl", "calibration.jsonl"]
VECTOR_DATA += ["food.txt", "tech.txt"]
# tests/test_gallery.py measures the ablation recipes' cost on this text too
EXTRA_EVALUATION = {
    "head-ablation.yaml": ["heldout-text.txt"],
    "mean-ablation.yaml": ["heldout-text.txt"],
}


def _texts(record: dict[str, object]) -> list[str]:
    """The text of a JSONL record: `text`, or every turn's content of a conversation."""
    if "messages" in record:
        return [str(m["content"]) for m in record["messages"]]  # type: ignore[attr-defined]
    return [str(record["text"])]


# Topic data drawn from the embedded model's closed corpus grammar (scripts/make_topic_data.py:
# a neutral frame sentence, then "The NOUN was"): every food prompt ends on one of a handful of
# "The NOUN was" sentences, so sentence-level disjointness from the condition vector's texts is
# impossible by construction; the whole prompts are checked distinct instead.
TEMPLATE_DATA = {"conditional-steering.yaml"}


def lines(path: Path) -> list[str]:
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.strip():
            out += _texts(json.loads(raw)) if path.suffix == ".jsonl" else [raw.strip()]
    return out


def sentences(texts: list[str]) -> set[str]:
    return {s.strip() for t in texts for s in re.split(r"(?<=[.!?])\s+", t) if s.strip()}


def _files(path: Path) -> tuple[set[Path], set[Path]]:
    """(files the recipe's vectors read, files its run prompts and metrics read)."""
    loaded = load_recipe(path, check_model=False)
    build: set[Path] = set()
    evaluate: set[Path] = set()
    for field in file_fields(loaded.recipe):
        owner = field.owner
        name = owner.data if isinstance(owner, ProbeVector) else getattr(owner, "file", None)
        pointer = field.pointer
        if name is None or not isinstance(name, str) or name.endswith(".safetensors"):
            continue
        base = loaded.document.base_dir(
            pointer + ("" if isinstance(owner, ProbeVector) else "/file")
        )
        target = (base / name).resolve()
        (build if pointer.startswith("/vectors") else evaluate).add(target)
    evaluate |= {DATA / n for n in EXTRA_EVALUATION.get(path.name, [])}
    return build, evaluate


def _inline(source: object) -> list[str]:
    """The texts written in the recipe itself: a prompt, a list of them, a conversation."""
    if isinstance(source, str):
        return [source]
    if isinstance(source, list):
        return [t for item in source for t in _inline(item)]
    if isinstance(source, ChatPrompt):
        return [m.content for m in source.messages]
    return []  # a file (read by _files) or a probe's data file


def _inline_texts(path: Path) -> tuple[list[str], list[str]]:
    """(texts written in the recipe that its vectors read, those its run and metrics read)."""
    loaded = load_recipe(path, check_model=False)
    build: list[str] = []
    evaluate: list[str] = []
    for field in file_fields(loaded.recipe):
        texts = _inline(field.owner)
        (build if field.pointer.startswith("/vectors") else evaluate).extend(texts)
    return build, evaluate


RECIPE_FILES = sorted(p for p in RECIPES.glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda p: p.name)
def test_no_recipe_measures_on_what_its_vectors_were_built_from(path: Path) -> None:
    build, evaluate = _files(path)
    inline_built, inline_measured = _inline_texts(path)
    built = [t for f in build for t in lines(f)] + inline_built
    measured = [t for f in evaluate for t in lines(f)] + inline_measured
    assert not set(built) & set(measured)
    if path.name in TEMPLATE_DATA:
        return  # whole prompts are distinct (above); their sentences cannot be
    assert not sentences(built) & sentences(measured), sorted(
        sentences(built) & sentences(measured)
    )


def test_tuning_prompts_are_disjoint_from_every_test_prompt_file() -> None:
    tested = {f for path in RECIPE_FILES for f in _files(path)[1]}
    assert not {f.name for f in tested} & TUNING, "a recipe runs on the tuning prompts"
    tuning = {t for name in TUNING for t in lines(DATA / name)}
    for f in tested:
        assert not tuning & set(lines(f)), f.name
    for path in RECIPE_FILES:
        assert not tuning & set(_inline_texts(path)[1]), path.name
    assert len(tuning) >= 12


def test_inline_prompts_are_seen() -> None:
    """The inline check above reads what it should: persistent-edit's prompts, held-out ones."""
    inline = _inline_texts(RECIPES / "persistent-edit.yaml")[1]
    assert inline == ["The weather today is", "My trip to the city was", "The new phone is"]
    assert set(inline) <= set(P.HELDOUT_NEUTRAL)


def test_held_out_lists_are_the_shipped_files_and_no_vector_data_holds_them() -> None:
    assert lines(DATA / "neutral.txt") == P.HELDOUT_NEUTRAL
    assert lines(DATA / "context-positive.txt") == P.CONTEXT_POSITIVE
    assert lines(DATA / "heldout-text.txt") == P.HELDOUT_TEXT
    vector_lines = {t for name in VECTOR_DATA for t in lines(DATA / name)}
    held_out = P.HELDOUT_NEUTRAL + P.CONTEXT_POSITIVE + P.CONTEXT_NEGATIVE + P.HELDOUT_TEXT
    held_out += P.CONTEXT_FOOD + P.CONTEXT_TECH + P.HELDOUT_TOPIC
    assert not vector_lines & set(held_out), sorted(vector_lines & set(held_out))
    assert not sentences(list(vector_lines)) & sentences(P.HELDOUT_TEXT)


def test_tuning_lists_are_the_shipped_files_and_disjoint_from_every_held_out_list() -> None:
    assert lines(DATA / "neutral-tune.txt") == P.TUNE_NEUTRAL
    assert lines(DATA / "context-tune.txt") == P.TUNE_CONTEXT_POSITIVE
    assert lines(DATA / "topic-tune.txt") == P.TUNE_TOPIC
    tuning = P.TUNE_NEUTRAL + P.TUNE_CONTEXT_POSITIVE + P.TUNE_CONTEXT_NEGATIVE + P.TUNE_TOPIC
    tuning += P.TUNE_CONTEXT_FOOD + P.TUNE_CONTEXT_TECH
    held_out = P.HELDOUT_NEUTRAL + P.CONTEXT_POSITIVE + P.CONTEXT_NEGATIVE + P.HELDOUT_TOPIC
    held_out += P.CONTEXT_FOOD + P.CONTEXT_TECH + P.HELDOUT_TEXT
    assert not set(tuning) & set(held_out)
    # complete sentences only: a prompt's open end ("I think the") is a frame, not content
    shared = {x for x in sentences(tuning) & sentences(held_out) if x[-1] in ".!?"}
    assert not shared, shared
