"""The word-level text metrics against values worked out by hand (evaluate/text_metrics.py)."""

from __future__ import annotations

import math

import pytest

from recipe_engine.evaluate.text_metrics import distinct_n, longest_repeat, phrase_rate, words
from recipe_engine.report.metrics import MetricValue


def test_words_are_lowercase_runs_of_letters_digits_apostrophes() -> None:
    assert words("The cat's HAT, 2 cats!") == ["the", "cat's", "hat", "2", "cats"]


def test_distinct_n_by_hand() -> None:
    tokens = ["the", "cat", "the", "cat", "sat"]
    # bigrams: (the cat) (cat the) (the cat) (cat sat): 3 unique of 4
    assert distinct_n(tokens, 2) == pytest.approx(3 / 4)
    # unigrams: the, cat, sat unique of 5
    assert distinct_n(tokens, 1) == pytest.approx(3 / 5)
    assert math.isnan(distinct_n(["one"], 2))


def test_longest_repeat_by_hand() -> None:
    assert longest_repeat(["a", "b", "c", "a", "b", "c"]) == 3  # "a b c" twice
    assert longest_repeat(["a", "b", "a", "b", "a"]) == 3  # "a b a" twice, overlapping
    assert longest_repeat(["a", "b", "c", "d"]) == 0
    assert longest_repeat(["x", "y", "x"]) == 1


def test_phrase_rate_by_hand() -> None:
    tokens = words("It was great, really great and very good.")  # 8 words
    assert phrase_rate(tokens, ["great"]) == pytest.approx(2 / 8)
    assert phrase_rate(tokens, ["great", "very good"]) == pytest.approx(3 / 8)
    assert phrase_rate(tokens, ["grea"]) == 0  # whole words only
    assert math.isnan(phrase_rate([], ["great"]))


def test_control_band_and_distance_by_hand() -> None:
    value = MetricValue("m", "concept", 0.0, 5.0, {}, controls=[1.0, 2.0, 3.0])
    assert value.control_mean == pytest.approx(2.0)
    assert value.control_sd == pytest.approx(1.0)  # sample sd of 1, 2, 3
    assert value.control_z == pytest.approx(3.0)
    flat = MetricValue("m", "concept", 0.0, 2.0, {}, controls=[2.0, 2.0])
    assert flat.control_z == 0.0
    json = value.to_json()["controls"]
    assert json["n"] == 3 and json["z"] == pytest.approx(3.0)
