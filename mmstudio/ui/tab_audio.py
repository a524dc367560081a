"""The Audio tab: what a sound is as numbers, and the representations audio models work on.

``build(manager)`` fills the enclosing ``gr.Tab("Audio")``. It makes the tab's top part, the
source (a sounds-world caption rendered with a seed, or an upload / recording) and its
representations (waveform with a zoom down to single samples, STFT and log-mel spectrograms, the
arithmetic of each, players for the sound and for its Griffin-Lim rebuild from the log-mel), and
then calls each builder of ``SECTIONS`` in order.

Adding a section (the codec's tokens, audio-text similarity, ...): write
``def my_section(manager: ModelManager, sound: gr.State) -> None`` that creates its components
(full width, below the representations; inside a ``gr.Accordion`` or under a heading) and binds
its events, and append it to ``SECTIONS`` (from its own module, or in the list below). ``sound``
holds the current ``mmstudio.pipelines.sound.Sound``: ``sound.audio`` is 16 kHz mono float32 of
at most ``WORK_SECONDS``, with ``sound.label`` and ``sound.notes``. The tab starts with a render
of the first caption example, so it is never empty. Read it as an event input, and follow each
new sound with ``sound.change(...)``: it fires once per render or upload, since each makes a new
``Sound`` (compared by identity; checked in Chromium, not fired by zooming). The page triggers
``change``, so a ``gradio_client`` script never sees it: give a section's work its own event (a
button) too. Give every event a stable ``api_name`` starting with ``audio_``.

The work is done by ``mmstudio.pipelines.sound`` and ``mmstudio.pipelines.sound_pictures`` (no
gradio); the handlers here write the players' WAV files into a download folder and turn the rest
into component updates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmstudio.checks import whole_number
from mmstudio.errors import UserError
from mmstudio.manager import ModelManager
from mmstudio.pipelines import sound as snd
from mmstudio.pipelines import sound_pictures as pics
from mmstudio.ui import downloads
from mmstudio.ui.audio_codec import codec_section
from mmstudio.ui.common import explain, gr, user_errors
from mmstudio.worlds import audio
from mmstudio.worlds.media import write_wav

INTRO = f"""\
### What you are seeing
A sound reaches a model as a list of numbers: the **waveform**, the air pressure measured
{audio.SAMPLE_RATE:,} times a second (the studio converts every sound to 16 kHz mono, the rate its
audio models use). Zoom in far enough and you see the single samples.

Waveforms are long and their shape says little about what we hear, so audio models mostly work on
pictures of them. The **STFT spectrogram** cuts the sound into short overlapping windows and
measures how much of each frequency every window holds: time runs right, frequency up, loudness is
colour. The **log-mel spectrogram** pools those frequencies into {audio.N_MELS} bands spaced the way
pitch is heard (narrow at the bottom, wide at the top) and takes the log of their power: fewer
numbers, closer to hearing, and what this studio's audio models are trained on. It throws away the
phase, so turning it back into sound needs a guess: **Griffin-Lim** finds a phase that fits, and
the rebuild lets you hear what the mel keeps.

Render a sound of the **sounds world** from a caption (or leave it empty for a random one), or
upload or record any sound: it is converted (the notes say how) and cut to its first
{snd.WORK_SECONDS:.0f} s.
"""

MAX_SEED = 2**31 - 1
ZOOM_MS = (1.0, 100.0)  # the zoom window's width, from 16 samples to 1,600
DEFAULT_ZOOM_MS = 10.0
CAPTION_EXAMPLES: list[list[Any]] = [
    ["three short beeps of a high square wave", 0],
    ["one long note of a low sine wave", 1],
    ["two short beeps of a mid sawtooth wave", 2],
    ["one long note of mid noise", 3],
    ["three short beeps of a high sawtooth wave", 4],
    ["two short beeps of low noise", 5],
]


@dataclass
class AudioView:
    """What the top of the tab shows for one sound: file paths, pictures and text."""

    source: str  # markdown: what came in and what was done
    original: str  # WAV path: the sound at 16 kHz mono
    rebuilt: str  # WAV path: Griffin-Lim from the log-mel
    waveform: np.ndarray
    zoom: np.ndarray
    centre_s: float
    stft: np.ndarray
    mel: np.ndarray
    numbers: str  # markdown: the arithmetic and the rebuild's figures


def _window(sound: snd.Sound, centre_s: float, width_ms: float) -> tuple[float, float]:
    """(start, width) in seconds of a zoom window centred on ``centre_s``, inside the clip."""
    width = min(width_ms / 1000.0, sound.seconds)
    start = min(max(centre_s - width / 2, 0.0), sound.seconds - width)
    return start, width


def loudest_s(sound: snd.Sound) -> float:
    """Time of the loudest sample: where the first zoom looks."""
    return float(np.argmax(np.abs(sound.audio))) / sound.sample_rate


def zoom_pictures(sound: snd.Sound, centre_s: float,
                  width_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """The waveform with the window highlighted, and the window's samples."""
    start, width = _window(sound, centre_s, width_ms)
    return (pics.waveform_picture(sound.audio, sound.sample_rate, (start, width)),
            pics.zoom_picture(sound.audio, start, width, sound.sample_rate))


def _source_text(sound: snd.Sound) -> str:
    done = "; ".join(sound.notes) if sound.notes else "used as is"
    return (f"**{sound.label}**  \n{sound.origin}  \n**Done:** {done}. Now {sound.n_samples:,} "
            f"samples at {sound.sample_rate:,} Hz mono ({sound.seconds:.2f} s).")


def view_sound(sound: snd.Sound, width_ms: float = DEFAULT_ZOOM_MS,
               folder: Path | None = None) -> AudioView:
    """Everything the top of the tab shows for ``sound``; its WAV files go to ``folder`` (by
    default a new download folder)."""
    reps = snd.representations(sound)
    rebuilt = snd.rebuild(reps.logmel, sound.n_samples)
    folder = folder or downloads.new_folder("audio")
    original = write_wav(sound.audio, folder / "original-16k.wav", sound.sample_rate)
    peak = float(np.abs(rebuilt).max())
    playable = rebuilt / peak if peak > 1.0 else rebuilt  # never clip the rebuild
    rebuilt_path = write_wav(playable, folder / "griffin-lim.wav", sound.sample_rate)
    centre = loudest_s(sound)
    waveform, zoom = zoom_pictures(sound, centre, width_ms)
    numbers = "\n".join(f"- {line}" for line in
                        snd.arithmetic(sound.n_samples) + snd.rebuild_figures(sound, reps, rebuilt))
    return AudioView(_source_text(sound), str(original), str(rebuilt_path), waveform, zoom,
                     centre, pics.stft_picture(reps.stft_db, sound.seconds),
                     pics.mel_picture(reps.logmel, sound.seconds), numbers)


def _width(width_ms: float | None) -> float:
    try:
        value = float(width_ms if width_ms is not None else DEFAULT_ZOOM_MS)
    except (TypeError, ValueError):
        raise UserError(f"the zoom width must be a number of ms, not {width_ms!r}") from None
    if not np.isfinite(value) or not ZOOM_MS[0] <= value <= ZOOM_MS[1]:
        raise UserError(f"the zoom width must be from {ZOOM_MS[0]:g} to {ZOOM_MS[1]:g} ms, "
                        f"not {width_ms!r}")
    return value


def _outputs(sound: snd.Sound, width_ms: float | None) -> tuple:
    """(sound state, source text, original player, rebuild player, waveform, zoom centre
    slider, zoom, STFT, log-mel, numbers)."""
    view = view_sound(sound, _width(width_ms))
    centre = gr.update(value=round(view.centre_s, 3), maximum=round(sound.seconds, 3))
    return (sound, view.source, view.original, view.rebuilt, view.waveform, centre, view.zoom,
            view.stft, view.mel, view.numbers)


def on_render(caption: str | None, seed: float | None, width_ms: float | None) -> tuple:
    """Render a sounds-world caption ("" = random attributes) with a seed."""
    seed = whole_number(0 if seed is None else seed, "the seed", 0, MAX_SEED)
    return _outputs(snd.render_sound((caption or "").strip(), seed), width_ms)


def on_upload(path: str | None, width_ms: float | None) -> tuple:
    """An uploaded or recorded file (gradio gives its path); nothing when the input was
    cleared."""
    if not path:
        return tuple(gr.skip() for _ in range(10))
    return _outputs(snd.load_sound(path), width_ms)


def on_zoom(sound: snd.Sound | None, centre_s: float | None,
            width_ms: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Move or resize the zoom window: the two waveform pictures again."""
    if sound is None:
        raise UserError("render or upload a sound first")
    try:
        centre = float(centre_s if centre_s is not None else 0.0)
    except (TypeError, ValueError):
        raise UserError(f"the zoom position must be a number of seconds, not {centre_s!r}"
                        ) from None
    if not np.isfinite(centre):
        raise UserError(f"the zoom position must be a number of seconds, not {centre_s!r}")
    return zoom_pictures(sound, centre, _width(width_ms))


#: Builders of the tab's further sections, called in order after the representations, each as
#: ``section(manager, sound_state)`` (see the module docstring).
SECTIONS: list[Callable[[ModelManager, gr.State], None]] = [codec_section]


def _picture(caption: str, elem_id: str, value: np.ndarray) -> gr.Image:
    """A display image with its caption above it (a label badge would cover the picture)."""
    gr.Markdown(f"**{caption}**", elem_classes=["mm-caption"])
    return gr.Image(value, show_label=False, label=caption, interactive=False, format="png",
                    elem_id=elem_id, buttons=["download"])


def example_files(manager: ModelManager) -> list[str]:
    folder = manager.settings.examples_dir
    return [str(folder / name) for name in snd.EXAMPLE_FILES if (folder / name).is_file()]


def build(manager: ModelManager) -> None:
    """Create the tab inside the caller's ``gr.Tab``: source, representations, then
    ``SECTIONS``."""
    first = snd.render_sound(*CAPTION_EXAMPLES[0])
    initial = view_sound(first, folder=downloads.static_folder("audio-initial"))  # never swept
    explain(INTRO)
    sound_state = gr.State(first)
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            gr.Markdown("#### A sound of the sounds world")
            caption = gr.Textbox(label="Caption (empty: a random sound)", elem_id="audio-caption",
                                 value=CAPTION_EXAMPLES[0][0],
                                 placeholder="three short beeps of a high square wave")
            with gr.Row():
                seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed",
                                 min_width=90, elem_id="audio-seed")
                render_btn = gr.Button("Render", variant="primary", elem_id="audio-render")
            examples = gr.Examples(CAPTION_EXAMPLES, [caption, seed], label="Captions",
                                   example_labels=[f"{c} (seed {s})" for c, s in CAPTION_EXAMPLES],
                                   examples_per_page=6, api_name="audio_caption_example")
            gr.Markdown("#### ...or any sound")
            upload = gr.Audio(type="filepath", sources=["upload", "microphone"],
                              label="Upload or record (WAV, FLAC, MP3, OGG, M4A...)",
                              elem_id="audio-upload")
            files = example_files(manager)
            if files:
                gr.Examples([[p] for p in files], [upload], label="Example files",
                            api_name="audio_file_example")
            source = gr.Markdown(initial.source, elem_id="audio-source")
            original = gr.Audio(initial.original, label="The sound at 16 kHz mono",
                                type="filepath", interactive=False, elem_id="audio-original")
            rebuilt = gr.Audio(initial.rebuilt, label="Griffin-Lim rebuild from the log-mel",
                               type="filepath", interactive=False, elem_id="audio-rebuilt")
        with gr.Column(scale=3):
            waveform = _picture("Waveform: the whole sound (the highlighted window is zoomed "
                                "below)", "audio-waveform", initial.waveform)
            with gr.Row():
                centre = gr.Slider(0.0, first.seconds, value=round(initial.centre_s, 3),
                                   step=0.001, label="Zoom at (s)", elem_id="audio-zoom-at")
                width = gr.Slider(*ZOOM_MS, value=DEFAULT_ZOOM_MS, step=1.0,
                                  label="Zoom width (ms)", elem_id="audio-zoom-width")
            zoom = _picture("Zoom: every dot is one sample", "audio-zoom", initial.zoom)
            stft = _picture(f"STFT magnitude: {1 + audio.N_FFT // 2} frequency bins on a linear "
                            "axis, dB below the loudest", "audio-stft", initial.stft)
            mel = _picture(f"Log-mel: {audio.N_MELS} mel bands, what the audio models read "
                           "(natural log of power)", "audio-mel", initial.mel)
            numbers = gr.Markdown(initial.numbers, elem_id="audio-numbers")

    outputs = [sound_state, source, original, rebuilt, waveform, centre, zoom, stft, mel, numbers]
    render_btn.click(user_errors(on_render), [caption, seed, width], outputs,
                     api_name="audio_render")
    caption.submit(user_errors(on_render), [caption, seed, width], outputs,
                   api_visibility="private")
    examples.load_input_event.then(user_errors(on_render), [caption, seed, width], outputs,
                                   api_visibility="private")
    upload.change(user_errors(on_upload), [upload, width], outputs, api_name="audio_upload",
                  trigger_mode="always_last")
    zoom_out = [waveform, zoom]
    centre.input(user_errors(on_zoom), [sound_state, centre, width], zoom_out,
                 api_name="audio_zoom", trigger_mode="always_last", show_progress="hidden")
    width.input(user_errors(on_zoom), [sound_state, centre, width], zoom_out,
                api_visibility="private", trigger_mode="always_last", show_progress="hidden")
    for section in SECTIONS:
        section(manager, sound_state)
