"""Prompt -> per-token text states for cross-attention, from an open_clip or a transformers CLIP.

The Diffusion tab's embedded U-Net is conditioned on the token states of ``shapes-clip``'s text
tower, the same way Stable Diffusion is conditioned on CLIP ViT-L's (Rombach et al. 2022).
"""

from __future__ import annotations

from typing import Any

import torch


@torch.no_grad()
def open_clip_token_states(model: Any, tokenizer: Any, prompts: list[str]) -> torch.Tensor:
    """Final-layer token states of an open_clip text tower, before pooling: (B, L, width)."""
    device = model.token_embedding.weight.device
    tokens = tokenizer(prompts).to(device)  # (B, L)
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)  # (B, L, width)
    x = x + model.positional_embedding.to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask)
    return model.ln_final(x)


@torch.no_grad()
def hf_clip_token_states(text_encoder: Any, tokenizer: Any, prompts: list[str]) -> torch.Tensor:
    """Last hidden states of a transformers ``CLIPTextModel``: (B, 77, hidden)."""
    length = min(tokenizer.model_max_length, text_encoder.config.max_position_embeddings)
    tokens = tokenizer(
        prompts, padding="max_length", max_length=length, truncation=True, return_tensors="pt"
    ).input_ids.to(text_encoder.device)
    return text_encoder(tokens).last_hidden_state


def open_clip_token_mask(tokenizer: Any, prompts: list[str]) -> torch.Tensor:
    """True at the prompt's own tokens (start, words, end), False at the padding: (B, L) bool."""
    return tokenizer(prompts) != 0  # open_clip pads with token id 0
