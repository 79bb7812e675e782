"""All model execution of `steer serve` goes through one function, `execute_batch`: a list of
rows (one prompt, its steering profile and strength, its sampling settings) in, one result per
row out, in the same order.

Rows of different profiles and strengths share one generate pass (execute/runner.py): each row
keeps its own plan (its profile's, compiled once per strength: Profile.plan) and the engine
merges them per batch with row masks (execute/rows.py), so a row computes what it would alone
and no steering leaks between rows. What still splits a batch (`pass_groups`): sampling
settings (one set per generate call), and a seeded sampled row, which runs alone. A row may
have a sink (serve/streams.py): a streaming request hears its row's text pieces as they are
generated and its result the step the row ends; a generate call whose rows have all ended or
been abandoned by their requests stops early.

`batch_job` is the same work one slice at a time, for the batcher's scheduler: its calls
pause between two steps when `pause()` says so, the job yields, and the next `next()` goes on
where the call stopped (execute/pausing.py): a row's tokens are those of the whole call.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, cast

from recipe_engine.errors import NumericalFailure
from recipe_engine.execute.gates import GateOutcome
from recipe_engine.execute.logprobs import TokenLogprob, prompt_logprobs
from recipe_engine.execute.numerics import is_non_finite_error, likely_cause, require_finite
from recipe_engine.execute.pausing import Paused
from recipe_engine.execute.rows import merge_row_plans
from recipe_engine.execute.runner import PassResult, generate_pass
from recipe_engine.format.run_spec import GenerationSpec
from recipe_engine.plan import Plan
from recipe_engine.resolve.loaded_model import LoadedModel
from recipe_engine.serve.profiles import Profile

__all__ = ["Row", "RowResult", "RowSink", "batch_job", "execute_batch", "pass_groups"]

Pause = Callable[[], bool] | None  # asked between two steps: should the running call pause?
Job = Generator[None, None, list["RowResult"]]  # yields at each pause, returns the results


@dataclass(frozen=True)
class Row:
    """One prompt to complete. `generation` is the profile's generation settings with the
    request's overrides; its max_new_tokens is this row's own."""

    prompt: str  # the text (token-id prompts: decoded, for echo)
    profile: Profile | None  # None: the unsteered model
    strength: float | None  # None: the profile's own strengths
    generation: GenerationSpec
    prompt_ids: tuple[int, ...] | None = None  # set: the model reads these ids, as they are
    logprobs: int | None = None  # top k per token; None: no log-probabilities
    echo: bool = False  # the prompt's own log-probabilities too (with `logprobs`)
    new_tokens: bool = True  # False (max_tokens 0): the prompt is only scored
    stop: tuple[str, ...] = ()  # the row ends the step its text holds one of these


class RowSink(Protocol):
    """Where a row goes while it is generated (serve/streams.py): its text pieces as they
    come and its result when it ends, if the request streams (`live`); `abandoned` once the
    request gave up."""

    @property
    def live(self) -> bool: ...

    @property
    def abandoned(self) -> bool: ...

    def piece(self, text: str) -> None: ...

    def done(self, result: RowResult) -> None: ...


@dataclass(frozen=True)
class RowLogprobs:
    """A row's log-probabilities (execute/logprobs.py): the prompt's tokens when echoed, the
    new tokens (their EOS included, as OpenAI servers report it), and every id's text."""

    prompt: list[TokenLogprob]
    new: list[TokenLogprob]
    names: dict[int, str]


@dataclass(frozen=True)
class RowResult:
    token_ids: list[int]  # the new tokens, cut at EOS (which is not included)
    text: str
    pieces: list[str]  # the text each token adds (what a stream sends), joined: `text`
    finish_reason: str  # "stop" (EOS or a stop string) or "length" (max_new_tokens reached)
    failure: str | None = None  # NaN/Inf logits: `steer run`'s message; the reply is an error
    conditions: tuple[GateOutcome, ...] = ()  # each `when:` of its plan: did it fire
    logprobs: RowLogprobs | None = field(default=None, compare=False)


def _group_key(index: int, row: Row, model: LoadedModel) -> tuple[object, ...]:
    """Rows that may share one generate call: the same model and sampling settings (plans are
    per row). A seeded sampled row runs alone: torch's random stream is drawn by every row of a
    batch, so its tokens would depend on its neighbours (and no longer equal `steer run` of the
    same recipe and seed)."""
    gen = row.generation.model_copy(update={"max_new_tokens": 1})
    alone = index if gen.do_sample and gen.seed is not None else -1
    owner = model if row.profile is None else row.profile.compiled.model
    # Token ids and texts are different inputs to a trace: they do not share a call.
    return (id(owner), gen.model_dump_json(), alone, row.prompt_ids is not None)


def pass_groups(model: LoadedModel, rows: list[Row]) -> list[list[int]]:
    """The generate passes `execute_batch` runs for these rows: each pass's row indices."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault(_group_key(index, row, model), []).append(index)
    return list(groups.values())


def _piece(sent: str, text: str) -> str:
    """What the decoded prefix `text` adds to the text sent so far. Decoded by prefixes, not
    token by token: a character split over two tokens (UTF-8 bytes) decodes as U+FFFD until
    its last byte arrives; it is sent whole, with the token that completes it."""
    if text.endswith("\ufffd") or not text.startswith(sent):
        return ""
    return text[len(sent) :]


def _pieces(prefix_texts: list[str]) -> list[str]:
    """What each token adds to the text, from the decoded prefixes (`_piece`)."""
    pieces: list[str] = []
    sent = ""
    for text in prefix_texts:
        pieces.append(_piece(sent, text))
        sent += pieces[-1]
    if prefix_texts and sent != prefix_texts[-1]:  # the text ends mid-character
        pieces[-1] += prefix_texts[-1][len(sent) :] if prefix_texts[-1].startswith(sent) else ""
    return pieces


def _row_result(model: LoadedModel, row: Row, ids: list[int]) -> RowResult:
    """A row's reply from its new tokens (cut at EOS and at its own max_new_tokens)."""
    with model.lock:  # the tokenizer is shared (LoadedModel)
        decode = model.tokenizer.decode
        texts = [decode(ids[:n], skip_special_tokens=True) for n in range(1, len(ids) + 1)]
    reason = "length" if len(ids) >= row.generation.max_new_tokens else "stop"
    return RowResult(ids, texts[-1] if texts else "", _pieces(texts), reason)


class _Progress:
    """One row of a running generate call, step by step: its tokens so far, its pieces sent
    live when its request streams, and its result sent the step it ends (its own EOS,
    max_new_tokens or stop string), even while the call goes on for longer rows. A call whose
    rows have all ended or been abandoned stops at that step."""

    def __init__(self, model: LoadedModel, row: Row, sink: RowSink | None) -> None:
        self.model, self.row, self.sink = model, row, sink
        self.ids: list[int] = []
        self.sent = ""
        self.text = ""  # decoded so far (rows that stream or have stop strings)
        self.finished = False
        self.result: RowResult | None = None  # built the step a live row ends
        self.announced = False  # its result sent to its sink

    @property
    def over(self) -> bool:
        """Nothing more of this row is wanted."""
        return self.finished or (self.sink is not None and self.sink.abandoned)

    def step(self, token: int) -> None:
        if self.finished:
            return
        if token == self.model.tokenizer.eos_token_id:
            self.finish()
            return
        self.ids.append(token)
        live = self.sink is not None and self.sink.live
        if live or self.row.stop:
            with self.model.lock:  # held already by this thread (generate_pass): re-entrant
                text = self.model.tokenizer.decode(self.ids, skip_special_tokens=True)
            searched, self.text = len(self.text), text
            if live:
                piece = _piece(self.sent, text)
                self.sent += piece
                if piece and self.sink is not None:
                    self.sink.piece(piece)
            # Only the new text can hold a stop string that was not there before; none counts
            # within the first min_tokens tokens (vLLM's rule: one ending there never does).
            early = len(self.ids) <= (self.row.generation.min_new_tokens or 0)
            if not early and any(
                text.find(s, max(0, searched - len(s) + 1)) >= 0 for s in self.row.stop
            ):
                self.finish()
                return
        if len(self.ids) >= self.row.generation.max_new_tokens:
            self.finish()

    def finish(self) -> None:
        self.finished = True
        if self.sink is not None and self.sink.live:
            self.result = _row_result(self.model, self.row, self.ids)

    def announce(self) -> None:
        """Send a live row's result while its call goes on for longer rows. A row whose end
        ends the call is announced after it instead, once its logits are known finite."""
        if self.result is not None and not self.announced and self.sink is not None:
            self.announced = True
            self.sink.done(self.result)


def _non_finite(result: PassResult, index: int, plan: Plan, model: LoadedModel) -> str | None:
    """`steer run`'s NaN/Inf message if row `index` met NaN/Inf logits (execute/numerics.py)."""
    dtype = getattr(model.hf, "dtype", None)
    try:
        first = result.next_logits[index]
        require_finite(first, "next-token logits of the prompts", plan, dtype)
        steps = result.step_finite[index : index + 1]
        require_finite(steps, "generated steps", plan, dtype)
    except NumericalFailure as exc:
        return str(exc)
    return None


def _names(model: LoadedModel, entries: list[TokenLogprob]) -> dict[int, str]:
    """The text of every token id the entries name (each decoded on its own)."""
    ids = {e.token for e in entries} | {i for e in entries for i, _ in e.top}
    with model.lock:  # the tokenizer is shared (LoadedModel)
        return {i: model.tokenizer.decode([i]) for i in sorted(ids)}


def _top_k(entries: list[TokenLogprob], k: int) -> list[TokenLogprob]:
    """The entries with their top lists cut to k (a group computes its rows' largest k)."""
    return [replace(e, top=e.top[:k]) for e in entries]


def _with_logprobs(
    model: LoadedModel,
    row: Row,
    result: RowResult,
    prompt: list[TokenLogprob],
    new: list[TokenLogprob],
) -> RowResult:
    if row.logprobs is None:
        return result
    prompt, new = _top_k(prompt, row.logprobs), _top_k(new, row.logprobs)
    kept = len(result.token_ids)
    ended = len(new) > kept and new[kept].token == model.tokenizer.eos_token_id
    new = new[: kept + 1 if ended else kept]  # the EOS it ended on is reported too
    return replace(result, logprobs=RowLogprobs(prompt, new, _names(model, prompt + new)))


def _prompt_scores(
    model: LoadedModel, rows: list[Row], plans: list[Plan]
) -> list[list[TokenLogprob]]:
    """The echoed prompts' own log-probabilities (one traced pass); [] for other rows."""
    wanted = [i for i, r in enumerate(rows) if r.echo and r.logprobs is not None]
    out: list[list[TokenLogprob]] = [[] for _ in rows]
    if not wanted:
        return out
    k = max(rows[i].logprobs or 0 for i in wanted)
    ids = [list(rows[i].prompt_ids or ()) for i in wanted]
    merged = merge_row_plans([plans[i] for i in wanted])
    for i, scored in zip(wanted, prompt_logprobs(model, merged, ids, k), strict=True):
        out[i] = scored
    return out


def _run_group(
    base: LoadedModel, rows: list[Row], sinks: list[RowSink | None], pause: Pause
) -> Job:
    first = rows[0]
    model = base if first.profile is None else first.profile.compiled.model
    unsteered = Plan()
    plans = [unsteered if r.profile is None else r.profile.plan(r.strength) for r in rows]
    scored = _prompt_scores(model, rows, plans)
    out: list[RowResult | None] = [None] * len(rows)
    for index, row in enumerate(rows):
        if not row.new_tokens:  # max_tokens 0: the prompt's scores are the whole reply
            out[index] = _with_logprobs(
                model, row, RowResult([], "", [], "length"), scored[index], []
            )
    todo = [i for i, row in enumerate(rows) if row.new_tokens]
    if todo:
        generating = [rows[i] for i in todo]
        results = yield from _generate(
            model, generating, [plans[i] for i in todo], [sinks[i] for i in todo], pause
        )
        for i, (result, new) in zip(todo, results, strict=True):
            out[i] = _with_logprobs(model, rows[i], result, scored[i], new)
    return [r for r in out if r is not None]


def _generate(
    model: LoadedModel,
    rows: list[Row],
    plans: list[Plan],
    sinks: list[RowSink | None],
    pause: Pause,
) -> Generator[None, None, list[tuple[RowResult, list[TokenLogprob]]]]:
    # A row's tokens do not depend on how many more are generated after them, so the group
    # runs to its longest request and each row is cut to its own length.
    longest = max(r.generation.max_new_tokens for r in rows)
    gen = rows[0].generation.model_copy(update={"max_new_tokens": longest})
    progress = [_Progress(model, row, sink) for row, sink in zip(rows, sinks, strict=True)]

    def on_step(ids: list[int]) -> None:
        for row, token in zip(progress, ids, strict=True):
            row.step(token)
        if not all(row.over for row in progress):  # the call goes on: ended rows go now
            for row in progress:
                row.announce()

    listened = any(sink is not None for sink in sinks) or any(r.stop for r in rows)
    wanted = [r.logprobs for r in rows if r.logprobs is not None]
    prompts: list[str] | list[list[int]]
    if rows[0].prompt_ids is not None:
        prompts = [list(r.prompt_ids or ()) for r in rows]
    else:
        prompts = [r.prompt for r in rows]
    resume: Paused | None = None
    try:
        while True:
            result = generate_pass(
                model,
                plans,
                prompts,
                gen,
                batch_size=len(rows),
                on_step=on_step if listened else None,
                stop=lambda: all(row.over for row in progress),  # every row done or abandoned
                logprobs=max(wanted) if wanted else None,
                pause=pause,
                resume=resume,
            )
            if result.paused is None:
                break
            resume = result.paused
            yield  # other work runs; the next `next()` goes on from here
    except RuntimeError as exc:  # the sampler refuses NaN/Inf probabilities (as steer run)
        if not is_non_finite_error(exc):
            raise
        worst = max(plans, key=lambda p: max((abs(op.strength) for op in p.ops), default=0))
        raise NumericalFailure(
            "the steered model produced NaN/Inf probabilities while sampling: "
            f"{likely_cause(worst, getattr(model.hf, 'dtype', None))}"
        ) from exc
    out: list[tuple[RowResult, list[TokenLogprob]]] = []
    for index, (row, generated, heard) in enumerate(
        zip(rows, result.generated, progress, strict=True)
    ):
        new = result.logprobs[index] if result.logprobs else []
        failure = _non_finite(result, index, plans[index], model)
        if failure is not None:  # what `steer run` says, for this row only
            out.append((RowResult([], "", [], "stop", failure), []))
            if not heard.announced and heard.sink is not None and heard.sink.live:
                heard.announced = True
                heard.sink.done(out[-1][0])
            continue
        gates = tuple(result.gates[index]) if index < len(result.gates) else ()
        if heard.result is not None:  # a live row's reply, built the step it ended
            heard.result = replace(heard.result, conditions=gates)
            out.append((heard.result, new))
            heard.announce()
            continue
        kept = heard.ids if heard.finished and row.stop else generated
        made = replace(
            _row_result(model, row, kept[: row.generation.max_new_tokens]), conditions=gates
        )
        out.append((made, new))
        if not heard.finished and heard.sink is not None and heard.sink.live:
            heard.sink.done(made)  # the call ended first (it stopped early)
    return out


def batch_job(
    model: LoadedModel,
    rows: list[Row],
    sinks: Sequence[RowSink | None] | None = None,
    pause: Pause = None,
) -> Job:
    """`execute_batch` one slice at a time: yields each time one of its generate calls paused
    (`pause()` said so between two steps), returns the results."""
    results: list[RowResult | None] = [None] * len(rows)
    heard = list(sinks) if sinks is not None else [None] * len(rows)
    for indices in pass_groups(model, rows):
        group = [rows[i] for i in indices]
        done = yield from _run_group(model, group, [heard[i] for i in indices], pause)
        for index, result in zip(indices, done, strict=True):
            results[index] = result
    return [r for r in results if r is not None]


def execute_batch(
    model: LoadedModel, rows: list[Row], sinks: Sequence[RowSink | None] | None = None
) -> list[RowResult]:
    """Complete every row; results in the rows' order. `model` runs the unsteered rows (a
    profile's rows run on its compiled model: the same one, from the process's model cache).
    `sinks` (one per row, or None) hear the rows as they are generated."""
    job = batch_job(model, rows, sinks)  # never pauses: runs to its end at the first next()
    try:
        while True:
            next(job)
    except StopIteration as done:
        return cast(list[RowResult], done.value)
