"""All model execution of `steer serve` goes through one function, `execute_batch`: a list of
rows (one prompt, its steering profile and strength, its sampling settings) in, one result per
row out, in the same order.

Rows of different profiles and strengths share one generate pass (execute/runner.py): each row
keeps its own plan (its profile's, compiled once per strength: Profile.plan) and the engine
merges them per batch with row masks (execute/rows.py), so a row computes what it would alone
and no steering leaks between rows. What still splits a batch (`pass_groups`): sampling
settings (one set per generate call), and a seeded sampled row, which runs alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from recipe_engine.execute.runner import generate_pass
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.plan import Plan
from recipe_engine.resolve.loaded_model import LoadedModel
from recipe_engine.serve.profiles import Profile

__all__ = ["Row", "RowResult", "execute_batch", "pass_groups"]


@dataclass(frozen=True)
class Row:
    """One prompt to complete. `generation` is the profile's generation settings with the
    request's overrides; its max_new_tokens is this row's own."""

    prompt: str
    profile: Profile | None  # None: the unsteered model
    strength: float | None  # None: the profile's own strengths
    generation: GenerationSpec


@dataclass(frozen=True)
class RowResult:
    token_ids: list[int]  # the new tokens, cut at EOS (which is not included)
    text: str
    pieces: list[str]  # the text each token adds (what a stream sends), joined: `text`
    finish_reason: str  # "stop" (EOS) or "length" (max_new_tokens reached)


def _group_key(index: int, row: Row, model: LoadedModel) -> tuple[object, ...]:
    """Rows that may share one generate call: the same model and sampling settings (plans are
    per row). A seeded sampled row runs alone: torch's random stream is drawn by every row of a
    batch, so its tokens would depend on its neighbours (and no longer equal `steer run` of the
    same recipe and seed)."""
    gen = row.generation.model_copy(update={"max_new_tokens": 1})
    alone = index if gen.do_sample and gen.seed is not None else -1
    owner = model if row.profile is None else row.profile.compiled.model
    return (id(owner), gen.model_dump_json(), alone)


def pass_groups(model: LoadedModel, rows: list[Row]) -> list[list[int]]:
    """The generate passes `execute_batch` runs for these rows: each pass's row indices."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault(_group_key(index, row, model), []).append(index)
    return list(groups.values())


def _pieces(prefix_texts: list[str]) -> list[str]:
    """What each token adds to the text, from the decoded prefixes. Decoded by prefixes, not
    token by token: a character split over two tokens (UTF-8 bytes) decodes as U+FFFD until
    its last byte arrives; it is sent whole, with the token that completes it."""
    pieces: list[str] = []
    sent = ""
    for text in prefix_texts:
        if text.endswith("\ufffd") or not text.startswith(sent):
            pieces.append("")
            continue
        pieces.append(text[len(sent) :])
        sent = text
    if prefix_texts and sent != prefix_texts[-1]:  # the text ends mid-character
        pieces[-1] += prefix_texts[-1][len(sent) :] if prefix_texts[-1].startswith(sent) else ""
    return pieces


def _run_group(base: LoadedModel, rows: list[Row]) -> list[RowResult]:
    first = rows[0]
    model = base if first.profile is None else first.profile.compiled.model
    unsteered = Plan()
    plans = [unsteered if r.profile is None else r.profile.plan(r.strength) for r in rows]
    # A row's tokens do not depend on how many more are generated after them, so the group
    # runs to its longest request and each row is cut to its own length.
    longest = max(r.generation.max_new_tokens for r in rows)
    gen = first.generation.model_copy(update={"max_new_tokens": longest})
    result = generate_pass(model, plans, [r.prompt for r in rows], gen, batch_size=len(rows))
    out: list[RowResult] = []
    for row, generated in zip(rows, result.generated, strict=True):
        ids = generated[: row.generation.max_new_tokens]
        with model.lock:  # the tokenizer is shared (LoadedModel)
            decode = model.tokenizer.decode
            texts = [decode(ids[:n], skip_special_tokens=True) for n in range(1, len(ids) + 1)]
        pieces = _pieces(texts)
        reason = "length" if len(ids) >= row.generation.max_new_tokens else "stop"
        out.append(RowResult(ids, texts[-1] if texts else "", pieces, reason))
    return out


def execute_batch(model: LoadedModel, rows: list[Row]) -> list[RowResult]:
    """Complete every row; results in the rows' order. `model` runs the unsteered rows (a
    profile's rows run on its compiled model: the same one, from the process's model cache)."""
    results: list[RowResult | None] = [None] * len(rows)
    for indices in pass_groups(model, rows):
        for index, result in zip(
            indices, _run_group(model, [rows[i] for i in indices]), strict=True
        ):
            results[index] = result
    return [r for r in results if r is not None]
