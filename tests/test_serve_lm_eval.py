"""lm-evaluation-harness against `steer serve`, with `local-completions` at its defaults
(tokenizer_backend auto: it finds the server's /tokenize and sends token-id prompts): a
multiple-choice (loglikelihood) task and a generate_until task built from local files, no
download. Unsteered, every loglikelihood, every generated text and every accuracy equals
lm-eval's own `hf` model on the same weights; the steered accuracies are printed."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recipe_engine.api import RunningServer
from recipe_engine.builtin_models import BUILTINS
from tests.serve_support import NAME, serving, write_profiles

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
lm_eval = pytest.importorskip("lm_eval")

WEIGHTS = BUILTINS["tiny-sentiment"].weights_dir
REVIEWS = [
    ("I loved this movie, it was wonderful", 0),
    ("The food was awful and cold", 1),
    ("What a great and happy day", 0),
    ("The service was terrible", 1),
    ("A brilliant, delightful show", 0),
    ("I hated every minute of it", 1),
]
TASKS = ["steer_sentiment_mc", "steer_sentiment_gen"]


def write_tasks(folder: Path) -> Path:
    """A multiple-choice and a generate_until task over one local JSONL file."""
    data = folder / "reviews.jsonl"
    rows = [
        {"text": t, "label": label, "answer": ["positive", "negative"][label]}
        for t, label in REVIEWS
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = (
        f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
        'test_split: test\ndoc_to_text: "Review: {{text}}\\nThe review is"\n'
    )
    (folder / "mc.yaml").write_text(
        f"task: {TASKS[0]}\n{common}output_type: multiple_choice\n"
        'doc_to_choice: [" positive", " negative"]\ndoc_to_target: label\n'
        "metric_list:\n  - metric: acc\n"
    )
    (folder / "gen.yaml").write_text(
        f"task: {TASKS[1]}\n{common}output_type: generate_until\n"
        'doc_to_target: " {{answer}}"\n'
        'generation_kwargs:\n  until: ["\\n", "."]\n  max_gen_toks: 12\n'
        "metric_list:\n  - metric: exact_match\n"
    )
    return folder


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None
) -> Iterator[RunningServer]:
    folder = write_profiles(tmp_path_factory.mktemp("profiles"))
    with serving(folder) as running:
        yield running


def evaluate(model: str, model_args: str, tasks: Path) -> dict[str, Any]:
    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    out: dict[str, Any] = lm_eval.simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=TASKS,
        task_manager=TaskManager(include_path=str(tasks)),
        log_samples=True,
        device="cpu",
    )
    return out


def _scores(result: dict[str, Any]) -> dict[str, float]:
    return {
        "mc acc": result["results"][TASKS[0]]["acc,none"],
        "gen exact_match": result["results"][TASKS[1]]["exact_match,none"],
    }


def test_lm_eval_local_completions_equals_hf_and_reports_steered(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    tasks = write_tasks(tmp_path)
    base_url = f"{server.url}/completions"
    served = evaluate("local-completions", f"model={NAME},base_url={base_url}", tasks)
    # local-completions sends the remote tokenizer's ids with no special tokens (as with
    # vLLM); lm-eval's hf model adds the tokenizer's BOS unless told not to.
    hf = evaluate("hf", f"pretrained={WEIGHTS},dtype=float32,add_bos_token=False", tasks)
    for task in TASKS:
        ours = sorted(served["samples"][task], key=lambda s: (s["doc_id"], str(s["arguments"])))
        theirs = sorted(hf["samples"][task], key=lambda s: (s["doc_id"], str(s["arguments"])))
        assert len(ours) == len(theirs) == len(REVIEWS)
        for a, b in zip(ours, theirs, strict=True):
            if task == TASKS[0]:  # per choice: (loglikelihood, is_greedy)
                for (ll_a, greedy_a), (ll_b, greedy_b) in zip(
                    (r[0] for r in a["resps"]), (r[0] for r in b["resps"]), strict=True
                ):
                    assert abs(float(ll_a) - float(ll_b)) < 1e-4 and greedy_a == greedy_b
            else:
                assert a["resps"] == b["resps"]  # the generated texts
    assert _scores(served) == _scores(hf)
    steered = evaluate("local-completions", f"model={NAME}:positive,base_url={base_url}", tasks)
    print(f"\nunsteered {_scores(served)}\nsteered (positive) {_scores(steered)}")
    assert steered["samples"][TASKS[0]] != served["samples"][TASKS[0]]  # steering reached it
