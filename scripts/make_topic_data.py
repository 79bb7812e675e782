"""Write the topic data of the conditional-steering example (recipes/data/topic-*.{txt,jsonl}).

Texts follow the embedded model's corpus templates (recipe_engine/training/corpus.py: neutral
sentences per topic, then "The NOUN was"), drawn with their own seed, so they are held out from
training. Food is label 1, every other topic (movies, travel, tech, everyday life) label 0.

    python scripts/make_topic_data.py            # rewrites the files (deterministic)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from recipe_engine.training.corpus import _NEUTRAL, TOPIC_WORDS, TOPICS

DATA = Path(__file__).resolve().parents[1] / "recipes" / "data"


def _sentence(rng: random.Random, topic: str) -> str:
    noun, noun2 = rng.sample(TOPIC_WORDS[topic], 2)
    text = rng.choice(_NEUTRAL[topic]).format(noun=noun, noun2=noun2)
    return f"{text} The {rng.choice(TOPIC_WORDS[topic])} was"


def _texts(rng: random.Random, topic: str, n: int, seen: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        text = _sentence(rng, topic)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def main() -> None:
    rng = random.Random(15)
    seen: set[str] = set()
    others = [t for t in TOPICS if t != "food"]
    # The condition vector: food vs the other topics (its own texts).
    food_vec = _texts(rng, "food", 16, seen)
    other_vec = [t for topic in others for t in _texts(rng, topic, 4, seen)]
    # Labelled prompts for `steer condition`: 40 food, 40 others (10 per topic).
    labelled = [(t, 1) for t in _texts(rng, "food", 40, seen)]
    labelled += [(t, 0) for topic in others for t in _texts(rng, topic, 10, seen)]
    rng.shuffle(labelled)
    # The run prompts: 6 food, 8 others (2 per topic).
    prompts = _texts(rng, "food", 6, seen) + [
        t for topic in others for t in _texts(rng, topic, 2, seen)
    ]
    (DATA / "topic-food.txt").write_text("\n".join(food_vec) + "\n")
    (DATA / "topic-other.txt").write_text("\n".join(other_vec) + "\n")
    lines = [json.dumps({"text": t, "label": y}) for t, y in labelled]
    (DATA / "topic-labelled.jsonl").write_text("\n".join(lines) + "\n")
    (DATA / "topic-prompts.txt").write_text("\n".join(prompts) + "\n")


if __name__ == "__main__":
    main()
