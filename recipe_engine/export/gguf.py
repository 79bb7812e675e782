"""`steer export --format gguf-control-vector`: `add` at resid_post as a llama.cpp control vector.

The layout is llama.cpp's own (vendored in llama-cpp-python 0.3.36, llama.cpp of 2026):
- tools/cvector-generator/cvector-generator.cpp, export_gguf(): metadata
  general.architecture = "controlvector", controlvector.model_hint (the model's
  general.architecture), controlvector.layer_count (int32, the number of tensors);
- common/common.cpp, common_control_vector_load_one(): one 1-D F32 tensor per layer named
  `direction.N`, N >= 1 (0 is refused); the data is multiplied by the user's strength
  (--control-vector-scaled, default 1) and summed over files and over tensors of one layer;
- src/llama-adapter.cpp, llama_adapter_cvec::apply()/apply_to(): direction.N is the tensor of
  layer il = N, added (ggml_add: plus sign) to the layer's output;
- src/models/llama.cpp: `cur = build_cvec(cur, il)` right after the FFN residual add, i.e. the
  output of decoder block il (0-based): the engine's resid_post at layer N. Block 0 never
  gets one (llama_adapter_cvec::init: "there's never a tensor for layer 0").
So direction.N = strength x layer weight x vector of every `add` at resid_post of layer N.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from recipe_engine.atomic import write_bytes_atomic
from recipe_engine.diagnostics import Diagnostic
from recipe_engine.errors import RecipeError
from recipe_engine.export.groups import group_refusals
from recipe_engine.format.positions import ALL_POSITIONS

if TYPE_CHECKING:
    from recipe_engine.pipeline import CompiledRecipe

__all__ = ["GGUF_ARCH", "export_control_vector", "write_control_vector"]

GGUF_ARCH = "controlvector"
# transformers model_type -> llama.cpp's general.architecture (the model hint), where they differ
_LLAMA_CPP_ARCH = {"gemma3_text": "gemma3", "mistral": "llama", "gpt_neox": "gptneox"}


def write_control_vector(path: Path, directions: dict[int, torch.Tensor], model_hint: str) -> None:
    """Write {layer N: vector} as llama.cpp reads it, atomically."""
    import gguf
    import numpy as np

    with tempfile.TemporaryDirectory() as folder:
        staged = Path(folder) / "cv.gguf"
        writer = gguf.GGUFWriter(str(staged), GGUF_ARCH)  # writes general.architecture
        writer.add_string(f"{GGUF_ARCH}.model_hint", model_hint)
        writer.add_int32(f"{GGUF_ARCH}.layer_count", len(directions))
        for layer in sorted(directions):
            data = directions[layer].detach().to(torch.float32).cpu().numpy()
            writer.add_tensor(f"direction.{layer}", np.ascontiguousarray(data))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        write_bytes_atomic(path, staged.read_bytes())


def _refusal(compiled: CompiledRecipe, index: int, field: str, why: str) -> Diagnostic:
    doc = compiled.loaded.document
    pointer = f"/interventions/{index}/{field}"
    if doc.locate(pointer) is None:
        pointer = f"/interventions/{index}"
    return doc.diagnostic("cannot-export", f"cannot write a control vector: {why}", pointer)


def export_control_vector(compiled: CompiledRecipe, out: Path) -> dict[str, Any]:
    """Every op must be `add` at resid_post, positions all, a plain vector, layer >= 1."""
    problems: list[Diagnostic] = []
    directions: dict[int, torch.Tensor] = {}
    for op in compiled.plan.ops:
        if op.gate is not None:
            problems.append(
                _refusal(
                    compiled,
                    op.index,
                    "when",
                    "`when:` decides per input whether the op acts; llama.cpp adds always",
                )
            )
        elif op.op != "add":
            problems.append(_refusal(compiled, op.index, "op", f"llama.cpp only adds ({op.op})"))
        elif op.site != "resid_post" or op.layer is None:
            problems.append(
                _refusal(
                    compiled,
                    op.index,
                    "site",
                    "llama.cpp adds at block outputs only (site: resid_post)",
                )
            )
        elif op.positions != ALL_POSITIONS:
            problems.append(
                _refusal(
                    compiled,
                    op.index,
                    "positions",
                    "llama.cpp adds on every token (positions: all)",
                )
            )
        elif op.vector is None or op.vector.dim() != 1:
            problems.append(_refusal(compiled, op.index, "vector", "a per-position vector"))
        elif op.layer == 0:
            problems.append(
                _refusal(
                    compiled,
                    op.index,
                    "layers",
                    "llama.cpp never steers block 0 "
                    "(common_control_vector_load_one refuses direction.0)",
                )
            )
        else:
            term = op.strength * op.vector.detach().float().cpu()
            directions[op.layer] = directions.get(op.layer, torch.zeros_like(term)) + term
    problems += group_refusals(compiled, "cannot-export", "cannot write a control vector")
    if problems:
        raise RecipeError(problems)
    if not directions:
        raise RecipeError(
            [
                compiled.loaded.document.diagnostic(
                    "cannot-export",
                    "cannot write a control vector: no add at resid_post",
                    "/interventions",
                )
            ]
        )
    family = str(getattr(compiled.model.hf.config, "model_type", "") or "")
    hint = _LLAMA_CPP_ARCH.get(family, family)
    write_control_vector(out, directions, hint)
    return {
        "format": "gguf-control-vector",
        "out": str(out),
        "layers": sorted(directions),
        "model_hint": hint,
        "recipe": compiled.recipe.name,
    }
