"""Training smoke test for shapes-clip: a few steps on shapes data, save, reload through the real
open_clip loader, identical outputs; and a resumed run equals an uninterrupted one."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from mmstudio.catalog import ModelSpec
from mmstudio.loaders import load_open_clip
from mmstudio.training import clip as trainer
from mmstudio.worlds import shapes

SMALL = ["--batch", "12", "--lr", "1e-3", "--warmup", "2", "--log-every", "1",
         "--eval-every", "0", "--save-every", "100000"]


def run(tmp_path: Path, steps: int, resume: bool = False) -> torch.nn.Module:
    args = trainer.parse_args([*SMALL, "--steps", str(steps), "--run", str(tmp_path / "run"),
                               "--out", str(tmp_path / "out"), *(["--resume"] if resume else [])])
    return trainer.train(args)


def test_positives_treat_every_true_caption_as_a_match() -> None:
    a = shapes.ShapeAttrs("red", "circle", "small", "center", "black")
    b = shapes.ShapeAttrs("red", "circle", "large", "top left", "gray")
    pos = trainer.positives(["a small red circle in the center on a black background",
                             "a red circle"], [a, b])
    assert pos.tolist() == [[True, True], [False, True]]


def test_loss_is_clip_loss_for_distinct_captions() -> None:
    torch.manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    loss, _ = trainer.multi_positive_clip_loss(img, txt, torch.tensor(10.0), torch.eye(5) > 0)
    from open_clip.loss import ClipLoss

    reference = ClipLoss()(img, txt, torch.tensor(10.0))
    assert torch.allclose(loss, reference, atol=1e-6)


def test_train_save_reload_identical_outputs(tmp_path: Path) -> None:
    model = run(tmp_path, steps=3).eval()
    folder = trainer.export(model, tmp_path / "out")
    assert (folder / "open_clip_model.safetensors").stat().st_size < 10 * 2**20
    spec = ModelSpec(id="shapes-clip", tasks=("similarity",), source="assets",
                     path="models/shapes-clip", loader="open_clip", resolution=32)
    loaded = load_open_clip(folder, spec, torch.float32)
    reference = copy.deepcopy(model).half().float().eval()  # the weights as stored (fp16)
    rng = np.random.default_rng(0)
    images = np.stack([shapes.render(shapes.sample_attrs(rng), rng) for _ in range(4)])
    pixels = torch.stack([loaded["preprocess"](_pil(im)) for im in images])
    assert torch.equal(pixels, trainer.images_to_tensor(images))  # same preprocessing
    tokens = loaded["tokenizer"](["a red circle", "a small blue cross in the top left"])
    with torch.no_grad():
        assert torch.equal(loaded["model"].encode_image(pixels), reference.encode_image(pixels))
        assert torch.equal(loaded["model"].encode_text(tokens), reference.encode_text(tokens))
        assert torch.equal(loaded["model"].logit_scale, reference.logit_scale)


def test_resumed_run_equals_uninterrupted_run(tmp_path: Path) -> None:
    straight = run(tmp_path / "a", steps=4)
    run(tmp_path / "b", steps=2)
    resumed = run(tmp_path / "b", steps=4, resume=True)
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values(),
                            strict=True):
        assert torch.equal(p, q), name


def _pil(array: np.ndarray):
    from PIL import Image

    return Image.fromarray(array)
