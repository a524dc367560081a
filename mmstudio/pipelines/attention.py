"""Attention capture: one diffusers attention processor that records attention probabilities for
the layers and steps asked, and costs nothing when nothing is asked.

PyTorch-2's fused attention (``AttnProcessor2_0``) never materialises the probabilities, so
``RecordingAttnProcessor`` runs the fused path unless the forward call passes a ``recorder``
through ``cross_attention_kwargs`` (DiT, PixArt, Latte and the U-Nets all forward it to their
processors). Then it computes ``softmax(QK^T / sqrt(d) + mask)`` explicitly, in the steps of
the classic ``AttnProcessor``, and hands the probabilities to the recorder. The recorder travels
with the call, not with the model, so concurrent requests on the same shared weights never see
each other's captures.

Latte (``LatteTransformer3DModel``) forwards no ``cross_attention_kwargs`` to its blocks, so a
caller can also lend a recorder to the calls made inside ``recording(recorder)`` (a context
variable: per thread, so concurrent requests still never see each other's captures). Its temporal
blocks' self-attention (each patch position over the frames) is recorded as kind "temporal".
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

_NAME = re.compile(
    r"(?:^|\.)(temporal_)?transformer_blocks\.(\d+)\.(attn1|attn2)\.processor$")
#: the recorder lent to the model calls of this thread (``recording``), for models that pass no
#: ``cross_attention_kwargs`` down to their blocks
_ACTIVE: contextvars.ContextVar[Any] = contextvars.ContextVar("attention_recorder", default=None)


@contextlib.contextmanager
def recording(recorder: Any) -> Iterator[None]:
    """Model calls inside the block record into ``recorder`` (None: record nothing)."""
    token = _ACTIVE.set(recorder)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


@dataclass
class AttentionRecorder:
    """Collects attention maps of the conditional half of a guided batch (or the whole batch).

    ``self_steps`` / ``cross_steps`` / ``layers``: which step indices and block indices to keep
    (None: all; an empty set: none). Cross-attention is small (patches x words), self-attention
    large (patches x patches per layer and head), hence separate step sets. Maps are kept per
    (step, layer, kind) as (B, heads, queries, keys) float32 on the CPU; ``kind`` is "self",
    "cross" or (video) "temporal", which ``self_steps`` also selects. The batch B of a video
    model's spatial maps is clips x frames, of its temporal maps clips x patches. The loop sets
    ``step`` before each model call, and ``guided`` when the batch is [uncond; cond].
    """

    self_steps: set[int] | None = None
    cross_steps: set[int] | None = None
    layers: set[int] | None = None
    step: int = 0
    guided: bool = False
    maps: dict[tuple[int, int, str], torch.Tensor] = field(default_factory=dict)

    def wants(self, layer: int, kind: str) -> bool:
        steps = self.cross_steps if kind == "cross" else self.self_steps
        return ((steps is None or self.step in steps)
                and (self.layers is None or layer in self.layers))

    def record(self, layer: int, kind: str, probs: torch.Tensor, heads: int) -> None:
        maps = probs.detach().float().view(-1, heads, *probs.shape[1:])  # (B, heads, Q, K)
        if self.guided:
            maps = maps[maps.shape[0] // 2:]  # the conditional half
        self.maps[(self.step, layer, kind)] = maps.cpu()


class RecordingAttnProcessor(AttnProcessor2_0):
    """``AttnProcessor2_0`` unless a ``recorder`` is passed; then explicit attention, recorded."""

    def __init__(self, layer: int, kind: str) -> None:
        super().__init__()
        self.layer, self.kind = layer, kind

    def __call__(self, attn: Attention, hidden_states: torch.Tensor,
                 encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 recorder: AttentionRecorder | None = None, **kwargs: Any) -> torch.Tensor:
        recorder = recorder if recorder is not None else _ACTIVE.get()
        if recorder is None or not recorder.wants(self.layer, self.kind):
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask,
                                    temb)
        return self._explicit(attn, hidden_states, encoder_hidden_states, attention_mask, temb,
                              recorder)

    def _explicit(self, attn: Attention, hidden_states: torch.Tensor,
                  encoder_hidden_states: torch.Tensor | None, attention_mask: torch.Tensor | None,
                  temb: torch.Tensor | None, recorder: AttentionRecorder) -> torch.Tensor:
        """The classic ``AttnProcessor`` computation, keeping the probabilities."""
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        four_d = hidden_states.ndim == 4
        if four_d:  # (B, C, H, W) -> (B, HW, C)
            batch, channels, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        attention_mask = attn.prepare_attention_mask(attention_mask, context.shape[1],
                                                     context.shape[0])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        query = attn.head_to_batch_dim(query)  # (B * heads, Q, d)
        key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))  # (B * heads, K, d)
        value = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        probs = attn.get_attention_scores(query, key, attention_mask)  # rows sum to 1
        recorder.record(self.layer, self.kind, probs, attn.heads)
        hidden_states = attn.batch_to_head_dim(torch.bmm(probs, value))
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if four_d:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channels, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def install_recording_processors(model: torch.nn.Module) -> int:
    """Give every transformer block's attention a ``RecordingAttnProcessor``; returns how many.
    (Per module, since not every model class has ``set_attn_processor``: DiT's has not.)"""
    count = 0
    for name, module in model.named_modules():
        match = _NAME.search(name + ".processor")
        if isinstance(module, Attention) and match:
            temporal, layer, which = match.groups()
            kind = "temporal" if temporal else ("self" if which == "attn1" else "cross")
            module.set_processor(RecordingAttnProcessor(int(layer), kind))
            count += 1
    return count
