"""How the embedded default model `builtin:tiny-sentiment` is made, reproducibly, offline.

    corpus.py   a seeded generator of short templated documents: reviews whose sentiment
                (positive or negative) is consistent within a document, on one of five topics,
                plus neutral documents
    train.py    trains a byte-level BPE tokenizer and a small GPT-2 on that corpus, on CPU;
                `python -m recipe_engine.training.train --out DIR [--steps N] [--seed 0]`
    prompts.py  the prompt lists the demos use: contrastive sets that build the vectors, and
                held-out prompts that measure them (never used to build anything)

Nothing here runs when the engine runs: the trained weights ship in
`recipe_engine/builtin_weights/tiny-sentiment/`, and this package is how they were made.
"""
