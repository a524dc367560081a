"""The Similarity tab's sounds section: clips and captions in one CLAP embedding space.

``build(manager)`` fills the enclosing ``gr.Tab("Sounds and captions (CLAP)")`` with the same views
as the images part: the clips x texts similarity matrix with the softmax over the texts per clip,
zero-shot classification (right or wrong for world renders), text -> audio retrieval with players
and the PCA map. The work is done by ``mmstudio.pipelines.sound_align`` and the pictures by
``mmstudio.pipelines.embedding_pictures`` (no gradio); the handlers here collect the inputs, write
the players' WAV files and turn the rest into component updates. Every event's ``api_name`` starts
with ``similarity_audio``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mmstudio.checks import whole_number
from mmstudio.errors import UserError
from mmstudio.manager import ModelManager
from mmstudio.pipelines import align
from mmstudio.pipelines import embedding_pictures as pics
from mmstudio.pipelines import sound_align as sa
from mmstudio.ui import downloads
from mmstudio.ui.common import explain, gr, model_work, unknown_words_note
from mmstudio.worlds import sounds
from mmstudio.worlds.media import write_wav

TASK = "audio_similarity"
TOP_K = 6
CUSTOM = "the texts"
CLASS_SETS = sa.sounds_class_sets()
CLASS_CHOICES = [("the captions on the right (one class each)", CUSTOM),
                 ("sounds captions (36 classes)", sa.CAPTIONS_SET),
                 ("sounds timbre (4 classes, 9 captions each)", "timbre"),
                 ("sounds pitch (3 classes, 12 captions each)", "pitch"),
                 ("sounds pattern (3 classes, 12 captions each)", "pattern")]
GALLERY_CHOICES = [("your clips", "yours"), ("your clips + 36 sounds renders", "yours+sounds")]
DEFAULT_CLIPS = "\n".join(sa.covering_captions())
DEFAULT_TEXTS = "\n".join(sa.sounds_captions())
DEFAULT_QUERY = "three short beeps of a high square wave"

INTRO = f"""\
### What you are seeing
A **CLAP** model (Contrastive Language-Audio Pretraining) is CLIP for sound: an audio encoder and
a text encoder trained together so that a clip and its caption land on nearby unit vectors of one
space. Clips are rendered from the sounds captions on the left (or uploaded: any sound file,
converted to 16 kHz mono); the captions on the right are compared with every clip.

- **Similarity matrix**: cosine similarity of each clip (row) with each caption (column).
- **Softmax over the captions**: for each clip the captions compete: logits = cosine x the model's
  learned **logit scale**, turned into probabilities along the row.
- **Zero-shot classification**: the best caption (or timbre, pitch, pattern: each an average of
  the captions that name it) for every clip, right or wrong for world renders, whose attributes
  are known.
- **Retrieval**: the other direction: a caption you type ranks the clips; listen to the top ones.
- **Map**: clips and captions projected on their two main directions (PCA).

`sounds-clap` is trained here on the sounds world: its audio tower reads the clip's 64 x 64
log-mel spectrogram (its first second) and its text tower knows only the
{len(sounds.VOCABULARY)} words of the sounds grammar. LAION's CLAP (`laion/clap-htsat-unfused`)
hears any sound and reads any English, when its weights are available.
"""

EXAMPLES = [
    [DEFAULT_CLIPS, DEFAULT_TEXTS],
    [DEFAULT_TEXTS, DEFAULT_TEXTS],
    ["\n".join(f"{p} of a high sawtooth wave" for p in sounds.PATTERNS) + "\n"
     + "\n".join(f"{p} of low noise" for p in sounds.PATTERNS), DEFAULT_TEXTS],
    ["\n".join(f"two short beeps of a mid {t} wave" for t in ("sine", "square", "sawtooth"))
     + "\ntwo short beeps of mid noise",
     "\n".join(f"two short beeps of a mid {t} wave" for t in ("sine", "square", "sawtooth"))
     + "\ntwo short beeps of mid noise"],
]
EXAMPLE_LABELS = ["12 renders (every pitch x timbre) x the 36 captions",
                  "every combination: 36 x 36",
                  "the held-out pairs (high sawtooth, low noise) x the 36 captions",
                  "four timbres, same pitch and pattern"]


def model_choices(manager: ModelManager) -> list[tuple[str, str]]:
    out = []
    for spec in manager.catalog.for_task(TASK):
        ok = manager.catalog.availability(spec.id).available
        out.append((spec.id if ok else f"{spec.id} (not available here)", spec.id))
    return out


def _short(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _paths(files: list | None) -> list[str]:
    return [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]


def _mark(right: bool | None) -> str:
    return "" if right is None else ("right" if right else "**wrong**")


class AudioSimilarity:
    """The section's handlers around one manager and one session-wide embedding cache."""

    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager
        self.cache = align.EmbeddingCache()
        self._gallery: list[Any] | None = None

    # -------------------------------------------------------------------------------- inputs
    def _inputs(self, model_id: str | None, captions: str | None, seed: float | None,
                files: list | None, texts: str | None) -> tuple[list[Any], list[str]]:
        """The clips and texts; every input checked before any model loads."""
        if not model_id:
            raise UserError("choose a CLAP model")
        if TASK not in self.manager.catalog.get(model_id).tasks:
            raise UserError(f"'{model_id}' is not an audio-text model")
        texts_list = align.check_texts(texts or "")
        seed = whole_number(0 if seed is None else seed, "the render seed", 0, 2**31 - 1)
        clips = sa.collect_clips((captions or "").splitlines(), seed, _paths(files))
        return clips, texts_list

    @contextlib.contextmanager
    def _run(self, model_id: str | None, captions: str | None, seed: float | None,
             files: list | None, texts: str | None
             ) -> Iterator[tuple[sa.AudioComparison, sa.ClapModel]]:
        """The comparison, with the model borrowed until the ``with`` block ends."""
        clips, texts_list = self._inputs(model_id, captions, seed, files, texts)
        with self.manager.use(str(model_id)) as loaded:
            clap = sa.ClapModel.from_loaded(loaded)
            yield sa.compare_audio(clap, clips, texts_list, self.cache), clap

    # -------------------------------------------------------------------------------- views
    @staticmethod
    def _classes(result: sa.AudioComparison, class_set: str | None
                 ) -> tuple[str, dict[str, list[str]]]:
        if class_set == CUSTOM:
            return CUSTOM, {t: [t] for t in result.texts}
        if class_set in CLASS_SETS:
            return str(class_set), CLASS_SETS[str(class_set)]
        raise UserError(f"unknown class set '{class_set}'")

    def _zero_shot(self, clap: sa.ClapModel, result: sa.AudioComparison, index: int,
                   class_set: str | None, folder: Path) -> tuple[str, np.ndarray, str]:
        """(the table for every clip, one clip's bars, that clip's player)."""
        if not 0 <= index < len(result.clips):
            raise UserError(f"there is no clip {index + 1}; there are {len(result.clips)}")
        name, classes = self._classes(result, class_set)
        rows = sa.zero_shot_clips(clap, result.audio_emb, result.clips, name, classes,
                                  self.cache)
        judged = [r for r in rows if r.right is not None]
        lines = []
        if judged:
            hits = sum(bool(r.right) for r in judged)
            lines.append(f"**Right for {hits} of {len(judged)} world renders "
                         f"({hits / len(judged):.0%})**; chance: 1 in {len(classes)}.")
        else:
            lines.append("No world renders with a class among these (uploads have no known "
                         "answer): each clip's best class is listed.")
        # a render's true caption is its label: a "true" column only for attribute classes
        own = all(r.truth is None or r.truth == sounds.caption(c.attrs)
                  for c, r in zip(result.clips, rows, strict=True))
        head = "| clip | best class | p |" + ("" if own else " true class |") + " |"
        lines += ["", head, "| --- " * (head.count("|") - 1) + "|"]
        for i, (clip, row) in enumerate(zip(result.clips, rows, strict=True), 1):
            true = "" if own else f" {row.truth or '-'} |"
            lines.append(f"| {i}. {_short(clip.label, 56)} | {_short(row.best, 56)} | "
                         f"{row.prob:.1%} |{true} {_mark(row.right)} |")
        row = rows[index]
        verdict = {True: ": right", False: ": wrong", None: ""}[row.right]
        bars = pics.bars_picture(row.zero_shot.labels, row.zero_shot.probs, row.zero_shot.cosine,
                                 f"zero-shot over {len(classes)} classes, clip {index + 1}: "
                                 f"{result.clips[index].label}{verdict}", row.truth)
        clip = result.clips[index]
        player = write_wav(clip.audio, folder / f"clip-{index + 1}.wav", clip.sample_rate)
        return "\n".join(lines), bars, str(player)

    def _retrieve(self, clap: sa.ClapModel, result: sa.AudioComparison, query: str | None,
                  gallery: str | None, folder: Path) -> tuple:
        """(the ranking as text, then ``TOP_K`` player updates)."""
        query = (query or "").strip()
        if not query:
            raise UserError("type a caption to search for")
        align.check_texts([query], 1)
        if gallery not in dict((v, k) for k, v in GALLERY_CHOICES):
            raise UserError(f"unknown gallery '{gallery}'")
        clips = list(result.clips)
        sources = [f"clip {i + 1}" for i in range(len(clips))]
        if gallery == "yours+sounds":
            if self._gallery is None:
                self._gallery = sa.world_gallery()
            clips += self._gallery
            sources += ["sounds render"] * len(self._gallery)
        emb = sa.embed_clips(clap, [c.audio for c in clips], self.cache)  # (G, D)
        text = sa.embed_captions(clap, [query], self.cache)[0]  # (D,)
        ranked = align.retrieve(text, emb, query, k=TOP_K)
        lines = [f"**{_short(query, 80)}** against {len(clips)} clips with `{clap.model_id}`, "
                 "best first:", "", "| rank | cos | clip | matches the query |",
                 "| --- | --- | --- | --- |"]
        players = []
        matched = []
        for r, (g, score) in enumerate(zip(ranked.order, ranked.scores, strict=True), 1):
            clip = clips[g]
            match = sa.query_matches(query, clip.attrs)
            matched.append(match)
            yes = {True: "yes", False: "no", None: ""}[match]
            lines.append(f"| {r} | {score:.3f} | {sources[g]}: {_short(clip.label, 48)} | "
                         f"{yes} |")
            path = write_wav(clip.audio, folder / f"hit-{r}.wav", clip.sample_rate)
            what = sa.short_caption(clip.label.removesuffix(" (held out)"), 28)
            players.append(gr.update(value=str(path), visible=True,
                                     label=f"#{r}  cos {score:.3f}  {what}"))
        if any(m is not None for m in matched):
            lines += ["", f"{sum(bool(m) for m in matched)} of the top {len(matched)} are "
                      "renders of exactly this caption."]
        players += [gr.update(value=None, visible=False, label="-")
                    for _ in range(TOP_K - len(players))]
        return ("\n".join(lines), *players)

    @staticmethod
    def _matrix(result: sa.AudioComparison) -> np.ndarray:
        sim = result.sim
        return pics.matrix_picture(sim.cosine, sim.probs, [c.label for c in result.clips],
                                   result.texts, sim.logit_scale, result.truth)

    @staticmethod
    def _map(result: sa.AudioComparison) -> np.ndarray:
        return pics.map_picture(
            result.map, [str(i + 1) for i in range(len(result.clips))],
            [sa.timbre_group(c.attrs) for c in result.clips],
            [sa.short_caption(t) for t in result.texts], [sa.text_group(t) for t in result.texts],
            list(sounds.TIMBRES))

    # -------------------------------------------------------------------------------- events
    def compare(self, model_id: str | None, captions: str | None, seed: float | None,
                files: list | None, texts: str | None, class_set: str | None,
                query: str | None, gallery: str | None) -> tuple:
        folder = downloads.new_folder("similarity-audio")
        with self._run(model_id, captions, seed, files, texts) as (result, clap):
            table, bars, player = self._zero_shot(clap, result, 0, class_set, folder)
            retrieved = self._retrieve(clap, result, query, gallery, folder)
        sim = result.sim
        truth = [t for t in result.truth if t is not None]
        lines = [f"**{len(result.clips)} clips x {len(result.texts)} texts** with "
                 f"`{result.model_id}`. Logit scale **{sim.logit_scale:.1f}**: probabilities = "
                 f"softmax over the texts of {sim.logit_scale:.1f} x cosine. Pink boxes mark "
                 "each clip's best text" + (", green ones its true caption" if truth else "")
                 + "."]
        if truth:
            hits = sum(sim.best_text[i] == t for i, t in enumerate(result.truth) if t is not None)
            lines[0] += f" The best text is the true caption for {hits} of {len(truth)} renders."
        lines += [f"- {note}" for note in result.notes]
        preview = [(pics.mel_thumbnail(c.audio), f"{i + 1}. {_short(c.label, 40)}")
                   for i, c in enumerate(result.clips)]
        clip_choices = [(f"{i + 1}. {_short(c.label, 50)}", i) for i, c in enumerate(result.clips)]
        return (preview, "\n".join(lines), self._matrix(result), table, bars, player,
                *retrieved, self._map(result), result.to_dict(),
                gr.update(choices=clip_choices, value=0))

    def zero_shot(self, model_id: str | None, captions: str | None, seed: float | None,
                  files: list | None, texts: str | None, index: float | None,
                  class_set: str | None) -> tuple[str, np.ndarray, str]:
        folder = downloads.new_folder("similarity-audio")
        index = whole_number(0 if index is None else index, "the clip", 0, sa.MAX_CLIPS - 1)
        with self._run(model_id, captions, seed, files, texts) as (result, clap):
            return self._zero_shot(clap, result, index, class_set, folder)

    def retrieve(self, model_id: str | None, captions: str | None, seed: float | None,
                 files: list | None, texts: str | None, query: str | None,
                 gallery: str | None) -> tuple:
        folder = downloads.new_folder("similarity-audio")
        with self._run(model_id, captions, seed, files, texts) as (result, clap):
            return self._retrieve(clap, result, query, gallery, folder)


def _picture(caption: str, elem_id: str) -> gr.Image:
    gr.Markdown(f"**{caption}**", elem_classes=["mm-caption"])
    return gr.Image(show_label=False, label=caption, interactive=False, format="png",
                    elem_id=elem_id, buttons=["download"])


def build(manager: ModelManager) -> None:
    """Create the section inside the caller's ``gr.Tab``."""
    section = AudioSimilarity(manager)
    choices = model_choices(manager)
    default = manager.catalog.default_for(TASK)
    explain(INTRO)
    with gr.Row():
        model = gr.Dropdown(choices, value=default if default in [c[1] for c in choices]
                            else (choices[0][1] if choices else None), label="CLAP model",
                            elem_id="similarity-audio-model", scale=3)
        seed = gr.Number(value=0, precision=0, minimum=0, label="Render seed", scale=1,
                         elem_id="similarity-audio-seed")
    with gr.Row():
        with gr.Column():
            captions = gr.Textbox(DEFAULT_CLIPS, lines=8, max_lines=14,
                                  label="Clips: rendered from these sounds captions "
                                  f"(one per line; at most {sa.MAX_CLIPS} clips in all)",
                                  elem_id="similarity-audio-clips")
            files = gr.File(file_count="multiple", file_types=["audio"],
                            label="...and/or upload sounds (WAV, FLAC, MP3, OGG, M4A...)",
                            height=110, elem_id="similarity-audio-files")
        with gr.Column():
            texts = gr.Textbox(DEFAULT_TEXTS, lines=8, max_lines=14,
                               label=f"Captions to compare with every clip (one per line; at "
                               f"most {align.MAX_TEXTS}, {align.MAX_TEXT_CHARS} characters each)",
                               elem_id="similarity-audio-texts")
            unknown_words_note(manager, texts, model, elem_id="similarity-audio-unknown-words")
            button = gr.Button("Compare sounds and captions", variant="primary",
                               elem_id="similarity-audio-run")
    gr.Examples(EXAMPLES, [captions, texts], example_labels=EXAMPLE_LABELS,
                label="Examples (clips from captions, captions to compare)")
    preview = gr.Gallery(label="Clips compared (their log-mel spectrograms)", columns=8,
                         height=330, object_fit="contain", format="png", interactive=False,
                         elem_id="similarity-audio-clips-preview")
    summary = gr.Markdown(elem_id="similarity-audio-summary")
    matrix = _picture("Similarity matrix (top) and softmax over the captions per clip (below)",
                      "similarity-audio-matrix")
    gr.Markdown("#### Zero-shot classification of every clip")
    class_set = gr.Dropdown(CLASS_CHOICES, value=sa.CAPTIONS_SET, label="Classes",
                            elem_id="similarity-audio-classes")
    zs_table = gr.Markdown(elem_id="similarity-audio-zero-shot-table", max_height=420)
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            clip_index = gr.Dropdown([("1.", 0)], value=0, label="One clip's probabilities",
                                     elem_id="similarity-audio-clip")
            clip_player = gr.Audio(label="The clip", type="filepath", interactive=False,
                                   elem_id="similarity-audio-clip-player")
        with gr.Column(scale=2):
            bars = gr.Image(show_label=False, label="Zero-shot probabilities", format="png",
                            interactive=False, elem_id="similarity-audio-zero-shot",
                            buttons=["download"])
    gr.Markdown("#### Text -> audio retrieval")
    with gr.Row():
        query = gr.Textbox(DEFAULT_QUERY, label="Search for (a caption)", scale=3,
                           elem_id="similarity-audio-query")
        gallery = gr.Radio(GALLERY_CHOICES, value="yours+sounds", label="Search in", scale=2,
                           elem_id="similarity-audio-gallery")
        search = gr.Button("Search", scale=1, elem_id="similarity-audio-search")
    ranking = gr.Markdown(elem_id="similarity-audio-ranking")
    players = []
    for row in range(TOP_K // 3):
        with gr.Row():
            for col in range(3):
                r = row * 3 + col + 1
                players.append(gr.Audio(label=f"#{r}", type="filepath", interactive=False,
                                        visible=False, elem_id=f"similarity-audio-hit-{r}"))
    emb_map = _picture("Map of the shared embedding space (PCA), coloured by timbre",
                       "similarity-audio-map")
    with gr.Accordion("Numbers (JSON)", open=False):
        data = gr.JSON(label="cosine, probabilities, logit scale")

    common = [model, captions, seed, files, texts]
    compare = model_work(manager, section.compare)
    button.click(compare, [*common, class_set, query, gallery],
                 [preview, summary, matrix, zs_table, bars, clip_player, ranking, *players,
                  emb_map, data, clip_index], api_name="similarity_audio")
    zs_inputs = [*common, clip_index, class_set]
    zero_shot = model_work(manager, section.zero_shot)
    clip_index.input(zero_shot, zs_inputs, [zs_table, bars, clip_player],
                     api_name="similarity_audio_zero_shot")
    class_set.input(zero_shot, zs_inputs, [zs_table, bars, clip_player],
                    api_name="similarity_audio_zero_shot_classes")
    ret_inputs = [*common, query, gallery]
    retrieve = model_work(manager, section.retrieve)
    search.click(retrieve, ret_inputs, [ranking, *players], api_name="similarity_audio_retrieve")
    query.submit(retrieve, ret_inputs, [ranking, *players], api_visibility="private")
    gallery.input(retrieve, ret_inputs, [ranking, *players],
                  api_name="similarity_audio_retrieve_gallery")
