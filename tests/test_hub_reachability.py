"""The hub's reachability is known, not assumed; failed hub loads and unknown prompt words are said
plainly (issue 18).

No test reaches the real network: "no network" is a local port that refuses connections (or one
that accepts and never answers), "hub reachable" is a local HTTP server standing in for the hub's
address (``HF_ENDPOINT``), and ``HF_HUB_OFFLINE=1`` (conftest) keeps huggingface_hub itself off
the network whatever a test asks of it.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pytest

from mmstudio import hub
from mmstudio.catalog import Catalog
from mmstudio.cli import main
from mmstudio.config import REPO_ROOT, Settings
from mmstudio.devices import DeviceInfo
from mmstudio.errors import ModelUnavailable
from mmstudio.manager import ModelManager
from mmstudio.worlds import unknown_words, vocabulary
from tests import tiny_models
from tests.conftest import free_port

CPU = [DeviceInfo("cpu", 8 * 10**9, 8 * 10**9)]
SD_TURBO = "stabilityai/sd-turbo"
PLAIN_NO_NETWORK = ("sd-turbo is not on this machine and the Hugging Face Hub can't be reached. "
                    "Connect, or run `python -m mmstudio download stabilityai/sd-turbo` where "
                    "there is a network, or use the embedded shapes-unet.")


@pytest.fixture
def closed_endpoint() -> str:
    """A local address where nothing listens: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A local address that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


class _Hub(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
        _Hub.requests.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_hub() -> Iterator[str]:
    """A local HTTP server in the hub's place; ``_Hub.requests`` records what it was asked."""
    _Hub.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def online_settings(tmp_path: Path, endpoint: str) -> Settings:
    """Offline mode off, the real embedded assets, an empty hub cache, the hub at ``endpoint``."""
    (tmp_path / "hub").mkdir(exist_ok=True)
    return Settings(offline=False, hub_cache=tmp_path / "hub", hub_endpoint=endpoint)


# ------------------------------------------------------------------------ the three states
def test_offline_by_setting_asks_nothing(local_hub: str) -> None:
    status = hub.HubStatus(offline=True, endpoint=local_hub)
    status.start()
    reach = status.check()
    assert reach.state == hub.OFFLINE and reach.label == "offline by setting"
    assert status.probes == 0 and _Hub.requests == []


def test_hub_reachable(local_hub: str) -> None:
    status = hub.HubStatus(offline=False, endpoint=local_hub)
    assert status.current().state == hub.UNKNOWN  # nothing asked until start or check
    assert _Hub.requests == []
    reach = status.check()
    assert reach.state == hub.REACHABLE and reach.label == "hub reachable"
    assert len(_Hub.requests) == 1


def test_no_network_when_refused(closed_endpoint: str) -> None:
    reach = hub.HubStatus(offline=False, endpoint=closed_endpoint).check()
    assert reach.state == hub.UNREACHABLE and reach.label == "no network"
    assert "cannot reach 127.0.0.1" in reach.detail


def test_start_never_waits_and_a_silent_hub_counts_as_no_network(silent_endpoint: str) -> None:
    status = hub.HubStatus(offline=False, endpoint=silent_endpoint, timeout=0.5)
    begin = time.perf_counter()
    status.start()
    assert time.perf_counter() - begin < 0.1  # the first page does not wait for the check
    assert status.current().state == hub.UNKNOWN
    reach = status.wait(5)
    assert reach.state == hub.UNREACHABLE and "no answer" in reach.detail


# ------------------------------------------------------------------------ catalog and loads
def test_uncached_hub_models_follow_the_reachability(tmp_path: Path, closed_endpoint: str,
                                                      local_hub: str) -> None:
    catalog = Catalog.load(online_settings(tmp_path, closed_endpoint))
    # Not checked yet: assumed nothing, so the model is offered (it downloads on first use).
    assert catalog.availability(SD_TURBO).available
    catalog.hub.check()
    status = catalog.availability(SD_TURBO)
    assert not status.available and "no network" in status.reason
    assert catalog.availability("shapes-unet").available  # embedded models always load

    reachable = Catalog.load(online_settings(tmp_path, local_hub))
    reachable.hub.check()
    assert reachable.availability(SD_TURBO).available


def test_cached_hub_model_is_available_without_network(tmp_path: Path,
                                                       closed_endpoint: str) -> None:
    settings = online_settings(tmp_path, closed_endpoint)
    folder = tiny_models.make_open_clip(tmp_path / "build")
    tiny_models.install_in_hub_cache(folder, "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
                                     settings.hub_cache)
    catalog = Catalog.load(settings)
    catalog.hub.check()
    assert catalog.availability("open_clip:ViT-B-32/laion2b_s34b_b79k").available


def test_failed_hub_load_is_plain_and_checks_the_hub(tmp_path: Path, closed_endpoint: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    manager = ModelManager(online_settings(tmp_path, closed_endpoint), devices=CPU)
    assert manager.catalog.hub.probes == 0
    with pytest.raises(ModelUnavailable) as info:
        manager.get(SD_TURBO)  # the download is tried (nothing known yet) and fails
    assert str(info.value) == PLAIN_NO_NETWORK
    assert manager.catalog.hub.probes == 1  # the failure made the studio look again
    assert manager.catalog.hub.current().state == hub.UNREACHABLE
    assert "downloading stabilityai/sd-turbo failed" in caplog.text  # the detail is in the log
    # Known unreachable now: listed unavailable, and asked again the answer is the same.
    assert not manager.catalog.availability(SD_TURBO).available
    with pytest.raises(ModelUnavailable, match="can't be reached"):
        manager.get(SD_TURBO)


def test_offline_hub_load_is_plain(tmp_path: Path) -> None:
    (tmp_path / "hub").mkdir()
    manager = ModelManager(Settings(offline=True, hub_cache=tmp_path / "hub"), devices=CPU)
    with pytest.raises(ModelUnavailable) as info:
        manager.get(SD_TURBO)
    message = str(info.value)
    assert message.startswith("sd-turbo is not on this machine: it is not in the local Hugging "
                              "Face cache and offline mode is on")
    assert "use the embedded shapes-unet" in message
    assert message.count(". ") <= 2 and "Error" not in message  # two sentences, no traceback


def test_failed_hub_load_through_a_ui_handler(tmp_path: Path, closed_endpoint: str) -> None:
    from mmstudio.ui import tab_similarity
    from mmstudio.ui.common import user_errors

    manager = ModelManager(online_settings(tmp_path, closed_endpoint), devices=CPU)
    tab = tab_similarity.SimilarityTab(manager)
    with pytest.raises(gr.Error) as info:
        user_errors(tab.compare)("open_clip:ViT-B-32/laion2b_s34b_b79k", "a red circle", 0, None,
                                 "a red circle", "color x shape", "yours")
    assert info.value.message == (
        "open_clip:ViT-B-32/laion2b_s34b_b79k is not on this machine and the Hugging Face Hub "
        "can't be reached. Connect, or run `python -m mmstudio download "
        "open_clip:ViT-B-32/laion2b_s34b_b79k` where there is a network, or use the embedded "
        "shapes-clip.")


def test_ui_sentences_tell_the_three_states_apart() -> None:
    from mmstudio.ui.common import hub_sentence

    sentences = {state: hub_sentence(hub.Reachability(state, "")) for state in hub.LABELS}
    assert "**hub reachable**" in sentences[hub.REACHABLE]
    assert "**offline by setting**" in sentences[hub.OFFLINE]
    assert "**no network**" in sentences[hub.UNREACHABLE]
    assert len(set(sentences.values())) == 4


# ------------------------------------------------------------------------ CLI
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str) -> None:
    monkeypatch.setenv("MMSTUDIO_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("MMSTUDIO_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("MMSTUDIO_ASSETS", str(REPO_ROOT / "assets"))


def test_cli_models_shows_the_reachability(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           closed_endpoint: str, local_hub: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import json

    cli_env(monkeypatch, tmp_path, closed_endpoint)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Hugging Face Hub: no network (cannot reach 127.0.0.1")
    sd_line = next(line for line in out.splitlines() if line.startswith(SD_TURBO))
    assert " no " in sd_line and "no network" in sd_line

    monkeypatch.setenv("HF_ENDPOINT", local_hub)
    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["hub"]["state"] == "reachable" and data["hub"]["label"] == "hub reachable"
    assert {row["id"]: row["available"] for row in data["models"]}[SD_TURBO] is True

    monkeypatch.setenv("MMSTUDIO_OFFLINE", "1")
    assert main(["models"]) == 0
    assert capsys.readouterr().out.startswith("Hugging Face Hub: offline by setting")


def test_cli_generate_with_a_missing_hub_model_is_one_plain_line(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, closed_endpoint: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    cli_env(monkeypatch, tmp_path, closed_endpoint)
    code = main(["generate", "--model", SD_TURBO, "--prompt", "a cat", "--out",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"error: {PLAIN_NO_NETWORK}\n"


# ------------------------------------------------------------------------ unknown words
def test_unknown_words_of_a_prompt() -> None:
    shapes = vocabulary("shapes")
    assert len(shapes) == 29
    assert unknown_words("a majestic Dragon, flying over a purple triangle.", shapes) == [
        "majestic", "dragon", "flying", "over"]
    assert unknown_words("A large red circle in the top left on a navy background", shapes) == []
    assert unknown_words("", shapes) == []
    assert unknown_words("three short beeps of a high square wave", vocabulary("sounds")) == []
    assert unknown_words("a red circle moving up", vocabulary("sounds")) == [
        "red", "circle", "moving", "up"]


def test_unknown_words_message_per_model(offline_settings: Settings) -> None:
    catalog = Catalog.load(Settings(offline=True))
    message = catalog.unknown_words_message(
        "shapes-unet", ["a majestic dragon flying over a purple triangle"])
    assert message == ("shapes-unet's text encoder never learned these words ('majestic', "
                       "'dragon', 'flying', 'over'): it knows only the 29 words of the shapes "
                       "captions, so other words only add noise.")
    assert catalog.unknown_words_message("shapes-unet", ["a purple triangle"]) == ""
    several = catalog.unknown_words_message("shapes-clip", ["a red circle", "a dragon", "hi you"])
    assert "(text 2: 'dragon'; text 3: 'hi', 'you')" in several
    # Hub models are not marked: their vocabulary is not ours to know.
    assert catalog.vocabulary(SD_TURBO) is None
    assert catalog.unknown_words_message(SD_TURBO, ["a majestic dragon"]) == ""


def test_unknown_words_note_in_the_ui(offline_settings: Settings) -> None:
    from mmstudio.ui.common import unknown_words_note

    manager = ModelManager(Settings(offline=True), devices=CPU)
    with gr.Blocks() as demo:
        prompt = gr.Textbox("a majestic dragon over a red circle")
        model = gr.Dropdown(["shapes-unet", SD_TURBO], value="shapes-unet")
        note = unknown_words_note(manager, prompt, model)
    assert note.visible and "'majestic', 'dragon', 'over'" in note.value
    handler = next(fn for fn in demo.fns.values() if note in fn.outputs).fn
    assert handler("a red circle", "shapes-unet") == gr.update(value="", visible=False)
    assert handler("a dragon", SD_TURBO) == gr.update(value="", visible=False)
    assert "'dragon'" in handler("a dragon", "shapes-unet")["value"]


def test_cli_says_unknown_words_on_stderr(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MMSTUDIO_ASSETS", str(REPO_ROOT / "assets"))
    code = main(["similarity", "--render", "a red circle", "--texts", "a red circle",
                 "a fluffy red dog", "--json"])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.err == ("note: shapes-clip's text encoder never learned these words (text 2: "
                            "'fluffy', 'dog'): it knows only the 29 words of the shapes captions, "
                            "so other words only add noise.\n")
    assert '"best_text"' in captured.out  # the comparison still ran

    code = main(["generate", "--model", "shapes-unet", "--prompt", "a red dragon", "--steps", "2",
                 "--out", str(tmp_path / "gen")])
    captured = capsys.readouterr()
    assert code == 0 and (tmp_path / "gen" / "p000_s0.png").is_file()
    assert "note: shapes-unet's text encoder never learned this word ('dragon')" in captured.err

    assert main(["generate", "--model", "shapes-unet", "--prompt", "a red circle", "--steps", "2",
                 "--out", str(tmp_path / "gen2")]) == 0
    assert "never learned" not in capsys.readouterr().err
