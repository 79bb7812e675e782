"""Which weights hold a folded op, per model family, and how a family without a bias switch
gets one exactly.

A translation (add) at attn_out / mlp_out / resid_post needs a bias on the writer. Three ways:
  * the family's config has the switch (Llama, Granite and kin: attention_bias, mlp_bias);
  * the writer has a bias already (GPT-2, GPT-NeoX);
  * the family is another one with the switch, written differently: Mistral, Ministral and
    Qwen2 compute exactly Llama's forward (same module tree and weight names; Qwen2's q/k/v
    biases are Llama's attention_bias with a zero o_proj bias) as long as no sliding window
    cuts attention within max_position_embeddings, so they are rebuilt as LlamaForCausalLM.
Families with no MLP bias switch and no such twin (Qwen3's per-head q/k norms, Gemma's (1 + w)
norms and post-norms, OLMo-2's post-norms, the MoE families whose MLP output is a mix of
experts) keep what their attention_bias switch allows (attn_out, heads) and refuse translations
of the MLP output and the stream with the reason, pointing to the GGUF control vector.
"""

from __future__ import annotations

from typing import Any

from recipe_engine.export.fold import _GGUF, FamilyLayout, NotFoldable

__all__ = ["layout_for"]

_LLAMA_PATHS = ("self_attn.o_proj", "mlp.down_proj", ("model.embed_tokens",))
# the config's own switches cover both writers
_SWITCHED = ("llama", "granite", "arcee", "helium", "smollm3", "seed_oss")
_LLAMA_TWINS = ("mistral", "ministral", "qwen2")
# attention_bias only; the reason the MLP output takes no translation
_ATTN_ONLY = {
    "qwen3": "Qwen3's config has no mlp_bias switch and no architecture with one computes its "
    "per-head q/k norms",
    "qwen3_moe": "the MLP output of Qwen3-MoE is a router-weighted mix of experts, which no "
    "single bias follows",
    "gemma": "Gemma's config has no mlp_bias switch",
    "gemma2": "Gemma 2 normalizes the MLP output before adding it to the stream and has no "
    "mlp_bias switch",
    "gemma3_text": "Gemma 3 normalizes the MLP output before adding it to the stream and has no "
    "mlp_bias switch",
    "olmo2": "OLMo-2 normalizes the MLP output before adding it to the stream and has no "
    "mlp_bias switch",
}
_NORM_AFTER_WRITER = frozenset({"gemma2", "gemma3_text", "olmo2"})
_MOE = frozenset({"qwen3_moe"})
SUPPORTED = ("gpt2", "gpt_neox", *_SWITCHED, *_LLAMA_TWINS, *_ATTN_ONLY)


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
        if _sliding_window_cuts(config):
            raise NotFoldable(
                f"this {family} attends through a sliding window of {config.sliding_window} "
                f"tokens, which a Llama rebuild would not keep; {_GGUF}"
            )
        return FamilyLayout(family, attn, mlp, embed, True, rebuild_as="llama")
    if family in _ATTN_ONLY:
        return FamilyLayout(
            family,
            attn,
            None if family in _MOE else mlp,
            embed,
            family not in _NORM_AFTER_WRITER,
            (("attn", "attention_bias"),),
            no_mlp_bias=f"{_ATTN_ONLY[family]}; {_GGUF}",
        )
    raise NotFoldable(
        "no known weight layout to bake this family into (supported: "
        f"{', '.join(SUPPORTED)}); {_GGUF}"
    )
