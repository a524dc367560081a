"""The Audio tab's codec section: the current sound as residual-VQ tokens of a neural codec.

``codec_section(manager, sound_state)`` is one of ``tab_audio.SECTIONS``. It shows the token grid
(levels x frames, coloured by code id; click a cell for its id), plays the reconstruction from the
first k levels with its bitrate and spectrogram, the ladder (k = 1 ... N: bitrate, distance to the
original, what the sounds analyzer reads), and lets you drop one level or replace it with random
codes and hear what that level carried. The work is in ``mmstudio.pipelines.codec``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from mmstudio.checks import whole_number
from mmstudio.errors import UserError
from mmstudio.manager import ModelManager
from mmstudio.pipelines import codec
from mmstudio.pipelines import sound as snd
from mmstudio.pipelines import sound_pictures as pics
from mmstudio.ui import downloads
from mmstudio.ui.common import gr, model_work, task_model_choices, user_errors
from mmstudio.worlds import audio, sounds
from mmstudio.worlds.media import write_wav

log = logging.getLogger("mmstudio.ui.audio_codec")

TASK = "audio_codec"
EDITS = ["drop it (zero)", "random codes"]

INTRO = """\
### Codec tokens
A **neural audio codec** (SoundStream, EnCodec) turns sound into a short sequence of integers that
a transformer can model like text. Its encoder turns every **frame** (here 320 samples = 20 ms)
into a vector; a **residual vector quantizer** replaces that vector by the nearest of 1,024 codebook
entries (**level 1**), then quantizes what is left over with a second codebook (**level 2**), and so
on: each level refines the one above. The decoder turns the sum of the chosen entries back into
sound. More levels: closer to the original, more bits per second. Click a cell of the grid for its
code; move **k** to hear the sound from the first k levels only; drop or scramble one level to hear
what it carried.
"""


def _check_model(manager: ModelManager, model_id: str | None) -> str:
    if not model_id:
        raise UserError("choose a codec first")
    if TASK not in manager.catalog.get(model_id).tasks:
        raise UserError(f"'{model_id}' is not an audio codec")
    return model_id


def _tokens(state: dict[str, Any]) -> codec.SoundTokens:
    return codec.SoundTokens(torch.as_tensor(state["codes"]), state["info"], state["audio"],
                             list(state["notes"]))


def _need(state: dict[str, Any] | None) -> dict[str, Any]:
    if not state:
        raise UserError("tokenize a sound first")
    return state


def _wav(y: np.ndarray, rate: int, name: str, folder: Any = None) -> str:
    """Write a player's file into a fresh download folder (or ``folder``: the build-time view
    goes to a static one, never swept)."""
    folder = folder if folder is not None else downloads.new_folder("audio-codec")
    return str(write_wav(y, folder / name, rate))


def _mel_of(y: np.ndarray, info: codec.CodecInfo) -> np.ndarray:
    y16 = codec.to_16k(y, info)
    return pics.mel_picture(audio.mel_spectrogram(y16), len(y16) / audio.SAMPLE_RATE)


def _words(attrs: Any) -> str:
    if attrs is None:
        return ""
    return sounds.caption(attrs) if None not in (attrs.timbre, attrs.pitch, attrs.pattern) else (
        ", ".join(f"{f} {getattr(attrs, f) or '?'}" for f in sounds.FIELDS))


def ladder_table(rows: list[codec.LadderRow], truth: Any) -> str:
    head = "| levels k | bitrate | distance to the original (log-mel, dB) |"
    rule = "| --- | --- | --- |"
    if truth is not None:
        head += " the analyzer hears |"
        rule += " --- |"
    lines = [head, rule]
    for r in rows:
        line = f"| {r.levels} | {r.bitrate / 1000:g} kbit/s | {r.mel_distance_db:.1f} |"
        if truth is not None:
            mark = "right" if r.read == truth else "wrong"
            line += f" {_words(r.read)} ({mark}) |"
        lines.append(line)
    return "\n".join(lines)


class CodecSection:
    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager

    def view(self, sound: snd.Sound | None, model_id: str | None, k: float | None,
             folder: Any = None) -> dict[str, Any]:
        """Tokenize the sound: everything the section shows, as plain values."""
        if sound is None:
            raise UserError("render or upload a sound first")
        model_id = _check_model(self.manager, model_id)
        with self.manager.use(model_id) as loaded:
            model = loaded["model"]
            tokens = codec.tokenize_sound(model, sound.audio, sound.sample_rate)
            rows = codec.ladder(model, tokens, sound.audio, analyze=sound.attrs is not None)
            levels = tokens.info.levels
            k_value = levels if k is None else min(levels, max(1, int(k)))
            recon = codec.reconstruct(model, tokens, k=k_value)
        state = {"model": model_id, "codes": tokens.codes.numpy(), "info": tokens.info,
                 "audio": tokens.audio, "notes": tokens.notes}
        notes = "".join(f"\n- {n}" for n in tokens.notes)
        return {
            "state": state, "levels": levels, "k": k_value,
            "numbers": f"**{sound.label}**: {tokens.arithmetic()}{notes}",
            "grid": pics.token_grid_picture(state["codes"], tokens.info.frame_rate,
                                            tokens.info.codebook_size,
                                            dimmed=list(range(k_value, levels))),
            "recon": _wav(recon, tokens.info.sample_rate, "recon.wav", folder),
            "mel": _mel_of(recon, tokens.info),
            "bitrate": tokens.info.bitrate_sentence(k_value),
            "ladder": ladder_table(rows, sound.attrs),
            "level_choices": [(f"level {i + 1}", i) for i in range(levels)],
        }

    def tokenize(self, sound: snd.Sound | None, model_id: str | None, k: float | None) -> tuple:
        """(state, arithmetic, grid, k slider, player, mel, bitrate line, ladder, level picker,
        cell text)."""
        v = self.view(sound, model_id, k)
        return (v["state"], v["numbers"], v["grid"], gr.update(maximum=v["levels"], value=v["k"]),
                v["recon"], v["mel"], v["bitrate"], v["ladder"],
                gr.update(choices=v["level_choices"], value=0), "")

    def levels(self, state: dict[str, Any] | None, k: float | None) -> tuple:
        """The reconstruction from the first k levels: (player, mel, bitrate line, grid)."""
        state = _need(state)
        info: codec.CodecInfo = state["info"]
        k = whole_number(info.levels if k is None else k, "k", 1, info.levels)
        with self.manager.use(state["model"]) as loaded:
            recon = codec.reconstruct(loaded["model"], _tokens(state), k=k)
        grid = pics.token_grid_picture(state["codes"], info.frame_rate, info.codebook_size,
                                       dimmed=list(range(k, info.levels)))
        return (_wav(recon, info.sample_rate, f"recon-k{k}.wav"), _mel_of(recon, info),
                info.bitrate_sentence(k), grid)

    def edit(self, state: dict[str, Any] | None, level: float | None, how: str | None,
             seed: float | None) -> tuple:
        """All levels, with one dropped or replaced by random codes: (player, mel, sentence,
        grid)."""
        state = _need(state)
        info: codec.CodecInfo = state["info"]
        level = whole_number(0 if level is None else level, "the level", 0, info.levels - 1)
        if how not in EDITS:
            raise UserError(f"choose one of: {', '.join(EDITS)}")
        seed = whole_number(0 if seed is None else seed, "the seed", 0, 2**31 - 1)
        tokens = _tokens(state)
        keep = [True] * info.levels
        codes = tokens.codes
        if how == EDITS[0]:
            keep[level] = False
        else:
            codes = codec.replace_level(codes, level, "random", seed=seed,
                                        codebook_size=info.codebook_size)
        with self.manager.use(state["model"]) as loaded:
            y = codec.reconstruct(loaded["model"], tokens, keep=keep, codes=codes)
        grid = pics.token_grid_picture(codes.numpy(), info.frame_rate, info.codebook_size,
                                       dimmed=[level])
        what = "dropped" if how == EDITS[0] else "replaced by random codes"
        sentence = (f"Level {level + 1} {what}, the other {info.levels - 1} kept: listen for "
                    "what it carried (level 1 carries the most; later levels add detail).")
        return _wav(y, info.sample_rate, f"edit-level{level + 1}.wav"), _mel_of(y, info), \
            sentence, grid

    @staticmethod
    def cell(state: dict[str, Any] | None, evt: gr.SelectData) -> str:
        """The code under a click on the grid."""
        if not state:
            return ""
        codes = np.asarray(state["codes"])
        x, y = evt.index if isinstance(evt.index, (list, tuple)) else (0, 0)
        level, frame = pics.grid_cell(float(x), float(y), *codes.shape)
        if level < 0:
            return "Click a cell of the grid for its code."
        info: codec.CodecInfo = state["info"]
        start = frame / info.frame_rate
        return (f"Level {level + 1}, frame {frame} ({start:.2f}-{start + 1 / info.frame_rate:.2f}"
                f" s): code **{int(codes[level, frame])}** of {info.codebook_size}.")


def codec_section(manager: ModelManager, sound_state: gr.State) -> None:
    section = CodecSection(manager)
    choices = task_model_choices(manager, TASK)
    if not choices:
        return
    default = manager.catalog.default_for(TASK) or choices[0][1]
    first: dict[str, Any] = {}
    if manager.catalog.availability(default).available:  # the tab opens with the sound tokenized
        try:
            first = section.view(sound_state.value, default, None,
                                 downloads.static_folder("audio-codec-initial"))
        except Exception:  # noqa: BLE001 - the section still works from its button
            log.exception("could not tokenize the first sound with %s", default)
    codec_state = gr.State(first.get("state"))
    with gr.Accordion("Codec tokens: the sound as a grid of codebook ids", open=True):
        gr.Markdown(INTRO, elem_classes=["mm-explain"])
        with gr.Row():
            model = gr.Dropdown(choices, value=default, label="Codec", elem_id="codec-model",
                                scale=2)
            run = gr.Button("Tokenize this sound", variant="primary", elem_id="codec-run",
                            scale=1)
        numbers = gr.Markdown(first.get("numbers", "Render or upload a sound, then tokenize it."),
                              elem_id="codec-numbers")
        gr.Markdown("**The tokens: one row per level, one column per frame, colour = code id**",
                    elem_classes=["mm-caption"])
        grid = gr.Image(first.get("grid"), show_label=False, interactive=False, format="png",
                        elem_id="codec-grid", buttons=["download"])
        cell = gr.Markdown(elem_id="codec-cell")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                k = gr.Slider(1, first.get("levels", 4), value=first.get("k", 4), step=1,
                              label="Decode with the first k levels", elem_id="codec-k")
                bitrate = gr.Markdown(first.get("bitrate", ""), elem_id="codec-bitrate")
                recon = gr.Audio(first.get("recon"), label="Reconstruction", type="filepath",
                                 interactive=False, elem_id="codec-recon")
            with gr.Column(scale=3):
                gr.Markdown("**The reconstruction's log-mel**", elem_classes=["mm-caption"])
                recon_mel = gr.Image(first.get("mel"), show_label=False, interactive=False,
                                     format="png", elem_id="codec-recon-mel")
        ladder = gr.Markdown(first.get("ladder", ""), elem_id="codec-ladder")
        gr.Markdown("#### Change one level")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                level = gr.Dropdown(first.get("level_choices", [("level 1", 0)]), value=0,
                                    label="Level",
                                    elem_id="codec-level")
                how = gr.Radio(EDITS, value=EDITS[0], label="Do", elem_id="codec-how")
                seed = gr.Number(0, precision=0, minimum=0, label="Seed (random codes)")
                apply = gr.Button("Apply and listen", elem_id="codec-apply")
                edited = gr.Audio(label="All levels but the changed one", type="filepath",
                                  interactive=False, elem_id="codec-edited")
                edit_note = gr.Markdown(elem_id="codec-edit-note")
            with gr.Column(scale=3):
                gr.Markdown("**The changed sound's log-mel**", elem_classes=["mm-caption"])
                edited_mel = gr.Image(show_label=False, interactive=False, format="png",
                                      elem_id="codec-edited-mel")
    outputs = [codec_state, numbers, grid, k, recon, recon_mel, bitrate, ladder, level, cell]
    tokenize = model_work(manager, section.tokenize)
    run.click(tokenize, [sound_state, model, k], outputs, api_name="audio_codec_tokenize")
    sound_state.change(tokenize, [sound_state, model, k], outputs, api_visibility="private",
                       trigger_mode="always_last")
    model.change(tokenize, [sound_state, model, k], outputs, api_visibility="private",
                 trigger_mode="always_last")
    k.release(model_work(manager, section.levels), [codec_state, k],
              [recon, recon_mel, bitrate, grid], api_name="audio_codec_levels",
              trigger_mode="always_last")
    apply.click(model_work(manager, section.edit), [codec_state, level, how, seed],
                [edited, edited_mel, edit_note, grid], api_name="audio_codec_edit")
    grid.select(user_errors(section.cell), [codec_state], cell, api_visibility="private",
                queue=False)
