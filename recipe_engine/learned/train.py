"""Train one `kind: trained` vector (or low-rank intervention, form lowrank: lowrank.py): AdamW on
its tensors alone, the model frozen, every forward through the compiled plan (forward.py).
Seeded: the split, the batches and the signs come from one torch.Generator (a low-rank R's start
from its own, seeded by the same seed), so a rebuild on the same machine is bit-identical.

Early stopping: every `eval_every` steps the held-out loss is measured (signs fixed, alternating
+1/-1); after `patience` evaluations without a new minimum training stops, and the vector of the
best evaluation is the one returned. A non-finite loss stops training with an error at the
recipe's `lr` line; nothing is returned, so nothing is cached.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import torch

from recipe_engine.compiler import compile_plan
from recipe_engine.format.interventions import Intervention
from recipe_engine.format.layers import resolve_layers
from recipe_engine.format.trained import DEFAULT_RANK
from recipe_engine.learned.examples import Example, load_examples
from recipe_engine.learned.forward import Parameter, Sequence, sequence_logps, with_parameter
from recipe_engine.learned.lowrank import LowRankTrainable, Trainable, VectorTrainable
from recipe_engine.learned.objectives import lm_loss, preference_loss, reps_loss
from recipe_engine.plan import Plan
from recipe_engine.vectors.lowrank import pack_lowrank
from recipe_engine.vectors.trained_request import TrainRequest

__all__ = ["batch_loss", "train_vector", "vector_plan"]

Reference = dict[int, tuple[float, float]]  # example index -> unsteered (chosen, rejected) logp


def vector_plan(request: TrainRequest) -> tuple[Plan, dict[int | None, int], int]:
    """The compiled plan of the vector's intervention (add, or lowrank for form lowrank;
    strength 1), the parameter row of each op's layer, and the number of rows."""
    spec, model = request.spec, request.model
    try:
        layers = [layer for layer, _ in resolve_layers(spec.layers, model.shape.n_layers)]
    except ValueError as exc:
        raise request.error("layer-range", str(exc), request.pointer + "/layers") from None
    n_rows = 1 if spec.shared or len(layers) == 1 else len(layers)
    width = model.shape.heads_width if spec.site == "heads" else model.shape.hidden_size
    lowrank = spec.form == "lowrank"
    rank = spec.rank or DEFAULT_RANK
    if lowrank and rank > width:
        raise request.error(
            "lowrank-rank",
            f"rank {rank} exceeds the width {width} of site {spec.site}: R [rank, width] cannot "
            f"have orthonormal rows; use a rank of at most {width}",
            request.pointer + "/rank",
        )
    initial = torch.zeros(width)
    if lowrank:  # zeros of the packed shape [r, 2D + 1]: only its shape matters to compile
        zeros = torch.zeros(rank, width)
        initial = pack_lowrank(zeros, zeros, torch.zeros(rank))
    if n_rows > 1:
        initial = torch.stack([initial] * n_rows)
    item = Intervention(
        op="lowrank" if lowrank else "add",
        vector=request.name,
        layers=spec.layers,
        site=spec.site,
        positions="all",
    )
    plan = compile_plan(
        request.recipe,
        model,
        {request.name: initial},
        request.doc,
        interventions=[item],
        pointer=request.pointer,
    )
    rows: dict[int | None, int] = {
        op.layer: (0 if n_rows == 1 else layers.index(op.layer))  # type: ignore[arg-type]
        for op in plan.ops
    }
    return plan, rows, n_rows


def _sequences(examples: list[Example], which: int) -> list[Sequence]:
    return [(e.prompt, e.completions[which]) for e in examples]


def reference_logps(request: TrainRequest, examples: list[Example]) -> Reference:
    """The unsteered model's log-likelihood of every pair's completions (BiPO and RePS)."""
    found: Reference = {}
    with torch.no_grad(), request.model.lock:
        for start in range(0, len(examples), 16):
            chunk = examples[start : start + 16]
            chosen, _ = sequence_logps(request.model, Plan(), _sequences(chunk, 0))
            rejected, _ = sequence_logps(request.model, Plan(), _sequences(chunk, 1))
            for offset in range(len(chunk)):
                found[start + offset] = (float(chosen[offset]), float(rejected[offset]))
    return found


def batch_loss(
    request: TrainRequest,
    plan: Plan,
    param: Parameter,
    rows: dict[int | None, int],
    batch: list[tuple[int, Example]],
    signs: torch.Tensor,
    reference: Reference,
) -> torch.Tensor:
    """The objective on one batch of (index, example), the vector steering row i by signs[i]."""
    spec, model = request.spec, request.model
    examples = [e for _, e in batch]
    if spec.objective == "lm":
        steered = with_parameter(plan, param, rows, None)
        logp, count = sequence_logps(model, steered, _sequences(examples, 0))
        return lm_loss(logp, count)
    both = torch.cat([signs, signs])
    steered = with_parameter(plan, param, rows, both.to(model.device))
    logp, count = sequence_logps(model, steered, _sequences(examples, 0) + _sequences(examples, 1))
    n = len(examples)
    policy = (logp[:n], logp[n:])
    ref = torch.tensor([reference[i] for i, _ in batch], dtype=logp.dtype)
    refs = (ref[:, 0], ref[:, 1])
    if spec.objective == "preference":
        return preference_loss(policy, refs, signs, spec.beta)
    return reps_loss(policy, refs, (count[:n], count[n:]), signs, spec.gamma)


class _Bar:
    """Step, loss and held-out loss on stderr: a tqdm bar while a terminal watches, else one
    plain line at each tenth of the steps (a log file of a half-hour training shows it
    moving); and the caller's progress callback."""

    def __init__(self, request: TrainRequest) -> None:
        self.request = request
        self.bar: Any = None
        self.started = time.perf_counter()
        self.held: float | None = None  # the last held-out loss measured
        self.every = max(1, request.spec.steps // 10)
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=request.spec.steps, desc=f"train {request.name}", leave=False)

    def update(self, step: int, loss: float, held: float | None) -> None:
        self.held = held if held is not None else self.held
        held_text = "-" if self.held is None else f"{self.held:.4f}"
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {loss:.4f} held-out {held_text}", refresh=False)
            self.bar.n = step
            self.bar.refresh()
        elif step % self.every == 0:
            seconds = time.perf_counter() - self.started
            print(
                f"train {self.request.name}: step {step}/{self.request.spec.steps} loss "
                f"{loss:.4f} held-out {held_text} ({seconds / step:.2f} s/step)",
                file=sys.stderr,
                flush=True,
            )
        if self.request.progress is not None:
            self.request.progress(self.request.name, step, self.request.spec.steps)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


Indexed = list[tuple[int, Example]]  # (index among all examples, example)


def _split(
    examples: list[Example], share: float, generator: torch.Generator
) -> tuple[Indexed, Indexed]:
    order = torch.randperm(len(examples), generator=generator).tolist()
    n_held = round(share * len(examples)) if share > 0 else 0
    n_held = min(n_held, len(examples) - 1)
    indexed = list(enumerate(examples))
    return [indexed[i] for i in order[n_held:]], [indexed[i] for i in order[:n_held]]


def _held_out_loss(request: TrainRequest, context: tuple[Any, ...], held: Indexed) -> float | None:
    if not held:
        return None
    plan, trainable, rows, reference = context
    param = trainable.current()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(held), request.spec.batch_size):
            batch = held[start : start + request.spec.batch_size]
            signs = torch.tensor([1.0 if (start + k) % 2 == 0 else -1.0 for k in range(len(batch))])
            loss = batch_loss(request, plan, param, rows, batch, signs, reference)
            total += float(loss) * len(batch)
            count += len(batch)
    return total / count


def _diverged(request: TrainRequest, step: int, what: str) -> Exception:
    spec = request.spec
    return request.error(
        "training-diverged",
        f"training vector {request.name!r}: the {what} became NaN or Inf at step {step} of "
        f"{spec.steps} (lr {spec.lr:g}): lower lr (e.g. {spec.lr / 10:g})"
        f"{'' if spec.form == 'lowrank' else ' or set max_norm'}; "
        "nothing was cached",
        request.pointer + "/lr",
    )


def _record(
    request: TrainRequest,
    split: tuple[Indexed, Indexed],
    step: int,
    best: tuple[float, int, torch.Tensor],
    curve: list[list[float | None]],
    losses: list[float],
    started: float,
    made_s: float,
    rows: dict[int | None, int],
) -> dict[str, Any]:
    """The training record kept in the vector's provenance."""
    spec = request.spec
    train, held = split
    return {
        "objective": spec.objective,
        "examples": {"train": len(train), "held_out": len(held)},
        "steps": spec.steps,
        "steps_run": step,
        "best_step": best[1],
        "stopped_early": step < spec.steps,
        "train_loss": curve[-1][1],
        "held_out_loss": None if not held else round(best[0], 6),
        "first_loss": round(losses[0], 6),
        "loss_curve": curve[-50:],  # [step, mean train loss since last eval, held-out loss]
        "seconds": round(time.perf_counter() - started, 3),
        "targets_seconds": round(made_s, 3),
        "layers": sorted(k for k in rows if k is not None),
        "shared": spec.shared,
        "site": spec.site,
    }


def _trainable(request: TrainRequest, n_rows: int, width: int) -> Trainable:
    if request.spec.form == "lowrank":
        return LowRankTrainable(request.spec, n_rows, width)
    return VectorTrainable(request.spec, n_rows, width)


def train_vector(request: TrainRequest) -> tuple[torch.Tensor, dict[str, Any]]:
    """Train the vector (or low-rank intervention); returns it (float32, CPU: [D] or [L, D];
    lowrank packed [r, 2D + 1] or [L, r, 2D + 1]) and its training record."""
    started = time.perf_counter()
    spec = request.spec
    generator = torch.Generator().manual_seed(spec.seed)
    examples = load_examples(request)
    made_s = time.perf_counter() - started
    train, held = _split(examples, spec.held_out, generator)
    plan, rows, n_rows = vector_plan(request)
    width = (
        request.model.shape.heads_width if spec.site == "heads" else request.model.shape.hidden_size
    )
    trainable = _trainable(request, n_rows, width)
    reference = reference_logps(request, examples) if spec.objective != "lm" else {}
    optimizer = torch.optim.AdamW(trainable.groups(), lr=spec.lr)
    model = request.model
    frozen = [(p, p.requires_grad) for p in model.hf.parameters()]
    bar = _Bar(request)
    curve: list[list[float | None]] = []
    best: tuple[float, int, torch.Tensor] | None = None
    waited, step = 0, 0
    order: list[int] = []
    losses: list[float] = []
    context = (plan, trainable, rows, reference)
    try:
        for p, _ in frozen:
            p.requires_grad_(False)
        with model.lock, torch.enable_grad():
            for step in range(1, spec.steps + 1):
                if len(order) < spec.batch_size:
                    order += torch.randperm(len(train), generator=generator).tolist()
                picked, order = order[: spec.batch_size], order[spec.batch_size :]
                batch = [train[i] for i in picked]
                signs = torch.randint(0, 2, (len(batch),), generator=generator).float() * 2 - 1
                loss = batch_loss(request, plan, trainable.current(), rows, batch, signs, reference)
                if not bool(torch.isfinite(loss)):
                    raise _diverged(request, step, "loss")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                trainable.after_step()
                if not bool(torch.isfinite(trainable.snapshot()).all()):
                    raise _diverged(request, step, "vector")
                losses.append(float(loss.detach()))
                held_loss = None
                if step % spec.eval_every == 0 or step == spec.steps:
                    held_loss = _held_out_loss(request, context, held)
                    window = losses[-spec.eval_every :]
                    held_r = None if held_loss is None else round(held_loss, 6)
                    curve.append([step, round(sum(window) / len(window), 6), held_r])
                    score = held_loss if held_loss is not None else sum(window) / len(window)
                    if best is None or score < best[0]:
                        best, waited = (score, step, trainable.snapshot()), 0
                    else:
                        waited += 1
                bar.update(step, losses[-1], held_loss)
                if spec.patience is not None and held and waited >= spec.patience:
                    break
    finally:
        bar.close()
        for p, flag in frozen:
            p.requires_grad_(flag)
    assert best is not None
    kept = best[2]
    record = _record(request, (train, held), step, best, curve, losses, started, made_s, rows)
    record.update(trainable.record(kept))
    return (kept[0] if n_rows == 1 else kept).float().cpu(), record
