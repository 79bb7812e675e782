"""`kind: trained` vectors: the training gradient equals a plain PyTorch hook's, training is
seeded (bit-identical rebuilds) and cached (a second build trains nothing), and bad input fails
clearly (validation at the line; a diverging loss or Ctrl-C caches and writes nothing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from recipe_engine.diagnostics import Diagnostic
from recipe_engine.errors import RecipeError
from recipe_engine.learned import train as train_module
from recipe_engine.learned.examples import load_examples
from recipe_engine.learned.train import batch_loss, train_vector, vector_plan
from recipe_engine.pipeline import build_vectors_file, load_recipe
from recipe_engine.resolve.model_loader import load_model
from recipe_engine.validate import validate_file
from recipe_engine.vectors.build import build_vectors
from recipe_engine.vectors.cache import VectorCache
from recipe_engine.vectors.trained_request import TrainRequest
from tests.support.sequences import padded_batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROWS = [
    {
        "prompt": "the food was",
        "completion": " good and warm",
        "chosen": " great",
        "rejected": " bad",
    },
    {"prompt": "my day", "completion": " went well", "chosen": " was lovely", "rejected": " hurt"},
    {
        "prompt": "we saw a film",
        "completion": " and loved it",
        "chosen": " fun",
        "rejected": " dull",
    },
    {"prompt": "the trip", "completion": " was nice", "chosen": " was fine", "rejected": " sad"},
    {"prompt": "how was it", "completion": " great", "chosen": " good", "rejected": " awful"},
]
CHAT_ROW = {
    "prompt": {"messages": [{"role": "user", "content": "how was it"}]},
    "completion": " great",
}


def _recipe(objective: str = "lm", layers: str = "{0: 0.5, 1: 1.0}", extra: str = "") -> str:
    return f"""\
version: 1
name: trained-test
model: {{id: builtin:tiny-random-llama, dtype: float32}}
vectors:
  v:
    kind: trained
    layers: {layers}
    objective: {objective}
    targets: {{file: targets.jsonl}}
    steps: 6
    batch_size: 2
    lr: 0.05
    held_out: 0.4
    eval_every: 2
{extra}
interventions:
  - {{vector: v, op: add, layers: {layers}}}
run: {{mode: trace, prompts: ["hello"]}}
"""


def _write(repo_dir: Path, recipe: str, rows: list[dict[str, Any]] | None = None) -> Path:
    (repo_dir / "targets.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in (ROWS if rows is None else rows)),
        encoding="utf-8",
    )
    path = repo_dir / "r.yaml"
    path.write_text(recipe, encoding="utf-8")
    return path


def _request(path: Path) -> tuple[TrainRequest, Any]:
    loaded = load_recipe(path)
    recipe, doc = loaded.recipe, loaded.document
    model = load_model(recipe.model, loaded.model_dir)

    def error(code: str, message: str, pointer: str) -> RecipeError:
        return RecipeError([Diagnostic(code, message, pointer)])

    request = TrainRequest(
        name="v",
        spec=recipe.vectors["v"],  # type: ignore[arg-type]
        recipe=recipe,
        model=model,
        doc=doc,
        pointer="/vectors/v",
        targets_path=path.parent / "targets.jsonl",
        prompts=None,
        progress=None,
        error=error,
    )
    return request, loaded


def _hooked_logps(model: Any, sequences: list[Any], vectors: dict[int, torch.Tensor]) -> Any:
    """Plain PyTorch: forward hooks adding vectors[layer] (weight folded in) to each decoder
    block's output at every position; summed log-probability of each completion."""
    hf = model.hf
    handles = []
    for layer, vector in vectors.items():

        def hook(_module: Any, _inputs: Any, output: Any, vector: torch.Tensor = vector) -> Any:
            if isinstance(output, tuple):
                return (output[0] + vector, *output[1:])
            return output + vector

        handles.append(hf.model.layers[layer].register_forward_hook(hook))
    try:
        ids, mask = padded_batch(sequences)
        logits = hf(input_ids=ids, attention_mask=mask).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        totals = []
        for row, (prompt, completion) in enumerate(sequences):
            start = len(prompt)
            picked = logprobs[row, start - 1 : start - 1 + len(completion)]
            totals.append(picked.gather(-1, torch.tensor(completion).unsqueeze(-1)).sum())
        return torch.stack(totals), torch.tensor([float(len(c)) for _, c in sequences])
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("objective", ["lm", "preference", "reps"])
def test_the_training_gradient_equals_a_plain_pytorch_hooks(repo_dir: Path, objective: str) -> None:
    request, _ = _request(_write(repo_dir, _recipe(objective)))
    examples = load_examples(request)
    plan, rows, n_rows = vector_plan(request)
    assert n_rows == 2 and sorted(k for k in rows if k is not None) == [0, 1]
    width = request.model.shape.hidden_size
    start = torch.randn(n_rows, width, generator=torch.Generator().manual_seed(1)) * 0.5
    batch = list(enumerate(examples[:3]))
    signs = torch.tensor([1.0, -1.0, 1.0])
    for p in request.model.hf.parameters():
        p.requires_grad_(False)
    reference: dict[int, tuple[float, float]] = {}
    if objective != "lm":
        with torch.no_grad():
            for i, e in batch:
                chosen, _ = _hooked_logps(request.model, [(e.prompt, e.completions[0])], {})
                rejected, _ = _hooked_logps(request.model, [(e.prompt, e.completions[1])], {})
                reference[i] = (float(chosen[0]), float(rejected[0]))

    param = start.clone().requires_grad_(True)
    batch_loss(request, plan, param, rows, batch, signs, reference).backward()
    engine_grad = param.grad.clone()  # type: ignore[union-attr]

    ref_param = start.clone().requires_grad_(True)
    weights = {0: 0.5, 1: 1.0}
    if objective == "lm":
        vectors = {layer: weights[layer] * ref_param[layer] for layer in (0, 1)}
        logp, count = _hooked_logps(
            request.model, [(e.prompt, e.completions[0]) for _, e in batch], vectors
        )
        loss = -logp.sum() / count.sum()
    else:
        terms = []
        for k, (i, e) in enumerate(batch):
            d = float(signs[k])
            vectors = {layer: d * weights[layer] * ref_param[layer] for layer in (0, 1)}
            (lw, ll), (nw, nl) = _hooked_logps(
                request.model, [(e.prompt, e.completions[0]), (e.prompt, e.completions[1])], vectors
            )
            rw, rl = reference[i]
            if objective == "preference":
                margin = (lw - rw) - (ll - rl)
                terms.append(-torch.nn.functional.logsigmoid(d * 0.1 * margin))
            else:  # RePS: winner and loser swap with the sign
                a, b, ra, rb, na, nb = (
                    (lw, ll, rw, rl, nw, nl) if d > 0 else (ll, lw, rl, rw, nl, nw)
                )
                scale = max(1.0, 1.0 * (rb - ra))
                terms.append(-torch.nn.functional.logsigmoid(scale * a / na - b / nb))
        loss = torch.stack(terms).mean()
    loss.backward()
    assert engine_grad.abs().max() > 1e-4  # the check is not between two zeros
    torch.testing.assert_close(engine_grad, ref_param.grad, atol=1e-5, rtol=1e-4)


def test_a_rebuild_is_bit_identical_and_a_second_run_trains_nothing(
    repo_dir: Path, tmp_path: Path
) -> None:
    path = _write(repo_dir, _recipe())
    loaded = load_recipe(path)
    model = load_model(loaded.recipe.model, loaded.model_dir)
    calls = []

    def counting(request: TrainRequest) -> Any:
        calls.append(request.name)
        return train_vector(request)

    doc = loaded.document
    first = build_vectors(loaded.recipe, model, doc, cache=False, trainer=counting)["v"]
    second = build_vectors(loaded.recipe, model, doc, cache=False, trainer=counting)["v"]
    assert first.tensor.shape == (2, model.shape.hidden_size)
    assert torch.equal(first.tensor, second.tensor)
    record = first.provenance
    assert record["objective"] == "lm" and record["steps_run"] >= 2
    assert record["held_out_loss"] is not None and record["loss_curve"]
    cache = VectorCache(tmp_path / "cache")
    built = build_vectors(loaded.recipe, model, doc, cache=cache, trainer=counting)["v"]
    assert len(calls) == 3 and not built.cached
    again = build_vectors(loaded.recipe, model, doc, cache=cache, trainer=counting)["v"]
    assert len(calls) == 3 and again.cached  # read from the cache: no training
    assert torch.equal(again.tensor, first.tensor)
    assert again.provenance["train_loss"] == record["train_loss"]


def test_the_cache_key_follows_the_data_and_the_hyperparameters(
    repo_dir: Path, tmp_path: Path
) -> None:
    cache = VectorCache(tmp_path / "cache")
    keys = set()
    for recipe, rows in [
        (_recipe(), None),
        (_recipe().replace("lr: 0.05", "lr: 0.04"), None),
        (_recipe(), ROWS[:4]),
    ]:
        loaded = load_recipe(_write(repo_dir, recipe, rows))
        model = load_model(loaded.recipe.model, loaded.model_dir)
        built = build_vectors(
            loaded.recipe, model, loaded.document, cache=cache, trainer=train_vector
        )
        keys.add(built["v"].provenance["cache_key"])
    assert len(keys) == 3


def _errors(path: Path) -> list[str]:
    return [d.format() for d in validate_file(path).errors]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"prompt": "a"}, *ROWS], "line 1: missing field 'completion'"),
        ([*ROWS[:2], {"prompt": "a", "completion": "  "}], "line 3: field 'completion' is empty"),
        ([{"completion": "x"}, *ROWS], 'line 1: missing field "prompt"'),
    ],
)
def test_a_bad_target_file_is_refused_at_its_field(
    repo_dir: Path, rows: list[dict[str, Any]], message: str
) -> None:
    errors = _errors(_write(repo_dir, _recipe(), rows))
    assert len(errors) == 1 and message in errors[0] and "[target-file-invalid]" in errors[0]
    assert "r.yaml:9:21:" in errors[0]  # the line and column of targets.file


def test_a_chat_prompt_is_rendered_or_refused_at_its_line(repo_dir: Path) -> None:
    # The test model has no chat template: the row's conversation is refused with its line.
    request, _ = _request(_write(repo_dir, _recipe(), [*ROWS[:2], CHAT_ROW]))
    with pytest.raises(RecipeError, match="line 3: the model's tokenizer has no chat template"):
        load_examples(request)


def test_preference_needs_chosen_and_rejected(repo_dir: Path) -> None:
    rows = [{"prompt": "a", "completion": "b"}] * 3
    errors = _errors(_write(repo_dir, _recipe("preference"), rows))
    assert "missing field 'chosen'" in errors[0]


@pytest.mark.parametrize("lr", ["0", ".nan", "-1"])
def test_a_learning_rate_of_zero_or_nan_is_refused_at_its_line(repo_dir: Path, lr: str) -> None:
    errors = _errors(_write(repo_dir, _recipe().replace("lr: 0.05", f"lr: {lr}")))
    assert len(errors) == 1 and "r.yaml:12:" in errors[0] and "/vectors/v/lr" in errors[0]


def test_a_loss_that_becomes_nan_names_the_step_and_caches_nothing(
    repo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = load_recipe(_write(repo_dir, _recipe()))
    model = load_model(loaded.recipe.model, loaded.model_dir)
    real = train_module.batch_loss
    steps = []

    def failing(*args: Any, **kwargs: Any) -> torch.Tensor:
        loss = real(*args, **kwargs)
        if torch.is_grad_enabled():
            steps.append(1)
        return loss * float("nan") if len(steps) == 3 else loss

    monkeypatch.setattr(train_module, "batch_loss", failing)
    flags = [p.requires_grad for p in model.hf.parameters()]
    cache = VectorCache(tmp_path / "cache")
    with pytest.raises(RecipeError) as caught:
        build_vectors(loaded.recipe, model, loaded.document, cache=cache, trainer=train_vector)
    text = caught.value.diagnostics[0].format()
    assert "at step 3 of 6" in text and "lower lr" in text and "[training-diverged]" in text
    assert "r.yaml:12:" in text  # the lr line
    assert not list((tmp_path / "cache").rglob("*"))
    assert [p.requires_grad for p in model.hf.parameters()] == flags  # unfrozen as it was


def test_ctrl_c_during_training_leaves_no_cache_entry_and_no_file(
    repo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(repo_dir, _recipe())
    real = train_module.batch_loss
    steps = []

    def interrupted(*args: Any, **kwargs: Any) -> torch.Tensor:
        steps.append(1)
        if len(steps) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "batch_loss", interrupted)
    monkeypatch.setenv("STEER_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out.safetensors"
    with pytest.raises(KeyboardInterrupt):
        build_vectors_file(path, out)
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    assert not list((tmp_path / "cache").rglob("*.safetensors"))


def test_a_per_layer_vector_acts_only_on_its_layers(repo_dir: Path) -> None:
    from recipe_engine.compiler import compile_plan

    path = _write(repo_dir, _recipe(layers="[0, 1]"))
    loaded = load_recipe(path)
    model = load_model(loaded.recipe.model, loaded.model_dir)
    rows = torch.randn(2, model.shape.hidden_size)
    plan = compile_plan(loaded.recipe, model, {"v": rows}, loaded.document)
    assert [op.layer for op in plan.ops] == [0, 1]
    assert torch.equal(plan.ops[0].vector, rows[0]) and torch.equal(plan.ops[1].vector, rows[1])
    recipe = loaded.recipe.model_copy(
        update={"interventions": [loaded.recipe.interventions[0].model_copy(update={"layers": 2})]}
    )
    with pytest.raises(RecipeError, match="layer 2 has none"):
        compile_plan(recipe, model, {"v": rows}, loaded.document)


def test_without_a_terminal_training_prints_a_line_per_tenth_of_its_steps(
    repo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log file of a long training shows it moving: step, loss, held-out loss, s/step."""
    path = _write(repo_dir, _recipe(extra="    patience: null\n").replace("steps: 6", "steps: 20"))
    request, _ = _request(path)
    train_vector(request)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train v:")]
    assert [line.split()[3] for line in lines] == [f"{s}/20" for s in range(2, 21, 2)]
    assert all(" loss " in line and " held-out " in line and "s/step" in line for line in lines)
