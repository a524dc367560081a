"""The token prior: the stream layout, the sampler (KV cache, guidance, filtering, forcing,
determinism) and the pipeline, on an untrained shapes-gpt of the exact architecture."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mmstudio.errors import UserError
from mmstudio.pipelines.token_prior import ImagePrior, PriorResult, PriorSettings
from mmstudio.pipelines.token_sampler import (
    SamplingSettings,
    TokenStep,
    draw,
    sampling_distribution,
)
from mmstudio.training.gpt import shapes_stream
from mmstudio.worlds import shapes
from mmstudio.worlds.datasets import combinations


@pytest.fixture(scope="module")
def prior(tmp_path_factory: pytest.TempPathFactory) -> ImagePrior:
    from mmstudio.loaders import load_gpt_prior
    from mmstudio.manager import ModelManager
    from tests.stand_ins import stand_in_gpt

    folder = stand_in_gpt(tmp_path_factory.mktemp("gpt") / "shapes-gpt")
    components = load_gpt_prior(folder, None, torch.float32)
    vq = ModelManager().get("shapes-vqvae")["vq"]
    return ImagePrior(components["gpt"], components["stream"], vq, "shapes-gpt", "shapes-vqvae")


# ---------------------------------------------------------------------------------- the stream
def test_the_stream_is_the_caption_then_begin_of_image_then_64_codes_in_raster_order() -> None:
    stream = shapes_stream()
    codes = np.arange(64).reshape(1, 8, 8) * 7 % 512
    row = stream.stream(["a small red circle in the top left on a black background"], codes)[0]
    assert row.shape == (stream.length,) == (16 + 1 + 64,)
    words = stream.describe(row)
    assert words[:12] == ["<start>", "a", "small", "red", "circle", "in", "the", "top", "left",
                          "on", "a", "black"]
    assert words[12:17] == ["background", "<end>", "<pad>", "<pad>", "<image>"]
    text, image = row[: stream.text_length], row[stream.prefix_length:]
    assert (text >= stream.num_codes).all() and (text < stream.boi).all()  # text ids
    assert row[stream.text_length] == stream.boi
    assert torch.equal(image, torch.as_tensor(codes.reshape(-1)))  # row by row, left to right
    assert (stream.codes(row[None]) == codes).all()
    assert stream.vocab_size == 512 + len(stream.text_table) + 1


def test_every_caption_of_the_world_fits_and_no_word_is_lost() -> None:
    stream = shapes_stream()
    longest = max((shapes.caption(a) for a in combinations(shapes)),
                  key=lambda c: len(stream.caption_ids(c)))
    assert len(stream.caption_ids(longest)) <= stream.text_length
    assert stream.unknown_ids(longest) == []
    # words the stream never read are left out rather than mapped to an untrained id
    assert torch.equal(stream.text_ids(["a red dragon circle."]), stream.text_ids(["a red circle"]))
    assert stream.unknown_ids("a red dragon circle") != []
    empty = stream.describe(stream.text_ids([""])[0])
    assert empty == ["<start>", "<end>"] + ["<pad>"] * 14


def test_the_stream_layout_round_trips_through_its_file(tmp_path: Path) -> None:
    from mmstudio.pipelines.token_stream import ImageTokenStream

    stream = shapes_stream()
    stream.save(tmp_path)
    assert ImageTokenStream.load(tmp_path) == stream
    with pytest.raises(UserError, match="not a token prior folder"):
        ImageTokenStream.load(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------- filtering
def test_temperature_top_k_and_top_p_filter_as_defined() -> None:
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]])
    plain = sampling_distribution(logits, SamplingSettings())
    assert torch.allclose(plain, torch.softmax(logits, -1))
    top2 = sampling_distribution(logits, SamplingSettings(top_k=2))
    assert (top2[0, 2:] == 0).all() and torch.isclose(top2.sum(), torch.tensor(1.0))
    nucleus = sampling_distribution(logits, SamplingSettings(top_p=0.7))
    kept = (nucleus[0] > 0).sum().item()
    assert kept == 2  # 0.665 after the first token: the second reaches 0.7
    greedy = sampling_distribution(logits, SamplingSettings(temperature=0.0))
    assert greedy[0].tolist() == [1.0, 0, 0, 0, 0]
    hot = sampling_distribution(logits, SamplingSettings(temperature=2.0))
    assert hot[0, 0] < plain[0, 0]  # flatter
    # a token of probability zero is never drawn, whatever the number
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.5, 0.0]]).repeat(1000, 1)
    drawn = draw(probs, 1.0 - torch.rand(1000, generator=torch.Generator().manual_seed(0)))
    assert set(drawn.tolist()) == {1, 3}


@pytest.mark.parametrize(("settings", "message"), [
    (SamplingSettings(temperature=-1), "temperature must be between 0"),
    (SamplingSettings(top_k=2.5), "top-k must be a whole number"),
    (SamplingSettings(top_p=0), "top-p must be above 0"),
    (SamplingSettings(guidance=float("nan")), "guidance must be a finite number"),
    (SamplingSettings(temperature="hot"), "temperature must be a number"),
])
def test_bad_sampling_settings_say_what_is_allowed(settings: SamplingSettings,
                                                   message: str) -> None:
    with pytest.raises(UserError, match=message):
        settings.validated()


# ---------------------------------------------------------------------------------- sampling
SETTINGS = PriorSettings(("a red circle", "a large blue cross in the top left on a navy "
                          "background"), guidance=3.0, top_k=100, top_p=0.95, seed=3)


def test_kv_cache_sampling_equals_uncached_sampling(prior: ImagePrior) -> None:
    cached = list(prior.generate(SETTINGS))
    uncached = list(prior.generate(SETTINGS, cache=False))
    assert cached[-1].evaluations == uncached[-1].evaluations == 64
    assert (cached[-1].codes == uncached[-1].codes).all()
    for a, b in zip(cached[:-1], uncached[:-1], strict=True):
        assert torch.equal(a.tokens, b.tokens)
        assert torch.allclose(a.probabilities, b.probabilities, atol=1e-5)


def test_a_run_is_a_function_of_its_seed_and_not_of_its_batch(prior: ImagePrior) -> None:
    first, again = prior.run(SETTINGS), prior.run(SETTINGS)
    assert (first.codes == again.codes).all() and (first.images == again.images).all()
    other = prior.run(replace(SETTINGS, seed=4))
    assert (other.codes != first.codes).any()
    alone = prior.run(replace(SETTINGS, prompts=SETTINGS.prompts[1:], seed=4))
    assert (alone.codes[0] == first.codes[1]).all()  # image 1 of seed 3 has seed 4


def test_forcing_a_token_changes_exactly_what_follows(prior: ImagePrior) -> None:
    settings = replace(SETTINGS, prompts=SETTINGS.prompts[:1], top_k=0, top_p=1.0)
    steps = [s for s in prior.generate(settings) if isinstance(s, TokenStep)]
    base = torch.stack([s.tokens[0] for s in steps])
    i = 20
    other = int((base[i] + 1) % 512)
    forced = [s for s in prior.generate(settings, forced={i: other}) if isinstance(s, TokenStep)]
    tokens = torch.stack([s.tokens[0] for s in forced])
    assert torch.equal(tokens[:i], base[:i])  # before i: the same draws, the same tokens
    assert tokens[i] == other and forced[i].forced[0] and not steps[i].forced[0]
    for before, after in zip(steps[:i + 1], forced[:i + 1], strict=True):
        assert torch.equal(before.probabilities, after.probabilities)  # what was offered
    assert not torch.allclose(steps[i + 1].probabilities, forced[i + 1].probabilities)
    # forcing the token the run drew anyway changes nothing at all
    same = prior.run(settings, forced={i: int(base[i])})
    assert (same.codes.reshape(-1) == base.numpy()).all()


def test_forced_tokens_must_be_codes_at_positions_of_the_grid(prior: ImagePrior) -> None:
    settings = replace(SETTINGS, prompts=SETTINGS.prompts[:1])
    for forced, message in (({64: 1}, "position must be from 0 to 63"),
                            ({0: 512}, "token must be from 0 to 511"),
                            ([{0: 1}, {0: 2}], "for each of the 1 samples")):
        with pytest.raises(UserError, match=message):
            prior.run(settings, forced=forced)


def test_steps_offer_the_top_candidates_of_the_sampled_distribution(prior: ImagePrior) -> None:
    items = list(prior.generate(replace(SETTINGS, top_k=3), top=5))
    steps, result = items[:-1], items[-1]
    assert isinstance(result, PriorResult) and len(steps) == 64
    step = steps[0]
    assert step.candidates.shape == (2, 5) and (step.candidates < 512).all()
    assert torch.isclose(step.probabilities[:, :3].sum(-1), torch.ones(2)).all()
    assert (step.probabilities[:, 3:] == 0).all()  # top-k 3: the others are out
    assert ((step.tokens[:, None] == step.candidates[:, :3]).any(-1)).all()
    assert result.images.shape == (2, 32, 32, 3) and result.codes.shape == (2, 8, 8)


def test_a_partial_grid_shows_what_is_written_and_hatches_the_rest(prior: ImagePrior) -> None:
    result = prior.run(replace(SETTINGS, prompts=SETTINGS.prompts[:1]))
    codes = result.codes.reshape(1, -1)
    full = prior.partial_images(codes, 64)
    assert (full == result.images).all()
    half = prior.partial_images(codes, 36)  # rows 0-3 and the first 4 cells of row 4
    cell = prior.cell
    assert set(map(tuple, half[0, 5 * cell:].reshape(-1, 3).tolist())) == {(70, 70, 70),
                                                                           (150, 150, 150)}
    frames = prior.filling_frames(result.codes[0]).astype(int)  # decoded as one batch of 64:
    assert frames.shape == (64, 32, 32, 3)  # equal to one at a time up to a level of 255
    assert np.abs(frames[35] - half[0]).max() <= 1
    assert np.abs(frames[63] - result.images[0]).max() <= 1


def test_prior_settings_are_checked_before_sampling() -> None:
    for settings, message in ((PriorSettings(("x" * 2000,)), "characters long"),
                              (PriorSettings(("a",), n=65), "at most 64 images"),
                              (PriorSettings(("a",), seed=-1), "seed must be"),
                              (PriorSettings(("a", "b"), image_seeds=(1,)), "one seed")):
        with pytest.raises(UserError, match=message):
            settings.validated()
