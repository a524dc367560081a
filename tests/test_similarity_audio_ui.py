"""The Similarity tab's sounds section served by `python app.py`: its API through gradio_client
and one Chromium run (the matrix renders; a retrieval hit's player loads a sound).

sounds-clap stands in untrained where it is not shipped yet (``tests/stand_ins.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from gradio_client import Client, handle_file
from PIL import Image

from mmstudio.pipelines import sound_align as sa
from mmstudio.ui import similarity_audio as ui
from tests.conftest import ARTIFACTS, serve_app
from tests.stand_ins import ASSETS, assets_with

TIMEOUT = 90_000
CHORD = ASSETS / "examples" / "chord-stereo-44k.flac"


def _file(update):  # noqa: ANN001, ANN202 - a component update comes back as a dict
    return update.get("value") if isinstance(update, dict) else update


@pytest.fixture(scope="module")
def clap_server(tmp_path_factory: pytest.TempPathFactory):
    root = assets_with(tmp_path_factory.mktemp("clap-server-assets"))
    yield from serve_app(tmp_path_factory, MMSTUDIO_ASSETS=str(root))


def test_similarity_audio_api(clap_server: str, tmp_path: Path) -> None:
    client = Client(clap_server, verbose=False)
    clips = "one long note of a low sine wave\nthree short beeps of high noise"
    out = client.predict("sounds-clap", clips, 0, [handle_file(str(CHORD))], ui.DEFAULT_TEXTS,
                         sa.CAPTIONS_SET, "one long note of a low sine wave", "yours+sounds",
                         api_name="/similarity_audio")
    preview, summary, matrix, table, bars, player, ranking, *rest = out
    players, data = rest[:ui.TOP_K], rest[-2]
    assert len(preview) == 3 and "3 clips x 36 texts" in summary
    assert np.asarray(Image.open(matrix)).shape[1] > 900
    assert np.asarray(Image.open(rest[-3])).shape == (660, 1120, 3)  # the map
    assert "of 2 world renders" in table and sf.info(player).frames == 16_000
    assert "against 39 clips" in ranking
    assert all(sf.info(_file(p)).frames in (16_000, 32_000) for p in players)  # 2 s chord
    assert np.array(data["cosine"]).shape == (3, 36) and data["true_text"][2] is None

    common = ("sounds-clap", clips, 0, [], ui.DEFAULT_TEXTS)
    table, bars, player = client.predict(*common, 1, "pattern",
                                         api_name="/similarity_audio_zero_shot")
    assert "chance: 1 in 3" in table and "true class" in table
    table2, _, _ = client.predict(*common, 0, "timbre",
                                  api_name="/similarity_audio_zero_shot_classes")
    assert "chance: 1 in 4" in table2
    ranking, *players = client.predict(*common, "three short beeps of high noise", "yours",
                                       api_name="/similarity_audio_retrieve")
    assert "against 2 clips" in ranking and "1 of the top 2" in ranking
    assert sum(_file(p) is not None for p in players) == 2
    ranking, *players = client.predict(*common, "one long note of mid noise", "yours+sounds",
                                       api_name="/similarity_audio_retrieve_gallery")
    assert "against 38 clips" in ranking and all(_file(p) is not None for p in players)

    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    with pytest.raises(Exception, match="clip 2: notes.wav is not a sound file"):
        client.predict("sounds-clap", "one long note of mid noise", 0, [handle_file(str(bad))],
                       "a", sa.CAPTIONS_SET, "a", "yours", api_name="/similarity_audio")
    with pytest.raises(Exception, match="type a caption"):
        client.predict(*common, " ", "yours", api_name="/similarity_audio_retrieve")
    out = client.predict(*common, "one long note of mid noise", "yours",  # still serving
                         api_name="/similarity_audio_retrieve")
    assert "against 2 clips" in out[0]


def test_browser_audio_matrix_and_retrieval_player(browser, clap_server: str,
                                                   request: pytest.FixtureRequest) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    try:
        page.goto(clap_server, wait_until="load", timeout=TIMEOUT)
        page.get_by_role("tab", name="Similarity").click(timeout=TIMEOUT)
        page.get_by_role("tab", name="Sounds and captions (CLAP)").click(timeout=TIMEOUT)
        page.locator("#similarity-audio-run").click()
        matrix = page.locator("#similarity-audio-matrix img")
        matrix.wait_for(timeout=TIMEOUT)
        assert matrix.evaluate("img => img.naturalWidth") > 900
        page.locator("#similarity-audio-summary").get_by_text("12 clips x 36 texts").wait_for(
            timeout=TIMEOUT)
        page.locator("#similarity-audio-zero-shot-table").get_by_text("world renders").wait_for(
            timeout=TIMEOUT)
        # type a caption and search: the first hit's player loads a sound
        query = page.locator("#similarity-audio-query textarea")
        query.fill("two short beeps of mid noise")
        page.locator("#similarity-audio-search").click()
        page.locator("#similarity-audio-ranking").get_by_text(
            "two short beeps of mid noise").first.wait_for(timeout=TIMEOUT)
        hit = page.locator("#similarity-audio-hit-1")
        hit.get_by_text("#1").first.wait_for(timeout=TIMEOUT)
        link = hit.locator("a.download-link")
        link.wait_for(state="attached", timeout=TIMEOUT)
        duration = page.evaluate(
            "href => new Promise((ok, fail) => { const a = new Audio();"
            " a.preload = 'metadata'; a.onloadedmetadata = () => ok(a.duration);"
            " a.onerror = () => fail(new Error('no audio')); a.src = href; })",
            link.get_attribute("href"))
        assert duration > 0.9
        page.locator("#similarity-audio-map img").scroll_into_view_if_needed()
        page.locator("#similarity-audio-map img").wait_for(timeout=TIMEOUT)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "similarity-audio.png"), full_page=True)
        assert errors == [], errors
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-failure.png"), full_page=True)
        raise
    finally:
        page.close()
