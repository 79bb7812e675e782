"""Every metric formula against an independent computation: the embedded model loaded with
plain transformers, steering applied with a plain PyTorch forward hook, each prompt alone, the
formulas written out here (no engine code computes a reference value). The engine's own
vector tensors are inputs only (what is added); what is checked is what is measured.
"""

from __future__ import annotations

import itertools
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
import torch

from recipe_engine.api import compile_recipe, load_recipe, run_recipe

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

WEIGHTS = (
    Path(__file__).resolve().parents[1] / "recipe_engine" / "builtin_weights" / "tiny-sentiment"
)
PROMPTS = ["The weather today is", "I think the movie was", "Our flight home was"]
TEXTS = [
    "The train leaves at nine in the morning. We booked the hotel in March.",
    "We ordered the soup at noon.",
]
POSITIVE = ["great", "wonderful"]
STRENGTH = 3.0
HEADER = """
version: 1
name: formulas
model: {id: "builtin:tiny-sentiment", dtype: float32, device: cpu}
vectors:
  s:
    kind: contrastive
    positive: [The pizza was great. I loved it., The film was wonderful.]
    negative: [The pizza was terrible. I hated it., The film was awful.]
    layer: 0
    position: mean
interventions:
  - {vector: s, op: add, layers: 0, site: resid_post, positions: all, strength: 3.0}
"""


@pytest.fixture(scope="module")
def hf() -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(WEIGHTS, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(WEIGHTS)


def _recipe(tmp_path: Path, body: str) -> Path:
    (tmp_path / ".git").mkdir(exist_ok=True)
    path = tmp_path / "r.yaml"
    path.write_text(HEADER + body)
    return path


class _Add:
    """Adds `vector` to block 0's output while active (a plain forward hook)."""

    def __init__(self, model: Any, vector: torch.Tensor | None) -> None:
        self.model, self.vector = model, vector

    def __enter__(self) -> None:
        def hook(module: Any, inputs: Any, output: Any) -> Any:
            if isinstance(output, tuple):
                return (output[0] + self.vector, *output[1:])
            return output + self.vector

        block = self.model.transformer.h[0]
        self.handle = block.register_forward_hook(hook) if self.vector is not None else None

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.remove()


def _logits(hf: tuple[Any, Any], text: str, vector: torch.Tensor | None) -> torch.Tensor:
    model, tok = hf
    ids = tok(text, return_tensors="pt")["input_ids"]
    with torch.no_grad(), _Add(model, vector):
        return model(ids).logits[0].float()


def _ids(tok: Any, words: list[str]) -> list[int]:
    out: list[int] = []
    for word in words:
        for form in (" " + word, word):
            first = tok(form, add_special_tokens=False)["input_ids"][0]
            if first not in out:
                out.append(first)
    return out


def _kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    log_p, log_q = p_logits.log_softmax(-1), q_logits.log_softmax(-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def _nll(logits: torch.Tensor, ids: list[int], start: int) -> float:
    """Mean -log p of ids[start:] given what precedes each."""
    logp = logits.log_softmax(-1)
    return -statistics.fmean(float(logp[t - 1, ids[t]]) for t in range(start, len(ids)))


def test_token_prob_kl_and_perplexity_match_plain_transformers(
    tmp_path: Path, hf: tuple[Any, Any]
) -> None:
    path = _recipe(
        tmp_path,
        f"""
run: {{mode: trace, prompts: {PROMPTS}}}
report:
  prompt_baseline: "I was so happy."
  metrics:
    - {{kind: token_prob, tokens: {{positive: {POSITIVE}}}}}
    - {{kind: kl_baseline}}
    - {{kind: kl_baseline, text: {TEXTS}}}
    - {{kind: perplexity, text: {TEXTS}}}
""",
    )
    compiled = compile_recipe(load_recipe(path))
    report = run_recipe(compiled)
    vector = STRENGTH * compiled.vectors["s"].tensor.float()
    _, tok = hf
    ids = _ids(tok, POSITIVE)
    clean = [_logits(hf, p, None)[-1] for p in PROMPTS]
    steered = [_logits(hf, p, vector)[-1] for p in PROMPTS]
    prompted = [_logits(hf, "I was so happy. " + p, None)[-1] for p in PROMPTS]

    def mass(rows: list[torch.Tensor]) -> float:
        return statistics.fmean(float(r.softmax(-1)[ids].sum()) for r in rows)

    prob = report.metric("token_prob:positive")
    assert prob.baseline == pytest.approx(mass(clean), abs=1e-5)
    assert prob.steered == pytest.approx(mass(steered), abs=1e-5)
    assert prob.prompting == pytest.approx(mass(prompted), abs=1e-5)
    kl = statistics.fmean(float(_kl(s, c)) for s, c in zip(steered, clean, strict=True))
    assert report.metric("kl_baseline").steered == pytest.approx(kl, rel=1e-4, abs=1e-6)
    per_position = torch.cat([_kl(_logits(hf, t, vector), _logits(hf, t, None)) for t in TEXTS])
    text_kl = report.metric("kl_baseline:text").steered
    assert text_kl == pytest.approx(float(per_position.mean()), rel=1e-4)
    for side, added in (("baseline", None), ("steered", vector)):
        nll = [_nll(_logits(hf, t, added), tok(t)["input_ids"], 1) for t in TEXTS]
        expected = math.exp(statistics.fmean(nll))
        assert getattr(report.metric("perplexity"), side) == pytest.approx(expected, rel=1e-4)


def _block_mean(hf: tuple[Any, Any], text: str, layer: int) -> torch.Tensor:
    """Block `layer`'s output averaged over the text's own tokens (not the added BOS)."""
    model, tok = hf
    enc = tok(text, return_tensors="pt", return_special_tokens_mask=True)
    seen: list[torch.Tensor] = []

    def hook(module: Any, inputs: Any, output: Any) -> None:
        seen.append((output[0] if isinstance(output, tuple) else output)[0])

    handle = model.transformer.h[layer].register_forward_hook(hook)
    with torch.no_grad():
        model(enc["input_ids"])
    handle.remove()
    keep = enc["special_tokens_mask"][0] == 0
    return seen[0][keep].float().mean(0)


def test_text_metrics_match_plain_transformers(tmp_path: Path, hf: tuple[Any, Any]) -> None:
    import re

    path = _recipe(
        tmp_path,
        f"""
run: {{mode: generate, prompts: {PROMPTS}, generation: {{max_new_tokens: 10}}}}
report:
  metrics:
    - {{kind: concept, name: probe, probe: s}}
    - {{kind: concept, name: words, words: {POSITIVE}, threshold: 0.05}}
    - {{kind: fluency}}
    - {{kind: repetition, n: 2}}
    - {{kind: instruction}}
""",
    )
    compiled = compile_recipe(load_recipe(path))
    report = run_recipe(compiled)
    model, tok = hf
    unit = compiled.vectors["s"].tensor.float()
    unit = unit / unit.norm()
    texts: dict[str, list[str]] = {}
    for side in ("baseline", "steered"):
        generated = report.passes[side].generated
        texts[side] = [tok.decode(g, skip_special_tokens=True) for g in generated]
        nll = []
        for prompt, new in zip(PROMPTS, generated, strict=True):
            start = len(tok(prompt)["input_ids"])
            ids = tok(prompt)["input_ids"] + list(new)
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0].float()
            nll.append(_nll(logits, ids, start))
        fluency = getattr(report.metric("fluency"), side)
        assert fluency == pytest.approx(math.exp(statistics.fmean(nll)), rel=1e-4)
        probe = [float(_block_mean(hf, t, 0) @ unit) for t in texts[side]]
        assert getattr(report.metric("concept:probe"), side) == pytest.approx(
            statistics.fmean(probe), rel=1e-4, abs=1e-5
        )
        words = [re.findall(r"[a-z0-9']+", t.lower()) for t in texts[side]]
        rates = [sum(w in POSITIVE for w in ws) / len(ws) for ws in words]
        assert getattr(report.metric("concept:words"), side) == pytest.approx(
            statistics.fmean(rates)
        )
        above = statistics.fmean(float(r > 0.05) for r in rates)
        assert getattr(report.metric("concept:words:above"), side) == pytest.approx(above)
        distinct = [len(set(itertools.pairwise(ws))) / (len(ws) - 1) for ws in words]
        assert getattr(report.metric("repetition:distinct-2"), side) == pytest.approx(
            statistics.fmean(distinct)
        )
    assert texts["steered"] != texts["baseline"]  # the comparison below compares something
    cosines = [
        float(torch.cosine_similarity(_block_mean(hf, s, 3), _block_mean(hf, b, 3), dim=0))
        for s, b in zip(texts["steered"], texts["baseline"], strict=True)
    ]
    instruction = report.metric("instruction")
    assert instruction.steered == pytest.approx(statistics.fmean(cosines), rel=1e-4)
    assert instruction.baseline == pytest.approx(1.0, abs=1e-5)
    # the probe's default threshold: the unsteered continuations' mean score
    assert report.metric("concept:probe:above").detail["threshold"] == pytest.approx(
        report.metric("concept:probe").baseline, abs=1e-5
    )


def test_samples_give_a_confidence_interval_of_the_mean(tmp_path: Path) -> None:
    import re

    path = _recipe(
        tmp_path,
        f"""
run:
  mode: generate
  prompts: {PROMPTS[:2]}
  samples: 4
  generation: {{max_new_tokens: 8, do_sample: true, seed: 0}}
report:
  metrics: [{{kind: repetition, n: 1}}]
""",
    )
    report = run_recipe(load_recipe(path))
    assert len(report.prompts) == 8  # 2 prompts x 4 samples
    texts = [p.steered.continuation or "" for p in report.prompts]
    words = [re.findall(r"[a-z0-9']+", t.lower()) for t in texts]
    values = [len(set(ws)) / len(ws) for ws in words]
    half = 1.96 * statistics.stdev(values) / math.sqrt(len(values))
    mean = statistics.fmean(values)
    low, high = report.metric("repetition:distinct-1").ci95 or (math.nan, math.nan)
    assert (low, high) == (pytest.approx(mean - half), pytest.approx(mean + half))


def test_random_controls_are_the_same_interventions_with_random_vectors(
    tmp_path: Path, hf: tuple[Any, Any]
) -> None:
    from recipe_engine.evaluate.controls import random_like

    path = _recipe(
        tmp_path,
        f"""
run: {{mode: trace, prompts: {PROMPTS}}}
report:
  controls: {{random: 3}}
  metrics: [{{kind: token_prob, tokens: {{positive: {POSITIVE}}}}}]
""",
    )
    compiled = compile_recipe(load_recipe(path))
    report = run_recipe(compiled)
    vector = compiled.vectors["s"].tensor.float()
    _, tok = hf
    ids = _ids(tok, POSITIVE)
    expected = []
    for seed in range(3):
        control = random_like(vector, seed, "s")
        assert float(control.norm()) == pytest.approx(float(vector.norm()), rel=1e-5)
        rows = [_logits(hf, p, STRENGTH * control)[-1] for p in PROMPTS]
        expected.append(statistics.fmean(float(r.softmax(-1)[ids].sum()) for r in rows))
    prob = report.metric("token_prob:positive")
    assert prob.controls == pytest.approx(expected, abs=1e-5)
    assert len(set(prob.controls)) == 3  # three different directions
    z = (prob.steered - statistics.fmean(expected)) / statistics.stdev(expected)
    assert prob.control_z == pytest.approx(z, rel=1e-3)


def test_classifier_concept_matches_plain_transformers(tmp_path: Path, hf: tuple[Any, Any]) -> None:
    """A sequence-classification folder (a random-weight GPT-2 classifier saved here, with the
    embedded model's tokenizer) scores each continuation: P(label) by plain transformers."""
    import shutil

    from transformers import AutoConfig, AutoModelForSequenceClassification

    folder = tmp_path / "judge"
    config = AutoConfig.from_pretrained(WEIGHTS)
    config.num_labels = 2
    config.id2label, config.label2id = {0: "NEG", 1: "POS"}, {"NEG": 0, "POS": 1}
    config.pad_token_id = 0
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(WEIGHTS / name, folder / name)
    path = _recipe(
        tmp_path,
        f"""
run: {{mode: generate, prompts: {PROMPTS}, generation: {{max_new_tokens: 6}}}}
report:
  metrics: [{{kind: concept, name: judge, classifier: judge, label: POS}}]
""",
    )
    report = run_recipe(load_recipe(path))
    judge = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).eval()
    _, tok = hf
    for side in ("baseline", "steered"):
        texts = [getattr(p, side).continuation for p in report.prompts]
        with torch.no_grad():
            probs = [
                float(judge(**tok(t, return_tensors="pt")).logits[0].softmax(-1)[1]) for t in texts
            ]
        value = report.metric("concept:judge")
        assert getattr(value, side) == pytest.approx(statistics.fmean(probs), rel=1e-5)
        above = statistics.fmean(float(p > 0.5) for p in probs)
        assert getattr(report.metric("concept:judge:above"), side) == pytest.approx(above)
