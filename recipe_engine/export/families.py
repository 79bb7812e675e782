"""Which weights hold a folded op, per model family, and how a family without a bias switch
gets one exactly.

A translation (add) at attn_out / mlp_out / resid_post needs a bias on the writer. Three ways:
  * the family's config has the switch (Llama, Granite and kin: attention_bias, mlp_bias);
  * the writer has a bias already (GPT-2, GPT-NeoX);
  * the family is another one with the switch, written differently (export/twins.py rebuilds
    it): Mistral, Ministral and Qwen2 compute exactly Llama's forward (same module tree and
    weight names; Qwen2's q/k/v biases are Llama's attention_bias with a zero o_proj bias) as
    long as no sliding window cuts attention within max_position_embeddings, and SmolLM3's
    (Llama with a sliding window per layer type, RoPE on every layer) where one does; Phi-3 is
    Llama with fused q/k/v and gate/up projections (split), with the same window rule and
    full-width default RoPE (a partial rotary width, or LongRoPE's switch between short and long
    factors that Phi-3's generate re-computes the cache for, has no Llama equivalent); Gemma is
    Llama with (1 + w) norms (the twin's weights are 1 + w), an embedding scaled by
    sqrt(hidden_size) in the forward (pre-scaled into the twin's table, the unembedding untied)
    and its own activation (Llama's config takes it).
Families with no MLP bias switch and no such twin (Qwen3's per-head q/k norms, Gemma 2/3's and
OLMo-2's normalized block outputs) keep what their attention_bias switch allows (attn_out,
heads) and refuse translations of the MLP output and the stream with the reason, pointing to
the GGUF control vector.

Mixtral is GraniteMoE with its multipliers at 1 (the attention one at head_dim ** -0.5, Mixtral's
scale; GraniteMoE's router softmaxes the top-k logits, equal to Mixtral's renormalized top-k of
the softmax) and no attention_bias: rebuilt as GraniteMoE (export/twins.py renames the MoE
block) unless a sliding window cuts attention, its attention output takes a translation.

MoE blocks (Mixtral, Qwen2-MoE, Qwen3-MoE) output sum_k w_k E_k(x) (+ Qwen2-MoE's shared
expert, scaled by a per-token sigmoid gate). Any linear map A of that output (project_out, a
lowrank or scale without offset) folds exactly into every expert's down projection (and the
shared expert's): A sum_k w_k E_k = sum_k w_k A E_k. A translation c does not: the same bias b
in every expert adds (sum_k w_k) b, which is b only where the applied router weights sum to 1
(Mixtral always renormalizes them, Qwen3-MoE / Qwen2-MoE with norm_topk_prob), and a bias in the
shared expert is scaled by its gate; and even where the algebra allows it, transformers' expert
modules hold no bias (their layout is fixed per class, no config switch adds one) and no family
with the same experts has one. So MoE translations at mlp_out / resid_post are refused with
the reason.
"""

from __future__ import annotations

from typing import Any

from recipe_engine.export.fold import _GGUF, FamilyLayout, NotFoldable

__all__ = ["layout_for"]

_LLAMA_PATHS = ("self_attn.o_proj", "mlp.down_proj", ("model.embed_tokens",))
# the config's own switches cover both writers
_SWITCHED = ("llama", "granite", "arcee", "helium", "smollm3", "seed_oss")
_LLAMA_TWINS = ("mistral", "ministral", "qwen2", "phi3", "gemma")
# attention_bias only; the reason the MLP output takes no translation
_ATTN_ONLY = {
    "qwen3": "Qwen3's config has no mlp_bias switch and no architecture with one computes its "
    "per-head q/k norms",
    "gemma2": "Gemma 2 normalizes the MLP output before adding it to the stream and has no "
    "mlp_bias switch",
    "gemma3_text": "Gemma 3 normalizes the MLP output before adding it to the stream and has no "
    "mlp_bias switch",
    "olmo2": "OLMo-2 normalizes the MLP output before adding it to the stream and has no "
    "mlp_bias switch",
}
_NORM_AFTER_WRITER = frozenset({"gemma2", "gemma3_text", "olmo2"})
_NO_EXPERT_BIAS = (
    "transformers' {name} experts hold no bias (their layout is fixed per class, no config "
    "switch adds one) and no family with the same experts has one"
)
# MoE families: (display name, attention output bias switch, the block's writers)
_MOE: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "mixtral": ("Mixtral", None, ("mlp.experts.down_proj",)),
    "qwen3_moe": ("Qwen3-MoE", "attention_bias", ("mlp.experts.down_proj", "mlp.down_proj")),
    "qwen2_moe": (
        "Qwen2-MoE",
        None,
        ("mlp.experts.down_proj", "mlp.shared_expert.down_proj", "mlp.down_proj"),
    ),
}
_GRANITEMOE_WRITERS = ("block_sparse_moe.experts.down_proj",)  # the twin's path
SUPPORTED = ("gpt2", "gpt_neox", *_SWITCHED, *_LLAMA_TWINS, *_ATTN_ONLY, *_MOE)


def _moe_no_bias(family: str, config: Any) -> str:
    """Why no weight holds a translation of this MoE block's output (families docstring)."""
    name = _MOE[family][0]
    renormalized = family == "mixtral" or bool(getattr(config, "norm_topk_prob", False))
    if renormalized:
        routed = (
            f"{name} renormalizes the top-k router weights to sum to 1, so the same bias in "
            "every expert's down projection would add it exactly, but "
        )
    else:
        routed = (
            f"{name} with norm_topk_prob: false mixes its top-k experts with router weights "
            "that do not sum to 1, so a bias in every expert would be scaled per token, and "
        )
    shared = ""
    if family == "qwen2_moe":
        shared = "; its shared expert is scaled by a per-token sigmoid gate, so no bias there"
    return f"{routed}{_NO_EXPERT_BIAS.format(name=name)}{shared}; {_GGUF}"


def _twin_refusal(family: str, config: Any) -> str | None:
    """Why the Llama rebuild of this family would not compute its forward, or None."""
    if family == "phi3":
        rope = dict(getattr(config, "rope_parameters", None) or {})
        if rope.get("rope_type", "default") != "default":
            return (
                f"this Phi-3 uses {rope['rope_type']} RoPE, whose switch between short and long "
                "factors a Llama rebuild would not keep"
            )
        if float(rope.get("partial_rotary_factor", 1.0) or 1.0) != 1.0:
            return "this Phi-3 rotates part of each head only, which Llama's RoPE does not"
    if family == "gemma" and getattr(config, "use_bidirectional_attention", False):
        return "this Gemma attends bidirectionally, which a Llama rebuild would not"
    return None


def _sliding_window_cuts(config: Any) -> bool:
    """Whether some layer's sliding window is shorter than the positions the model takes."""
    window = getattr(config, "sliding_window", None)
    if window is None or getattr(config, "use_sliding_window", True) is False:
        return False
    limit = int(getattr(config, "max_position_embeddings", 0) or 0)
    return int(window) < limit


def layout_for(config: Any) -> FamilyLayout:
    """The layout of the model whose transformers config is `config`, or NotFoldable."""
    family = str(getattr(config, "model_type", "unknown"))
    if family == "gpt2":
        return FamilyLayout(
            "gpt2", "attn.c_proj", "mlp.c_proj", ("transformer.wte", "transformer.wpe"), True, ()
        )
    if family == "gpt_neox":
        if not getattr(config, "attention_bias", True):
            why = "this GPT-NeoX has no attention biases to hold a translation"
            raise NotFoldable(f"{why}; {_GGUF}")
        layout = ("attention.dense", "mlp.dense_4h_to_h", ("gpt_neox.embed_in",))
        return FamilyLayout(family, *layout, True, ())
    attn, mlp, embed = _LLAMA_PATHS
    if family in _SWITCHED:
        scale = float(getattr(config, "residual_multiplier", 1.0) or 1.0)
        return FamilyLayout(family, attn, mlp, embed, True, resid_scale=scale)
    if family in _LLAMA_TWINS:
        refusal = _twin_refusal(family, config)
        if refusal is not None:
            raise NotFoldable(f"{refusal}; {_GGUF}")
        # SmolLM3 is Llama with per-layer sliding windows (and per-layer RoPE, kept on)
        twin: str | None = "smollm3" if _sliding_window_cuts(config) else "llama"
        rescales = family == "gemma"
        return FamilyLayout(
            family, attn, mlp, embed, True, rebuild_as=twin, rescales_embedding=rescales
        )
    if family in _ATTN_ONLY:
        return FamilyLayout(
            family,
            attn,
            mlp,
            embed,
            family not in _NORM_AFTER_WRITER,
            (("attn", "attention_bias"),),
            no_mlp_bias=f"{_ATTN_ONLY[family]}; {_GGUF}",
        )
    if family in _MOE:
        _, attn_switch, writers = _MOE[family]
        twin = None
        if family == "mixtral" and not _sliding_window_cuts(config):
            # GraniteMoE: Mixtral with multipliers (set to 1, the attention one to Mixtral's
            # head_dim ** -0.5) and an attention_bias switch; the MoE block is block_sparse_moe
            twin, attn_switch, writers = "granitemoe", "attention_bias", _GRANITEMOE_WRITERS
        switches = () if attn_switch is None else (("attn", attn_switch),)
        no_bias = _moe_no_bias(family, config)
        return FamilyLayout(
            family,
            attn,
            None,
            embed,
            True,
            switches,
            rebuild_as=twin,
            no_mlp_bias=no_bias,
            mixed_writers=writers,
        )
    raise NotFoldable(
        "no known weight layout to bake this family into (supported: "
        f"{', '.join(SUPPORTED)}); {_GGUF}"
    )
