"""The tokenize pipeline: shapes of the round trip, determinism, token edits and their locality,
metrics, bad inputs, and aMUSEd's VQ path offline (a tiny random VQModel of its config shape)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmstudio.catalog import Catalog
from mmstudio.config import Settings
from mmstudio.devices import DeviceInfo
from mmstudio.errors import UserError
from mmstudio.manager import ModelManager
from mmstudio.pipelines import tokenize as tk
from mmstudio.training.vq import build_vq
from mmstudio.worlds import shapes
from mmstudio.worlds.datasets import eval_set
from tests import tiny_models

CPU = [DeviceInfo("cpu", 8 * 10**9, 8 * 10**9)]
SHIPPED = Settings.from_env().models_dir / "shapes-vqvae"

#: "Editing a token changes mostly its region", measured by ``evaluation.vq.measure_edit_locality``
#: over 100 random single-token edits of evaluation renders (a random cell, a random other code):
#: of the visible change the edits cause in the decoded images (pixels whose |change| summed over
#: RGB exceeds 6 levels), pooled over the edits, at least this share lies in the edited 4 x 4 cell
#: dilated by one cell (4 px) on every side: the token's 12 x 12 px neighbourhood, 14% of the image.
LOCALITY_MIN_VISIBLE = 0.7
#: Counting every changed pixel the share is lower (still far above the region's 14% of the
#: image): the decoder has no attention, but its group norms take statistics over the whole
#: image, so any edit shifts every pixel a little.
LOCALITY_MIN_ALL = 0.45


@pytest.fixture(scope="module")
def random_vq() -> torch.nn.Module:
    """An untrained model of the shipped architecture (geometry only)."""
    torch.manual_seed(0)
    return build_vq().eval()


@pytest.fixture(scope="module")
def shipped_vq() -> torch.nn.Module:
    if not (SHIPPED / "config.json").is_file():
        pytest.fail(f"no shipped model in {SHIPPED}: python -m mmstudio train shapes-vqvae")
    from diffusers import VQModel

    return VQModel.from_pretrained(SHIPPED, use_safetensors=True).eval()


@pytest.fixture(scope="module")
def renders() -> np.ndarray:
    return np.stack([item.sample for item in eval_set(shapes, 8)])  # (8, 32, 32, 3)


def test_round_trip_shapes(random_vq: torch.nn.Module, renders: np.ndarray) -> None:
    info = tk.vq_info(random_vq)
    assert (info.resolution, info.downsample, info.grid, info.num_codes) == (32, 4, 8, 512)
    indices = tk.encode_indices(random_vq, renders)
    assert indices.shape == (8, 8, 8) and indices.dtype == np.int64
    assert indices.min() >= 0 and indices.max() < info.num_codes
    images = tk.decode_indices(random_vq, indices)
    assert images.shape == (8, 32, 32, 3) and images.dtype == np.uint8
    single = tk.decode_indices(random_vq, indices[0])  # (h, w) grids are accepted too
    assert np.array_equal(single[0], images[0])
    result = tk.tokenize_array(random_vq, renders[0], "random")
    assert result.indices.shape == (8, 8) and result.reconstruction.shape == (32, 32, 3)
    assert result.bits_image == 32 * 32 * 3 * 8 and result.bits_tokens == 64 * 9
    assert result.compression == pytest.approx(24576 / 576)
    record = result.to_dict()
    assert len(record["tokens"]) == 8 and all(len(row) == 8 for row in record["tokens"])


def test_decode_matches_the_library_forward_pass(random_vq: torch.nn.Module,
                                                 renders: np.ndarray) -> None:
    """decode(indices) is exactly what VQModel.forward (encode -> quantize -> decode) gives."""
    x = tk.images_to_batch(renders, random_vq)
    with torch.inference_mode():
        expected = tk.batch_to_images(random_vq(x).sample)
    ours = tk.decode_indices(random_vq, tk.encode_indices(random_vq, renders))
    # forward() adds the straight-through residual (z + (e - z)): equal up to float rounding
    assert np.abs(ours.astype(int) - expected.astype(int)).max() <= 1


def test_determinism(shipped_vq: torch.nn.Module, renders: np.ndarray) -> None:
    first = tk.tokenize_array(shipped_vq, renders[3])
    second = tk.tokenize_array(shipped_vq, renders[3].copy())
    assert np.array_equal(first.indices, second.indices)
    assert np.array_equal(first.reconstruction, second.reconstruction)
    a, _ = tk.randomize_tokens(first.indices, 5, 512, seed=3)
    b, _ = tk.randomize_tokens(first.indices, 5, 512, seed=3)
    assert np.array_equal(a, b)


def test_shipped_model_reconstructs_shapes(shipped_vq: torch.nn.Module,
                                           renders: np.ndarray) -> None:
    agree = 0
    for image in renders:
        result = tk.tokenize_array(shipped_vq, image)
        assert result.psnr > 24, result.psnr
        agree += shapes.describe(result.reconstruction) == shapes.describe(image)
    assert agree >= 7  # the slow quality gate measures agreement on 500 renders


def test_editing_a_token_changes_mostly_its_region(shipped_vq: torch.nn.Module) -> None:
    from mmstudio.evaluation.vq import LOCALITY_MARGIN, measure_edit_locality

    grids = tk.encode_indices(shipped_vq, np.stack([i.sample for i in eval_set(shapes, 100)]))
    locality = measure_edit_locality(shipped_vq, grids, seed=0)
    assert LOCALITY_MARGIN == 4
    assert locality["visible_share"] >= LOCALITY_MIN_VISIBLE, locality
    assert locality["all_share"] >= LOCALITY_MIN_ALL, locality
    assert locality["visible_share_two_cells"] >= 0.9, locality
    # one edit, looked at directly: the cell itself changes most
    result = tk.tokenize_array(shipped_vq, eval_set(shapes, 1)[0].sample)
    row, col = 3, 4
    new_code = int((result.indices[row, col] + 100) % 512)
    edited = tk.redecode(shipped_vq, result, tk.set_token(result.indices, row, col, new_code, 512))
    change = np.abs(edited.reconstruction.astype(int) - result.reconstruction.astype(int)).sum(-1)
    assert change.sum() > 0
    cell = change[row * 4:(row + 1) * 4, col * 4:(col + 1) * 4].mean()
    far = np.ones_like(change, bool)
    far[(row - 2) * 4:(row + 3) * 4, (col - 2) * 4:(col + 3) * 4] = False
    assert cell > 5 * change[far].mean()


def test_edits() -> None:
    grid = np.arange(64).reshape(8, 8) % 5
    edited = tk.set_token(grid, 2, 3, 42, 512)
    assert edited[2, 3] == 42 and (edited != grid).sum() == 1 and grid[2, 3] != 42
    replaced, count = tk.replace_code(grid, 1, 7, 512)
    assert count == int((grid == 1).sum()) and not (replaced == 1).any()
    assert ((replaced == 7) == (grid == 1)).all()
    randomized, cells = tk.randomize_tokens(grid, 6, 512, seed=0)
    assert len(set(cells)) == 6 and (randomized != grid).sum() <= 6
    same, cells = tk.randomize_tokens(grid, 0, 512, seed=0)
    assert cells == [] and np.array_equal(same, grid)
    for call, message in [
        (lambda: tk.set_token(grid, 8, 0, 1, 512), "row must be between 0 and 7"),
        (lambda: tk.set_token(grid, 0, -1, 1, 512), "column must be between 0 and 7"),
        (lambda: tk.set_token(grid, 0, 0, 512, 512), "code must be between 0 and 511"),
        (lambda: tk.replace_code(grid, -1, 3, 512), "code to replace must be between"),
        (lambda: tk.randomize_tokens(grid, 65, 512, 0), "k must be between 0 and 64"),
    ]:
        with pytest.raises(UserError, match=message):
            call()


def test_code_images(random_vq: torch.nn.Module) -> None:
    uniform = tk.code_images(random_vq, [0, 5, 511], 8)
    assert uniform.shape == (3, 32, 32, 3)
    expected = tk.decode_indices(random_vq, np.full((8, 8), 5))[0]
    # decoded in a batch of 3 vs alone: convolution kernels may round differently
    assert np.abs(uniform[1].astype(int) - expected.astype(int)).max() <= 1
    context = np.zeros((8, 8), np.int64)
    in_context = tk.code_images(random_vq, [9], 8, context=context)
    grid = context.copy()
    grid[4, 4] = 9
    assert np.abs(in_context[0].astype(int)
                  - tk.decode_indices(random_vq, grid)[0].astype(int)).max() <= 1
    with pytest.raises(UserError, match="between 0 and 511"):
        tk.code_images(random_vq, [600], 8)


def test_metrics() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    assert tk.psnr(a, b) == float("inf")
    b[0, 0, 0] = 255  # MSE = 255^2 / 48
    assert tk.psnr(a, b) == pytest.approx(10 * np.log10(48))
    usage = tk.codebook_usage(np.array([[0, 0], [1, 1]]), 8)
    assert (usage.used, usage.share, usage.tokens) == (2, 0.25, 4)
    assert usage.perplexity == pytest.approx(2.0)
    assert tk.codebook_usage(np.arange(8), 8).perplexity == pytest.approx(8.0)
    flat = np.full((8, 8, 3), 120, np.uint8)
    assert tk.mean_gradient(flat) == pytest.approx(0.0, abs=1e-5)
    edge = flat.copy()
    edge[:, 4:] = 250
    blurred = edge.astype(float)
    blurred[:, 3:5] = (120 + 250) / 2
    assert tk.mean_gradient(edge) > tk.mean_gradient(blurred.astype(np.uint8)) > 0
    block = np.pad(np.ones((4, 4, 3)), ((12, 16), (12, 16), (0, 0)))  # cell (3, 3) changed
    locality = tk.edit_locality(np.zeros((32, 32, 3)), block, 3, 3, 4, 0)
    assert locality == pytest.approx(1.0)


def test_bad_inputs_give_clear_messages(tmp_path: Path, random_vq: torch.nn.Module) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    with pytest.raises(UserError, match="not an image that can be read"):
        tk.tokenize_image(random_vq, text)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty \\(0 bytes\\)"):
        tk.tokenize_image(random_vq, empty)
    huge = tmp_path / "huge.png"
    Image.new("L", (10_000, 10_000)).save(huge)
    with pytest.raises(UserError, match="10000 x 10000 pixels"):
        tk.tokenize_image(random_vq, huge)
    with pytest.raises(UserError, match="no such file"):
        tk.tokenize_image(random_vq, tmp_path / "missing.png")
    with pytest.raises(UserError, match="expected a 32 x 32 RGB image"):
        tk.tokenize_array(random_vq, np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(UserError, match="token ids must be between 0 and 511"):
        tk.decode_indices(random_vq, np.full((8, 8), 999))


def test_grayscale_rgba_and_large_inputs_are_converted(tmp_path: Path,
                                                       random_vq: torch.nn.Module) -> None:
    gray = tmp_path / "gray.png"
    Image.fromarray(np.full((100, 100), 128, np.uint8), "L").save(gray)
    result = tk.tokenize_image(random_vq, gray)
    assert result.image.shape == (32, 32, 3) and result.indices.shape == (8, 8)
    assert any("mode L" in n for n in result.notes)
    assert any("resized from 100 x 100" in n for n in result.notes)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.full((32, 32, 4), 200, np.uint8), "RGBA").save(rgba)
    result = tk.tokenize_image(random_vq, rgba)
    assert any("transparency" in n for n in result.notes)
    wide = np.zeros((300, 900, 3), np.uint8)
    result = tk.tokenize_image(random_vq, wide)
    assert any("centre-cropped" in n for n in result.notes)


# ---------------------------------------------------------------------------- aMUSEd's VQ offline


def make_amused_like_vq(folder: Path, subfolder: str = "vqvae") -> Path:
    """A tiny random VQModel with aMUSEd's config shape: five blocks (16x downsampling),
    ``lookup_from_codebook``, no mid-block attention, codes of dimension latent_channels."""
    from diffusers import VQModel

    torch.manual_seed(0)
    VQModel(
        in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 5, up_block_types=("UpDecoderBlock2D",) * 5,
        block_out_channels=(4, 4, 4, 4, 8), layers_per_block=1, latent_channels=8,
        num_vq_embeddings=64, norm_num_groups=4, sample_size=32,
        mid_block_add_attention=False, lookup_from_codebook=True, force_upcast=True,
    ).save_pretrained(folder / subfolder, safe_serialization=True)
    return folder


def test_amused_vq_through_the_same_pipeline(tmp_path: Path, offline_settings: Settings) -> None:
    folder = make_amused_like_vq(tmp_path / "build" / "amused")
    assert offline_settings.hub_cache is not None
    tiny_models.install_in_hub_cache(folder, "amused/amused-256", offline_settings.hub_cache)
    manager = ModelManager(offline_settings, Catalog.load(offline_settings), devices=CPU)
    spec = manager.catalog.get("amused/amused-256:vqvae")
    vq = manager.get(spec.id)["vq"]
    assert vq.config.lookup_from_codebook and spec.resolution == 256
    shape_render = shapes.render(shapes.parse("a large red circle"), np.random.default_rng(0))
    result = tk.tokenize_image(vq, shape_render, spec.id, spec.resolution)
    assert result.image.shape == (256, 256, 3)
    assert any("resized from 32 x 32" in n for n in result.notes)
    assert result.indices.shape == (16, 16) and result.indices.max() < 64
    assert result.reconstruction.shape == (256, 256, 3)
    assert result.bits_tokens == 256 * 6
    # the library's own forward pass (encode -> quantize -> decode) gives the same image
    x = tk.images_to_batch(result.image[None], vq)
    with torch.inference_mode():
        library = tk.batch_to_images(vq(x).sample)[0]
    assert np.abs(library.astype(int) - result.reconstruction.astype(int)).max() <= 1
    edited = tk.redecode(vq, result, tk.set_token(result.indices, 0, 0, 63, 64))
    assert edited.indices[0, 0] == 63 and edited.reconstruction.shape == (256, 256, 3)
