"""Video diffusion over space and time: a clip is frames x height x width x channels.

``motion-dit`` (the embedded video model) is a Latte (Ma et al. 2024, "Latte: Latent Diffusion
Transformer for Video Generation"; diffusers ``LatteTransformer3DModel``): each frame of the clip is
encoded by the shapes autoencoder (``shapes-vae``: 32 x 32 x 3 -> 8 x 8 x 4), each frame's latent is
cut into patches, and the transformer's blocks alternate two kinds of attention:

- **spatial**: the patches of one frame attend to each other (and, by cross-attention, to the
  caption's words): what is where in this frame;
- **temporal**: one patch position attends to the same position in every frame: how it changes.

Full space-time attention would let every patch of every frame attend to every other, (F N)^2
pairs; the factorized blocks cost F N^2 + N F^2 (``attention_cost``). The loop
(``pipelines.denoise``) is the image loop: a clip is one sample of shape (C, F, h, w).

The text encoder is a small transformers ``CLIPTextModel`` trained with the model on the motion
captions; its vocabulary is the open_clip BPE ids of the world's words (``CaptionTokens``), the
tokenizer every caption of the studio goes through.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmstudio.errors import UserError
from mmstudio.pipelines.attention import AttentionRecorder, recording
from mmstudio.pipelines.denoise import (
    Denoiser,
    DenoiseResult,
    DenoiseSettings,
    DenoiseStep,
    denoise,
    vae_decode,
)
from mmstudio.pipelines.token_stream import PAD, TOKENIZER, open_clip_tokenizer

TEXT_FILE = "text_tokens.json"
FPS = 8  # the motion world's
FRAME_COUNTS = (4, 8, 16)  # "how cost grows with frames"


# ---------------------------------------------------------------------------------- text
@dataclass(frozen=True)
class CaptionTokens:
    """The text tower's vocabulary: the open_clip ids of a world's words (and start, end,
    padding), numbered 0, 1, 2, ... in ``table`` order; captions padded to ``length``."""

    table: tuple[int, ...]  # [0] = padding (open_clip's 0), [1] start, [2] end
    length: int = 16
    tokenizer: str = TOKENIZER

    def __post_init__(self) -> None:
        if self.table[:1] != (PAD,):
            raise ValueError("table[0] must be the padding id 0")

    @cached_property
    def _index(self) -> dict[int, int]:
        return {open_clip_id: j for j, open_clip_id in enumerate(self.table)}

    @cached_property
    def _bpe(self) -> Any:
        return open_clip_tokenizer()

    @property
    def vocab_size(self) -> int:
        return len(self.table)

    def unknown_words(self, prompt: str) -> list[str]:
        """The words of ``prompt`` the text tower never read (they are left out)."""
        return [w for w in str(prompt).split()
                if any(i not in self._index for i in self._bpe.encode(w))]

    def ids(self, prompts: Sequence[str]) -> torch.Tensor:
        """(B, length) ids: start, the known words' tokens, end, padding ("" = start, end)."""
        bpe, rows = self._bpe, []
        for prompt in prompts:
            words = [i for i in bpe.encode(str(prompt)) if i in self._index][: self.length - 2]
            row = [bpe.sot_token_id, *words, bpe.eot_token_id]
            rows.append([self._index[i] for i in row] + [0] * (self.length - len(row)))
        return torch.tensor(rows, dtype=torch.long)

    def save(self, folder: Path) -> Path:
        path = Path(folder) / TEXT_FILE
        data = asdict(self)
        data["table"] = list(self.table)
        path.write_text(json.dumps(data, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: Path) -> CaptionTokens:
        path = Path(folder) / TEXT_FILE
        if not path.is_file():
            raise UserError(f"no {TEXT_FILE} in {folder}: not a video model folder")
        data = json.loads(path.read_text())
        if data.get("tokenizer", TOKENIZER) != TOKENIZER:
            raise UserError(f"{path}: unknown tokenizer {data['tokenizer']!r}")
        return cls(tuple(int(i) for i in data["table"]), int(data.get("length", 16)))

    @classmethod
    def for_words(cls, words: Iterable[str], length: int = 16) -> CaptionTokens:
        bpe = open_clip_tokenizer()
        ids = sorted({i for word in words for i in bpe.encode(word)})
        return cls((PAD, bpe.sot_token_id, bpe.eot_token_id, *ids), length)


def text_states(text_encoder: Any, tokens: CaptionTokens, prompts: Sequence[str]
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token states of the text tower and the mask of real tokens: (B, L, D), (B, L) bool."""
    ids = tokens.ids(prompts).to(text_encoder.device)
    mask = ids != 0
    states = text_encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    return states, mask


def cross_attention_bias(mask: torch.Tensor, frames: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, L) keep-mask -> the (B F, 1, L) additive bias Latte's spatial blocks take (their batch
    is clips x frames; Latte hands the mask to them as it is)."""
    bias = (~mask.bool()).to(dtype) * -10000.0
    return bias.repeat_interleave(frames, dim=0)[:, None, :]


# ---------------------------------------------------------------------------------- shapes
def frames_to_batch(x: torch.Tensor) -> torch.Tensor:
    """(B, C, F, h, w) -> (B F, C, h, w): every frame an image (clip-major)."""
    b, c, f, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)


def batch_to_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """The inverse of ``frames_to_batch``: (B F, C, h, w) -> (B, C, F, h, w)."""
    bf, c, h, w = x.shape
    if bf % frames:
        raise ValueError(f"{bf} images are not clips of {frames} frames")
    return x.reshape(bf // frames, frames, c, h, w).permute(0, 2, 1, 3, 4)


def video_patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, F, h, w) -> (B, F, N, p p C): each frame's patches in raster order, as Latte's patch
    embedding cuts them (before its linear projection)."""
    from mmstudio.pipelines.dit import patchify

    b, _, f, _, _ = x.shape
    tokens = patchify(frames_to_batch(x), patch)  # (B F, N, p p C)
    return tokens.reshape(b, f, *tokens.shape[1:])


def video_unpatchify(tokens: torch.Tensor, patch: int, h: int, w: int) -> torch.Tensor:
    """The inverse of ``video_patchify``: (B, F, N, p p C) -> (B, C, F, h, w)."""
    from mmstudio.pipelines.dit import unpatchify

    b, f, n, d = tokens.shape
    return batch_to_frames(unpatchify(tokens.reshape(b * f, n, d), patch, h, w), f)


def spatial_sequences(tokens: torch.Tensor) -> torch.Tensor:
    """(B, F, N, D) -> (B F, N, D): what a spatial block attends over (one frame's patches)."""
    b, f, n, d = tokens.shape
    return tokens.reshape(b * f, n, d)


def temporal_sequences(tokens: torch.Tensor) -> torch.Tensor:
    """(B, F, N, D) -> (B N, F, D): what a temporal block attends over (one patch position in
    every frame), the regrouping Latte does between its blocks."""
    b, f, n, d = tokens.shape
    return tokens.permute(0, 2, 1, 3).reshape(b * n, f, d)


def from_temporal_sequences(seqs: torch.Tensor, batch: int) -> torch.Tensor:
    """The inverse of ``temporal_sequences``: (B N, F, D) -> (B, F, N, D)."""
    bn, f, d = seqs.shape
    return seqs.reshape(batch, bn // batch, f, d).permute(0, 2, 1, 3)


@torch.no_grad()
def decode_frames(vae: Any, x: torch.Tensor) -> torch.Tensor:
    """(B, C, F, h, w) latents -> (B, 3, F, H, W) in [-1, 1], frame by frame."""
    return batch_to_frames(vae_decode(vae, frames_to_batch(x)), x.shape[2])


@torch.no_grad()
def encode_frames(vae: Any, clips: torch.Tensor) -> torch.Tensor:
    """(B, 3, F, H, W) in [-1, 1] -> (B, C, F, h, w) scaled latents (the mean), frame by frame."""
    latents = vae.encode(frames_to_batch(clips).to(vae.dtype)).latent_dist.mean
    return batch_to_frames(latents.float() * float(vae.config.scaling_factor), clips.shape[2])


def clips_to_signed(clips: np.ndarray) -> torch.Tensor:
    """(B, F, H, W, 3) uint8 -> (B, 3, F, H, W) float in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(clips)).float() / 127.5 - 1.0
    return x.permute(0, 4, 1, 2, 3)


# ---------------------------------------------------------------------------------- denoiser
class LatteDenoiser(Denoiser):
    """A text-conditioned ``LatteTransformer3DModel`` on per-frame ``AutoencoderKL`` latents,
    conditioned on a ``CLIPTextModel``'s per-token states with the padding masked out."""

    latent = True

    def __init__(self, components: dict[str, Any], vae: Any) -> None:
        self.transformer, self.vae = components["transformer"], vae
        self.text_encoder, self.tokens = components["text_encoder"], components["tokens"]
        self.scheduler_config = components["scheduler_config"]
        self.prediction_type = self.scheduler_config.get("prediction_type", "epsilon")
        config = self.transformer.config
        self.channels, self.size = int(config.in_channels), int(config.sample_size)
        self.frames, self.patch = int(config.video_length), int(config.patch_size)
        self.device, self.dtype = self.transformer.device, self.transformer.dtype

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.channels, self.frames, self.size, self.size)

    @property
    def grid(self) -> tuple[int, int]:
        side = self.size // self.patch
        return side, side

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        states, mask = text_states(self.text_encoder, self.tokens, prompts)
        return states.to(self.device, self.dtype), mask.to(self.device)

    def predict(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        states, mask = cond
        timesteps = t.expand(x.shape[0]).to(self.device) if t.ndim == 0 else t.to(self.device)
        bias = cross_attention_bias(mask, x.shape[2], states.dtype)
        with recording(self.recorder):
            out = self.transformer(x, timestep=timesteps, encoder_hidden_states=states,
                                   encoder_attention_mask=bias).sample
        return out[:, : self.channels]

    def to_rgb(self, x: torch.Tensor) -> torch.Tensor:
        return decode_frames(self.vae, x)  # 8 x 8 latents: the real decode costs milliseconds

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return decode_frames(self.vae, x)


class TextToVideoDenoiser(Denoiser):
    """ModelScope text-to-video (Wang et al. 2023, hub ``text-to-video-ms-1.7b``): a 3-D UNet
    (``UNet3DConditionModel``: 2-D convolutions and attention per frame, 1-D temporal convolutions
    and attention across frames) over per-frame SD-VAE latents, conditioned on CLIP text states;
    driven by the studio's loop as ``TextToVideoSDPipeline`` drives it."""

    latent = True

    def __init__(self, components: dict[str, Any]) -> None:
        self.unet, self.vae = components["unet"], components["vae"]
        self.text_encoder, self.tokenizer = components["text_encoder"], components["tokenizer"]
        self.scheduler_config = components["scheduler_config"]
        self.prediction_type = self.scheduler_config.get("prediction_type", "epsilon")
        self.channels = int(self.unet.config.in_channels)
        sample = self.unet.config.sample_size
        self.size = int(sample[0] if isinstance(sample, (list, tuple)) else sample or 32)
        self.frames = int(components.get("frames") or 16)
        self.device, self.dtype = self.unet.device, self.unet.dtype

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.channels, self.frames, self.size, self.size)

    def encode(self, prompts: list[str]) -> torch.Tensor:
        from mmstudio.pipelines.text import hf_clip_token_states

        with torch.no_grad():
            return hf_clip_token_states(self.text_encoder, self.tokenizer, prompts).to(self.dtype)

    def predict(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, encoder_hidden_states=cond, **self.attention_kwargs()).sample

    def to_rgb(self, x: torch.Tensor) -> torch.Tensor:
        from mmstudio.pipelines.denoise import latent_to_rgb

        return batch_to_frames(latent_to_rgb(frames_to_batch(x)), x.shape[2])

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return decode_frames(self.vae, x)


# ---------------------------------------------------------------------------------- attention
@dataclass
class SpaceTimeTrace:
    """One clip's run with its attention: spatial (within a frame), temporal (across frames at one
    patch position) and cross (patches to words) maps per (step, layer)."""

    steps: list[DenoiseStep]
    result: DenoiseResult
    maps: dict[tuple[int, int, str], torch.Tensor]  # the first clip's rows
    grid: tuple[int, int]
    frames: int
    layers: int
    heads: int
    words: list[Any] = field(default_factory=list)

    def spatial_map(self, step: int, layer: int, frame: int, patch: int,
                    head: int | None = None) -> np.ndarray:
        """Attention from ``patch`` of ``frame`` to every patch of that frame: (rows, cols),
        summing to 1."""
        probs = self._get(step, layer, "self")  # (F, heads, N, N)
        self._check(frame, patch)
        heads = slice(None) if head is None else slice(self._head(head), self._head(head) + 1)
        row = probs[frame, heads, patch]
        return row.mean(0).reshape(self.grid).numpy()

    def temporal_map(self, step: int, layer: int, frame: int, patch: int,
                     head: int | None = None) -> np.ndarray:
        """Attention from ``frame`` at patch position ``patch`` to the same position in every
        frame: (frames,), summing to 1."""
        probs = self._get(step, layer, "temporal")  # (N, heads, F, F)
        self._check(frame, patch)
        heads = slice(None) if head is None else slice(self._head(head), self._head(head) + 1)
        row = probs[patch, heads, frame]
        return row.mean(0).numpy()

    def cross_map(self, step: int, layer: int, frame: int, word: int,
                  head: int | None = None) -> np.ndarray:
        """How much each patch of ``frame`` attends to the word's tokens: (rows, cols)."""
        if not 0 <= word < len(self.words):
            raise UserError(f"word {word} does not exist; the prompt has {len(self.words)} "
                            "known words")
        probs = self._get(step, layer, "cross")  # (F, heads, N, L)
        self._check(frame, 0)
        probs = probs[frame] if head is None else probs[frame, self._head(head)][None]
        return probs[:, :, self.words[word].positions].sum(-1).mean(0).reshape(self.grid).numpy()

    def _check(self, frame: int, patch: int) -> None:
        if not 0 <= frame < self.frames:
            raise UserError(f"frame {frame} does not exist; frames are 0 to {self.frames - 1}")
        patches = self.grid[0] * self.grid[1]
        if not 0 <= patch < patches:
            raise UserError(f"patch {patch} does not exist; patches are 0 to {patches - 1}")

    def _head(self, head: int) -> int:
        if not 0 <= head < self.heads:
            raise UserError(f"head {head} does not exist; this model has heads 0 to "
                            f"{self.heads - 1}")
        return head

    def _get(self, step: int, layer: int, kind: str) -> torch.Tensor:
        if not 0 <= layer < self.layers:
            raise UserError(f"layer {layer} does not exist; this model has layers 0 to "
                            f"{self.layers - 1}")
        if not 0 <= step < len(self.steps):
            raise UserError(f"step {step + 1} does not exist; the run has steps 1 to "
                            f"{len(self.steps)}")
        key = (step, layer, kind)
        if key not in self.maps:
            raise UserError(f"step {step + 1} has no {kind} attention recorded")
        return self.maps[key]


def caption_words(tokens: CaptionTokens, prompt: str) -> list[Any]:
    """The prompt's known words with their positions in the text tower's sequence."""
    from mmstudio.pipelines.dit import Word

    bpe, index = tokens._bpe, tokens._index
    words, position = [], 1
    for text in str(prompt).split():
        ids = [i for i in bpe.encode(text) if i in index]
        if ids and position + len(ids) < tokens.length:
            words.append(Word(text, list(range(position, position + len(ids)))))
        position += len(ids)
    return words


def capture_space_time(denoiser: LatteDenoiser, settings: DenoiseSettings) -> SpaceTimeTrace:
    """Run the loop once with a recorder on every step and layer; the first clip's maps."""
    settings = settings.validated()
    recorder = AttentionRecorder()
    denoiser.recorder = recorder
    try:
        steps, result = [], None
        for item in denoise(denoiser, settings):
            if isinstance(item, DenoiseResult):
                result = item
            else:
                steps.append(item)
    finally:
        denoiser.recorder = None
    assert result is not None
    n = denoiser.grid[0] * denoiser.grid[1]
    rows = {"self": denoiser.frames, "cross": denoiser.frames, "temporal": n}
    maps = {key: value[: rows[key[2]]] for key, value in recorder.maps.items()}
    config = denoiser.transformer.config
    return SpaceTimeTrace(steps, result, maps, denoiser.grid, denoiser.frames,
                          int(config.num_layers), int(config.num_attention_heads),
                          caption_words(denoiser.tokens, settings.prompts[0]))


# ---------------------------------------------------------------------------------- cost
@dataclass
class AttentionCost:
    frames: int
    tokens: int  # frames x patches per frame
    factorized_pairs: int  # F N^2 + N F^2 per layer
    full_pairs: int  # (F N)^2 per layer
    factorized_gflops: float  # the attention products of one clip, all layers (QK^T and AV)
    full_gflops: float
    factorized_ms: float | None = None  # measured: the attention of all layers, one clip
    full_ms: float | None = None


def attention_cost(patches: int, frames: int, width: int, layers: int) -> AttentionCost:
    """Attention work of one clip, from the config: pairs of tokens that attend, and FLOPs of the
    two products (scores Q K^T and the weighted sum of V: 2 x 2 x pairs x width each)."""
    factorized = frames * patches ** 2 + patches * frames ** 2
    full = (frames * patches) ** 2
    flops = 4 * width * layers
    return AttentionCost(frames, frames * patches, factorized, full,
                         flops * factorized / 1e9, flops * full / 1e9)


def _attention_ms(batch: int, length: int, heads: int, head_dim: int, repeats: int = 3) -> float:
    q = torch.randn(batch, heads, length, head_dim)
    with torch.no_grad():
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            torch.nn.functional.scaled_dot_product_attention(q, q, q)
            best = min(best, time.perf_counter() - start)
    return best * 1000


def measure_attention_cost(config: Any, frame_counts: Sequence[int] = FRAME_COUNTS,
                           max_full_tokens: int = 4096) -> list[AttentionCost]:
    """``attention_cost`` for each frame count, with the attention of one clip timed here: the
    factorized blocks (F sequences of N, then N of F) and full space-time attention (one sequence
    of F N, timed up to ``max_full_tokens``)."""
    heads, head_dim = int(config.num_attention_heads), int(config.attention_head_dim)
    layers = int(config.num_layers)
    patches = (int(config.sample_size) // int(config.patch_size)) ** 2
    rows = []
    for frames in frame_counts:
        cost = attention_cost(patches, frames, heads * head_dim, layers)
        cost.factorized_ms = layers * (_attention_ms(frames, patches, heads, head_dim)
                                       + _attention_ms(patches, frames, heads, head_dim))
        if frames * patches <= max_full_tokens:
            cost.full_ms = layers * _attention_ms(1, frames * patches, heads, head_dim)
        rows.append(cost)
    return rows


@dataclass
class VideoStepCost:
    model_id: str
    what: str  # "video, 16 frames" / "image"
    parameters: int
    gflops_per_step: float  # one guided model call
    ms_per_step: float


def step_cost(model_id: str, what: str, model: Any, call: Any, repeats: int = 3
              ) -> VideoStepCost:
    """FLOPs (``torch.utils.flop_counter``) and the fastest of ``repeats`` wall times of one
    guided model call ``call()``."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            call()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            best = min(best, time.perf_counter() - start)
    return VideoStepCost(model_id, what, sum(p.numel() for p in model.parameters()),
                         counter.get_total_flops() / 1e9, best * 1000)


def with_frames(transformer: Any, frames: int) -> Any:
    """The same Latte weights for clips of ``frames`` frames (the temporal position embedding is
    a fixed sin-cos table of ``video_length`` rows, rebuilt for the new length)."""
    if frames == int(transformer.config.video_length):
        return transformer
    model = type(transformer).from_config({**transformer.config, "video_length": frames})
    if model.dtype != transformer.dtype:  # (a cast of a float32 copy only when needed: diffusers
        model = model.to(dtype=transformer.dtype)  # warns on every cast)
    model.load_state_dict(transformer.state_dict())
    return model.to(transformer.device).eval()


def frame_scaling(denoiser: LatteDenoiser, frame_counts: Sequence[int] = FRAME_COUNTS,
                  repeats: int = 3) -> list[VideoStepCost]:
    """One guided step of the video model at each frame count (same weights), measured."""
    states, mask = denoiser.encode(["", ""])
    rows = []
    for frames in frame_counts:
        model = with_frames(denoiser.transformer, frames)
        x = torch.randn(2, denoiser.channels, frames, denoiser.size, denoiser.size,
                        dtype=denoiser.dtype, device=denoiser.device)
        t = torch.full((2,), 500, device=denoiser.device)
        bias = cross_attention_bias(mask, frames, states.dtype)

        def call(model=model, x=x, t=t, bias=bias) -> Any:
            return model(x, timestep=t, encoder_hidden_states=states, encoder_attention_mask=bias)

        rows.append(step_cost(f"{frames} frames", f"video, {frames} frames", model, call,
                              repeats))
    return rows


def full_scale_sentence(frames: int = 16, size: int = 256, vae_factor: int = 8, patch: int = 2
                        ) -> str:
    """What factorized attention means at a real resolution (an SD-VAE latent, patch 2)."""
    n = (size // vae_factor // patch) ** 2
    cost = attention_cost(n, frames, 1, 1)
    return (f"At {size} x {size} x {frames} (an SD-VAE latent of {size // vae_factor} x "
            f"{size // vae_factor}, patches of {patch}) a clip is {frames * n:,} tokens: full "
            f"space-time attention relates {cost.full_pairs:,} pairs per layer, the factorized "
            f"blocks {cost.factorized_pairs:,}, {cost.full_pairs / cost.factorized_pairs:.0f}x "
            f"fewer; and every extra frame adds a whole image's work to every step.")


# ---------------------------------------------------------------------------------- pictures
def filmstrip(frames: np.ndarray, scale: int = 3, per_row: int = 8, gap: int = 2,
              background: int = 255) -> np.ndarray:
    """(F, H, W, 3) uint8 frames side by side, ``per_row`` a row, enlarged with crisp pixels."""
    frames = np.asarray(frames, np.uint8)
    f, h, w, _ = frames.shape
    big = np.repeat(np.repeat(frames, scale, 1), scale, 2)
    rows = math.ceil(f / per_row)
    cols = min(f, per_row)
    hh, ww = h * scale, w * scale
    canvas = np.full((rows * hh + (rows - 1) * gap, cols * ww + (cols - 1) * gap, 3), background,
                     np.uint8)
    for i, frame in enumerate(big):
        r, c = divmod(i, per_row)
        canvas[r * (hh + gap): r * (hh + gap) + hh, c * (ww + gap): c * (ww + gap) + ww] = frame
    return canvas


def to_frames(x: torch.Tensor) -> np.ndarray:
    """(3, F, H, W) in about [-1, 1] -> (F, H, W, 3) uint8."""
    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()


def temporal_picture(values: np.ndarray, frames: np.ndarray, query: int, scale: int = 2
                     ) -> np.ndarray:
    """A temporal attention row as a bar under each frame: the frames small, each bar as tall
    as its weight, the query frame outlined."""
    from PIL import Image, ImageDraw

    strip = filmstrip(frames, scale=scale, per_row=len(frames), gap=2)
    cell = frames.shape[2] * scale + 2
    bar_h = 48
    picture = Image.new("RGB", (strip.shape[1], strip.shape[0] + bar_h + 4), (255, 255, 255))
    picture.paste(Image.fromarray(strip), (0, 0))
    draw = ImageDraw.Draw(picture)
    top = strip.shape[0] + 2
    peak = max(float(np.max(values)), 1e-9)
    for i, value in enumerate(values):
        height = int(round(bar_h * float(value) / peak))
        x0 = i * cell
        draw.rectangle([x0 + 2, top + bar_h - height, x0 + cell - 4, top + bar_h],
                       fill=(220, 90, 30) if i != query else (20, 160, 90))
    x0 = query * cell
    draw.rectangle([x0, 0, x0 + cell - 3, strip.shape[0] - 1], outline=(20, 160, 90), width=2)
    return np.asarray(picture)
