"""The Audio tab: its handlers, its sections hook, its API through gradio_client against
`python app.py`, and one browser run in Chromium (render a sound, pictures and players load)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf
from gradio_client import Client, handle_file
from PIL import Image

from mmstudio.config import Settings
from mmstudio.manager import ModelManager
from mmstudio.pipelines.sound import Sound
from mmstudio.ui import tab_audio
from tests.conftest import ARTIFACTS

TIMEOUT = 90_000
EXAMPLES = Settings.from_env().examples_dir


def stereo_wav(path: Path, seconds: float = 1.5, rate: int = 44_100) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    left = 0.5 * np.sin(2 * np.pi * 330 * t)
    right = 0.3 * np.sin(2 * np.pi * 660 * t)
    sf.write(str(path), np.stack([left, right], axis=1), rate, subtype="PCM_16")
    return path


# ------------------------------------------------------------------------------ in process


def test_build_runs_the_sections_with_the_sound_state(monkeypatch) -> None:
    seen: list[tuple] = []

    def section(manager, sound_state) -> None:
        seen.append((manager, sound_state))
        gr.Markdown("a later section")

    monkeypatch.setattr(tab_audio, "SECTIONS", [section])
    manager = ModelManager()
    with gr.Blocks() as demo:
        with gr.Tab("Audio"):
            tab_audio.build(manager)
    names = {getattr(fn, "api_name", None) for fn in demo.fns.values()}
    assert {"audio_render", "audio_upload", "audio_zoom"} <= names
    assert len(seen) == 1 and seen[0][0] is manager
    state = seen[0][1]
    assert isinstance(state, gr.State) and isinstance(state.value, Sound)
    assert state.value.label == tab_audio.CAPTION_EXAMPLES[0][0]


def test_render_and_zoom_handlers() -> None:
    out = tab_audio.on_render("two short beeps of a mid sine wave", 3, 10)
    sound, source, original, rebuilt, waveform, centre, zoom, stft, mel, numbers = out
    assert isinstance(sound, Sound) and "two short beeps of a mid sine wave" in source
    assert "used as is" in source
    for path in (original, rebuilt):
        data, rate = sf.read(path)
        assert rate == 16_000 and data.shape == (16_000,)
    assert waveform.shape == zoom.shape == (190, 960, 3)
    assert stft.shape == mel.shape == (270, 960, 3)
    assert 0.0 < centre["value"] < 1.0 and centre["maximum"] == 1.0
    assert "65 frames x 64 bands = 4,160 numbers" in numbers
    assert "reads the original as *two short beeps of a mid sine wave*" in numbers
    wide, zoom_wide = tab_audio.on_zoom(sound, 0.99, 100)  # clamped inside the clip
    assert zoom_wide.shape == zoom.shape and not np.array_equal(zoom_wide, zoom)


@pytest.mark.parametrize("call, message", [
    (lambda: tab_audio.on_zoom(None, 0.5, 10), "render or upload a sound first"),
    (lambda: tab_audio.on_render("", 0, 500), "the zoom width must be from 1 to 100 ms"),
    (lambda: tab_audio.on_render("", -3, 10), "the seed must be"),
    (lambda: tab_audio.on_render("a red circle", 0, 10), "unknown word"),
])
def test_handler_messages(call, message: str) -> None:
    from mmstudio.errors import UserError

    with pytest.raises(UserError, match=message):
        call()


def test_upload_handler(tmp_path: Path) -> None:
    assert all(isinstance(v, type(gr.skip())) for v in tab_audio.on_upload(None, 10))
    out = tab_audio.on_upload(str(stereo_wav(tmp_path / "two.wav")), 10)
    assert "stereo -> mono by averaging" in out[1] and "44,100 Hz -> 16,000 Hz" in out[1]
    assert out[0].n_samples == 24_000


# ------------------------------------------------------------------------------ API


def test_audio_api(app_server: str, tmp_path: Path) -> None:
    client = Client(app_server, verbose=False)
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/audio_render", "/audio_upload", "/audio_zoom"} <= names
    out = client.predict("three short beeps of a high square wave", 5, 10,
                         api_name="/audio_render")
    source, original, rebuilt, waveform, centre, zoom, stft, mel, numbers = out
    assert "three short beeps of a high square wave" in source
    assert sf.info(original).frames == 16_000 and sf.info(rebuilt).frames == 16_000
    assert np.asarray(Image.open(waveform)).shape == (190, 960, 3)
    assert np.asarray(Image.open(mel)).shape == (270, 960, 3)
    assert "4,160 numbers" in numbers
    assert 0 < centre["value"] <= 1.0 and centre["maximum"] == 1.0  # an update of the slider

    # the zoom works on this client's sound (its session's state)
    wave2, zoom2 = client.predict(0.5, 50, api_name="/audio_zoom")
    assert np.asarray(Image.open(zoom2)).shape == (190, 960, 3)

    out = client.predict(handle_file(str(stereo_wav(tmp_path / "up.wav"))), 10,
                         api_name="/audio_upload")
    assert "stereo -> mono by averaging" in out[0] and "1.50 s" in out[0]
    assert sf.info(out[1]).frames == 24_000

    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)
    with pytest.raises(Exception, match="not a sound file that can be read"):
        client.predict(handle_file(str(corrupt)), 10, api_name="/audio_upload")
    # the server keeps serving
    out = client.predict("", 11, 20, api_name="/audio_render")
    assert "used as is" in out[0]


# ------------------------------------------------------------------------------ browser


def test_browser_render_shows_pictures_and_players(page, app_server: str) -> None:
    page.goto(app_server, wait_until="load", timeout=TIMEOUT)
    page.get_by_role("tab", name="Audio", exact=True).click(timeout=TIMEOUT)
    page.locator("#audio-render").wait_for(timeout=TIMEOUT)
    page.locator("#audio-caption textarea").fill("one long note of a low sawtooth wave")
    page.locator("#audio-seed input").fill("8")
    page.locator("#audio-render").click()
    page.locator("#audio-source").get_by_text("one long note of a low sawtooth wave").wait_for(
        timeout=TIMEOUT)
    page.locator("#audio-numbers").get_by_text(
        "reads the original as one long note of a low sawtooth wave").wait_for(timeout=TIMEOUT)
    assert "65 frames x 64 bands = 4,160 numbers" in page.locator("#audio-numbers").inner_text()
    for selector, width in (("#audio-waveform", 960), ("#audio-zoom", 960), ("#audio-stft", 960),
                            ("#audio-mel", 960)):
        image = page.locator(f"{selector} img")
        image.wait_for(timeout=TIMEOUT)
        page.wait_for_function(
            "s => { const i = document.querySelector(s + ' img');"
            " return i && i.complete && i.naturalWidth > 0; }", arg=selector, timeout=TIMEOUT)
        assert image.evaluate("img => img.naturalWidth") == width
        assert image.bounding_box()["width"] >= 600
    # the players' files load in the browser as audio of the right length (the player draws
    # with its own media element, outside the page, so load the file into a fresh one)
    for selector in ("#audio-original", "#audio-rebuilt"):
        link = page.locator(f"{selector} a.download-link")
        link.wait_for(state="attached", timeout=TIMEOUT)
        href = link.get_attribute("href")
        assert href and "/tmp/gradio/mmstudio-static/" not in href  # this render's, not the first
        duration = page.evaluate(
            "href => new Promise((ok, fail) => { const a = new Audio();"
            " a.preload = 'metadata'; a.onloadedmetadata = () => ok(a.duration);"
            " a.onerror = () => fail(new Error('audio failed to load: ' + href)); a.src = href; })",
            href)
        assert abs(duration - 1.0) < 0.05, (selector, duration)
        assert page.locator(f"{selector} #duration").inner_text() == "0:01"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "audio-render.png"), full_page=True)
    assert page.console_errors == [], page.console_errors
    assert page.foreign_requests == [], page.foreign_requests
