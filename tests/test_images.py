"""Bad and unusual image inputs get clear messages or are converted, saying so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmstudio.errors import UserError
from mmstudio.images import prepare_image


def test_non_image_and_empty_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("hello, not an image")
    with pytest.raises(UserError, match="not an image that can be read"):
        prepare_image(text, 32)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        prepare_image(empty, 32)


def test_huge_image_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    Image.new("L", (10_000, 10_000)).save(path, optimize=False)
    with pytest.raises(UserError, match="10000 x 10000 pixels"):
        prepare_image(path, 32)


def test_grayscale_rgba_and_non_square_are_converted(tmp_path: Path) -> None:
    gray = prepare_image(np.full((64, 64), 200, np.uint8), 32)
    assert gray.array.shape == (32, 32, 3) and "converted from mode L" in gray.notes[0]
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:16, ..., 3] = 255  # top half opaque red, bottom transparent
    out = prepare_image(rgba, 32, background=(10, 10, 10))
    assert tuple(out.array[0, 0]) == (255, 0, 0) and tuple(out.array[-1, -1]) == (10, 10, 10)
    wide = prepare_image(np.zeros((40, 80, 3), np.uint8), 32)
    assert any("centre-cropped" in n for n in wide.notes) and wide.image.size == (32, 32)
    same = prepare_image(np.zeros((32, 32, 3), np.uint8), 32)
    assert same.notes == []
