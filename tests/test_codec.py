"""The neural audio codec: token shapes and rates, decoding k levels = the library's k codebooks,
determinism, the RVQ ladder, level replacement, training (a few steps, export, reload), and the
hub's facebook/encodec_24khz layout through the real catalog and loader (tiny random weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmstudio.catalog import Catalog
from mmstudio.config import Settings
from mmstudio.devices import DeviceInfo
from mmstudio.manager import ModelManager
from mmstudio.pipelines import codec
from mmstudio.training import codec as train_codec
from mmstudio.worlds import sounds
from tests import tiny_models

CPU = [DeviceInfo("cpu", 8 * 10**9, 8 * 10**9)]


@pytest.fixture(scope="module")
def small_codec() -> torch.nn.Module:
    """The sounds-codec architecture with few channels, its codebooks started from data."""
    torch.manual_seed(0)
    model = train_codec.build_codec(num_filters=2, hidden_size=8, codebook_size=64,
                                    target_bandwidths=[0.3, 0.6, 0.9, 1.2])
    x = torch.from_numpy(train_codec.crops_for_step(1, 0, 16, 3200))[:, None]
    train_codec.init_codebooks(model, x, torch.Generator().manual_seed(0), iters=5)
    return model.eval()


def clip(seed: int = 0, text: str = "two short beeps of a mid square wave") -> np.ndarray:
    return sounds.render(sounds.parse(text), np.random.default_rng(seed))


def test_rates_and_bitrate(small_codec) -> None:
    info = codec.codec_info(small_codec)
    assert (info.sample_rate, info.hop_length, info.frame_rate, info.levels) == (
        16_000, 320, 50.0, 4)
    assert info.bitrate(1) == 50 * 6 and info.bitrate(4) == 50 * 4 * 6  # 64 codes: 6 bits
    assert "50 frames/s x 4 levels x 6 bits = 1.2 kbit/s" == info.bitrate_sentence(4)
    full = train_codec.build_codec()
    assert codec.codec_info(full).bitrate(4) == 2000.0  # 4 x 1,024 codes at 50 frames/s
    assert list(full.config.target_bandwidths) == [0.5, 1.0, 1.5, 2.0]


def test_encode_shapes_and_determinism(small_codec) -> None:
    tokens = codec.tokenize_sound(small_codec, clip(), 16_000)
    assert tokens.codes.shape == (4, 50) and tokens.codes.dtype == torch.int64
    assert int(tokens.codes.max()) < 64 and tokens.notes == []
    again = codec.tokenize_sound(small_codec, clip(), 16_000)
    assert torch.equal(tokens.codes, again.codes)
    audio = codec.reconstruct(small_codec, tokens)
    assert audio.shape == (16_000,) and audio.dtype == np.float32
    np.testing.assert_array_equal(audio, codec.reconstruct(small_codec, again))
    assert "50 frames" in tokens.arithmetic() and "200 tokens" in tokens.arithmetic()


def test_k_levels_equal_the_library_decode(small_codec) -> None:
    x = torch.from_numpy(clip(3))[None, None]  # (1, 1, 16000)
    tokens = codec.tokenize_sound(small_codec, clip(3), 16_000)
    info = tokens.info
    for k in range(1, 5):
        with torch.inference_mode():
            out = small_codec.encode(x, bandwidth=info.bitrate(k) / 1000)
            library = small_codec.decode(out.audio_codes, out.audio_scales).audio_values
        assert torch.equal(out.audio_codes[0, 0], tokens.codes[:k])
        ours = codec.reconstruct(small_codec, tokens, k=k)
        np.testing.assert_allclose(ours, library[0, 0, :16_000].numpy(), atol=1e-5)


def test_ladder_is_monotone_on_the_embedding(small_codec) -> None:
    """Each residual level brings the quantized embedding closer to the encoder's output."""
    x = torch.from_numpy(np.stack([clip(s) for s in range(6)]))[:, None]
    with torch.inference_mode():
        e = small_codec.encoder(x)  # (B, D, F)
        codes = codec.encode(small_codec, x[:, 0].numpy())  # (B, 4, F)
        errors = [float((codec.embeddings_of(small_codec, codes[:, :k]) - e).pow(2).mean())
                  for k in range(0, 5)]
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False)), errors


def test_dropping_and_replacing_a_level(small_codec) -> None:
    tokens = codec.tokenize_sound(small_codec, clip(1), 16_000)
    full = codec.reconstruct(small_codec, tokens)
    dropped = codec.reconstruct(small_codec, tokens, keep=[True, False, True, True])
    assert np.abs(full - dropped).max() > 0
    random = codec.replace_level(tokens.codes, 2, "random", seed=5, codebook_size=64)
    assert torch.equal(random[[0, 1, 3]], tokens.codes[[0, 1, 3]])
    assert not torch.equal(random[2], tokens.codes[2]) and int(random.max()) < 64
    other = codec.tokenize_sound(small_codec, clip(2, "one long note of a low sine wave"), 16_000)
    swapped = codec.replace_level(tokens.codes, 0, "other", other=other.codes)
    assert torch.equal(swapped[0], other.codes[0]) and torch.equal(swapped[1:], tokens.codes[1:])
    with pytest.raises(ValueError, match="unknown"):
        codec.replace_level(tokens.codes, 0, "shuffle")
    # with every level dropped, the decoder sees the all-zero embedding
    silent = codec.reconstruct(small_codec, tokens, keep=[False] * 4)
    assert silent.shape == full.shape


def test_quantize_train_gradient_and_codebook_update(small_codec) -> None:
    import copy

    model = copy.deepcopy(small_codec).train()
    x = torch.from_numpy(train_codec.crops_for_step(0, 1, 4, 3200))[:, None]
    e = model.encoder(x)
    before = model.quantizer.layers[0].codebook.embed.clone()
    usage = train_codec.CodeUsage(4, 64)
    q, commit, _ = train_codec.quantize_train(model.quantizer, e, 2, usage)
    assert q.shape == e.shape and commit.item() > 0
    (q.sum() + commit).backward()  # straight through: the encoder gets a gradient
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert not torch.equal(before, model.quantizer.layers[0].codebook.embed)


def test_spectral_loss_is_zero_on_itself_and_grows_with_error() -> None:
    loss = train_codec.SpectralLoss(16_000)
    x = torch.from_numpy(clip(4))[None, None]
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    small = loss(x + 0.01 * torch.randn_like(x), x).item()
    large = loss(x + 0.1 * torch.randn_like(x), x).item()
    assert 0 < small < large


def test_fast_elu_is_elu() -> None:
    x = torch.randn(1000) * 3
    np.testing.assert_allclose(train_codec.FastELU()(x), torch.nn.functional.elu(x), atol=1e-6)


def test_training_steps_export_and_reload(tmp_path: Path) -> None:
    from transformers import EncodecModel

    argv = ["--steps", "2", "--batch", "2", "--crop", "640", "--filters", "2", "--ae-warmup", "1",
            "--run", str(tmp_path / "run"), "--log-every", "1"]
    assert train_codec.main("sounds-codec", argv) == 0
    export = tmp_path / "run" / "export"
    assert (export / "model.safetensors").is_file() and (export / "training.json").is_file()
    assert not list(export.glob("*.bin"))
    model = EncodecModel.from_pretrained(export, use_safetensors=True).eval()
    a = codec.tokenize_sound(model, clip(), 16_000)
    b = codec.tokenize_sound(EncodecModel.from_pretrained(export, use_safetensors=True).eval(),
                             clip(), 16_000)
    assert torch.equal(a.codes, b.codes) and a.codes.shape == (4, 50)
    # resuming continues from the checkpoint
    assert train_codec.main("sounds-codec", [*argv[:1], "3", *argv[2:], "--resume"]) == 0
    import json

    assert json.loads((export / "training.json").read_text())["step"] == 3


def test_hub_encodec_24khz_layout(tmp_path: Path, offline_settings: Settings) -> None:
    folder = tiny_models.make_encodec(tmp_path / "build" / "encodec")
    assert offline_settings.hub_cache is not None
    tiny_models.install_in_hub_cache(folder, "facebook/encodec_24khz", offline_settings.hub_cache)
    manager = ModelManager(offline_settings, Catalog.load(offline_settings), devices=CPU)
    model = manager.get("facebook/encodec_24khz")["model"]
    info = codec.codec_info(model)
    assert (info.sample_rate, info.frame_rate, info.levels) == (24_000, 75.0, 32)
    assert info.bitrate(2) == 1500.0 and info.bitrate(32) == 24_000.0  # 1.5 ... 24 kbit/s
    tokens = codec.tokenize_sound(model, clip(), 16_000)  # a 16 kHz clip, resampled
    assert any("16,000 Hz -> 24,000 Hz" in note for note in tokens.notes)
    assert tokens.codes.shape == (32, 75) and len(tokens.audio) == 24_000
    audio = codec.reconstruct(model, tokens, k=2)
    with torch.inference_mode():
        out = model.encode(torch.from_numpy(tokens.audio)[None, None], bandwidth=1.5)
        library = model.decode(out.audio_codes, out.audio_scales).audio_values[0, 0]
    np.testing.assert_allclose(audio, library[:24_000].numpy(), atol=1e-5)


def test_generic_training_signals_never_sound_like_a_held_out_pair(monkeypatch) -> None:
    """The generic tones and noise bands of --generic: the analyzer reads none of 400 as high
    sawtooth or low noise; they are seeded; a batch mixes them in at the asked share."""
    import numpy as np

    from mmstudio.training import codec as train_codec
    from mmstudio.worlds import sounds

    rng = np.random.default_rng(0)
    read = [sounds.describe(train_codec.generic_clip(rng)) for _ in range(400)]
    assert not [a for a in read if sounds.is_held_out(a)]
    assert len({(a.timbre, a.pitch) for a in read}) >= 6  # varied, not one kind of sound
    a = train_codec.generic_clip(np.random.default_rng(3))
    assert np.array_equal(a, train_codec.generic_clip(np.random.default_rng(3)))
    assert a.shape == (16_000,) and 0.5 <= np.abs(a).max() <= 0.9
    monkeypatch.setattr(train_codec, "GENERIC_POOL", 16)
    train_codec.generic_pool.cache_clear()
    assert train_codec.generic_pool(0).shape == (16, 16_000)
    plain = train_codec.crops_for_step(0, 5, 8, 640)
    mixed = train_codec.crops_for_step(0, 5, 8, 640, generic=0.5)
    assert mixed.shape == plain.shape == (8, 640)
    assert np.array_equal(mixed, train_codec.crops_for_step(0, 5, 8, 640, generic=0.5))
    train_codec.generic_pool.cache_clear()
