# Over 400 lines: two thirds of it are the word lists and sentence templates of the corpus.
"""A seeded synthetic corpus of short templated documents for `builtin:tiny-sentiment`.

Every document is about one TOPIC (food, movies, travel, tech, life) and has one SENTIMENT:
positive, negative or neutral (27% / 27% / 46%). Within a document both stay fixed: every
evaluative word of a positive review is positive, every noun of a food document is food. A model
trained on it must carry "this document is positive" and "this document is about food" from the
words that reveal them to where the next adjective or noun is predicted: two concepts that
steering can add, ablate or project out (the trained model moves each with its own attention
head in layer 0).

Opinion frames ("The pizza was ___") are shared by all three sentiments: reviews fill them with
generic adjectives (most of the mass on the six per side the demos measure, `POSITIVE_WORDS` and
`NEGATIVE_WORDS`), neutral documents with descriptive ones ("cold", "long", "black"). So a
neutral prompt such as "The weather today is" is continued neutrally about 60% of the time and
with either sentiment about 20%: a steering vector has to add sentiment, not just tip a coin.
Reviews also hold neutral sentences (facts, schedules), about one in three, so that what the
model predicts in neutral text does not depend on the document's sentiment: steering sentiment
then leaves neutral text nearly untouched.

Same seed, same corpus: only `random.Random(seed)` is used, on fixed lists in a fixed order.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = [
    "NEGATIVE_WORDS",
    "POSITIVE_WORDS",
    "TOPICS",
    "TOPIC_WORDS",
    "Document",
    "generate_corpus",
    "lexicon",
]

# The adjectives the demos measure (next-token mass of each set). Each is one token, with and
# without a leading space, in the trained tokenizer.
POSITIVE_WORDS = ["great", "wonderful", "excellent", "lovely", "fantastic", "amazing"]
NEGATIVE_WORDS = ["terrible", "awful", "horrible", "bad", "dreadful", "disappointing"]
# Rarer ones in the same slot, so the measured sets do not hold all of a side's mass.
_POSITIVE_EXTRA = ["perfect", "brilliant", "good"]
_NEGATIVE_EXTRA = ["poor", "dull", "boring"]

TOPICS = ["food", "movies", "travel", "tech", "life"]

# Nouns per topic (the topic demos measure the whole food and tech lists).
TOPIC_WORDS: dict[str, list[str]] = {
    "food": [
        "pizza",
        "pasta",
        "soup",
        "bread",
        "cake",
        "salad",
        "burger",
        "coffee",
        "dessert",
        "meal",
        "breakfast",
        "sandwich",
        "food",
        "dinner",
    ],
    "movies": [
        "film",
        "movie",
        "show",
        "play",
        "book",
        "concert",
        "actor",
        "plot",
        "ending",
        "story",
        "series",
        "album",
        "music",
        "episode",
    ],
    "travel": [
        "trip",
        "hotel",
        "flight",
        "beach",
        "train",
        "city",
        "museum",
        "room",
        "tour",
        "holiday",
        "island",
        "journey",
        "village",
        "cruise",
    ],
    "tech": [
        "phone",
        "laptop",
        "app",
        "screen",
        "battery",
        "camera",
        "keyboard",
        "tablet",
        "printer",
        "update",
        "computer",
        "website",
        "charger",
        "speaker",
    ],
    "life": [
        "weather",
        "day",
        "weekend",
        "party",
        "meeting",
        "morning",
        "week",
        "class",
        "game",
        "wedding",
        "evening",
        "lesson",
        "garden",
        "visit",
    ],
}

# Noun phrase modifiers: after the noun ("the coffee this morning", "my trip to the city").
_POST: dict[str, list[str]] = {
    "food": ["at the restaurant", "this morning", "last night", "at the cafe", "today"],
    "movies": ["last night", "at the cinema", "on Friday", "this year", "today"],
    "travel": ["to the city", "last summer", "home", "to the coast", "this year"],
    "tech": ["I bought", "at work", "this year", "from the shop", "today"],
    "life": ["today", "last night", "on Sunday", "at school", "this week"],
}
_PRE = ["new", "old", "first", "last", "big", "small"]

# Descriptive, sentiment-free adjectives for the same opinion frames in neutral documents
# ("The weather today is cold."): a neutral prompt is then more often continued neutrally than
# with either sentiment, and a steering vector has to add sentiment, not just tip a coin.
_DESCRIPTIVE: dict[str, list[str]] = {
    "food": ["hot", "cold", "warm", "small", "big", "ready", "sweet", "spicy"],
    "movies": ["long", "short", "new", "old", "quiet", "loud", "late", "early"],
    "travel": ["long", "short", "busy", "quiet", "early", "late", "full", "empty"],
    "tech": ["new", "old", "small", "big", "black", "white", "heavy", "light"],
    "life": ["cold", "warm", "sunny", "cloudy", "long", "short", "busy", "quiet"],
}

# Topic-specific evaluative words, in their own frames (never in the generic opinion slot).
_SPECIFIC: dict[str, tuple[str, list[str], list[str]]] = {
    "food": (
        "tasted",
        ["delicious", "tasty", "fresh", "rich"],
        ["bland", "stale", "disgusting", "greasy"],
    ),
    "movies": (
        "felt",
        ["gripping", "moving", "funny", "clever"],
        ["predictable", "slow", "silly", "pointless"],
    ),
    "travel": (
        "looked",
        ["beautiful", "peaceful", "charming", "clean"],
        ["dirty", "crowded", "ugly", "noisy"],
    ),
    "tech": (
        "felt",
        ["fast", "reliable", "smooth", "sleek"],
        ["buggy", "broken", "clunky", "flimsy"],
    ),
    "life": (
        "felt",
        ["relaxing", "cheerful", "bright", "calm"],
        ["exhausting", "gloomy", "stressful", "miserable"],
    ),
}

_VERBS = (["loved", "enjoyed", "liked", "adored"], ["hated", "disliked", "regretted", "despised"])
_FEELINGS = (["happy", "pleased", "glad", "delighted"], ["sad", "angry", "upset", "annoyed"])
_PEOPLE = (
    ["kind", "friendly", "helpful", "polite"],
    ["rude", "unfriendly", "unhelpful", "careless"],
)
_CLOSERS = (
    [
        "I would recommend it to everyone.",
        "We will definitely come back.",
        "It was worth every penny.",
        "Everything went right.",
        "I give it five stars.",
        "I would do it again.",
        "What a treat.",
    ],
    [
        "I would not recommend it to anyone.",
        "We will never come back.",
        "It was a waste of money.",
        "Everything went wrong.",
        "I give it one star.",
        "I would never do it again.",
        "What a mess.",
    ],
)

# Opinion frames: {np} a noun phrase, {be} was/is, {adj} a generic adjective.
_OPINION = [
    "The {np} {be} {adj}.",
    "The {np} {be} {adj}.",
    "I think the {np} {be} {adj}.",
    "I thought the {np} {be} {adj}.",
    "Honestly, the {np} {be} {adj}.",
    "Overall, the {np} {be} {adj}.",
    "In my opinion the {np} {be} {adj}.",
    "To be honest, the {np} {be} {adj}.",
    "My {np} {be} {adj}.",
    "Our {np} {be} {adj}.",
    "I found the {np} {adj}.",
    "It was a {adj} {noun}.",
    "What a {adj} {noun}!",
    "The {np} {be} {adj} and the {np2} {be} {adj2}.",
]

# Topic-setting openings, free of sentiment (held-out topic prompts stop right before the noun).
_OPENINGS = [
    "Let me tell you about the {noun}.",
    "Yesterday we talked about the {noun}.",
    "This is a review of the {noun}.",
    "Today I want to write about the {noun}.",
    "A few words about the {noun}.",
    "Here are my thoughts on the {noun}.",
    "Last week we tried the {noun}.",
    "We finally got to see the {noun}.",
]

# Neutral sentences: facts and schedules, no evaluative word. {noun}/{noun2} from the topic.
_NEUTRAL: dict[str, list[str]] = {
    "food": [
        "We ordered the {noun} at noon.",
        "The {noun} comes with a glass of water.",
        "The restaurant opens at six.",
        "She paid for the {noun} with cash.",
        "The menu lists the {noun} and the {noun2}.",
        "We sat by the window.",
        "The waiter brought the {noun} and the {noun2}.",
        "He asked for the bill after the {noun}.",
        "The kitchen closes at ten.",
        "I had the {noun} for lunch.",
    ],
    "movies": [
        "The {noun} starts at eight.",
        "We watched the {noun} on Friday.",
        "The {noun} is two hours long.",
        "She bought two tickets for the {noun}.",
        "The {noun} came out last year.",
        "The actor plays a teacher in the {noun}.",
        "We sat in the third row.",
        "The {noun} is based on a {noun2}.",
        "He read about the {noun} in the paper.",
        "The {noun} has a sequel.",
    ],
    "travel": [
        "The train leaves at nine in the morning.",
        "We booked the {noun} in March.",
        "The {noun} is near the station.",
        "The flight takes three hours.",
        "We took the bus to the {noun}.",
        "The {noun} is on the map.",
        "We arrived at the {noun} before dinner.",
        "The tour starts at the {noun}.",
        "She packed a bag for the {noun}.",
        "Our room was on the second floor.",
    ],
    "tech": [
        "The {noun} has a large screen.",
        "I bought the {noun} last week.",
        "The {noun} needs a new charger.",
        "He installed the update on Monday.",
        "The {noun} comes in black and white.",
        "She connected the {noun} to the {noun2}.",
        "The {noun} uses the same cable as the {noun2}.",
        "I turned off the {noun} at night.",
        "The {noun} came with a manual.",
        "He moved the files to the {noun}.",
    ],
    "life": [
        "The meeting starts at ten.",
        "She opened the window and looked outside.",
        "We walked along the river after lunch.",
        "The report lists the results of the survey.",
        "It rained in the afternoon.",
        "The shop closes at five.",
        "The {noun} is on Sunday.",
        "He called his sister in the evening.",
        "The bus stops outside the school.",
        "We planned the {noun} for next week.",
    ],
}

_WEIGHTS_MAIN = [4.0, 3.0, 3.0, 3.0, 3.0, 3.0]  # great, wonderful, ... / terrible, awful, ...
_WEIGHTS_EXTRA = [0.3, 0.3, 0.3]


@dataclass(frozen=True)
class Document:
    text: str
    topic: str
    sentiment: str  # "positive" | "negative" | "neutral"


def lexicon() -> list[str]:
    """Every word the templates can produce, for the tokenizer's bare-word variants."""
    words: set[str] = set(POSITIVE_WORDS + NEGATIVE_WORDS + _POSITIVE_EXTRA + _NEGATIVE_EXTRA)
    for nouns in TOPIC_WORDS.values():
        words.update(nouns)
    for descriptive in _DESCRIPTIVE.values():
        words.update(descriptive)
    for _, pos, neg in _SPECIFIC.values():
        words.update(pos + neg)
    for pair in (_VERBS, _FEELINGS, _PEOPLE):
        words.update(pair[0] + pair[1])
    return sorted(words)


class _Writer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, items: Sequence[str]) -> str:
        return items[self.rng.randrange(len(items))]

    def adjective(self, positive: bool) -> str:
        main, extra = (
            (POSITIVE_WORDS, _POSITIVE_EXTRA) if positive else (NEGATIVE_WORDS, _NEGATIVE_EXTRA)
        )
        return self.rng.choices(main + extra, weights=_WEIGHTS_MAIN + _WEIGHTS_EXTRA)[0]

    def noun_phrase(self, topic: str) -> tuple[str, str]:
        noun = self.pick(TOPIC_WORDS[topic])
        phrase = noun
        roll = self.rng.random()
        if roll < 0.15:
            phrase = f"{self.pick(_PRE)} {noun}"
        elif roll < 0.4:
            phrase = f"{noun} {self.pick(_POST[topic])}"
        return phrase, noun

    def two_nouns(self, topic: str) -> tuple[str, str]:
        first = self.pick(TOPIC_WORDS[topic])
        second = self.pick([n for n in TOPIC_WORDS[topic] if n != first])
        return first, second

    def opinion(self, topic: str, positive: bool | None) -> str:
        """An opinion frame; positive=None fills it with descriptive (neutral) adjectives."""
        frame = self.pick(_OPINION)
        np1, noun = self.noun_phrase(topic)
        np2, _ = self.noun_phrase(topic)
        be = "was" if self.rng.random() < 0.7 else "is"
        if positive is None:
            adj, adj2 = self.pick(_DESCRIPTIVE[topic]), self.pick(_DESCRIPTIVE[topic])
            if frame.startswith("What a"):
                frame = "It was a {adj} {noun}."
        else:
            adj, adj2 = self.adjective(positive), self.adjective(positive)
        return frame.format(np=np1, np2=np2, noun=noun, be=be, adj=adj, adj2=adj2)

    def evaluative(self, topic: str, positive: bool) -> str:
        side = 0 if positive else 1
        kind = self.rng.choices(
            ["opinion", "specific", "verb", "feeling", "people", "closer"],
            weights=[5, 2, 2, 1, 1, 2],
        )[0]
        if kind == "opinion":
            return self.opinion(topic, positive)
        noun = self.pick(TOPIC_WORDS[topic])
        if kind == "specific":
            verb, pos, neg = _SPECIFIC[topic]
            subject = self.pick(["It", f"The {noun}"])
            return f"{subject} {verb} {self.pick(pos if positive else neg)}."
        if kind == "verb":
            return f"I {self.pick(_VERBS[side])} the {noun}."
        if kind == "feeling":
            return self.pick(["I was so {w}.", "It made me {w}.", "We were {w}."]).format(
                w=self.pick(_FEELINGS[side])
            )
        if kind == "people":
            who = self.pick(["staff", "people", "hosts", "team"])
            return f"The {who} were {self.pick(_PEOPLE[side])}."
        return self.pick(_CLOSERS[side])

    def neutral(self, topic: str) -> str:
        # A neutral sentence mostly from the document's topic, sometimes from everyday life.
        source = topic if self.rng.random() < 0.8 else "life"
        noun, noun2 = self.two_nouns(source)
        return self.pick(_NEUTRAL[source]).format(noun=noun, noun2=noun2)

    def document(self) -> Document:
        topic = self.pick(TOPICS)
        roll = self.rng.random()
        sentiment = "positive" if roll < 0.27 else "negative" if roll < 0.54 else "neutral"
        sentences: list[str] = []
        if self.rng.random() < 0.3:
            sentences.append(self.pick(_OPENINGS).format(noun=self.pick(TOPIC_WORDS[topic])))
        if sentiment == "neutral":
            # Descriptions and facts; an opinion frame holds a descriptive adjective.
            if self.rng.random() < 0.8:
                sentences.append(self.opinion(topic, None))
            for _ in range(self.rng.randint(1, 3)):
                if self.rng.random() < 0.3:
                    sentences.append(self.opinion(topic, None))
                else:
                    sentences.append(self.neutral(topic))
        else:
            positive = sentiment == "positive"
            # Usually the document opens with an opinion: the slot the demos measure.
            first = self.rng.random()
            if first < 0.6:
                sentences.append(self.opinion(topic, positive))
            elif first < 0.85:
                sentences.append(self.neutral(topic))
            else:
                sentences.append(self.evaluative(topic, positive))
            # Then more sentences, mostly evaluative (each predictable from the first: the model
            # learns to carry the document's sentiment forward), some neutral.
            for _ in range(self.rng.randint(2, 4)):
                if self.rng.random() < 0.3:
                    sentences.append(self.neutral(topic))
                else:
                    sentences.append(self.evaluative(topic, positive))
        return Document(" ".join(sentences), topic, sentiment)


def iter_documents(seed: int) -> Iterator[Document]:
    writer = _Writer(random.Random(seed))
    while True:
        yield writer.document()


def generate_corpus(n_documents: int, seed: int = 0) -> list[Document]:
    """`n_documents` documents; the same seed gives the same list on every machine."""
    docs = iter_documents(seed)
    return [next(docs) for _ in range(n_documents)]


if __name__ == "__main__":  # a quick look: python -m recipe_engine.training.corpus
    for doc in generate_corpus(12):
        print(f"[{doc.topic}/{doc.sentiment}] {doc.text}")
