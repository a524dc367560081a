"""The Similarity tab's handlers (without a browser) and its API through ``gradio_client``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmstudio.catalog import Catalog
from mmstudio.config import Settings
from mmstudio.manager import ModelManager
from mmstudio.ui import tab_similarity as tab_module
from mmstudio.ui.common import gr, user_errors
from tests import tiny_models
from tests.test_similarity import CPU, HUB_ID, HUB_REPO


@pytest.fixture
def tab(tmp_path: Path, offline_settings: Settings) -> tab_module.SimilarityTab:
    folder = tiny_models.make_open_clip(tmp_path / "build" / "clip")
    tiny_models.install_in_hub_cache(folder, HUB_REPO, offline_settings.hub_cache)
    manager = ModelManager(offline_settings, Catalog.load(offline_settings), devices=CPU)
    return tab_module.SimilarityTab(manager)


def test_compare_fills_every_output(tab: tab_module.SimilarityTab) -> None:
    out = tab.compare(HUB_ID, tab_module.DEFAULT_CAPTIONS, 0, None, tab_module.DEFAULT_TEXTS,
                      "color x shape", "yours+shapes")
    preview, summary, matrix, bars, retrieved, emb_map, data, image_index, query = out
    assert len(preview) == 6 and "6 images x 8 texts" in summary and "Logit scale" in summary
    for picture in (matrix, bars, emb_map):  # drawn with PIL: RGB arrays, no matplotlib
        assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[1] > 300
    # each image's thumbnail sits beside its rows: the first render's red circle (WORLDS.md red)
    # is drawn left of the matrix, the purple square of the last one too
    left = matrix[:, : matrix.shape[1] // 3].reshape(-1, 3)
    for color in ((220, 40, 40), (160, 60, 200)):
        assert (np.abs(left.astype(int) - color).sum(1) == 0).sum() > 20, color
    assert np.array(data["cosine"]).shape == (6, 8)
    np.testing.assert_allclose(np.array(data["probs"]).sum(1), np.ones(6), atol=1e-3)
    assert len(retrieved) == tab_module.TOP_K and retrieved[0][1].startswith("#1  cos ")
    assert len(image_index["choices"]) == 6 and len(query["choices"]) == 8
    # the other events: another image and class set, another query and gallery
    fig = tab.zero_shot(HUB_ID, tab_module.DEFAULT_CAPTIONS, 0, None, tab_module.DEFAULT_TEXTS,
                        3, "position")
    assert fig.dtype == np.uint8 and fig.shape[2] == 3 and not np.array_equal(fig, bars)
    ranked = tab.retrieve(HUB_ID, tab_module.DEFAULT_CAPTIONS, 0, None,
                          tab_module.DEFAULT_TEXTS, 2, "yours")
    assert len(ranked) == 6


def test_uploaded_files_join_the_rendered_images(tab: tab_module.SimilarityTab,
                                                 tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "photo.png"
    Image.new("RGB", (80, 50), (200, 30, 30)).save(path)
    out = tab.compare(HUB_ID, "a red circle", 0, [str(path)], "a red circle\na square",
                      "the texts above", "yours")
    assert out[6]["images"] == ["a red circle", "photo.png"]
    assert "centre-cropped" in out[1]  # what was done to the upload is said


@pytest.mark.parametrize(
    ("captions", "texts", "message"),
    [
        ("a red circle", "", "no texts given"),
        ("", "a red circle", "no images given"),
        ("a red circle", "\n".join(f"t{i}" for i in range(500)), "500 texts given"),
        ("a red circle", "x" * 10_000, "10,000 characters"),
        ("a pink circle", "a red circle", "caption line 1"),
    ],
)
def test_bad_inputs_become_clear_gradio_errors(tab: tab_module.SimilarityTab, captions: str,
                                               texts: str, message: str) -> None:
    with pytest.raises(gr.Error, match=message):
        user_errors(tab.compare)(HUB_ID, captions, 0, None, texts, "color x shape", "yours")


def test_non_image_upload_is_named(tab: tab_module.SimilarityTab, tmp_path: Path) -> None:
    bad = tmp_path / "table.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(gr.Error, match="image 2: table.csv is not an image"):
        user_errors(tab.compare)(HUB_ID, "a red circle", 0, [str(bad)], "a red circle",
                                 "color x shape", "yours")


def test_unavailable_hub_model_says_so(offline_settings: Settings) -> None:
    manager = ModelManager(offline_settings, Catalog.load(offline_settings), devices=CPU)
    tab = tab_module.SimilarityTab(manager)
    with pytest.raises(gr.Error, match="is not on this machine: it is not in the local Hugging"):
        user_errors(tab.compare)(HUB_ID, "a red circle", 0, None, "a red circle",
                                 "color x shape", "yours")


def test_api_similarity_on_the_running_app(app_server: str) -> None:
    from gradio_client import Client

    client = Client(app_server, verbose=False)
    out = client.predict("shapes-clip", "a red circle\na blue square", 0, [],
                         "a red circle\na blue square\na green cross", "color x shape", "yours",
                         api_name="/similarity")
    data = out[6]
    assert np.array(data["cosine"]).shape == (2, 3)
    assert data["best_text"] == [0, 1]  # the trained model matches its own renders
    np.testing.assert_allclose(np.array(data["probs"]).sum(1), [1, 1], atol=1e-3)


def test_zero_shot_and_retrieval_run_while_the_model_is_borrowed(
    tab: tab_module.SimilarityTab,
) -> None:
    """Compare's zero-shot and retrieval views use the model inside its ``use`` block, so an
    eviction or unload cannot take it away halfway (it did before: they ran after the block)."""
    seen: list[int] = []

    def borrowers() -> int:
        return next(r["in_use"] for r in tab.manager.status() if r["id"] == HUB_ID)

    class Watched(tab_module.SimilarityTab):
        def _zero_shot(self, *args):
            seen.append(borrowers())
            return super()._zero_shot(*args)

        def _retrieve(self, *args):
            seen.append(borrowers())
            return super()._retrieve(*args)

    watched = Watched(tab.manager)
    args = (HUB_ID, "a red circle\na blue square", 0, None, "a red circle\na square")
    watched.compare(*args, "color x shape", "yours")
    watched.zero_shot(*args, 1, "color x shape")
    watched.retrieve(*args, 1, "yours")
    assert seen == [1, 1, 1, 1]
    assert borrowers() == 0  # returned afterwards
