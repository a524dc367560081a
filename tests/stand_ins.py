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


def assets_with(root: Path, clap: bool = True, codec: bool = False,
                skip: tuple[str, ...] = ()) -> Path:
    """``root`` as an assets folder: the shipped examples and models linked (but ``skip``), and
    stand-ins for sounds-clap / sounds-codec where they are not shipped."""
    (root / "models").mkdir(parents=True)
    (root / "examples").symlink_to(ASSETS / "examples")
    for shipped in (ASSETS / "models").iterdir():
        if shipped.name not in skip:
            (root / "models" / shipped.name).symlink_to(shipped)
    if clap and not (root / "models" / "sounds-clap").exists():
        stand_in_clap(root / "models" / "sounds-clap")
    if codec and not (root / "models" / "sounds-codec").exists():
        stand_in_codec(root / "models" / "sounds-codec")
    return root
