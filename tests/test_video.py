"""The video pipeline: frame / patch reshapes, the Latte denoiser through the one loop, spatial and
temporal attention, the cost figures, the motion-dit trainer and evaluator on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmstudio import tiny_models
from mmstudio.catalog import Catalog, ModelSpec
from mmstudio.config import Settings
from mmstudio.devices import DeviceInfo
from mmstudio.errors import UserError
from mmstudio.manager import ModelManager
from mmstudio.pipelines.denoise import DenoiseSettings, denoise, denoiser_for, run
from mmstudio.pipelines.video import (
    CaptionTokens,
    attention_cost,
    batch_to_frames,
    capture_space_time,
    cross_attention_bias,
    filmstrip,
    frame_scaling,
    frames_to_batch,
    from_temporal_sequences,
    measure_attention_cost,
    spatial_sequences,
    temporal_sequences,
    text_states,
    video_patchify,
    video_unpatchify,
)
from mmstudio.worlds import motion


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    root = tmp_path_factory.mktemp("video-models")
    settings = Settings(offline=True, assets=root / "assets", hub_cache=root / "hub")
    specs = [
        ModelSpec(id="vae", tasks=("autoencode",), source="local", loader="vae",
                  path=str(tiny_models.make_vae(root / "vae")), resolution=8),
        ModelSpec(id="latte", tasks=("video",), source="local", loader="latte",
                  path=str(tiny_models.make_latte(root / "latte", "vae")), resolution=8,
                  frames=4, world="motion"),
    ]
    return ModelManager(settings, Catalog(specs, settings), [DeviceInfo("cpu", 10**10, 10**10)])


def test_frame_and_patch_reshapes_round_trip() -> None:
    x = torch.randn(2, 4, 3, 8, 8)  # (B, C, F, h, w)
    flat = frames_to_batch(x)
    assert flat.shape == (6, 4, 8, 8)
    assert torch.equal(flat[4], x[1, :, 1])  # clip-major: clip 1, frame 1
    assert torch.equal(batch_to_frames(flat, 3), x)
    tokens = video_patchify(x, 2)
    assert tokens.shape == (2, 3, 16, 16)
    assert torch.equal(video_unpatchify(tokens, 2, 8, 8), x)
    # patch 1 of frame 2 of clip 0 is columns 2-3 of rows 0-1 of that frame
    assert torch.equal(tokens[0, 2, 1].reshape(2, 2, 4), x[0, :, 2, 0:2, 2:4].permute(1, 2, 0))
    spatial, temporal = spatial_sequences(tokens), temporal_sequences(tokens)
    assert spatial.shape == (6, 16, 16) and temporal.shape == (32, 3, 16)
    assert torch.equal(temporal[5], tokens[0, :, 5])  # one patch position over the frames
    assert torch.equal(from_temporal_sequences(temporal, 2), tokens)


def test_caption_tokens_know_the_world_and_name_the_rest() -> None:
    tokens = CaptionTokens.for_words(motion.VOCABULARY)
    ids = tokens.ids(["a red circle moving left on a black background", ""])
    assert ids.shape == (2, tokens.length)
    assert ids[1, :3].tolist() == [1, 2, 0]  # start, end, padding
    assert (ids[0] > 2).sum() >= 9  # every word has an id
    assert tokens.unknown_words("a red dragon moving left") == ["dragon"]
    assert tokens.unknown_words(motion.caption(motion.MotionAttrs(
        "darkgreen" if "darkgreen" in motion.COLORS else "red", "cross", "up", "navy"))) == []


def test_cross_attention_bias_repeats_per_frame() -> None:
    mask = torch.tensor([[True, True, False], [True, False, False]])
    bias = cross_attention_bias(mask, 4, torch.float32)
    assert bias.shape == (8, 1, 3)
    assert torch.equal(bias[3, 0], torch.tensor([0.0, 0.0, -10000.0]))
    assert torch.equal(bias[4, 0], torch.tensor([0.0, -10000.0, -10000.0]))


def test_clip_through_the_one_loop_is_deterministic(manager: ModelManager) -> None:
    settings = DenoiseSettings(("a red circle moving left on a black background",), steps=3,
                               guidance=2.0, seed=5)
    with denoiser_for(manager, "latte") as denoiser:
        assert denoiser.sample_shape == (4, 4, 4, 4)
        first = run(denoiser, settings).images
        second = run(denoiser, settings).images
        other = run(denoiser, DenoiseSettings(settings.prompts, steps=3, guidance=2.0,
                                              seed=6)).images
    assert first.shape == (1, 4, 8, 8, 3) and first.dtype == np.uint8  # (B, F, H, W, 3)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_a_clip_does_not_depend_on_its_batch(manager: ModelManager) -> None:
    prompts = ("a red circle moving left on a black background",
               "a blue square moving up on a gray background")
    with denoiser_for(manager, "latte") as denoiser:
        both = run(denoiser, DenoiseSettings(prompts, steps=2, guidance=2.0,
                                             image_seeds=(3, 4))).images
        alone = run(denoiser, DenoiseSettings(prompts[1:], steps=2, guidance=2.0,
                                              image_seeds=(4,))).images
    assert np.abs(both[1].astype(int) - alone[0].astype(int)).max() <= 1


def test_spatial_and_temporal_attention_are_probabilities_over_the_right_axes(
        manager: ModelManager) -> None:
    prompt = "a red circle moving left on a black background"
    with denoiser_for(manager, "latte") as denoiser:
        trace = capture_space_time(denoiser, DenoiseSettings((prompt,), steps=2, guidance=2.0))
        plain = run(denoiser, DenoiseSettings((prompt,), steps=2, guidance=2.0)).images
    assert np.array_equal(trace.result.images, plain)  # recording changes nothing
    assert trace.grid == (2, 2) and trace.frames == 4 and trace.layers == 2
    spatial = trace.maps[(1, 0, "self")]
    assert spatial.shape == (4, 2, 4, 4)  # (frames, heads, patches, patches)
    temporal = trace.maps[(1, 0, "temporal")]
    assert temporal.shape == (4, 2, 4, 4)  # (patches, heads, frames, frames)
    assert torch.allclose(spatial.sum(-1), torch.ones(4, 2, 4), atol=1e-5)
    assert torch.allclose(temporal.sum(-1), torch.ones(4, 2, 4), atol=1e-5)
    assert trace.spatial_map(1, 1, 3, 2).shape == (2, 2)
    assert trace.spatial_map(1, 1, 3, 2).sum() == pytest.approx(1.0, abs=1e-5)
    row = trace.temporal_map(0, 1, 2, 3, head=1)
    assert row.shape == (4,) and row.sum() == pytest.approx(1.0, abs=1e-5)
    # the temporal row is the map of that patch position, not of another one
    assert np.allclose(row, trace.maps[(0, 1, "temporal")][3, 1, 2].numpy())
    cross = trace.maps[(0, 0, "cross")]
    assert cross.shape[:3] == (4, 2, 4)
    assert [w.text for w in trace.words][:3] == ["a", "red", "circle"]
    assert trace.cross_map(0, 0, 1, 1).shape == (2, 2)
    with pytest.raises(UserError, match="frame 9"):
        trace.spatial_map(0, 0, 9, 0)
    with pytest.raises(UserError, match="layer 5"):
        trace.temporal_map(0, 5, 0, 0)


def test_attention_cost_grows_as_the_formulas_say() -> None:
    cost = attention_cost(patches=16, frames=16, width=64, layers=4)
    assert cost.factorized_pairs == 16 * 16**2 + 16 * 16**2
    assert cost.full_pairs == 256**2
    assert cost.full_gflops / cost.factorized_gflops == pytest.approx(256**2 / (2 * 16**3))


def test_measured_costs_cover_every_frame_count(manager: ModelManager) -> None:
    with denoiser_for(manager, "latte") as denoiser:
        config = denoiser.transformer.config
        rows = measure_attention_cost(config, (2, 4))
        steps = frame_scaling(denoiser, (2, 4), repeats=1)
    assert [r.frames for r in rows] == [2, 4]
    assert all(r.factorized_ms > 0 and r.full_ms > 0 for r in rows)
    assert [s.what for s in steps] == ["video, 2 frames", "video, 4 frames"]
    assert steps[1].gflops_per_step > steps[0].gflops_per_step > 0


def test_filmstrip_lays_frames_in_rows() -> None:
    frames = np.zeros((16, 4, 4, 3), np.uint8)
    frames[9] = 200
    strip = filmstrip(frames, scale=2, per_row=8, gap=1)
    assert strip.shape == (2 * 8 + 1, 8 * 8 + 7, 3)
    assert (strip[9:17, 9:17] == 200).all()  # frame 9: row 1, column 1


def test_trainer_smoke_saves_resumes_and_exports(tmp_path: Path) -> None:
    from mmstudio.training.motion import main

    vae = tiny_models.make_vae(tmp_path / "vae")
    args = ["--steps", "2", "--batch", "2", "--layers", "1", "--check-every", "0",
            "--run", str(tmp_path / "run"), "--vae", str(vae), "--save-minutes", "100"]
    assert main("motion-dit", args) == 0
    export = tmp_path / "run" / "export"
    for name in ("transformer/config.json", "transformer/diffusion_pytorch_model.safetensors",
                 "text_encoder/model.safetensors", "text_tokens.json",
                 "scheduler/scheduler_config.json", "vae.json", "training.json"):
        assert (export / name).is_file(), name
    assert json.loads((export / "training.json").read_text())["step"] == 2
    assert main("motion-dit", [*args[:1], "3", *args[2:], "--resume"]) == 0
    training = json.loads((export / "training.json").read_text())
    assert training["step"] == 3 and len(training["history"]) == 2
    assert not list(export.rglob("*.bin")) and not list(export.rglob("*.pt"))


def test_text_tower_starts_with_every_word_apart() -> None:
    """Word embeddings start at unit norm, so a word the model has not learned to use yet (the
    direction) still reaches the text states: far apart for the four directions."""
    from mmstudio.training.motion import build_text_encoder

    tokens = CaptionTokens.for_words(motion.VOCABULARY)
    torch.manual_seed(0)
    tower = build_text_encoder(tokens.vocab_size).eval()
    norms = tower.get_input_embeddings().weight.norm(dim=-1)
    assert 0.7 < float(norms.median()) < 1.3
    ids = tokens.ids(list(motion.DIRECTIONS))[:, 1]
    words = tower.get_input_embeddings().weight[ids]
    assert float(torch.pdist(words).min()) > 0.8
    with torch.no_grad():
        states, _ = text_states(tower, tokens, [f"a red circle moving {d} on a gray background"
                                                for d in motion.DIRECTIONS])
    assert float(torch.pdist(states[:, 5]).min()) > 2.0  # position 5: the direction word


def test_high_noise_share_draws_from_the_noisiest_steps() -> None:
    from mmstudio.training.motion import HIGH_NOISE_FROM, sample_timesteps

    uniform = sample_timesteps(4000, 0.0, torch.Generator().manual_seed(0))
    assert 0 <= int(uniform.min()) and int(uniform.max()) <= 999
    assert abs(float((uniform >= HIGH_NOISE_FROM).float().mean()) - 0.3) < 0.03
    biased = sample_timesteps(4000, 0.5, torch.Generator().manual_seed(0))
    assert int(biased.max()) <= 999
    assert abs(float((biased >= HIGH_NOISE_FROM).float().mean()) - 0.65) < 0.03
    again = sample_timesteps(4000, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(biased, again)


def test_trainer_refuses_resume_without_checkpoint(tmp_path: Path) -> None:
    from mmstudio.training.motion import main

    with pytest.raises(UserError, match="no checkpoint"):
        main("motion-dit", ["--run", str(tmp_path / "nothing"), "--resume"])


def test_measure_clips_reads_world_renders_as_right() -> None:
    """The protocol on the world's own renders (a perfect generator) scores every target."""
    from mmstudio.evaluation.motion import TARGETS, measure_clips
    from mmstudio.worlds.datasets import eval_attrs

    prompts = eval_attrs(motion, 24, seed=1)

    def perfect(captions: list[str], seed: int) -> np.ndarray:
        return np.stack([motion.render(motion.parse(c), np.random.default_rng(seed + i))
                         for i, c in enumerate(captions)])

    figures = measure_clips(perfect, prompts, 0, 8)
    assert figures["samples"] == 24
    assert figures["adherence"] >= 0.95 and figures["direction_accuracy"] >= 0.95
    assert figures["frame_consistency"] >= TARGETS["frame_consistency"]

    def frozen(captions: list[str], seed: int) -> np.ndarray:  # right frame, never moves
        clips = perfect(captions, seed)
        return np.repeat(clips[:, :1], clips.shape[1], axis=1)

    still = measure_clips(frozen, prompts, 0, 8)
    assert still["direction_accuracy"] == 0.0 and still["adherence"] == 0.0


def test_direction_probe_tells_a_word_that_moves_from_a_word_ignored() -> None:
    from mmstudio.evaluation.motion import direction_probe

    def perfect(captions: list[str], seed: int) -> np.ndarray:
        return np.stack([motion.render(motion.parse(c), np.random.default_rng(seed + i))
                         for i, c in enumerate(captions)])

    obeys = direction_probe(perfect)
    assert obeys["direction_sign"] == 1.0
    assert 1.4 < obeys["direction_effect"] < 1.8  # 1 px per frame: (2 + 2 + 4 sqrt 2) / 6

    def deaf(captions: list[str], seed: int) -> np.ndarray:  # always moves right
        return perfect([c.replace("left", "right").replace("up", "right").replace("down", "right")
                        for c in captions], seed)

    ignored = direction_probe(deaf)
    assert ignored["direction_effect"] == 0.0 and ignored["direction_sign"] == 0.25


def test_hub_text_to_video_loads_offline_and_runs_through_the_loop(tmp_path: Path) -> None:
    """The catalog's text-to-video hub id, resolved to a tiny random folder in the hub cache's
    layout, loads through the real loader and samples a clip step by step."""
    settings = Settings(offline=True, assets=tmp_path / "assets", hub_cache=tmp_path / "hub")
    repo = "ali-vilab/text-to-video-ms-1.7b"
    tiny_models.install_in_hub_cache(tiny_models.make_text_to_video(tmp_path / "t2v"), repo,
                                     settings.hub_cache)
    hub = ModelManager(settings, devices=[DeviceInfo("cpu", 10**10, 10**10)])
    settings_run = DenoiseSettings(("a cat surfing",), steps=2, guidance=4.0, seed=1)
    with denoiser_for(hub, repo) as denoiser:
        assert denoiser.sample_shape == (4, 16, 8, 8)
        steps = list(denoise(denoiser, settings_run))
        again = run(denoiser, settings_run).images
    *trace, result = steps
    assert len(trace) == 2 and trace[0].x0_pred.shape == (1, 4, 16, 8, 8)
    assert result.images.shape == (1, 16, 16, 16, 3)
    assert np.array_equal(result.images, again)


def test_track_velocity_reads_each_direction_of_a_world_render() -> None:
    import numpy as np

    from mmstudio.evaluation.motion import direction_vectors, track_velocity
    from mmstudio.worlds import motion

    rng = np.random.default_rng(3)
    for word, (ux, uy) in direction_vectors().items():
        clip = motion.render(motion.MotionAttrs("blue", "square", word, "gray"), rng)
        vx, vy = track_velocity(clip)
        assert abs(vx - ux * motion.SPEED) < 0.05 and abs(vy - uy * motion.SPEED) < 0.05, word
        assert motion.describe(clip).direction == word
    assert track_velocity(np.zeros((16, 32, 32, 3), np.uint8)) is None
