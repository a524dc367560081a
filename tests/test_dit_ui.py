"""The DiT tab through its API (gradio_client) and in a browser: generate, scrub, patches,
attention (pick a word, the map changes), clear messages for out-of-range views.

The server runs on the shipped models; where shapes-vae / shapes-dit are not shipped yet, freshly
initialised models of exactly their architectures and folder layouts stand in (untrained, so the
pictures are noise, but every view, loader and shape is the real one)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS, serve_app

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PROMPT = "a large red circle in the top left on a navy background"


def _stand_in_vae(folder: Path) -> None:
    from mmstudio.training.vae import build_vae

    build_vae().save_pretrained(folder, safe_serialization=True)


def _stand_in_dit(folder: Path) -> None:
    from mmstudio.training.dit import build_dit, make_train_scheduler

    build_dit(caption_channels=64).save_pretrained(folder / "transformer",
                                                   safe_serialization=True)
    make_train_scheduler().save_pretrained(folder / "scheduler")
    (folder / "text_encoder.json").write_text(json.dumps({"model_id": "shapes-clip"}))
    (folder / "vae.json").write_text(json.dumps({"model_id": "shapes-vae"}))


@pytest.fixture(scope="module")
def dit_server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("dit-assets")
    (root / "models").mkdir()
    (root / "examples").symlink_to(ASSETS / "examples")
    for shipped in (ASSETS / "models").iterdir():
        (root / "models" / shipped.name).symlink_to(shipped)
    for name, make in (("shapes-vae", _stand_in_vae), ("shapes-dit", _stand_in_dit)):
        if not (root / "models" / name).exists():
            make(root / "models" / name)
    yield from serve_app(tmp_path_factory, MMSTUDIO_ASSETS=str(root))


def test_dit_api_generate_scrub_attention_and_errors(dit_server: str) -> None:
    from gradio_client import Client

    client = Client(dit_server, verbose=False)
    out = client.predict(PROMPT, None, "shapes-dit", "ddim", 8, 3.0, 0, api_name="/dit_generate")
    assert "Done" in out[5] and "4 x 8 x 8 latent" in out[5]
    scrubbed = client.predict(1, api_name="/dit_step")
    assert scrubbed[-1].startswith("step 1 of 8")
    att = client.predict(PROMPT, None, "shapes-dit", "ddim", 8, 3.0, 0, 8,
                         api_name="/dit_attention")
    assert att[-1].startswith("step 8: self-attention of patch 0; cross-attention to \"large\"")
    view = client.predict(3, "1", "0", 9, 2, api_name="/dit_attention_view")
    assert "self-attention of patch 9" in view[-1] and "\"red\"" in view[-1]
    for args, message in (((9, "1", "0", 9, 3), "greater than maximum value 8|out of range"),
                          ((3, "1", "0", 64, 3), "greater than maximum value 63|patch 64"),
                          ((3, "7", "0", 0, 3), "7.* not in the list of choices|layer 7"),
                          ((3, "1", "9", 0, 3), "9.* not in the list of choices|head 9")):
        with pytest.raises(Exception, match=message):
            client.predict(*args, api_name="/dit_attention_view")
    # the server keeps serving after the errors
    again = client.predict(2, api_name="/dit_step")
    assert again[-1].startswith("step 2 of 8")


def test_dit_tab_in_the_browser(browser, dit_server: str) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(dit_server, wait_until="load")
        page.get_by_role("tab", name="DiT").click()
        page.locator("#dit-generate").click()
        page.locator("#dit-status").get_by_text(re.compile(r"Done in [0-9.]+ s")).wait_for(
            timeout=120_000)
        last = page.locator("#dit-x0 img").first.get_attribute("src")
        page.locator("#dit-step input[type=range]").fill("1")
        page.locator("#dit-status").get_by_text("step 1 of 25").wait_for(timeout=30_000)
        assert page.locator("#dit-x0 img").first.get_attribute("src") != last
        page.get_by_text("Patches: the latent becomes a sequence of tokens").click()
        page.locator("#dit-patch-facts").get_by_text("64 patches").wait_for(timeout=60_000)
        page.get_by_text("Attention: self-attention between patches").click()
        page.locator("#dit-capture").click()
        page.locator("#dit-att-status").get_by_text("cross-attention to").wait_for(
            timeout=120_000)
        before = page.locator("#dit-cross-map img").first.get_attribute("src")
        page.locator("#dit-att-word").get_by_text("circle", exact=True).click()
        page.locator("#dit-att-status").get_by_text("cross-attention to \"circle\"").wait_for(
            timeout=30_000)
        after = page.locator("#dit-cross-map img").first.get_attribute("src")
        assert before and after and before != after, "picking a word changes the map"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dit-attention.png"), full_page=True)
        assert errors == [], errors
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "FAILED-dit-tab.png"), full_page=True)
        raise
    finally:
        context.close()
