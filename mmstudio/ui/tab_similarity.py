"""The Similarity tab: images and texts in one CLIP embedding space (and, in its second sub-tab,
sounds and captions in one CLAP space: ``mmstudio.ui.similarity_audio``).

``build(manager)`` fills the enclosing ``gr.Tab``. The work is done by ``mmstudio.pipelines.align``
(no gradio); the handlers here collect the inputs, call it and draw the pictures
(``pipelines.embedding_pictures``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmstudio.checks import whole_number
from mmstudio.errors import UserError
from mmstudio.manager import ModelManager
from mmstudio.pipelines import align
from mmstudio.pipelines import embedding_pictures as pics
from mmstudio.ui.common import explain, gr, model_work, unknown_words_note, upscale
from mmstudio.worlds import shapes

INTRO = """\
### What you are seeing
A CLIP model has two encoders, one for images and one for texts, trained together so that an image
and its caption land on nearby points of one shared space (each embedding is a unit vector; their
dot product is the **cosine similarity**). Images are rendered from the captions on the left (or
uploaded); the texts on the right are compared with every image.

- **Similarity matrix**: cosine similarity of each image (row) with each text (column).
- **Softmax over texts**: for each image, the texts compete: logits = cosine x the model's
  **logit scale** (a temperature CLIP learns during training; the larger it is, the more decisive
  the choice), turned into probabilities that sum to one along the row. This is how CLIP answers
  "which of these texts describes this image?" without being trained for the question.
- **Zero-shot classification**: the same softmax for one image, over one prompt per class (several
  prompts averaged per class for the shapes attributes).
- **Retrieval**: the opposite direction: one text ranks a gallery of images.
- **Map**: the embeddings projected on their two main directions (PCA), each image joined to the
  text it matches best. In a well-aligned space a caption lands next to its images; large CLIPs
  often keep images and texts in two separate clouds (the *modality gap*), with matching pairs at
  corresponding places.

`shapes-clip` was trained here on the shapes world: it knows only the 29 words of that grammar
(other words get untrained embeddings; the words it never learned are named under the texts).
OpenCLIP ViT-B-32 reads any English, when its weights are available.
"""

DEFAULT_CAPTIONS = """\
a small red circle in the top left on a black background
a large blue square on a gray background
a green triangle in the bottom right
a large white cross in the center on a navy background
a small yellow circle in the top right on a darkgreen background
a purple square in the bottom left"""

DEFAULT_TEXTS = """\
a red circle
a blue square
a green triangle
a white cross
a yellow circle
a purple square
a red square
a blue circle"""

EXAMPLES = [
    [DEFAULT_CAPTIONS, DEFAULT_TEXTS],
    ["a purple triangle\na cyan cross\na yellow square\na purple circle\na cyan square",
     "a purple triangle\na cyan cross\na yellow square\na purple circle\na cyan square\n"
     "a yellow triangle\na purple cross"],
    ["a large orange circle in the top left\na large orange circle in the top right\n"
     "a large orange circle in the center\na large orange circle in the bottom left\n"
     "a large orange circle in the bottom right",
     "an orange circle in the top left\nan orange circle in the top right\n"
     "an orange circle in the center\nan orange circle in the bottom left\n"
     "an orange circle in the bottom right"],
    ["a small cyan triangle on a black background\na large cyan triangle on a gray background\n"
     "a small white square on a navy background\na large white square on a darkgreen background",
     "a small cyan triangle\na large cyan triangle\na small white square\na large white square\n"
     "a cyan triangle on a gray background\na white square on a navy background"],
]

CUSTOM = "the texts above"
CLASS_SETS = align.shapes_class_sets()
CLASS_CHOICES = [("the texts above (one class each)", CUSTOM)] + [
    (f"shapes {name} ({len(c)} classes"
     + (", 32 prompts each)" if name != "color x shape" else ")"), name)
    for name, c in CLASS_SETS.items()
]
GALLERY_CHOICES = [("your images", "yours"),
                   ("your images + 48 shapes renders", "yours+shapes")]
SHAPES_GALLERY = 48
TOP_K = 8
MAX_LABEL = 34


# ------------------------------------------------------------------------------------ inputs
def _short(text: str, width: int = MAX_LABEL) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def collect_images(captions: str | None, seed: float | None, files: list | None
                   ) -> tuple[list[Any], list[str]]:
    """Images rendered from the caption lines, then the uploaded files; with a label each."""
    seed = whole_number(seed, "the render seed", 0, 2**31 - 1)
    lines = [line.strip() for line in (captions or "").splitlines() if line.strip()]
    files = [f if isinstance(f, str) else getattr(f, "name", f) for f in (files or [])]
    if len(lines) + len(files) > align.MAX_IMAGES:
        raise UserError(f"{len(lines) + len(files)} images given; at most {align.MAX_IMAGES} "
                        "are compared at once")
    sources: list[Any] = []
    labels: list[str] = []
    for i, line in enumerate(lines, 1):
        if len(line) > align.MAX_TEXT_CHARS:
            raise UserError(f"caption line {i} has {len(line):,} characters; at most "
                            f"{align.MAX_TEXT_CHARS}")
        try:
            attrs = shapes.parse(line)
        except UserError as exc:
            raise UserError(f"caption line {i}: {exc}") from None
        sources.append(shapes.render(attrs, np.random.default_rng([int(seed), i])))
        labels.append(line)
    for path in files:
        sources.append(path)
        labels.append(Path(str(path)).name)
    return sources, labels


def model_choices(manager: ModelManager) -> list[tuple[str, str]]:
    choices = []
    for spec in manager.catalog:
        if "similarity" not in spec.tasks:
            continue
        available = manager.catalog.availability(spec.id).available
        choices.append((spec.id if available else f"{spec.id} (not available here)", spec.id))
    return choices


# ----------------------------------------------------------------------------------- pictures
# Drawn with numpy and PIL (``pipelines.embedding_pictures``, shared with the sounds sub-tab):
# matplotlib's drawing holds the GIL, which a classroom of requests at once then waits on.
def shape_group(text: str) -> int | None:
    """The index in ``shapes.SHAPES`` of the shape a shapes caption names, else None (uploads,
    free text): the map's colours."""
    try:
        shape = shapes.parse(text).shape
    except UserError:
        return None
    return None if shape is None else shapes.SHAPES.index(shape)


def matrix_picture(result: align.Comparison, labels: list[str]) -> np.ndarray:
    """Cosine matrix above the softmax over texts per image, each image's thumbnail beside its
    row (up to 16 images), each image's best text boxed."""
    sim = result.sim
    return pics.matrix_picture(sim.cosine, sim.probs, labels, result.texts, sim.logit_scale,
                               item="image", thumbs=[im.array for im in result.images])


def zero_shot_picture(z: align.ZeroShot, image: np.ndarray, label: str, scale: float
                      ) -> np.ndarray:
    """Bars of the class probabilities (top 10), best on top, with the image."""
    return pics.bars_picture(z.labels, z.probs, z.cosine,
                             f"zero-shot over {len(z.labels)} classes (logit scale {scale:.1f}): "
                             f"{label}", thumb=image)


def map_picture(result: align.Comparison, labels: list[str]) -> np.ndarray:
    """PCA map: image thumbnails framed by the shape their caption names, texts as diamonds with
    their labels, each image joined to its best text."""
    return pics.map_picture(
        result.map, [str(i + 1) for i in range(len(result.images))],
        [shape_group(label) for label in labels], result.texts,
        [shape_group(t) for t in result.texts], list(shapes.SHAPES), item="image",
        item_thumbs=[im.array for im in result.images])


# ------------------------------------------------------------------------------------ handlers
class SimilarityTab:
    """The tab's handlers around one manager and one session-wide embedding cache."""

    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager
        self.cache = align.EmbeddingCache()
        self._gallery: list[tuple[np.ndarray, str]] | None = None

    def _inputs(self, model_id: str, captions: str | None, seed: float | None,
                files: list | None, texts: str | None) -> tuple[list[Any], list[str]]:
        """The images to compare and their labels; every input checked before any model loads."""
        if not model_id:
            raise UserError("choose a model")
        if not (texts or "").strip():
            raise UserError("no texts given: write at least one text (one per line)")
        align.check_texts(texts or "")
        sources, labels = collect_images(captions, seed, files)
        if not sources:
            raise UserError("no images given: write captions to render, upload images or "
                            "pick an example")
        return sources, labels

    @contextlib.contextmanager
    def _run(self, model_id: str, captions: str | None, seed: float | None, files: list | None,
             texts: str | None) -> Iterator[tuple[align.Comparison, list[str], align.ClipModel]]:
        """The comparison, with the model borrowed until the ``with`` block ends: the zero-shot
        and retrieval views that follow use the same model."""
        sources, labels = self._inputs(model_id, captions, seed, files, texts)
        with self.manager.use(model_id) as loaded:
            clip = align.ClipModel.from_loaded(loaded)
            yield align.compare(clip, sources, (texts or "").splitlines(), self.cache), labels, clip

    def compare(self, model_id: str, captions: str | None, seed: float | None,
                files: list | None, texts: str | None, class_set: str, gallery: str
                ) -> tuple:
        with self._run(model_id, captions, seed, files, texts) as (result, labels, clip):
            zs_fig = self._zero_shot(clip, result, labels, 0, class_set)
            ret = self._retrieve(clip, result, 0, gallery)
        sim = result.sim
        lines = [f"**{len(result.images)} images x {len(result.texts)} texts** with "
                 f"`{result.model_id}`. Logit scale **{sim.logit_scale:.1f}**: "
                 f"probabilities = softmax over the texts of {sim.logit_scale:.1f} x cosine. "
                 "Pink boxes mark each image's best text."]
        lines += [f"- {note}" for note in result.notes]
        preview = [(upscale(im.array, 128), f"{i + 1}. {_short(lab, 40)}")
                   for i, (im, lab) in enumerate(zip(result.images, labels, strict=True))]
        image_choices = [(f"{i + 1}. {_short(lab, 50)}", i) for i, lab in enumerate(labels)]
        query_choices = [(_short(t, 60), i) for i, t in enumerate(result.texts)]
        data = {"model": result.model_id, "images": labels, **sim.to_dict()}
        return (
            preview,
            "\n".join(lines),
            matrix_picture(result, labels),
            zs_fig,
            ret,
            map_picture(result, labels),
            data,
            gr.update(choices=image_choices, value=0),
            gr.update(choices=query_choices, value=0),
        )

    def _zero_shot(self, clip: align.ClipModel, result: align.Comparison, labels: list[str],
                   index: int, class_set: str) -> np.ndarray:
        if class_set == CUSTOM:
            classes = {t: [t] for t in result.texts}
        elif class_set in CLASS_SETS:
            classes = CLASS_SETS[class_set]
        else:
            raise UserError(f"unknown class set '{class_set}'")
        z = align.zero_shot(clip, result.image_emb[index], classes, self.cache)
        return zero_shot_picture(z, result.images[index].array, f"image {index + 1}, "
                                 f"{labels[index]}", clip.logit_scale)

    def _retrieve(self, clip: align.ClipModel, result: align.Comparison, index: int,
                  gallery: str) -> list[tuple[np.ndarray, str]]:
        images = [im.array for im in result.images]
        emb = result.image_emb
        if gallery == "yours+shapes":
            if self._gallery is None:
                self._gallery = align.render_gallery(SHAPES_GALLERY)
            extra = align.prepare_images([g for g, _ in self._gallery], clip.resolution)
            images += [im.array for im in extra]
            emb = torch.cat([emb, align.embed_images(clip, extra, self.cache)])
        ranked = align.retrieve(result.text_emb[index], emb, result.texts[index], k=TOP_K)
        return [(upscale(images[g], 128), f"#{r + 1}  cos {s:.3f}")
                for r, (g, s) in enumerate(zip(ranked.order, ranked.scores, strict=True))]

    def zero_shot(self, model_id: str, captions: str | None, seed: float | None,
                  files: list | None, texts: str | None, index: int | None, class_set: str
                  ) -> np.ndarray:
        with self._run(model_id, captions, seed, files, texts) as (result, labels, clip):
            index = int(index or 0)
            if not 0 <= index < len(result.images):
                raise UserError(f"there is no image {index + 1}; press Compare first")
            return self._zero_shot(clip, result, labels, index, class_set)

    def retrieve(self, model_id: str, captions: str | None, seed: float | None,
                 files: list | None, texts: str | None, index: int | None, gallery: str
                 ) -> list[tuple[np.ndarray, str]]:
        with self._run(model_id, captions, seed, files, texts) as (result, _, clip):
            index = int(index or 0)
            if not 0 <= index < len(result.texts):
                raise UserError(f"there is no text {index + 1}; press Compare first")
            return self._retrieve(clip, result, index, gallery)


def build(manager: ModelManager) -> None:
    """Create the tab's content inside the caller's ``gr.Tab("Similarity")``: images and texts
    (CLIP), then sounds and captions (CLAP, ``similarity_audio``), each in its own sub-tab."""
    from mmstudio.ui import similarity_audio

    with gr.Tab("Images and texts (CLIP)", elem_id="similarity-images-tab"):
        build_images(manager)
    with gr.Tab("Sounds and captions (CLAP)", elem_id="similarity-audio-tab"):
        similarity_audio.build(manager)


def build_images(manager: ModelManager) -> None:
    """The images and texts part."""
    tab = SimilarityTab(manager)
    default = manager.settings.default_models.get("similarity", "shapes-clip")
    choices = model_choices(manager)
    explain(INTRO)
    with gr.Row():
        model = gr.Dropdown(choices, value=default if default in [c[1] for c in choices]
                            else (choices[0][1] if choices else None), label="Model", scale=3)
        seed = gr.Number(value=0, precision=0, minimum=0, label="Render seed", scale=1)
    with gr.Row():
        with gr.Column():
            captions = gr.Textbox(DEFAULT_CAPTIONS, lines=7, max_lines=20,
                                  label="Images: rendered from these shapes captions "
                                  "(one per line)")
            files = gr.File(file_count="multiple", file_types=["image"],
                            label="...and/or upload images", height=110)
        with gr.Column():
            texts = gr.Textbox(DEFAULT_TEXTS, lines=9, max_lines=20,
                               label=f"Texts (one per line; at most {align.MAX_TEXTS}, "
                               f"{align.MAX_TEXT_CHARS} characters each)")
            unknown_words_note(manager, texts, model, elem_id="similarity-unknown-words")
            button = gr.Button("Compare", variant="primary")
    gr.Examples(EXAMPLES, [captions, texts], label="Examples (images from captions, texts)")
    preview = gr.Gallery(label="Images compared", columns=8, height=250, object_fit="contain",
                         format="png", interactive=False, elem_classes=["mm-pixelated"])
    summary = gr.Markdown()
    gr.Markdown("#### Similarity matrix and softmax over texts")
    matrix = gr.Image(label="Similarity matrix and softmax over texts", format="png",
                      show_label=False, interactive=False, elem_id="similarity-matrix")
    with gr.Row():
        with gr.Column():
            gr.Markdown("#### Zero-shot classification of one image")
            image_index = gr.Dropdown([("1.", 0)], value=0, label="Image")
            class_set = gr.Dropdown(CLASS_CHOICES, value="color x shape", label="Classes")
            zs_plot = gr.Image(label="Zero-shot classification", format="png",
                               show_label=False, interactive=False,
                               elem_id="similarity-zero-shot")
        with gr.Column():
            gr.Markdown("#### Text -> image retrieval")
            query = gr.Dropdown([("text 1", 0)], value=0, label="Query text")
            gallery_choice = gr.Radio(GALLERY_CHOICES, value="yours+shapes", label="Search in")
            results = gr.Gallery(label=f"Top {TOP_K}, best first", columns=4, height=330,
                                 object_fit="contain", format="png", interactive=False,
                                 elem_classes=["mm-pixelated"])
    gr.Markdown("#### Map of the shared embedding space (PCA)")
    emb_map = gr.Image(label="Map of the shared embedding space (PCA)", format="png",
                       show_label=False, interactive=False, elem_id="similarity-map")
    with gr.Accordion("Numbers (JSON)", open=False):
        data = gr.JSON(label="cosine, probabilities, logit scale")

    common = [model, captions, seed, files, texts]
    button.click(model_work(manager, tab.compare), [*common, class_set, gallery_choice],
                 [preview, summary, matrix, zs_plot, results, emb_map, data, image_index, query],
                 api_name="similarity")
    zs_inputs = [*common, image_index, class_set]
    image_index.input(model_work(manager, tab.zero_shot), zs_inputs, zs_plot,
                      api_name="similarity_zero_shot")
    class_set.input(model_work(manager, tab.zero_shot), zs_inputs, zs_plot,
                    api_name="similarity_zero_shot_classes")
    ret_inputs = [*common, query, gallery_choice]
    query.input(model_work(manager, tab.retrieve), ret_inputs, results,
                api_name="similarity_retrieve")
    gallery_choice.input(model_work(manager, tab.retrieve), ret_inputs, results,
                         api_name="similarity_retrieve_gallery")
