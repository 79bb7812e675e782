"""An independent reference for the engine: the same operations written as plain PyTorch
forward hooks on the Hugging Face modules, each prompt run alone (no padding, no nnsight).

Nothing here imports the engine's execution code: module paths are written out per family, and
the op formulas are restated from the README.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

PATHS = {
    "gpt2": {
        "block": "transformer.h.{L}",
        "attn": "transformer.h.{L}.attn",
        "mlp": "transformer.h.{L}.mlp",
        "out_proj": "transformer.h.{L}.attn.c_proj",
    },
    "llama": {
        "block": "model.layers.{L}",
        "attn": "model.layers.{L}.self_attn",
        "mlp": "model.layers.{L}.mlp",
        "out_proj": "model.layers.{L}.self_attn.o_proj",
    },
}


def reference_op(h: torch.Tensor, op: str, v: torch.Tensor | None, s: float) -> torch.Tensor:
    """The op table of the README, on h [B, T, D]."""
    if op == "add":
        return h + s * v
    if op == "set":
        return (s * v).expand_as(h).clone()
    if op == "scale":
        if v is None:
            return h * s
        u = v / v.norm()
        return h + (s - 1) * (h @ u).unsqueeze(-1) * u
    if op == "zero":
        return torch.zeros_like(h)
    if op == "mean_ablate":
        return v.expand_as(h).clone()
    u = v / v.norm()
    if op == "project_out":
        return h - s * (h @ u).unsqueeze(-1) * u
    if op == "clamp":
        return h - (h @ u).unsqueeze(-1) * u + s * u
    raise ValueError(op)


StepMask = Callable[[int, int], list[int]]  # (step, chunk length) -> positions to edit


def _edit(
    h: torch.Tensor,
    positions: list[int],
    fn: Callable[[torch.Tensor], torch.Tensor],
    columns: torch.Tensor | None,
) -> torch.Tensor:
    h = h.clone()
    if not positions:
        return h
    idx = torch.tensor(positions)
    if columns is None:
        h[:, idx] = fn(h[:, idx])
    else:
        sub = h[:, idx][..., columns]
        new = fn(sub)
        block = h[:, idx]
        block[..., columns] = new
        h[:, idx] = block
    return h


@contextmanager
def hooks(
    hf: torch.nn.Module,
    family: str,
    site: str,
    layers: dict[int, float],
    op: str,
    vector: torch.Tensor | None,
    strength: float,
    step_positions: StepMask,
    columns: torch.Tensor | None = None,
) -> Iterator[None]:
    """Register hooks that apply `op` at `site` of each layer; steps counted per layer."""
    handles = []
    modules = dict(hf.named_modules())
    for layer, weight in layers.items():
        s = strength * weight
        v = vector
        if v is not None and columns is not None:
            v = v[columns]
        counter = {"step": 0}

        def fn(x: torch.Tensor, s: float = s, v: Any = v) -> torch.Tensor:
            return reference_op(x, op, v, s)

        def positions_now(chunk: int, counter: dict[str, int] = counter) -> list[int]:
            step = counter["step"]
            counter["step"] += 1
            return step_positions(step, chunk)

        paths = PATHS[family]
        if site in ("resid_pre", "heads"):
            name = paths["block" if site == "resid_pre" else "out_proj"].format(L=layer)

            def pre(module: Any, args: tuple, kwargs: dict, positions_now=positions_now, fn=fn):  # type: ignore[no-untyped-def]
                if args:
                    x = args[0]
                    new = _edit(x, positions_now(x.shape[1]), fn, columns)
                    return (new, *args[1:]), kwargs
                x = kwargs["hidden_states"]
                new = _edit(x, positions_now(x.shape[1]), fn, columns)
                return args, {**kwargs, "hidden_states": new}

            handles.append(modules[name].register_forward_pre_hook(pre, with_kwargs=True))
        else:
            key = {"resid_post": "block", "attn_out": "attn", "mlp_out": "mlp"}[site]
            name = paths[key].format(L=layer)

            def post(module: Any, args: tuple, output: Any, positions_now=positions_now, fn=fn):  # type: ignore[no-untyped-def]
                x = output[0] if isinstance(output, tuple) else output
                new = _edit(x, positions_now(x.shape[1]), fn, None)
                return (new, *output[1:]) if isinstance(output, tuple) else new

            handles.append(modules[name].register_forward_hook(post))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def reference_generate(
    model: Any, prompt: str, new_tokens: int
) -> tuple[list[int], list[torch.Tensor]]:
    """Greedy HF generate of one unpadded prompt (hooks, if any, already registered):
    the new token ids and the raw logits of every step."""
    encoded = model.tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.hf.generate(
            **encoded,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=model.tokenizer.pad_token_id,
            output_logits=True,
            return_dict_in_generate=True,
            temperature=None,
            top_k=None,
            top_p=None,
        )
    tokens = out.sequences[0, encoded["input_ids"].shape[1] :].tolist()
    return tokens, [step[0].float() for step in out.logits]
