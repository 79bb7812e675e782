"""Write a transformers Qwen2 model as an F32 GGUF llama.cpp loads, offline, with the gguf
package's own writer and tensor-name map (what llama.cpp's convert_hf_to_gguf.py uses).

Qwen2 needs no weight permutation: llama.cpp runs it with NEOX RoPE (rotate-half, as
transformers does), so the q/k rows are written as they are (convert_hf_to_gguf.py's
Qwen2Model does not permute; only its llama path does). The vocabulary is a byte-level SPM
list (<0xNN> byte tokens and one control token) of the model's vocab size: the tests feed
token ids, so llama.cpp's tokenizer is never run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_qwen2_gguf"]


def write_qwen2_gguf(model: Any, path: Path) -> None:
    """`model`: a float32 Qwen2ForCausalLM; `path`: the .gguf file to write."""
    import gguf

    config = model.config
    arch = gguf.MODEL_ARCH.QWEN2
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    vocab = config.vocab_size
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"<0x{i:02X}>" for i in range(256)] + ["</s>"] * (vocab - 256))
    writer.add_token_scores([0.0] * vocab)
    types = [gguf.TokenType.BYTE] * 256 + [gguf.TokenType.CONTROL] * (vocab - 256)
    writer.add_token_types([int(t) for t in types])
    writer.add_bos_token_id(int(config.bos_token_id))
    writer.add_eos_token_id(int(config.eos_token_id))
    writer.add_add_bos_token(False)

    state = model.state_dict()
    if "lm_head.weight" not in state:
        state["lm_head.weight"] = model.get_output_embeddings().weight
    for name, tensor in state.items():
        mapped = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise ValueError(f"no GGUF name for {name}")
        writer.add_tensor(mapped, tensor.detach().float().numpy().astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
