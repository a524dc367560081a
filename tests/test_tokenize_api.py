"""The Tokenize tab is scriptable: `/vq_tokenize` and its editing endpoints via gradio_client."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from mmstudio.config import Settings

EXAMPLES = Settings.from_env().examples_dir


def test_vq_endpoints(app_server: str) -> None:
    client = Client(app_server, verbose=False)
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/vq_tokenize", "/vq_set_token", "/vq_replace_code", "/vq_randomize", "/vq_reset",
            "/vq_codebook", "/vq_codebook_usage", "/vq_compare", "/vq_render_caption"} <= names
    out = client.predict("shapes-vqvae", handle_file(str(EXAMPLES / "shapes-red-circle.png")),
                         api_name="/vq_tokenize")
    view_in, grid, recon, error, figures, notes, hist = out
    assert "PSNR" in figures and "43x" in figures and "used as is" in notes
    for path in (view_in, recon, error):
        assert np.asarray(Image.open(path)).shape == (256, 256, 3)
    assert np.asarray(Image.open(grid)).shape[0] >= 256


def test_vq_tokenize_bad_file(app_server: str, tmp_path) -> None:
    client = Client(app_server, verbose=False)
    huge = tmp_path / "huge.png"
    Image.new("L", (10_000, 10_000)).save(huge)
    with pytest.raises(Exception, match="10000 x 10000 pixels"):
        client.predict("shapes-vqvae", handle_file(str(huge)), api_name="/vq_tokenize")
    # the server keeps serving
    out = client.predict("shapes-vqgan", handle_file(str(EXAMPLES / "gradient.png")),
                         api_name="/vq_tokenize")
    assert "resized from 256 x 256" in out[5]
