"""`steer export --format hf`: plain transformers on the exported folder computes the steered model.

The reference runs in a subprocess that imports transformers and nothing of the engine's execute
stage or nnsight (asserted from its sys.modules), feeds each prompt alone (no padding) and
reports its next-token logits and greedy tokens; the engine's own steered pass (run_recipe)
must match them: logits to 1e-4 in float32, greedy tokens identical.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from recipe_engine.errors import RecipeError
from recipe_engine.export import export_recipe
from recipe_engine.pipeline import compile_recipe, load_recipe, run_recipe
from recipe_engine.vectors.sources import resolve_prompts

REPO = Path(__file__).resolve().parent.parent
NEW_TOKENS = 6
# Greedy generation on a few prompts, no baseline pass or metrics: the comparison needs only the
# steered pass (keeps the test to seconds).
GENERATE = [
    "run.mode=generate",
    f"run.generation={{max_new_tokens: {NEW_TOKENS}}}",
    "run.prompts=[The movie was, I think the food, Overall the trip]",
    "run.compare_baseline=false",
    "report.metrics=[]",
]
# Gallery recipes that cannot be baked, and the field the refusal points at.
REFUSED = {"clamp-direction": "positions", "project-out": "op"}

REFERENCE = r"""
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
jobs = json.load(open(sys.argv[1]))
out = {}
for folder, prompts in jobs.items():
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    rows = []
    for prompt in prompts:
        ids = tok(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            logits = model(ids).logits[0, -1].tolist()
            new = model.generate(ids, max_new_tokens=%d, do_sample=False,
                                 pad_token_id=tok.pad_token_id or 0)[0, ids.shape[1]:].tolist()
        rows.append({"logits": logits, "greedy": new})
    out[folder] = rows
banned = [m for m in sys.modules if m.startswith(("nnsight", "recipe_engine"))]
json.dump({"rows": out, "banned": banned}, open(sys.argv[2], "w"))
""" % NEW_TOKENS


def reference(jobs: dict[str, list[str]], tmp: Path) -> dict[str, list[dict[str, Any]]]:
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    subprocess.run(
        [sys.executable, "-c", REFERENCE, str(tmp / "jobs.json"), str(tmp / "out.json")],
        check=True,
        cwd=tmp,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    result = json.loads((tmp / "out.json").read_text())
    assert result["banned"] == [], "the reference must not import the engine or nnsight"
    rows: dict[str, list[dict[str, Any]]] = result["rows"]
    return rows


def engine_and_export(recipe: Path, out: Path) -> tuple[list[str], Any]:
    loaded = load_recipe(recipe, overrides=GENERATE)
    compiled = compile_recipe(loaded)
    steered = run_recipe(compiled).passes["steered"]
    export_recipe(compiled, "hf", out)
    doc = loaded.document
    prompts = resolve_prompts(loaded.recipe.run.prompts, doc, "/run/prompts", doc.path.parent)
    return list(prompts), steered


def assert_matches(steered: Any, rows: list[dict[str, Any]]) -> None:
    for index, row in enumerate(rows):
        ours = steered.next_logits[index].float()
        theirs = torch.tensor(row["logits"])
        assert float((ours - theirs).abs().max()) <= 1e-4
        assert row["greedy"][: len(steered.generated[index])] == steered.generated[index]


GALLERY = sorted(p for p in (REPO / "recipes").glob("*.yaml"))


def test_every_bakeable_gallery_recipe_matches_plain_transformers(tmp_path: Path) -> None:
    jobs: dict[str, list[str]] = {}
    engine: dict[str, Any] = {}
    for recipe in GALLERY:
        out = tmp_path / recipe.stem
        try:
            prompts, steered = engine_and_export(recipe, out)
        except RecipeError as exc:
            assert recipe.stem in REFUSED, f"{recipe.stem}: {exc}"
            line = str(exc).splitlines()[0]
            assert f"/{REFUSED[recipe.stem]}: cannot bake" in line
            assert line.startswith(f"recipes/{recipe.name}:")  # file:line:col
            assert not out.exists()
            continue
        assert recipe.stem not in REFUSED
        config = json.loads((out / "config.json").read_text())
        assert config["steering_export"]["recipe"] == recipe.stem
        jobs[str(out)] = prompts
        engine[str(out)] = steered
    assert len(jobs) >= 8  # every gallery recipe but the refused ones
    rows = reference(jobs, tmp_path)
    for folder, steered in engine.items():
        assert_matches(steered, rows[folder])
