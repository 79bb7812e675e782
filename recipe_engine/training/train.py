"""Train `builtin:tiny-sentiment`: byte-level BPE tokenizer + small GPT-2, on CPU, from a seed.

    python -m recipe_engine.training.train --out recipe_engine/builtin_weights/tiny-sentiment

writes config.json, generation_config.json, model.safetensors (float16), tokenizer.json,
tokenizer_config.json and training.json (seed, steps, losses, corpus size, wall time) into --out.
About 8 minutes on one core of a shared 2-core machine.

Deterministic: the corpus is `corpus.generate_corpus(n, seed)`; the tokenizer is trained on it
in a fixed order; the model's initialization and the batch order come from torch generators
seeded with `seed`; torch runs on one thread (a fixed thread count gives fixed float reductions;
one thread also keeps a shared 2-core machine usable, where two busy-waiting threads run many
times slower).

The tokenizer prepends <|endoftext|> to every text it encodes (as Llama's adds <s>), and every
training document starts with it: the model gets a fixed first position to rest attention on
(an attention sink), which makes it far less fragile under steering.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from recipe_engine.training.corpus import generate_corpus, lexicon

__all__ = ["EOS", "TrainConfig", "build_tokenizer", "concept_gaps", "main", "train"]

EOS = "<|endoftext|>"


@dataclass
class TrainConfig:
    """Every knob of a run; all of them go into training.json."""

    seed: int = 0
    steps: int = 2400
    batch_size: int = 48  # documents per step
    n_documents: int = 120_000
    vocab_size: int = 2048  # an upper bound: merges stop once every corpus word is one token
    n_layer: int = 4
    n_embd: int = 192
    n_head: int = 4
    n_positions: int = 128
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.01
    threads: int = 1
    bos: bool = True  # the tokenizer prepends <|endoftext|> to every text
    dtype: str = "float16"  # of the saved weights (training is float32)


# Chat prompts on the embedded model (resolve/chat.py): one line per turn, "role: text", and
# "assistant:" to open the answer. Plain-text prompts never go through it, so every number the
# model gives on them is the same with or without it.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def build_tokenizer(texts: list[str], vocab_size: int, bos: bool = True) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on `texts`, plus every lexicon word bare (no leading space), so a
    word is one token both as " great" (mid-sentence) and "great" (text start)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([*texts, *lexicon()], trainer=trainer)
    if bos:
        eos_id = tok.token_to_id(EOS)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{EOS} $A", pair=f"{EOS} $A {EOS} $B", special_tokens=[(EOS, eos_id)]
        )
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        chat_template=CHAT_TEMPLATE,
        bos_token=EOS,
        eos_token=EOS,
        pad_token=EOS,
        unk_token=EOS,
        # No token_type_ids: GPT-2 would add wte(token_type_ids) and shift logits silently.
        model_input_names=["input_ids", "attention_mask"],
    )


def _encode(tokenizer: PreTrainedTokenizerFast, texts: list[str], limit: int) -> list[list[int]]:
    # One document per sequence from position 0, encoded as prompts are at run time (the
    # tokenizer's BOS first), ending in EOS so the model learns where a document stops.
    eos = int(tokenizer.eos_token_id)
    return [[*row[: limit - 1], eos] for row in tokenizer(texts)["input_ids"]]


def _batch(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return ids, mask, labels


def _bucketed_batches(
    rows: list[list[int]], batch_size: int, generator: torch.Generator
) -> list[list[int]]:
    """One epoch of batches in random order, each of documents of similar length (little
    padding: on CPU a step costs its number of token slots)."""
    order = torch.randperm(len(rows), generator=generator).tolist()
    chunk = batch_size * 64
    batches: list[list[int]] = []
    for start in range(0, len(order) - batch_size + 1, chunk):
        part = sorted(order[start : start + chunk], key=lambda i: (len(rows[i]), i))
        batches.extend(
            part[i : i + batch_size] for i in range(0, len(part) - batch_size + 1, batch_size)
        )
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffled]


def concept_gaps(model: Any, tokenizer: Any) -> dict[str, float]:
    """How much the model uses each concept in context, on held-out prompts: P(positive words)
    after a positive context minus after a negative one; P(food nouns) after food minus tech."""
    from recipe_engine.report.metrics import token_ids, token_mass
    from recipe_engine.training import prompts as P

    def mass(texts: list[str], words: list[str]) -> float:
        ids = token_ids(tokenizer, words)
        total = 0.0
        with torch.no_grad():
            for text in texts:
                encoded = tokenizer(text, return_tensors="pt")
                logits = model(input_ids=encoded["input_ids"]).logits[0, -1]
                total += float(token_mass(logits, ids))
        return total / len(texts)

    was_training = model.training
    model.eval()
    gaps = {
        "sentiment_gap": mass(P.CONTEXT_POSITIVE, P.POSITIVE_WORDS)
        - mass(P.CONTEXT_NEGATIVE, P.POSITIVE_WORDS),
        "topic_gap": mass(P.CONTEXT_FOOD, P.FOOD_NOUNS) - mass(P.CONTEXT_TECH, P.FOOD_NOUNS),
    }
    model.train(was_training)
    return {k: round(v, 4) for k, v in gaps.items()}


def _lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to a tenth of the peak."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _model_and_optimizer(cfg: TrainConfig, tokenizer: Any) -> tuple[Any, torch.optim.AdamW]:
    """A freshly seeded GPT-2 of the configured size, in training mode, and its optimizer."""
    pad = int(tokenizer.pad_token_id)
    eos = int(tokenizer.eos_token_id)

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        activation_function="gelu",
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    torch.manual_seed(cfg.seed)
    model = GPT2LMHeadModel(config)
    model.train()
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.dim() < 2]  # biases and norms: no decay
    optimizer = torch.optim.AdamW(
        [
            {"params": matrices, "weight_decay": cfg.weight_decay},
            {"params": vectors, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )
    return model, optimizer


def train(out: Path, cfg: TrainConfig, log_every: int = 100) -> dict[str, Any]:
    start = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    docs = generate_corpus(cfg.n_documents, seed=cfg.seed)
    texts = [d.text for d in docs]
    tokenizer = build_tokenizer(texts, cfg.vocab_size, cfg.bos)
    rows = _encode(tokenizer, texts, cfg.n_positions)
    pad = int(tokenizer.pad_token_id)
    model, optimizer = _model_and_optimizer(cfg, tokenizer)
    generator = torch.Generator().manual_seed(cfg.seed)
    batches: list[list[int]] = []
    losses: list[float] = []
    running = 0.0
    for step in range(cfg.steps):
        if not batches:
            batches = _bucketed_batches(rows, cfg.batch_size, generator)
        ids, mask, labels = _batch([rows[i] for i in batches.pop()], pad)
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, cfg)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        running += loss.item()
        if (step + 1) % log_every == 0:
            losses.append(round(running / log_every, 4))
            running = 0.0
            gaps = concept_gaps(model, tokenizer) if (step + 1) % (5 * log_every) == 0 else {}
            elapsed = time.perf_counter() - start
            line = f"step {step + 1}/{cfg.steps}  loss {losses[-1]:.4f}  {elapsed:.0f}s  {gaps}"
            print(line, flush=True)

    torch.nn.Module.eval(model)
    gaps = concept_gaps(model, tokenizer)
    if cfg.dtype == "float16":
        torch.nn.Module.half(model)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    wall = time.perf_counter() - start
    info = {
        "model": "tiny-sentiment",
        "command": "python -m recipe_engine.training.train --out DIR "
        f"--steps {cfg.steps} --seed {cfg.seed}",
        "seed": cfg.seed,
        "steps": cfg.steps,
        "final_loss": losses[-1] if losses else None,
        "loss_every_100_steps" if log_every == 100 else f"loss_every_{log_every}_steps": losses,
        **gaps,
        "corpus_documents": len(docs),
        "corpus_tokens": sum(len(r) for r in rows),
        "documents_seen": cfg.steps * cfg.batch_size,
        "vocab_size": len(tokenizer),
        "parameters": sum(p.numel() for p in model.parameters()),
        "wall_time_s": round(wall, 1),
        "torch": torch.__version__,
        "config": dataclasses.asdict(cfg),
    }
    (out / "training.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def _parse_set(items: list[str]) -> dict[str, Any]:
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    overrides: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in fields:
            raise SystemExit(f"--set: unknown option {key!r} (one of {', '.join(fields)})")
        kind = type(getattr(TrainConfig(), key))
        if kind is bool:
            overrides[key] = value.lower() in ("1", "true", "yes")
        else:
            overrides[key] = kind(value)
    return overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recipe_engine.training.train",
        description="Train the builtin tiny-sentiment model from its synthetic corpus.",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write the model into")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override another TrainConfig field (experiments), e.g. --set n_embd=128",
    )
    args = parser.parse_args(argv)
    cfg = TrainConfig(**{"steps": args.steps, "seed": args.seed, **_parse_set(args.set)})
    info = train(args.out, cfg)
    print(json.dumps({k: v for k, v in info.items() if not k.startswith("loss_every")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
