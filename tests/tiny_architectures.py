"""Tiny random configs of the 13 ``transformers`` decoder architectures the tests train, export and pack."""

from transformers import AutoConfig

SHAPES = {  # beyond the common shape: grouped-query attention, explicit head sizes, sliding windows of 8 tokens
    "llama": {}, "mistral": {"num_key_value_heads": 2, "sliding_window": 8}, "qwen2": {"num_key_value_heads": 2},
    "qwen3": {"num_key_value_heads": 2, "head_dim": 16}, "phi3": {}, "granite": {}, "olmo2": {}, "phi": {},
    "gemma2": {"num_key_value_heads": 2, "head_dim": 16, "sliding_window": 8},
    "gemma3_text": {"num_key_value_heads": 2, "head_dim": 16, "sliding_window": 8},
    "gpt_neox": {"rotary_pct": 1.0}, "starcoder2": {"num_key_value_heads": 2, "sliding_window": 8},
    "gpt2": {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 256},
}
WINDOWED = {"mistral", "gemma2", "gemma3_text", "starcoder2"}  # sliding-window attention in some layer


def tiny_config(model_type: str, vocab_size: int, **ids):
    """Two layers of 64 wide, 4 heads; ``ids``: the tokenizer's pad/eos/bos token ids."""
    return AutoConfig.for_model(model_type, vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2,
                                num_attention_heads=4, intermediate_size=128, max_position_embeddings=256, **ids,
                                **SHAPES[model_type])
