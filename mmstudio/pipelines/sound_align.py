"""Audio-text alignment (CLAP): clips and captions in one embedding space.

The embedded ``sounds-clap`` is an open_clip ``CLIP`` whose image tower reads a clip's log-mel
spectrogram as a 64 x 64 image (``training/clap.py``); ``audio_frontend.json`` in its folder says
how a clip becomes that input. The log-mel here is the sounds analyzer's own
(``worlds.audio.mel_spectrogram``: librosa's Slaney mel filters, power STFT with a periodic Hann
window, centred frames, natural log with a floor of 1e-5) computed in torch for whole batches,
equal to librosa's to float rounding (tested), about 50x faster on a batch of 128 clips.

The second half serves the Similarity tab's sounds section and ``similarity --audio``, reusing
``align`` where images and sounds are alike: clips from captions (``render_clips``) and files
(``load_clips``), content-cached embeddings of clips of any length (``embed_clips``,
``embed_captions``), the clips x texts matrix with the softmax per clip and the PCA map
(``compare_audio``, through ``align.similarity`` and ``align.pca_map``), zero-shot over class sets
of the sounds world with right or wrong for renders (``sounds_class_sets``, ``zero_shot_clips``),
and what retrieval needs (``world_gallery``, ``query_matches``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmstudio.errors import UserError
from mmstudio.pipelines import align
from mmstudio.pipelines.sound import Sound
from mmstudio.worlds import audio

#: Defaults of the audio front end (the values training writes to audio_frontend.json).
FRONTEND: dict[str, Any] = {
    "sample_rate": audio.SAMPLE_RATE, "clip_samples": audio.CLIP_SAMPLES, "n_mels": audio.N_MELS,
    "hop_length": audio.HOP_LENGTH, "n_fft": audio.N_FFT, "fmin": audio.FMIN,
    "fmax": audio.FMAX, "floor": audio.MEL_FLOOR, "frames": 64,
    "mean": -6.0, "std": 4.0, "channels": 3,
}


def read_frontend(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "audio_frontend.json"
    return {**FRONTEND, **json.loads(path.read_text())} if path.is_file() else dict(FRONTEND)


@lru_cache(maxsize=4)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float,
               fmax: float) -> torch.Tensor:
    import librosa

    return torch.from_numpy(librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels,
                                                fmin=fmin, fmax=fmax)).float()  # (M, F)


def log_mel(clips: np.ndarray | torch.Tensor, frontend: dict[str, Any] | None = None
            ) -> torch.Tensor:
    """(B, N) audio -> (B, n_mels, 1 + N // hop) natural-log mel power, as the analyzer's."""
    f = frontend or FRONTEND
    x = torch.as_tensor(np.asarray(clips, dtype=np.float32))
    if x.ndim == 1:
        x = x[None]
    window = torch.hann_window(f["n_fft"], dtype=torch.float64)
    spec = torch.stft(x.double(), f["n_fft"], f["hop_length"], window=window, center=True,
                      pad_mode="constant", return_complex=True).abs().pow(2)  # (B, F, T)
    basis = _mel_basis(f["sample_rate"], f["n_fft"], f["n_mels"], f["fmin"], f["fmax"])
    mel = basis.double() @ spec  # (B, M, T)
    return torch.log(mel.clamp_min(f["floor"])).float()


def clips_to_tensor(clips: np.ndarray | torch.Tensor, frontend: dict[str, Any] | None = None
                    ) -> torch.Tensor:
    """(B, 16000) audio -> (B, channels, n_mels, frames) normalised log-mel "images"."""
    f = frontend or FRONTEND
    x = (log_mel(clips, f)[..., : f["frames"]] - f["mean"]) / f["std"]  # (B, M, frames)
    return x[:, None].expand(-1, f["channels"], -1, -1).contiguous()


class ClapModel(align.ContrastiveModel):
    """What the audio views need from a loaded CLAP: unit-norm audio and text embeddings and the
    logit scale, for the embedded open_clip CLAP and transformers' ``ClapModel`` (the hub's
    ``laion/clap-htsat-unfused``, whose processor resamples to its own 48 kHz) alike."""

    def __init__(self, model_id: str, components: dict[str, Any]) -> None:
        self.model_id = model_id
        self.model = components["model"]
        self.tokenizer = components.get("tokenizer")
        self.processor = components.get("processor")
        self.frontend = components.get("audio_frontend") or dict(FRONTEND)
        self.kind = "transformers" if self.processor is not None else "open_clip"

    @classmethod
    def from_loaded(cls, loaded: Any) -> ClapModel:
        return cls(loaded.spec.id, loaded.components if hasattr(loaded, "components")
                   else dict(loaded))

    @property
    def sample_rate(self) -> int:
        if self.kind == "transformers":
            return int(self.processor.feature_extractor.sampling_rate)
        return int(self.frontend["sample_rate"])

    @torch.inference_mode()
    def embed_audio(self, clips: np.ndarray, sample_rate: int = audio.SAMPLE_RATE
                    ) -> torch.Tensor:
        """(N, samples) mono clips at ``sample_rate`` -> (N, D) unit-norm embeddings. The
        embedded model reads exactly 1 s (longer clips are cut, shorter padded with silence)."""
        import torch.nn.functional as F

        clips = np.asarray(clips, dtype=np.float32)
        if self.kind == "transformers":
            from mmstudio.pipelines.codec import resample

            rate = self.sample_rate
            batch = [resample(c, sample_rate, rate) for c in clips]
            inputs = self.processor(audio=batch, sampling_rate=rate, return_tensors="pt")
            features = self.model.get_audio_features(
                input_features=inputs["input_features"].to(self.device, self.dtype),
                is_longer=inputs.get("is_longer"))
        else:
            if sample_rate != self.sample_rate:
                from mmstudio.pipelines.codec import resample

                clips = np.stack([resample(c, sample_rate, self.sample_rate) for c in clips])
            n = int(self.frontend["clip_samples"])
            clips = np.pad(clips[:, :n], ((0, 0), (0, max(0, n - clips.shape[1]))))
            x = clips_to_tensor(clips, self.frontend).to(self.device, self.dtype)
            features = self.model.encode_image(x)
        features = getattr(features, "pooler_output", features)
        return F.normalize(features.float(), dim=-1).cpu()

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """(M, D) unit-norm text embeddings."""
        import torch.nn.functional as F

        if self.kind == "transformers":
            inputs = self.processor(text=list(texts), padding=True, return_tensors="pt")
            features = self.model.get_text_features(
                input_ids=inputs["input_ids"].to(self.device),
                attention_mask=inputs["attention_mask"].to(self.device))
        else:
            features = self.model.encode_text(self.tokenizer(list(texts)).to(self.device))
        features = getattr(features, "pooler_output", features)
        return F.normalize(features.float(), dim=-1).cpu()


def sounds_captions() -> list[str]:
    """The 36 captions of the sounds world, pattern x pitch x timbre, in a fixed order."""
    from mmstudio.worlds import sounds
    from mmstudio.worlds.datasets import combinations

    return [sounds.caption(a) for a in combinations(sounds)]


def zero_shot_captions(clap: ClapModel, clips: np.ndarray, captions: list[str] | None = None,
                       sample_rate: int = audio.SAMPLE_RATE) -> tuple[list[int], np.ndarray]:
    """Zero-shot over captions (the 36 of the sounds world by default): the index of the best
    caption per clip and the softmax (N, C) at the model's logit scale."""
    captions = captions or sounds_captions()
    a = clap.embed_audio(clips, sample_rate)
    t = clap.embed_texts(captions)
    logits = clap.logit_scale * a @ t.T  # (N, C)
    probs = torch.softmax(logits, dim=1).numpy()
    return probs.argmax(1).tolist(), probs


# ------------------------------------------------------------------------------------ comparisons
# What the Similarity tab's sounds section and ``similarity --audio`` compute: the clips x texts
# matrix (``align.similarity``), zero-shot over class sets, text -> clip retrieval and the PCA map
# (``align.pca_map``), with embeddings kept in an ``align.EmbeddingCache``.

MAX_CLIPS = 64  # one interactive comparison; the command line takes any number
RETRIEVAL_SEED = 7  # the world renders that retrieval also searches


def covering_captions() -> list[str]:
    """12 captions: every timbre x pitch once (the held-out high sawtooth and low noise too), the
    pattern rotated so that every timbre meets every pattern and every pitch meets every
    pattern."""
    from mmstudio.worlds import sounds

    out = []
    for t, timbre in enumerate(sounds.TIMBRES):
        for p, pitch in enumerate(sounds.PITCHES):
            pattern = sounds.PATTERNS[(t + p) % len(sounds.PATTERNS)]
            out.append(sounds.caption(sounds.SoundAttrs(timbre, pitch, pattern)))
    return out


def render_clips(captions: Sequence[str], seed: int, what: str = "caption line") -> list[Sound]:
    """One sounds-world render per caption line (blank lines skipped), the clip of line i seeded
    by ``[seed, i]``; a caption outside the grammar is named by its line (``what`` i)."""
    from mmstudio.worlds import sounds

    out = []
    for i, line in enumerate(captions, 1):
        line = line.strip()
        if not line:
            continue
        if len(line) > align.MAX_TEXT_CHARS:
            raise UserError(f"{what} {i} has {len(line):,} characters; at most "
                            f"{align.MAX_TEXT_CHARS}")
        try:
            attrs = sounds.parse(line)
        except UserError as exc:
            raise UserError(f"{what} {i}: {exc}") from None
        clip, full = sounds.render_with_attrs(attrs, np.random.default_rng([int(seed), i]))
        label = sounds.caption(full) + (" (held out)" if sounds.is_held_out(full) else "")
        out.append(Sound(clip, label, f"sounds-world render, seed [{int(seed)}, {i}]", [],
                         attrs=full))
    return out


def load_clips(paths: Sequence[str | Path], first: int = 1) -> list[Sound]:
    """Sound files through ``load_sound`` (any format, 16 kHz mono); a file that is not a usable
    sound is refused with its number (counted from ``first``) and the reason."""
    from mmstudio.pipelines.sound import load_sound

    out = []
    for i, path in enumerate(paths, first):
        try:
            out.append(load_sound(path))
        except UserError as exc:
            raise UserError(f"clip {i}: {exc}") from None
    return out


def collect_clips(captions: Sequence[str], seed: int, paths: Sequence[str | Path],
                  limit: int | None = MAX_CLIPS) -> list[Sound]:
    """Renders of the caption lines, then the files; at most ``limit`` clips (checked before
    anything is rendered or read)."""
    lines = [c for c in captions if c.strip()]
    if limit is not None and len(lines) + len(paths) > limit:
        raise UserError(f"{len(lines) + len(paths)} clips given; at most {limit} are compared at "
                        "once")
    clips = render_clips(captions, seed)
    clips += load_clips(paths, first=len(clips) + 1)
    if not clips:
        raise UserError("no clips given: write sounds captions to render, upload sounds or pick "
                        "an example")
    return clips


def clip_key(clip: np.ndarray, sample_rate: int) -> str:
    x = np.ascontiguousarray(clip, dtype=np.float32)
    return hashlib.sha1(x.tobytes() + f"{x.shape}@{sample_rate}".encode()).hexdigest()


def embed_clips(clap: ClapModel, clips: Sequence[np.ndarray], cache: align.EmbeddingCache | None
                = None, sample_rate: int = audio.SAMPLE_RATE, batch: int = MAX_CLIPS
                ) -> torch.Tensor:
    """(N, D) unit-norm embeddings of mono clips of any lengths (embedded a batch of equal
    lengths at a time; cached by content)."""
    clips = [np.asarray(c, dtype=np.float32) for c in clips]

    def compute(indices: list[int]) -> torch.Tensor:
        out: dict[int, torch.Tensor] = {}
        lengths: dict[int, list[int]] = {}
        for i in indices:
            lengths.setdefault(len(clips[i]), []).append(i)
        for group in lengths.values():
            for k in range(0, len(group), batch):
                part = group[k: k + batch]
                emb = clap.embed_audio(np.stack([clips[i] for i in part]), sample_rate)
                out.update(zip(part, emb, strict=True))
        return torch.stack([out[i] for i in indices])

    keys = [clip_key(c, sample_rate) for c in clips]
    return align._embed(clap, "audio", keys, compute, cache)  # type: ignore[arg-type]


def embed_captions(clap: ClapModel, texts: Sequence[str],
                   cache: align.EmbeddingCache | None = None,
                   batch: int = align.MAX_TEXTS) -> torch.Tensor:
    """(M, D) unit-norm text embeddings, cached."""
    texts = list(texts)

    def compute(indices: list[int]) -> torch.Tensor:
        return torch.cat([clap.embed_texts([texts[i] for i in indices[k: k + batch]])
                          for k in range(0, len(indices), batch)])

    keys = [align.text_key(t) for t in texts]
    return align._embed(clap, "text", keys, compute, cache)  # type: ignore[arg-type]


def reading_notes(clap: ClapModel, clips: Sequence[Sound]) -> list[str]:
    """What the model does to each clip before reading it: the embedded model reads exactly its
    first second; transformers' CLAP resamples to its own rate (and reads up to 10 s)."""
    notes = []
    for i, clip in enumerate(clips, 1):
        done = list(clip.notes)
        if clap.kind == "open_clip":
            n = int(clap.frontend["clip_samples"])
            seconds = n / int(clap.frontend["sample_rate"])
            if clip.n_samples > n:
                done.append(f"{clip.seconds:.2f} s long: {clap.model_id} reads its first "
                            f"{seconds:.2f} s")
            elif clip.n_samples < n:
                done.append(f"{clip.seconds:.2f} s long: padded with silence to {seconds:.2f} s")
        elif clap.sample_rate != clip.sample_rate:
            done.append(f"resampled to {clap.sample_rate:,} Hz for {clap.model_id}")
        if done:
            notes.append(f"clip {i} ({clip.label}): " + "; ".join(done))
    return notes


@dataclass
class AudioComparison:
    """Everything the sounds section shows for one set of clips and texts."""

    model_id: str
    clips: list[Sound]
    texts: list[str]
    audio_emb: torch.Tensor  # (N, D)
    text_emb: torch.Tensor  # (M, D)
    sim: align.Similarity  # softmax over the texts per clip
    map: align.EmbeddingMap
    notes: list[str]

    @property
    def truth(self) -> list[int | None]:
        """Per clip, the index of its own caption among the texts (world renders whose caption
        is one of the texts), else None."""
        return [true_text(c.attrs, self.texts) for c in self.clips]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model_id, "clips": [c.label for c in self.clips],
                **self.sim.to_dict(), "true_text": self.truth, "notes": self.notes}


def true_text(attrs: Any, texts: Sequence[str]) -> int | None:
    """The index of the first text that is the caption of ``attrs`` (read with the grammar, so
    case and spacing do not matter), or None."""
    if attrs is None:
        return None
    from mmstudio.worlds import sounds

    for j, text in enumerate(texts):
        try:
            if sounds.parse(text) == attrs:
                return j
        except UserError:
            continue
    return None


def compare_audio(clap: ClapModel, clips: Sequence[Sound], texts: Sequence[str],
                  cache: align.EmbeddingCache | None = None,
                  max_texts: int | None = align.MAX_TEXTS) -> AudioComparison:
    """Embed (with the cache), compare and map clips and texts; on the map each clip is joined to
    the text it matches best. ``max_texts=None``: any number (a command-line batch)."""
    texts = align.check_texts(texts, max_texts)
    clips = list(clips)
    if not clips:
        raise UserError("no clips given: write sounds captions to render, upload sounds or pick "
                        "an example")
    audio_emb = embed_clips(clap, [c.audio for c in clips], cache)  # (N, D)
    text_emb = embed_captions(clap, texts, cache)  # (M, D)
    sim = align.similarity(audio_emb, text_emb, clap.logit_scale, texts)
    pairs = list(enumerate(sim.best_text))
    return AudioComparison(clap.model_id, clips, texts, audio_emb, text_emb, sim,
                           align.pca_map(audio_emb, text_emb, pairs), reading_notes(clap, clips))


def short_caption(text: str, width: int = 30) -> str:
    """A sounds caption in a few words for a crowded picture ("3 beeps, high square"); other
    texts cut to ``width`` characters."""
    from mmstudio.worlds import sounds

    try:
        attrs = sounds.parse(text)
    except UserError:
        attrs = None
    if attrs is None or attrs.timbre is None:
        return text if len(text) <= width else text[: width - 1] + "\u2026"
    notes = {"one long note": "long note", "two short beeps": "2 beeps",
             "three short beeps": "3 beeps"}[attrs.pattern]
    return f"{notes}, {attrs.pitch} {attrs.timbre}"


def timbre_group(attrs: Any) -> int | None:
    """The index of a render's timbre in ``sounds.TIMBRES`` (the map's colours), else None."""
    from mmstudio.worlds import sounds

    return None if attrs is None or attrs.timbre is None else sounds.TIMBRES.index(attrs.timbre)


def text_group(text: str) -> int | None:
    """The index of the timbre a sounds caption names, else None."""
    from mmstudio.worlds import sounds

    try:
        return timbre_group(sounds.parse(text))
    except UserError:
        return None


# ------------------------------------------------------------------------------------ zero-shot
CAPTIONS_SET = "caption (36)"


def sounds_class_sets() -> dict[str, dict[str, list[str]]]:
    """Zero-shot tasks on the sounds world, each class with its prompts: the 36 captions one
    class each, and timbre, pitch and pattern as prompt ensembles (each class averages the
    captions that name it: 9 for a timbre, 12 for a pitch or a pattern)."""
    from mmstudio.worlds import sounds
    from mmstudio.worlds.datasets import combinations

    combos = combinations(sounds)
    sets: dict[str, dict[str, list[str]]] = {CAPTIONS_SET: {sounds.caption(a): [sounds.caption(a)]
                                                           for a in combos}}
    for field_name in sounds.FIELDS:
        sets[field_name] = {v: [sounds.caption(a) for a in combos
                                if getattr(a, field_name) == v]
                            for v in sounds.VALUES[field_name]}
    return sets


def true_class(attrs: Any, set_name: str, classes: dict[str, list[str]]) -> str | None:
    """The class a render belongs to in a class set (None for uploads, or when no class is
    its caption)."""
    if attrs is None:
        return None
    from mmstudio.worlds import sounds

    if set_name in sounds.FIELDS:
        return getattr(attrs, set_name)
    j = true_text(attrs, list(classes))
    return list(classes)[j] if j is not None else None


def class_embeddings(clap: ClapModel, classes: dict[str, list[str]],
                     cache: align.EmbeddingCache | None = None) -> torch.Tensor:
    """(C, D): the normalised mean of each class's prompt embeddings (prompt ensembling)."""
    import torch.nn.functional as F

    flat = [p for prompts in classes.values() for p in prompts]
    emb = embed_captions(clap, flat, cache)  # (P, D)
    out, start = [], 0
    for prompts in classes.values():
        out.append(F.normalize(emb[start:start + len(prompts)].mean(0), dim=-1))
        start += len(prompts)
    return torch.stack(out)  # (C, D)


@dataclass
class ZeroShotRow:
    """One clip's zero-shot answer."""

    best: str  # the most probable class
    prob: float
    truth: str | None  # the render's class, None for uploads
    zero_shot: align.ZeroShot  # every class's probability and cosine

    @property
    def right(self) -> bool | None:
        return None if self.truth is None else self.best == self.truth


def zero_shot_clips(clap: ClapModel, audio_emb: torch.Tensor, clips: Sequence[Sound],
                    set_name: str, classes: dict[str, list[str]],
                    cache: align.EmbeddingCache | None = None) -> list[ZeroShotRow]:
    """Classify every clip (embeddings (N, D)) among ``classes`` (label -> prompts) at the
    model's logit scale; right or wrong for world renders."""
    if not classes:
        raise UserError("zero-shot classification needs at least one class")
    class_emb = class_embeddings(clap, classes, cache)  # (C, D)
    cosine = audio_emb.float() @ class_emb.T  # (N, C)
    probs = (clap.logit_scale * cosine).softmax(1)
    labels = list(classes)
    rows = []
    for i, clip in enumerate(clips):
        z = align.ZeroShot(labels, probs[i].numpy(), cosine[i].numpy(), dict(classes))
        best = int(probs[i].argmax())
        rows.append(ZeroShotRow(labels[best], float(probs[i, best]),
                                true_class(clip.attrs, set_name, classes), z))
    return rows


# ------------------------------------------------------------------------------------ retrieval
def world_gallery(seed: int = RETRIEVAL_SEED) -> list[Sound]:
    """The 36 combinations of the sounds world, one render each, fixed by ``seed``."""
    return render_clips(sounds_captions(), seed)


def query_matches(query: str, attrs: Any) -> bool | None:
    """Whether a render has every attribute a sounds-caption query names (None when the query is
    not a sounds caption or the clip is not a render)."""
    if attrs is None:
        return None
    from mmstudio.worlds import sounds

    try:
        wanted = sounds.parse(query)
    except UserError:
        return None
    if wanted.timbre is None:
        return None
    return wanted == attrs
