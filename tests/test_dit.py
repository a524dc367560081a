"""The DiT pieces: patches, attention capture, word alignment, the text-conditioned DiT through the
real loader and the one loop (tiny random models, offline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmstudio.catalog import Catalog, ModelSpec
from mmstudio.config import Settings
from mmstudio.devices import DeviceInfo
from mmstudio.errors import UserError
from mmstudio.manager import ModelManager
from mmstudio.pipelines.attention import AttentionRecorder, install_recording_processors
from mmstudio.pipelines.denoise import DenoiseSettings, denoiser_for, run
from mmstudio.pipelines.dit import (
    capture_attention,
    patch_info,
    patchify,
    position_similarity,
    unpatchify,
    word_tokens,
)
from tests import tiny_models

SHAPES_CLIP = Path(__file__).resolve().parent.parent / "assets" / "models" / "shapes-clip"


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    root = tmp_path_factory.mktemp("dit-models")
    settings = Settings(offline=True, assets=root / "assets", hub_cache=root / "hub")
    specs = [
        ModelSpec(id="clip", tasks=("similarity",), source="local", loader="open_clip",
                  path=str(SHAPES_CLIP), resolution=32),
        ModelSpec(id="vae", tasks=("autoencode",), source="local", loader="vae",
                  path=str(tiny_models.make_vae(root / "vae")), resolution=16),
        ModelSpec(id="pixart", tasks=("dit",), source="local", loader="pixart",
                  path=str(tiny_models.make_pixart(root / "pixart", "clip", 64, vae_id="vae")),
                  resolution=16),
        ModelSpec(id="pixart-own-vae", tasks=("dit",), source="local", loader="pixart",
                  path=str(tiny_models.make_pixart(root / "pixart2", "clip", 64)),
                  resolution=16),
        ModelSpec(id="dit", tasks=("dit",), source="local", loader="dit",
                  path=str(tiny_models.make_dit(root / "dit")), resolution=16),
    ]
    return ModelManager(settings, Catalog(specs, settings), [DeviceInfo("cpu", 10**10, 10**10)])


def test_patchify_round_trip_and_raster_order() -> None:
    x = torch.randn(2, 4, 8, 8)
    for patch in (1, 2, 4):
        tokens = patchify(x, patch)
        assert tokens.shape == (2, (8 // patch) ** 2, patch * patch * 4)
        assert torch.equal(unpatchify(tokens, patch, 8, 8), x)
    tokens = patchify(x, 2)
    # token 1 is the second patch of the first row: columns 2-3 of rows 0-1
    assert torch.equal(tokens[0, 1].view(2, 2, 4), x[0, :, 0:2, 2:4].permute(1, 2, 0))
    with pytest.raises(UserError, match="does not split"):
        patchify(torch.randn(1, 4, 7, 8), 2)


def test_recording_processor_matches_fused_attention_and_rows_sum_to_one(
        manager: ModelManager) -> None:
    with denoiser_for(manager, "pixart") as denoiser:
        x = torch.randn(2, 4, 8, 8)
        cond = denoiser.encode(["a red circle", "a small darkgreen cross"])
        plain = denoiser.predict(x, torch.tensor(300), cond)
        denoiser.recorder = AttentionRecorder()
        recorded = denoiser.predict(x, torch.tensor(300), cond)
        maps = denoiser.recorder.maps
        denoiser.recorder = None
    torch.testing.assert_close(recorded, plain, atol=1e-5, rtol=1e-4)
    assert {(layer, kind) for _, layer, kind in maps} == {
        (layer, kind) for layer in range(2) for kind in ("self", "cross")}
    self_map = maps[(0, 0, "self")]  # (B, heads, 64, 64)
    cross = maps[(0, 1, "cross")]  # (B, heads, 64, L)
    assert self_map.shape == (2, 2, 64, 64) and cross.shape[:3] == (2, 2, 64)
    for probs in (self_map, cross):
        torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]))
    # padding after the end-of-text token is masked: no attention goes there
    length = len(word_tokens(denoiser.tokenizer, "a red circle")) + 2
    assert float(cross[0, :, :, length:].abs().max()) < 1e-6


def test_word_alignment_for_multi_token_words(manager: ModelManager) -> None:
    tokenizer = manager.get("clip")["tokenizer"]
    words = word_tokens(tokenizer, "a small darkgreen cross in the top left")
    assert [w.text for w in words] == ["a", "small", "darkgreen", "cross", "in", "the", "top",
                                       "left"]
    assert words[0].positions == [1]  # 0 is the start-of-text token
    assert len(words[2].positions) == 2  # "dark" + "green"
    assert words[3].positions == [words[2].positions[-1] + 1]
    ids = tokenizer(["a small darkgreen cross in the top left"])[0]
    assert int(ids[words[-1].positions[-1] + 1]) == 49407  # end-of-text follows the last word


def test_pixart_through_the_loop_is_deterministic(manager: ModelManager) -> None:
    settings = DenoiseSettings(("a red circle",), steps=4, guidance=3.0, seed=5)
    for model_id in ("pixart", "pixart-own-vae"):
        with denoiser_for(manager, model_id) as denoiser:
            first, second = run(denoiser, settings), run(denoiser, settings)
        assert first.images.shape == (1, 16, 16, 3) and first.latent
        assert np.array_equal(first.images, second.images)


def test_attention_capture_maps_and_errors(manager: ModelManager) -> None:
    settings = DenoiseSettings(("a small darkgreen cross",), steps=3, guidance=2.0, seed=1)
    with denoiser_for(manager, "pixart") as denoiser:
        trace = capture_attention(denoiser, settings, self_steps={2})
        plain = run(denoiser, settings)
    assert np.array_equal(trace.result.images, plain.images)  # capturing changes nothing
    assert [w.text for w in trace.words] == ["a", "small", "darkgreen", "cross"]
    self_map = trace.self_map(step=2, layer=1, patch=9, head=None)
    assert self_map.shape == (8, 8) and abs(self_map.sum() - 1) < 1e-5
    maps = [trace.cross_map(step=0, layer=None, word=i, head=None) for i in range(4)]
    assert all(m.shape == (8, 8) for m in maps)
    assert not np.allclose(maps[1], maps[3])  # different words, different maps
    with pytest.raises(UserError, match="step 1 was not captured"):
        trace.self_map(step=0, layer=0, patch=0, head=None)
    with pytest.raises(UserError, match="layer 7 does not exist"):
        trace.cross_map(step=0, layer=7, word=0, head=None)
    with pytest.raises(UserError, match="head 5 does not exist"):
        trace.self_map(step=2, layer=0, patch=0, head=5)
    with pytest.raises(UserError, match="patch 64 does not exist"):
        trace.self_map(step=2, layer=0, patch=64, head=None)


def test_class_dit_self_attention_and_patches(manager: ModelManager) -> None:
    settings = DenoiseSettings(("3",), steps=2, guidance=1.0, seed=0)
    with denoiser_for(manager, "dit") as denoiser:
        trace = capture_attention(denoiser, settings, self_steps=None)
        info = patch_info(denoiser.transformer, image_size=16)
    assert trace.words == [] and trace.grid == (4, 4)  # 8 x 8 latent, patch 2
    assert abs(trace.self_map(1, 0, 5, head=1).sum() - 1) < 1e-5
    assert info.tokens == 16 and info.token_width == 16 and info.position_embedding.shape[0] == 16
    similarity = position_similarity(info.position_embedding, 5, info.grid)
    assert similarity.shape == (4, 4) and similarity.flat[5] == pytest.approx(1.0)
    assert similarity.flat[5] == similarity.max()


def test_install_recording_processors_counts_blocks(tmp_path: Path) -> None:
    from diffusers import PixArtTransformer2DModel

    folder = tiny_models.make_pixart(tmp_path / "p", "clip", 64)
    model = PixArtTransformer2DModel.from_pretrained(folder, subfolder="transformer")
    assert install_recording_processors(model) == 4  # 2 blocks x (self, cross)


@pytest.mark.parametrize("scheduler", ["ddim", "ddpm", "euler", "euler_a", "dpmpp_2m"])
def test_loop_equals_pixart_pipeline(manager: ModelManager, scheduler: str) -> None:
    """Oracle (issue 19's, for the text-conditioned DiT): our loop's final image equals
    diffusers' ``PixArtAlphaPipeline`` on the same transformer, VAE, scheduler, seed and text
    states (given as prompt embeddings with their masks: the pipeline's own text encoder is T5,
    ours the shapes-clip tower)."""
    from diffusers import PixArtAlphaPipeline

    from mmstudio.pipelines.schedulers import make_scheduler

    prompt, steps, guidance, seed = "a small darkgreen cross", 6, 3.0, 7
    with denoiser_for(manager, "pixart-own-vae") as denoiser:
        ours = run(denoiser, DenoiseSettings((prompt,), steps=steps, guidance=guidance,
                                             seed=seed, scheduler=scheduler)).images[0]
        states, mask = denoiser.encode([prompt])
        empty_states, empty_mask = denoiser.encode([""])
        pipe = PixArtAlphaPipeline(
            tokenizer=None, text_encoder=None, vae=denoiser.vae,
            transformer=denoiser.transformer,
            scheduler=make_scheduler(scheduler, denoiser.scheduler_config))
        pipe.set_progress_bar_config(disable=True)
        size = denoiser.size * 2  # the tiny VAE upsamples 2x
        theirs = pipe(prompt=None, negative_prompt=None, prompt_embeds=states,
                      prompt_attention_mask=mask.long(),
                      negative_prompt_embeds=empty_states,
                      negative_prompt_attention_mask=empty_mask.long(),
                      num_inference_steps=steps, guidance_scale=guidance, height=size,
                      width=size, generator=torch.Generator().manual_seed(seed),
                      use_resolution_binning=False, output_type="np").images[0]
    theirs = (theirs * 255).round().astype(np.uint8)
    assert int(np.abs(ours.astype(int) - theirs.astype(int)).max()) == 0
