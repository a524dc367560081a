"""Stand-ins for embedded models that are not shipped yet: exactly the real architecture and
folder layout (so every loader, view and shape is the real one), untrained, in a temporary assets
folder that links everything shipped."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def stand_in_clap(folder: Path) -> Path:
    """An untrained sounds-clap (open_clip CLIP reading log-mels), exported as training does."""
    import torch

    from mmstudio.training.clap import build_model, export

    torch.manual_seed(0)
    return export(build_model().eval(), folder, {"model_id": "sounds-clap"})


def stand_in_codec(folder: Path) -> Path:
    """An untrained sounds-codec, its codebooks started by k-means on world sounds."""
    from tests.test_audio_codec_ui import _stand_in_codec

    _stand_in_codec(folder)
    return folder


def stand_in_vq_f8(models: Path) -> tuple[Path, Path]:
    """Untrained shapes-vqvae-f8 and shapes-vqgan-f8 in ``models`` (where they hold no weights):
    exactly ``ARCHITECTURE_F8``, the VQ-VAE's codebook started from encoder outputs as training
    does, and the VQGAN with the VQ-VAE's encoder and codebook but a decoder of its own (as the
    decoder-only fine-tune leaves it), each with the shipped MODEL_CARD.md template."""
    import shutil

    import numpy as np
    import torch

    from mmstudio.pipelines.tokenize import PAIRS
    from mmstudio.training import vq as training

    folders = []
    torch.manual_seed(0)
    plain = training.build_vq(training.ARCHITECTURE_F8)
    training.init_codebook_from_data(plain, training.batch_for_step(7, 0, 64),
                                     np.random.default_rng(0))
    torch.manual_seed(1)
    gan = training.build_vq(training.ARCHITECTURE_F8)
    for name in ("encoder", "quant_conv", "quantize"):
        getattr(gan, name).load_state_dict(getattr(plain, name).state_dict())
    for model_id, model in zip(PAIRS["f8"], (plain, gan), strict=True):
        folder = models / model_id
        if (folder / "diffusion_pytorch_model.safetensors").is_file():
            folders.append(folder)
            continue
        if folder.is_symlink():  # a shipped folder that holds only the card template
            folder.unlink()
        model.eval().save_pretrained(folder, safe_serialization=True)
        template = ASSETS / "models" / model_id / "MODEL_CARD.md"
        if template.is_file():
            shutil.copy(template, folder / "MODEL_CARD.md")
        folders.append(folder)
    return folders[0], folders[1]


def stand_in_gpt(folder: Path, seed: int = 0) -> Path:
    """An untrained shapes-gpt: exactly the trainer's architecture and stream, exported as
    training does (fp16 save_pretrained, token_stream.json, vq.json naming shapes-vqvae), with
    the shipped MODEL_CARD.md template."""
    import shutil

    import torch

    from mmstudio.training import gpt as training

    folder = Path(folder)
    if folder.is_symlink():  # a shipped folder that holds only the card template
        folder.unlink()
    torch.manual_seed(seed)
    args = training.parse_args(["--out", str(folder), "--steps", "1"])
    args.vq_sha256 = ""
    model = training.build_gpt(training.shapes_stream(), args.layers, args.width, args.heads)
    out = training.export(model.eval(), training.shapes_stream(), args, 0, 0.0, [])
    template = ASSETS / "models" / "shapes-gpt" / "MODEL_CARD.md"
    if template.is_file():
        shutil.copy(template, out / "MODEL_CARD.md")
    return out


def assets_with(root: Path, clap: bool = True, codec: bool = False,
                skip: tuple[str, ...] = (), vq_f8: bool = False, gpt: bool = False) -> Path:
    """``root`` as an assets folder: the shipped examples and models linked (but ``skip``), and
    stand-ins for sounds-clap / sounds-codec / the f8 VQ pair where they are not shipped."""
    (root / "models").mkdir(parents=True)
    (root / "examples").symlink_to(ASSETS / "examples")
    for shipped in (ASSETS / "models").iterdir():
        if shipped.name not in skip:
            (root / "models" / shipped.name).symlink_to(shipped)
    if clap and not (root / "models" / "sounds-clap").exists():
        stand_in_clap(root / "models" / "sounds-clap")
    if codec and not (root / "models" / "sounds-codec").exists():
        stand_in_codec(root / "models" / "sounds-codec")
    if vq_f8:
        stand_in_vq_f8(root / "models")
    if gpt and not (root / "models" / "shapes-gpt" / "model.safetensors").is_file():
        stand_in_gpt(root / "models" / "shapes-gpt")
    return root
