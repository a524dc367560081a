"""Text and images in one embedding space: the Similarity tab's computations, without gradio.

CLIP (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision") maps an image and a text to unit vectors in one space, trained so that a matching
pair has a high cosine similarity. Everything here works on those vectors:

- ``embed_images`` / ``embed_texts``: unit-norm embeddings, cached per session in an LRU keyed by
  model id + content hash (``EmbeddingCache``), so repeated images and texts cost nothing;
- ``similarity``: the images x texts cosine matrix, the logits (cosine x the model's learned logit
  scale) and the softmax over texts per image: "which of these texts describes this image";
- ``zero_shot``: classification by comparing an image with one text per class (several prompts per
  class are averaged: CLIP's prompt ensembling);
- ``retrieve``: texts -> ranked images of a gallery;
- ``pca_map``: a 2-D principal-component map of image and text embeddings together.

The same functions serve shapes-clip and OpenCLIP ViT-B-32: only the loaded model differs.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mmstudio.errors import UserError
from mmstudio.images import PreparedImage, prepare_image

MAX_IMAGES = 64
MAX_TEXTS = 64
MAX_TEXT_CHARS = 300
MAX_GALLERY = 512
ImageSource = str | Path | np.ndarray | Image.Image


# ------------------------------------------------------------------------------------ validation
def check_texts(texts: Sequence[str], limit: int | None = MAX_TEXTS) -> list[str]:
    """Stripped, non-empty texts within the limits; a clear ``UserError`` otherwise.

    Checked before any tokenizing, so 500 texts or a 10,000-character text answer at once.
    ``limit=None``: any number of texts (a command-line batch, see ``compare_many``).
    """
    if isinstance(texts, str):
        texts = texts.splitlines()
    cleaned = [str(t).strip() for t in texts]
    cleaned = [t for t in cleaned if t]
    if not cleaned:
        raise UserError("no texts given: write at least one text (one per line)")
    if limit is not None and len(cleaned) > limit:
        raise UserError(f"{len(cleaned)} texts given; at most {limit} are compared at once")
    for i, text in enumerate(cleaned, 1):
        if len(text) > MAX_TEXT_CHARS:
            raise UserError(f"text {i} has {len(text):,} characters; at most {MAX_TEXT_CHARS} "
                            "per text (CLIP reads only the first few dozen tokens anyway)")
    return cleaned


def prepare_images(sources: Sequence[ImageSource], size: int,
                   limit: int | None = MAX_IMAGES) -> list[PreparedImage]:
    """Every source through ``prepare_image`` at the model's resolution; errors name the image.
    ``limit=None``: any number of images."""
    sources = list(sources or [])
    if not sources:
        raise UserError("no images given: upload images, pick an example or render some from "
                        "captions")
    if limit is not None and len(sources) > limit:
        raise UserError(f"{len(sources)} images given; at most {limit} are compared at once")
    prepared = []
    for i, source in enumerate(sources, 1):
        try:
            prepared.append(prepare_image(source, size))
        except UserError as exc:
            raise UserError(f"image {i}: {exc}") from None
    return prepared


# ------------------------------------------------------------------------------------ the cache
class EmbeddingCache:
    """Thread-safe LRU of unit embeddings keyed by (model id, kind, content hash)."""

    def __init__(self, max_items: int = 8192) -> None:
        self.max_items = max_items
        self._items: OrderedDict[tuple[str, str, str], torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str, str]) -> torch.Tensor | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: tuple[str, str, str], value: torch.Tensor) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def image_key(image: PreparedImage) -> str:
    array = image.array
    return hashlib.sha1(array.tobytes() + str(array.shape).encode()).hexdigest()


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------ embeddings
class ContrastiveModel:
    """Shared by the wrappers of contrastive models (``ClipModel`` here, ``sound_align.ClapModel``):
    where the weights are and the softmax temperature, read from ``self.model``."""

    model: torch.nn.Module

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def logit_scale(self) -> float:
        """exp of the learned log scale, capped at 100 as in CLIP's training. transformers'
        ``ClapModel`` keeps one per direction: the text -> audio one is used."""
        scale = getattr(self.model, "logit_scale", None)
        if scale is None:
            scale = self.model.logit_scale_t
        return float(scale.detach().float().exp().clamp(max=100.0))


@dataclass
class ClipModel(ContrastiveModel):
    """What the functions need from a loaded open_clip model (``manager.use(id)`` components)."""

    model_id: str
    model: torch.nn.Module
    preprocess: Any
    tokenizer: Any
    resolution: int

    @classmethod
    def from_loaded(cls, loaded: Any) -> ClipModel:
        return cls(loaded.spec.id, loaded["model"], loaded["preprocess"], loaded["tokenizer"],
                   int(loaded.spec.resolution or 224))

    @property
    def logit_bias(self) -> float:
        bias = getattr(self.model, "logit_bias", None)
        return float(bias.detach().float().reshape(-1)[0]) if bias is not None else 0.0

    @property
    def context_length(self) -> int:
        return int(getattr(self.tokenizer, "context_length", 77))


def _embed(clip: ClipModel, kind: str, keys: list[str], compute, cache: EmbeddingCache | None
           ) -> torch.Tensor:
    """Look every key up in the cache, compute the missing ones in one batch, keep order."""
    found: dict[int, torch.Tensor] = {}
    missing: list[int] = []
    for i, key in enumerate(keys):
        hit = cache.get((clip.model_id, kind, key)) if cache is not None else None
        if hit is None:
            missing.append(i)
        else:
            found[i] = hit
    if missing:
        with torch.inference_mode():
            fresh = F.normalize(compute(missing).float(), dim=-1).cpu()  # (len(missing), D)
        for j, i in enumerate(missing):
            found[i] = fresh[j]
            if cache is not None:
                cache.put((clip.model_id, kind, keys[i]), fresh[j])
    return torch.stack([found[i] for i in range(len(keys))])  # (N, D)


def embed_images(clip: ClipModel, images: Sequence[PreparedImage],
                 cache: EmbeddingCache | None = None) -> torch.Tensor:
    """(N, D) unit-norm image embeddings, through the model's own preprocessing."""
    images = list(images)

    def compute(indices: list[int]) -> torch.Tensor:
        pixels = torch.stack([clip.preprocess(images[i].image) for i in indices])  # (n, 3, H, W)
        return clip.model.encode_image(pixels.to(clip.device, clip.dtype))

    return _embed(clip, "image", [image_key(im) for im in images], compute, cache)


def embed_texts(clip: ClipModel, texts: Sequence[str],
                cache: EmbeddingCache | None = None) -> torch.Tensor:
    """(M, D) unit-norm text embeddings (open_clip's tokenizer; long texts are cut at the
    model's context length, as CLIP does)."""
    texts = list(texts)

    def compute(indices: list[int]) -> torch.Tensor:
        tokens = clip.tokenizer([texts[i] for i in indices])  # (n, L)
        return clip.model.encode_text(tokens.to(clip.device))

    return _embed(clip, "text", [text_key(t) for t in texts], compute, cache)


def truncated_texts(clip: ClipModel, texts: Sequence[str]) -> list[int]:
    """Indices of texts longer than the model's context (they are read only in part)."""
    encode = getattr(clip.tokenizer, "encode", None)
    if encode is None:
        return []
    return [i for i, t in enumerate(texts) if len(encode(t)) + 2 > clip.context_length]


# ------------------------------------------------------------------------------------ similarity
@dataclass
class Similarity:
    """The images x texts comparison. ``probs[i]`` is a softmax over the texts for image i."""

    cosine: np.ndarray  # (N, M) in [-1, 1]
    logits: np.ndarray  # (N, M) = logit_scale * cosine (+ bias)
    probs: np.ndarray  # (N, M), rows sum to 1
    logit_scale: float
    texts: list[str]
    best_text: list[int] = field(default_factory=list)  # argmax over texts, per image

    def to_dict(self) -> dict[str, Any]:
        return {
            "texts": self.texts,
            "logit_scale": round(self.logit_scale, 4),
            "cosine": np.round(self.cosine, 4).tolist(),
            "probs": np.round(self.probs, 4).tolist(),
            "best_text": self.best_text,
        }


def similarity(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: float,
               texts: Sequence[str], logit_bias: float = 0.0) -> Similarity:
    """Cosine matrix, logits and the per-image softmax over texts (CLIP's zero-shot head)."""
    cosine = image_emb.float() @ text_emb.float().T  # (N, M)
    logits = logit_scale * cosine + logit_bias
    probs = logits.softmax(dim=1)
    return Similarity(cosine.numpy(), logits.numpy(), probs.numpy(), float(logit_scale),
                      list(texts), probs.argmax(dim=1).tolist())


# ------------------------------------------------------------------------------------ zero-shot
@dataclass
class ZeroShot:
    labels: list[str]  # class names, in the order given
    probs: np.ndarray  # (C,) softmax over classes
    cosine: np.ndarray  # (C,)
    prompts: dict[str, list[str]]

    @property
    def ranked(self) -> list[tuple[str, float]]:
        order = np.argsort(-self.probs, kind="stable")
        return [(self.labels[i], float(self.probs[i])) for i in order]


def class_embeddings(clip: ClipModel, classes: dict[str, list[str]],
                     cache: EmbeddingCache | None = None) -> torch.Tensor:
    """(C, D): the normalised mean of each class's prompt embeddings (prompt ensembling)."""
    flat = [p for prompts in classes.values() for p in prompts]
    emb = embed_texts(clip, flat, cache)  # (P, D)
    out, start = [], 0
    for prompts in classes.values():
        out.append(F.normalize(emb[start:start + len(prompts)].mean(0), dim=-1))
        start += len(prompts)
    return torch.stack(out)  # (C, D)


def zero_shot(clip: ClipModel, image_emb: torch.Tensor, classes: dict[str, list[str]],
              cache: EmbeddingCache | None = None) -> ZeroShot:
    """Classify one image (D,) among ``classes`` (label -> prompts)."""
    if not classes:
        raise UserError("zero-shot classification needs at least one class")
    class_emb = class_embeddings(clip, classes, cache)  # (C, D)
    cosine = class_emb @ image_emb.float()  # (C,)
    probs = (clip.logit_scale * cosine + clip.logit_bias).softmax(0)
    return ZeroShot(list(classes), probs.numpy(), cosine.numpy(), dict(classes))


def shapes_class_sets() -> dict[str, dict[str, list[str]]]:
    """Zero-shot tasks on the shapes world, each class with its prompts.

    Color x shape uses the 32 plain prompts ``a {color} {shape}``. Background, size and position
    use prompt ensembles inside the shapes grammar: each class averages the 32 captions that name
    it with every color and shape, e.g. ``a {color} {shape} on a {background} background``.
    """
    from mmstudio.worlds import shapes

    pairs = [(c, s) for c in shapes.COLORS for s in shapes.SHAPES]
    return {
        "color x shape": {f"{c} {s}": [f"a {c} {s}"] for c, s in pairs},
        "background": {b: [f"a {c} {s} on a {b} background" for c, s in pairs]
                       for b in shapes.BACKGROUNDS},
        "size": {z: [f"a {z} {c} {s}" for c, s in pairs] for z in shapes.SIZES},
        "position": {p: [f"a {c} {s} in the {p}" for c, s in pairs] for p in shapes.POSITIONS},
    }


# ------------------------------------------------------------------------------------ retrieval
@dataclass
class Retrieval:
    query: str
    order: list[int]  # gallery indices, best first
    scores: list[float]  # cosine similarity, same order


def retrieve(text_emb: torch.Tensor, gallery_emb: torch.Tensor, query: str = "",
             k: int | None = None) -> Retrieval:
    """Rank a gallery (G, D) of images by cosine similarity to one text embedding (D,)."""
    scores = gallery_emb.float() @ text_emb.float()  # (G,)
    order = torch.argsort(scores, descending=True, stable=True)
    if k is not None:
        order = order[:k]
    return Retrieval(query, order.tolist(), scores[order].tolist())


def render_gallery(n: int = 48, seed: int = 7) -> list[tuple[np.ndarray, str]]:
    """``n`` shapes-world renders (every attribute varied) with their full captions, to search
    in; fixed by ``seed``."""
    from mmstudio.worlds import shapes

    if not 0 < n <= MAX_GALLERY:
        raise UserError(f"gallery size must be between 1 and {MAX_GALLERY}, got {n}")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        attrs = shapes.sample_attrs(rng, "all")
        out.append((shapes.render(attrs, rng), shapes.caption(attrs)))
    return out


# ------------------------------------------------------------------------------------ PCA map
@dataclass
class EmbeddingMap:
    """2-D principal-component coordinates of image and text embeddings, fitted on both."""

    images: np.ndarray  # (N, 2)
    texts: np.ndarray  # (M, 2)
    explained: tuple[float, float]  # share of variance on each axis
    pairs: list[tuple[int, int]]  # (image index, text index) joined on the map


def pca_map(image_emb: torch.Tensor, text_emb: torch.Tensor,
            pairs: Sequence[tuple[int, int]] = ()) -> EmbeddingMap:
    """Project both sets onto the top two principal components of their union (centred SVD).

    With fewer than three points the components are padded with zeros.
    """
    points = torch.cat([image_emb, text_emb]).double()  # (N + M, D)
    centred = points - points.mean(0, keepdim=True)
    _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
    basis = vh[:2].T  # (D, <=2)
    coords = centred @ basis  # (N + M, <=2)
    # fix each axis' sign (SVD's is arbitrary) so the same inputs always give the same picture
    signs = torch.sign(coords[coords.abs().argmax(0), torch.arange(coords.shape[1])])
    coords = coords * torch.where(signs == 0, torch.ones_like(signs), signs)
    if coords.shape[1] < 2:
        coords = torch.cat([coords, torch.zeros(coords.shape[0], 2 - coords.shape[1],
                                                dtype=coords.dtype)], 1)
    var = singular**2
    total = float(var.sum()) or 1.0
    explained = [float(v) / total for v in var[:2]] + [0.0, 0.0]
    n = image_emb.shape[0]
    return EmbeddingMap(coords[:n].float().numpy(), coords[n:].float().numpy(),
                        (explained[0], explained[1]), list(pairs))


# ------------------------------------------------------------------------------------ one call
@dataclass
class Comparison:
    """Everything the Similarity tab shows for one set of images and texts."""

    model_id: str
    images: list[PreparedImage]
    texts: list[str]
    image_emb: torch.Tensor  # (N, D)
    text_emb: torch.Tensor  # (M, D)
    sim: Similarity
    map: EmbeddingMap
    notes: list[str]


def compare(clip: ClipModel, sources: Sequence[ImageSource], texts: Sequence[str],
            cache: EmbeddingCache | None = None) -> Comparison:
    """Validate, embed (with the cache), compare and map one set of images and texts (at most
    ``MAX_IMAGES`` x ``MAX_TEXTS``: one interactive comparison).

    On the map each image is joined to the text it matches best.
    """
    return _compare(clip, sources, texts, cache, MAX_IMAGES, MAX_TEXTS)


def compare_many(clip: ClipModel, sources: Sequence[ImageSource], texts: Sequence[str],
                 cache: EmbeddingCache | None = None, batch: int = MAX_IMAGES) -> Comparison:
    """``compare`` for any number of images and texts (a command-line batch): embeddings are
    computed ``batch`` at a time, the matrices cover everything."""
    return _compare(clip, sources, texts, cache, None, None, batch)


def _compare(clip: ClipModel, sources: Sequence[ImageSource], texts: Sequence[str],
             cache: EmbeddingCache | None, max_images: int | None, max_texts: int | None,
             batch: int = MAX_IMAGES) -> Comparison:
    texts = check_texts(texts, max_texts)
    images = prepare_images(sources, clip.resolution, max_images)
    image_emb = torch.cat([embed_images(clip, images[k: k + batch], cache)
                           for k in range(0, len(images), batch)])  # (N, D)
    text_emb = torch.cat([embed_texts(clip, texts[k: k + batch], cache)
                          for k in range(0, len(texts), batch)])  # (M, D)
    sim = similarity(image_emb, text_emb, clip.logit_scale, texts, clip.logit_bias)
    notes = []
    for i, image in enumerate(images, 1):
        if image.notes:
            notes.append(f"image {i}: " + "; ".join(image.notes))
    cut = truncated_texts(clip, texts)
    if cut:
        notes.append(f"text {', '.join(str(i + 1) for i in cut)}: longer than the model's "
                     f"{clip.context_length} tokens; only the beginning is read")
    pairs = [(i, j) for i, j in enumerate(sim.best_text)]
    return Comparison(clip.model_id, images, texts, image_emb, text_emb, sim,
                      pca_map(image_emb, text_emb, pairs), notes)
