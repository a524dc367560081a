"""The similarity pipeline (``mmstudio.pipelines.align``) and the ``similarity`` CLI.

The hub path is tested offline: a tiny random open_clip ``local-dir:`` model is installed in a
Hugging Face cache folder under the real OpenCLIP ViT-B-32 repo id and loaded through the real
catalog entry and loader, then driven by the same functions as shapes-clip.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmstudio.catalog import Catalog
from mmstudio.cli import main as cli_main
from mmstudio.config import Settings
from mmstudio.devices import DeviceInfo
from mmstudio.errors import UserError
from mmstudio.manager import ModelManager
from mmstudio.pipelines import align
from mmstudio.worlds import shapes
from tests import tiny_models

HUB_ID = "open_clip:ViT-B-32/laion2b_s34b_b79k"
HUB_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
CPU = [DeviceInfo("cpu", 8 * 10**9, 8 * 10**9)]
CAPTIONS = ["a red circle", "a blue square on a gray background", "a small green triangle",
            "a large white cross in the center"]


@pytest.fixture
def hub_settings(tmp_path: Path, offline_settings: Settings) -> Settings:
    folder = tiny_models.make_open_clip(tmp_path / "build" / "clip")
    assert offline_settings.hub_cache is not None
    tiny_models.install_in_hub_cache(folder, HUB_REPO, offline_settings.hub_cache)
    return offline_settings


@pytest.fixture
def hub_clip(hub_settings: Settings) -> align.ClipModel:
    manager = ModelManager(hub_settings, Catalog.load(hub_settings), devices=CPU)
    return align.ClipModel.from_loaded(manager.get(HUB_ID))


def renders(n: int = 4, seed: int = 0) -> list[np.ndarray]:
    return [shapes.render(shapes.parse(CAPTIONS[i % len(CAPTIONS)]),
                          np.random.default_rng([seed, i])) for i in range(n)]


def test_embeddings_are_unit_vectors(hub_clip: align.ClipModel) -> None:
    images = align.prepare_images(renders(), hub_clip.resolution)
    image_emb = align.embed_images(hub_clip, images)
    text_emb = align.embed_texts(hub_clip, CAPTIONS)
    assert image_emb.shape == (4, 16) and text_emb.shape == (4, 16)
    assert torch.allclose(image_emb.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert torch.allclose(text_emb.norm(dim=-1), torch.ones(4), atol=1e-5)


def test_matrix_shape_probabilities_and_logit_scale(hub_clip: align.ClipModel) -> None:
    texts = CAPTIONS + ["a cat", "a purple triangle"]
    result = align.compare(hub_clip, renders(3), texts)
    assert result.sim.cosine.shape == (3, 6) and result.sim.probs.shape == (3, 6)
    np.testing.assert_allclose(result.sim.probs.sum(axis=1), np.ones(3), atol=1e-5)
    assert np.all(result.sim.cosine <= 1 + 1e-5) and np.all(result.sim.cosine >= -1 - 1e-5)
    scale = float(hub_clip.model.logit_scale.exp())
    np.testing.assert_allclose(result.sim.logits, scale * result.sim.cosine, rtol=1e-5)
    assert result.sim.logit_scale == pytest.approx(scale)
    assert result.sim.best_text == result.sim.probs.argmax(1).tolist()
    assert result.map.images.shape == (3, 2) and result.map.texts.shape == (6, 2)
    assert json.loads(json.dumps(result.sim.to_dict()))["texts"] == texts


def test_deterministic_and_cache_gives_the_same_numbers(hub_clip: align.ClipModel) -> None:
    cache = align.EmbeddingCache()
    first = align.compare(hub_clip, renders(), CAPTIONS, cache)
    assert len(cache) == 8 and cache.hits == 0
    again = align.compare(hub_clip, renders(), CAPTIONS, cache)
    assert cache.hits == 8  # nothing recomputed
    fresh = align.compare(hub_clip, renders(), CAPTIONS)
    for other in (again, fresh):
        np.testing.assert_array_equal(first.sim.cosine, other.sim.cosine)
        np.testing.assert_array_equal(first.map.images, other.map.images)
    # the cache is keyed by model id: another model never sees these entries
    other = align.ClipModel("another", hub_clip.model, hub_clip.preprocess, hub_clip.tokenizer,
                            hub_clip.resolution)
    align.embed_texts(other, CAPTIONS[:1], cache)
    assert cache.hits == 8 and len(cache) == 9


def test_cache_is_a_bounded_lru() -> None:
    cache = align.EmbeddingCache(max_items=2)
    for k in "abc":
        cache.put(("m", "text", k), torch.zeros(2))
    assert len(cache) == 2 and cache.get(("m", "text", "a")) is None
    assert cache.get(("m", "text", "c")) is not None


def test_zero_shot_retrieval_and_map(hub_clip: align.ClipModel) -> None:
    result = align.compare(hub_clip, renders(), CAPTIONS)
    classes = align.shapes_class_sets()["background"]
    z = align.zero_shot(hub_clip, result.image_emb[0], classes)
    assert z.labels == list(shapes.BACKGROUNDS) and z.probs.sum() == pytest.approx(1, abs=1e-5)
    assert [p for _, p in z.ranked] == sorted(z.probs.tolist(), reverse=True)
    ranked = align.retrieve(result.text_emb[1], result.image_emb, CAPTIONS[1])
    assert sorted(ranked.order) == [0, 1, 2, 3]
    assert ranked.scores == sorted(ranked.scores, reverse=True)
    assert ranked.scores[0] == pytest.approx(float(result.sim.cosine[:, 1].max()), abs=1e-5)
    assert result.map.pairs == list(enumerate(result.sim.best_text))
    assert 0 < result.map.explained[1] <= result.map.explained[0] <= 1


def test_class_sets_use_the_shapes_grammar() -> None:
    sets = align.shapes_class_sets()
    assert len(sets["color x shape"]) == 32 and len(sets["position"]) == 5
    for classes in sets.values():
        for prompts in classes.values():
            for prompt in prompts:
                shapes.parse(prompt)  # raises outside the grammar


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ([], "no texts given"),
        (["", "  "], "no texts given"),
        ([f"text {i}" for i in range(500)], "500 texts given; at most 64"),
        (["x" * 10_000], "text 1 has 10,000 characters; at most 300"),
    ],
)
def test_bad_texts_give_clear_messages(hub_clip: align.ClipModel, texts, message: str) -> None:
    with pytest.raises(UserError, match=message):
        align.compare(hub_clip, renders(1), texts)


def test_bad_images_give_clear_messages(hub_clip: align.ClipModel, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no images given"):
        align.compare(hub_clip, [], CAPTIONS)
    not_image = tmp_path / "notes.png"
    not_image.write_text("this is text, not a picture")
    with pytest.raises(UserError, match="image 2: notes.png is not an image"):
        align.compare(hub_clip, [renders(1)[0], not_image], CAPTIONS)
    with pytest.raises(UserError, match="65 images given; at most 64"):
        align.compare(hub_clip, renders(65), CAPTIONS)


def test_long_text_within_limit_is_noted(hub_clip: align.ClipModel) -> None:
    long = " ".join(["red"] * 40)  # 40 tokens > the tiny model's 16-token context
    result = align.compare(hub_clip, renders(1), [long, "a red circle"])
    assert any("text 1" in note and "16 tokens" in note for note in result.notes)


# ------------------------------------------------------------------------------------ the CLI
def _cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("MMSTUDIO_OFFLINE", "1")
    monkeypatch.setenv("MMSTUDIO_HUB_CACHE", str(settings.hub_cache))
    monkeypatch.setenv("MMSTUDIO_DEVICE", "cpu")


def test_cli_json_matrix_with_the_hub_model(hub_settings: Settings, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    _cli_env(monkeypatch, hub_settings)
    image = tmp_path / "shape.png"
    from PIL import Image

    Image.fromarray(renders(1)[0]).save(image)
    code = cli_main(["similarity", "--model", HUB_ID, "--images", str(image),
                     "--render", "a blue square", "--texts", "a red circle", "a blue square",
                     "a dog", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert np.array(data["cosine"]).shape == (2, 3)
    np.testing.assert_allclose(np.array(data["probs"]).sum(1), [1, 1], atol=1e-3)
    assert data["images"][1] == "render: a blue square" and data["logit_scale"] > 0


def test_cli_table_output(hub_settings: Settings, monkeypatch: pytest.MonkeyPatch,
                          capsys) -> None:
    _cli_env(monkeypatch, hub_settings)
    code = cli_main(["similarity", "--model", HUB_ID, "--render", "a red circle",
                     "--texts", "a red circle", "a blue square"])
    out = capsys.readouterr().out
    assert code == 0
    assert "logit scale" in out and "softmax over texts" in out and "T2: a blue square" in out


def test_cli_takes_any_number_of_images_and_texts(hub_settings: Settings, hub_clip,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys) -> None:
    """252 images x 70 texts (beyond one interactive comparison's 64): embedded in batches, the
    same numbers as a comparison of a part of them."""
    from mmstudio.worlds import shapes
    from mmstudio.worlds.datasets import combinations

    _cli_env(monkeypatch, hub_settings)
    captions = [shapes.caption(a) for a in combinations(shapes)[:252]]
    texts = captions[::4][:70] + [f"text {i}" for i in range(70 - len(captions[::4][:70]))]
    code = cli_main(["similarity", "--model", HUB_ID, "--render", *captions, "--texts", *texts,
                     "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    cosine = np.array(data["cosine"])
    assert cosine.shape == (252, 70) and len(data["best_text"]) == 252
    from mmstudio.cli.similarity import render_captions

    part = align.compare(hub_clip, render_captions(captions, 0)[200:210], texts[:8])
    np.testing.assert_allclose(cosine[200:210, :8], part.sim.cosine, atol=2e-4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--render", "a red circle"], "no texts given"),
        (["--texts", "a red circle"], "no images given"),
        (["--render", "a red circle", "--texts", "x" * 10_000], "10,000 characters"),
        (["--render", "a pink circle", "--texts", "a"], "pink"),
    ],
)
def test_cli_bad_input_is_one_line(args: list[str], message: str, hub_settings: Settings,
                                   monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    _cli_env(monkeypatch, hub_settings)
    code = cli_main(["similarity", "--model", HUB_ID, *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_cli_non_image_file(hub_settings: Settings, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    _cli_env(monkeypatch, hub_settings)
    bad = tmp_path / "readme.txt"
    bad.write_text("hello")
    code = cli_main(["similarity", "--model", HUB_ID, "--images", str(bad), "--texts", "a"])
    assert code == 2 and "readme.txt is not an image" in capsys.readouterr().err
