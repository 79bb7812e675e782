"""`kind: trained, form: lowrank` + `op: lowrank` (LoReFT, h + R^T(W h + b - R h)): the op equals a
plain PyTorch forward hook computing the formula from the stored tensors, the training gradient
equals a plain hook's, R keeps orthonormal rows, training lowers the lm loss on held-out
targets, a rebuild is bit-identical, bad input is refused at its line, and `steer export
--format hf` bakes it exactly at a writer and refuses it on the residual stream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from recipe_engine.compiler import compile_plan
from recipe_engine.diagnostics import Diagnostic
from recipe_engine.errors import RecipeError
from recipe_engine.execute.steer import apply_plan
from recipe_engine.learned.examples import load_examples
from recipe_engine.learned.train import batch_loss, train_vector, vector_plan
from recipe_engine.pipeline import load_recipe
from recipe_engine.resolve.model_loader import load_model
from recipe_engine.validate import validate_file
from recipe_engine.vectors.build import build_vectors
from recipe_engine.vectors.cache import VectorCache
from recipe_engine.vectors.lowrank import pack_lowrank, unpack_lowrank
from recipe_engine.vectors.trained_request import TrainRequest
from tests.support.sequences import padded_batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OPENINGS = [
    "The food was",
    "My day was",
    "The film we saw was",
    "Our trip was",
    "The hotel room was",
    "The concert was",
    "The book I read was",
    "The weather today was",
    "Our new neighbour was",
    "The train ride was",
    "The coffee was",
    "The party was",
]
HELD_OUT = ["The museum was", "My lunch was", "The show last night was", "The walk home was"]
COMPLETION = " great and lovely."
ROWS = [
    {"prompt": p, "completion": COMPLETION, "chosen": " great.", "rejected": " awful."}
    for p in OPENINGS
]
WEIGHTS = {0: 0.5, 1: 1.0}


def _recipe(
    layers: str = "{0: 0.5, 1: 1.0}",
    site: str = "mlp_out",
    objective: str = "lm",
    vector_extra: str = "",
    op_extra: str = "",
    steps: int = 30,
) -> str:
    return f"""\
version: 1
name: lowrank-test
model: {{id: builtin:tiny-sentiment, dtype: float32}}
vectors:
  reft:
    kind: trained
    form: lowrank
    rank: 3
    layers: {layers}
    site: {site}
    objective: {objective}
    targets: {{file: targets.jsonl}}
    steps: {steps}
    batch_size: 4
    lr: 0.02
    held_out: 0.25
    eval_every: 5
    patience: null
{vector_extra}
interventions:
  - {{vector: reft, op: lowrank, layers: {layers}, site: {site}{op_extra}}}
run: {{mode: trace, prompts: ["hello"]}}
report: {{metrics: []}}
"""


def _write(folder: Path, recipe: str) -> Path:
    (folder / "targets.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8"
    )
    path = folder / "r.yaml"
    path.write_text(recipe, encoding="utf-8")
    return path


def _errors(path: Path) -> list[str]:
    return [d.format() for d in validate_file(path).errors]


def _request(path: Path) -> TrainRequest:
    loaded = load_recipe(path)
    recipe = loaded.recipe
    model = load_model(recipe.model, loaded.model_dir)

    def error(code: str, message: str, pointer: str) -> RecipeError:
        return RecipeError([Diagnostic(code, message, pointer)])

    return TrainRequest(
        name="reft",
        spec=recipe.vectors["reft"],  # type: ignore[arg-type]
        recipe=recipe,
        model=model,
        doc=loaded.document,
        pointer="/vectors/reft",
        targets_path=path.parent / "targets.jsonl",
        prompts=None,
        progress=None,
        error=error,
    )


def _hooked(
    model: Any, tensors: dict[int, tuple[torch.Tensor, ...]], scale: dict[int, float]
) -> list[Any]:
    """Plain PyTorch: at each layer's MLP output h <- h + s R^T (W h + b - R h)."""
    handles = []
    for layer, (r, w, b) in tensors.items():

        def hook(_m: Any, _i: Any, out: torch.Tensor, r=r, w=w, b=b, s=scale[layer]) -> Any:  # type: ignore[no-untyped-def]
            return out + s * (out @ w.T + b - out @ r.T) @ r

        handles.append(model.hf.transformer.h[layer].mlp.register_forward_hook(hook))
    return handles


def _hooked_logps(
    model: Any,
    sequences: list[Any],
    tensors: dict[int, tuple[torch.Tensor, ...]],
    scale: dict[int, float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probability of each completion under the plain hooks, and its length."""
    handles = _hooked(model, tensors, scale)
    try:
        ids, mask = padded_batch(sequences)
        logprobs = torch.log_softmax(model.hf(input_ids=ids, attention_mask=mask).logits, -1)
        totals = []
        for row, (prompt, completion) in enumerate(sequences):
            picked = logprobs[row, len(prompt) - 1 : len(prompt) - 1 + len(completion)]
            totals.append(picked.gather(-1, torch.tensor(completion).unsqueeze(-1)).sum())
        return torch.stack(totals), torch.tensor([float(len(c)) for _, c in sequences])
    finally:
        for handle in handles:
            handle.remove()


def _random_lowrank(rank: int, width: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    r = torch.linalg.qr(torch.randn(width, rank, generator=g)).Q.T.contiguous()
    return r, torch.randn(rank, width, generator=g) * 0.3, torch.randn(rank, generator=g)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One training run (30 steps, two layers, rank 3), cached; shared by the tests below."""
    folder = tmp_path_factory.mktemp("lowrank")
    (folder / ".git").mkdir()
    path = _write(folder, _recipe())
    loaded = load_recipe(path)
    model = load_model(loaded.recipe.model, loaded.model_dir)
    cache = VectorCache(folder / "cache")
    # One thread, as the tests that rebuild it run (module fixtures start before one_torch_thread):
    # bit-identical rebuilds hold for one machine and one thread count.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        built = build_vectors(
            loaded.recipe, model, loaded.document, cache=cache, trainer=train_vector
        )
    finally:
        torch.set_num_threads(threads)
    return {"path": path, "loaded": loaded, "model": model, "built": built["reft"], "cache": cache}


def _stored(trained: dict[str, Any]) -> dict[int, tuple[torch.Tensor, ...]]:
    r, w, b = unpack_lowrank(trained["built"].tensor)  # [L, rank, D] ...
    return {layer: (r[k], w[k], b[k]) for k, layer in enumerate((0, 1))}


def test_the_op_equals_a_plain_hook_on_the_stored_tensors(trained: dict[str, Any]) -> None:
    model, loaded = trained["model"], trained["loaded"]
    assert trained["built"].tensor.shape == (2, 3, 2 * 192 + 1)
    vectors = {"reft": trained["built"].tensor}
    item = loaded.recipe.interventions[0].model_copy(update={"strength": 1.5})
    plan = compile_plan(loaded.recipe, model, vectors, loaded.document, interventions=[item])
    assert [op.op for op in plan.ops] == ["lowrank", "lowrank"]
    with model.lock:
        prompts = [model.tokenizer(t)["input_ids"] for t in HELD_OUT]
    ids, mask = padded_batch([(p, []) for p in prompts])
    with torch.no_grad():
        with model.nn.trace({"input_ids": ids, "attention_mask": mask}):
            apply_plan(model.nn, plan)
            ours = model.nn.output.logits.save()
        handles = _hooked(model, _stored(trained), {k: 1.5 * w for k, w in WEIGHTS.items()})
        try:
            theirs = model.hf(input_ids=ids, attention_mask=mask).logits
        finally:
            for handle in handles:
                handle.remove()
        plain = model.hf(input_ids=ids, attention_mask=mask).logits
    assert float((theirs - plain).abs().max()) > 1e-2  # the intervention does something
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("objective", ["lm", "preference", "reps"])
def test_the_training_gradient_equals_a_plain_hooks(repo_dir: Path, objective: str) -> None:
    request = _request(_write(repo_dir, _recipe(objective=objective)))
    model = request.model
    examples = load_examples(request)
    plan, rows, n_rows = vector_plan(request)
    assert n_rows == 2 and rows == {0: 0, 1: 1}
    starts = [_random_lowrank(3, 192, seed) for seed in (1, 2)]
    batch = list(enumerate(examples[:3]))
    signs = torch.tensor([1.0, -1.0, 1.0])
    for p in model.hf.parameters():
        p.requires_grad_(False)
    reference: dict[int, tuple[float, float]] = {}
    if objective != "lm":
        with torch.no_grad():
            for i, e in batch:
                pair = [(e.prompt, e.completions[0]), (e.prompt, e.completions[1])]
                logp, _ = _hooked_logps(model, pair, {}, {})
                reference[i] = (float(logp[0]), float(logp[1]))

    def leaves() -> tuple[torch.Tensor, ...]:
        return tuple(torch.stack([s[k] for s in starts]).requires_grad_(True) for k in range(3))

    ours = leaves()
    batch_loss(request, plan, ours, rows, batch, signs, reference).backward()  # type: ignore[arg-type]

    theirs = leaves()
    tensors = {layer: tuple(t[layer] for t in theirs) for layer in (0, 1)}
    if objective == "lm":
        seqs = [(e.prompt, e.completions[0]) for _, e in batch]
        logp, count = _hooked_logps(model, seqs, tensors, WEIGHTS)
        loss = -logp.sum() / count.sum()
    else:
        terms = []
        for k, (i, e) in enumerate(batch):
            d = float(signs[k])
            pair = [(e.prompt, e.completions[0]), (e.prompt, e.completions[1])]
            scale = {layer: d * w for layer, w in WEIGHTS.items()}
            (lw, ll), (nw, nl) = _hooked_logps(model, pair, tensors, scale)
            rw, rl = reference[i]
            if objective == "preference":
                terms.append(-torch.nn.functional.logsigmoid(d * 0.1 * ((lw - rw) - (ll - rl))))
            else:
                a, b, ra, rb, na, nb = (
                    (lw, ll, rw, rl, nw, nl) if d > 0 else (ll, lw, rl, rw, nl, nw)
                )
                s = max(1.0, rb - ra)
                terms.append(-torch.nn.functional.logsigmoid(s * a / na - b / nb))
        loss = torch.stack(terms).mean()
    loss.backward()
    for mine, reference_leaf in zip(ours, theirs, strict=True):
        assert mine.grad is not None and reference_leaf.grad is not None
        assert mine.grad.abs().max() > 1e-4  # not a comparison of zeros
        torch.testing.assert_close(mine.grad, reference_leaf.grad, atol=1e-5, rtol=1e-4)


def test_r_keeps_orthonormal_rows_and_the_record_says_how(trained: dict[str, Any]) -> None:
    rotation, _, _ = unpack_lowrank(trained["built"].tensor)
    gram = rotation @ rotation.transpose(-1, -2)
    torch.testing.assert_close(gram, torch.eye(3).expand(2, 3, 3), atol=1e-5, rtol=0)
    record = trained["built"].provenance
    assert record["form"] == "lowrank" and record["rank"] == 3
    assert record["orthonormality_error"] < 1e-5
    assert record["steps_run"] == 30 and record["shape"] == [2, 3, 385]


def test_training_lowers_the_lm_loss_on_held_out_targets(trained: dict[str, Any]) -> None:
    model = trained["model"]
    with model.lock:
        seqs = [
            (model.tokenizer(p)["input_ids"], model.tokenizer(COMPLETION)["input_ids"])
            for p in HELD_OUT  # prompts training never saw
        ]
    with torch.no_grad():
        logp, count = _hooked_logps(model, seqs, {}, {})
        before = float(-logp.sum() / count.sum())
        logp, count = _hooked_logps(model, seqs, _stored(trained), WEIGHTS)
        after = float(-logp.sum() / count.sum())
    assert after < before - 0.2, (before, after)


def test_a_rebuild_is_bit_identical_and_the_cache_is_reused(trained: dict[str, Any]) -> None:
    loaded, model = trained["loaded"], trained["model"]
    again = build_vectors(loaded.recipe, model, loaded.document, cache=False, trainer=train_vector)
    assert torch.equal(again["reft"].tensor, trained["built"].tensor)

    def refuse(_request: TrainRequest) -> Any:
        raise AssertionError("trained again despite a cache entry")

    hit = build_vectors(
        loaded.recipe, model, loaded.document, cache=trained["cache"], trainer=refuse
    )["reft"]
    assert hit.cached and torch.equal(hit.tensor, trained["built"].tensor)


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        ({"rank: 3": "rank: 0"}, "r.yaml:8:11:", "greater than or equal to 1"),
        ({"rank: 3": "rank: 193"}, "r.yaml:8:11:", "rank 193 exceeds the width 192"),
        ({"    form: lowrank\n": ""}, "r.yaml:7:11:", "add `form: lowrank`"),
        ({"op: lowrank": "op: add"}, "/interventions/0/op", "is applied with op: lowrank"),
        (
            {"form: lowrank": "form: vector", "    rank: 3\n": ""},
            "r.yaml:20:14:",
            "op lowrank needs",
        ),
        ({"patience: null": "patience: null\n    max_norm: 1.0"}, "/max_norm", "max_norm bounds"),
    ],
)
def test_bad_input_is_refused_at_its_line(
    repo_dir: Path, change: dict[str, str], where: str, message: str
) -> None:
    text = _recipe()
    for old, new in change.items():
        text = text.replace(old, new)
    errors = _errors(_write(repo_dir, text))
    assert errors and all(where in e for e in errors[:1]), errors
    assert any(message in e for e in errors), errors


def test_heads_and_normalize_are_refused_on_the_op(repo_dir: Path) -> None:
    errors = _errors(_write(repo_dir, _recipe(site="heads", op_extra=", heads: [0]")))
    assert any("/interventions/0/heads" in e and "all heads" in e for e in errors), errors
    errors = _errors(_write(repo_dir, _recipe(op_extra=", normalize: true")))
    assert any("/interventions/0/normalize" in e for e in errors), errors


def test_a_hand_packed_intervention_runs_at_a_single_layer(repo_dir: Path) -> None:
    """Compile checks the packed width against the site (heads: n_heads x head_dim)."""
    path = _write(repo_dir, _recipe(layers="2", site="resid_post"))
    loaded = load_recipe(path)
    model = load_model(loaded.recipe.model, loaded.model_dir)
    packed = pack_lowrank(*_random_lowrank(2, 192, 5))
    plan = compile_plan(loaded.recipe, model, {"reft": packed}, loaded.document)
    assert plan.ops[0].lowrank is not None and plan.ops[0].lowrank.rank == 2
    wrong = pack_lowrank(*_random_lowrank(2, 64, 5))
    with pytest.raises(RecipeError, match="acts on width 64"):
        compile_plan(loaded.recipe, model, {"reft": wrong}, loaded.document)


def _exported_logits(folder: Path, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Plain transformers on the exported folder: no engine op, no hook."""
    from transformers import AutoModelForCausalLM

    baked = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    with torch.no_grad():
        return baked(input_ids=ids, attention_mask=mask).logits.float()


def _logits_with_hooks(
    model: Any, handles: list[Any], ids: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Plain transformers' logits with the reference hooks in place; the hooks removed after."""
    try:
        with torch.no_grad():
            return model.hf(input_ids=ids, attention_mask=mask).logits
    finally:
        for handle in handles:
            handle.remove()


def _held_out_batch(model: Any) -> tuple[torch.Tensor, torch.Tensor]:
    with model.lock:
        return padded_batch([(model.tokenizer(t)["input_ids"], []) for t in HELD_OUT])


def test_export_bakes_lowrank_at_a_writer_exactly(
    trained: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At mlp_out the edit is affine in the MLP's output: (I + R^T W - R^T R) h + R^T b folds
    into the down projection. The exported model equals the plain hook's on the stored tensors."""
    from recipe_engine.export import export_recipe
    from recipe_engine.pipeline import compile_recipe

    monkeypatch.setenv("STEER_CACHE_DIR", str(trained["cache"].root))  # the fixture's training
    compiled = compile_recipe(load_recipe(trained["path"]))
    assert compiled.vectors["reft"].cached
    export_recipe(compiled, "hf", tmp_path / "baked")
    model = trained["model"]
    ids, mask = _held_out_batch(model)
    theirs = _logits_with_hooks(model, _hooked(model, _stored(trained), WEIGHTS), ids, mask)
    torch.testing.assert_close(
        _exported_logits(tmp_path / "baked", ids, mask), theirs, atol=1e-4, rtol=0
    )


def test_export_refuses_lowrank_on_the_stream_at_its_line(repo_dir: Path) -> None:
    from recipe_engine.export import export_recipe

    path = _write(repo_dir, _recipe(site="resid_post", steps=2))
    with pytest.raises(RecipeError) as caught:
        export_recipe(path, "hf", repo_dir / "baked")
    text = caught.value.diagnostics[0].format()
    assert "r.yaml:21:" in text and "/interventions/0/site" in text and "[cannot-bake]" in text
    assert "not a constant translation" in text and "attn_out or mlp_out" in text
    assert not (repo_dir / "baked").exists()


def test_export_bakes_a_per_layer_trained_vector_row_by_row(repo_dir: Path) -> None:
    """A [L, D] trained vector at resid_post: each layer's own row (x its weight) enters that
    block's MLP bias; plain transformers then equals hooks adding each row at its block."""
    from recipe_engine.export import export_recipe
    from recipe_engine.pipeline import compile_recipe

    text = _recipe(site="resid_post", steps=3).replace("    form: lowrank\n    rank: 3\n", "")
    path = _write(repo_dir, text.replace("op: lowrank", "op: add"))
    compiled = compile_recipe(load_recipe(path))
    rows = compiled.vectors["reft"].tensor
    assert rows.shape == (2, 192) and float(rows.norm()) > 0
    export_recipe(compiled, "hf", repo_dir / "baked")
    model = compiled.model
    ids, mask = _held_out_batch(model)
    handles = []
    for k, layer in enumerate((0, 1)):

        def hook(_m: Any, _i: Any, out: Any, v: torch.Tensor = WEIGHTS[layer] * rows[k]) -> Any:
            return (out[0] + v, *out[1:]) if isinstance(out, tuple) else out + v

        handles.append(model.hf.transformer.h[layer].register_forward_hook(hook))
    theirs = _logits_with_hooks(model, handles, ids, mask)
    torch.testing.assert_close(
        _exported_logits(repo_dir / "baked", ids, mask), theirs, atol=1e-4, rtol=0
    )


def _mlp_outputs(model: Any, prompts: list[str], layers: tuple[int, ...]) -> list[torch.Tensor]:
    """Plain PyTorch: each layer's MLP output for every token of the prompts, [tokens, D]."""
    seen: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    handles = [
        model.hf.transformer.h[layer].mlp.register_forward_hook(
            lambda _m, _i, out, layer=layer: seen[layer].append(out[0].detach().float())
        )
        for layer in layers
    ]
    try:
        with torch.no_grad(), model.lock:
            for prompt in prompts:
                model.hf(**model.tokenizer(prompt, return_tensors="pt"))
    finally:
        for handle in handles:
            handle.remove()
    return [torch.cat(seen[layer]) for layer in layers]


def _edit_norm(h: torch.Tensor, packed: torch.Tensor) -> float:
    r, w, b = unpack_lowrank(packed)
    return float(((h @ w.T + b - h @ r.T) @ r).norm(dim=-1).mean())


def test_controls_of_a_lowrank_method_are_random_interventions_of_its_form_and_size(
    trained: dict[str, Any],
) -> None:
    """Each control: R with orthonormal rows, and per layer an edit R^T(W h + b - R h) of the
    method's mean norm on the unsteered activations (read here by plain hooks), with the
    method's ||W - R||_F : ||b|| proportion; seeded: the same on every draw."""
    from recipe_engine.evaluate.controls import control_tensors, lowrank_inputs
    from recipe_engine.learned.lowrank import orthonormality_error

    recipe, model, method = trained["loaded"].recipe, trained["model"], trained["built"].tensor
    hooked = _mlp_outputs(model, HELD_OUT, (0, 1))
    inputs = lowrank_inputs(recipe, model, HELD_OUT)["reft"]
    assert [h.shape for h in inputs] == [h.shape for h in hooked]
    for ours, theirs in zip(inputs, hooked, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    rotation, weight, bias = unpack_lowrank(method)
    draws = [
        control_tensors(recipe, {"reft": method}, s, {"reft": inputs})["reft"] for s in range(3)
    ]
    for control in draws:
        assert control.shape == method.shape and control.dtype == method.dtype
        r, w, b = unpack_lowrank(control)
        assert orthonormality_error(r) < 1e-5
        for k, h in enumerate(hooked):
            assert _edit_norm(h, control[k]) == pytest.approx(_edit_norm(h, method[k]), rel=1e-4)
        torch.testing.assert_close(
            (w - r).norm(dim=(-2, -1)) / b.norm(dim=-1),
            (weight - rotation).norm(dim=(-2, -1)) / bias.norm(dim=-1),
            rtol=1e-4,
            atol=0,
        )
        # a random row space, not the method's: random 3-planes in 192 dims barely overlap
        assert float((r @ rotation.transpose(-1, -2)).abs().max()) < 0.5
    again = control_tensors(recipe, {"reft": method}, 1, {"reft": inputs})["reft"]
    assert torch.equal(again, draws[1])
    assert not torch.equal(draws[0], draws[1])


def test_steer_runs_controls_of_a_lowrank_method_are_those_interventions(
    trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`report.controls` (what `steer run` and `steer eval` both draw) runs each control as the
    plain LoReFT hook on control_tensors' draw: the metric's control values match by hand."""
    from recipe_engine.evaluate.controls import control_tensors
    from recipe_engine.execute.reduce import token_ids
    from recipe_engine.pipeline import compile_recipe, run_recipe

    monkeypatch.setenv("STEER_CACHE_DIR", str(trained["cache"].root))  # the fixture's training
    words = ["great", "lovely"]
    sets = [f"run.prompts={json.dumps(HELD_OUT)}", "report.controls={random: 2}"]
    sets.append(f"report.metrics=[{{kind: token_prob, tokens: {{positive: {json.dumps(words)}}}}}]")
    compiled = compile_recipe(load_recipe(trained["path"], overrides=sets))
    assert compiled.vectors["reft"].cached
    report = run_recipe(compiled)
    model = trained["model"]
    inputs = {"reft": _mlp_outputs(model, HELD_OUT, (0, 1))}
    with model.lock:
        ids = token_ids(model.tokenizer, words)
        prompts = [model.tokenizer(t, return_tensors="pt")["input_ids"] for t in HELD_OUT]
    expected = []
    for seed in range(2):
        tensors = control_tensors(compiled.recipe, {"reft": trained["built"].tensor}, seed, inputs)
        r, w, b = unpack_lowrank(tensors["reft"])
        handles = _hooked(model, {k: (r[k], w[k], b[k]) for k in (0, 1)}, WEIGHTS)
        try:
            with torch.no_grad():
                last = [model.hf(input_ids=p).logits[0, -1].float() for p in prompts]
        finally:
            for handle in handles:
                handle.remove()
        expected.append(sum(float(row.softmax(-1)[ids].sum()) for row in last) / len(last))
    controls = report.metric("token_prob:positive").controls
    assert controls == pytest.approx(expected, abs=1e-5)
    assert controls[0] != pytest.approx(controls[1], abs=1e-6)  # two different draws


def test_a_shared_lowrank_control_matches_the_edit_over_all_its_tokens() -> None:
    """One packed [r, 2D + 1] block (a shared intervention): one factor over the tokens of every
    layer it acts on; the edit norm by hand, not by the engine's helper."""
    from recipe_engine.evaluate.controls import random_lowrank_like
    from recipe_engine.learned.lowrank import orthonormality_error

    method = pack_lowrank(*_random_lowrank(2, 192, 7))
    h = torch.randn(40, 192, generator=torch.Generator().manual_seed(3)) * 4 + 1.5
    control = random_lowrank_like(method, 0, "reft", [h])
    assert control.shape == method.shape
    assert orthonormality_error(unpack_lowrank(control)[0]) < 1e-5
    assert _edit_norm(h, control) == pytest.approx(_edit_norm(h, method), rel=1e-4)
    with pytest.raises(ValueError, match="2 activation sets for 1"):
        random_lowrank_like(method, 0, "reft", [h, h])
