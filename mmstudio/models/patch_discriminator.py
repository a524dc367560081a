"""PatchGAN discriminator: a small convolutional critic that scores overlapping image patches.

After Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks"
(pix2pix), as used for VQGAN by Esser et al. 2021, "Taming Transformers for High-Resolution Image
Synthesis". Each output logit sees one receptive-field patch (16 x 16 px with the defaults, half
the 32 px canvas), so the critic judges local texture and edges, not global layout, which is what
makes a VQGAN's decoder draw crisp edges instead of the blur a pixel loss settles for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class PatchDiscriminatorConfig:
    in_channels: int = 3
    channels: int = 32  # width of the first layer; doubled at each further stride-2 layer
    n_layers: int = 1  # further 4 x 4 layers after the first (32 x 32 input -> 14 x 14 logits)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class PatchDiscriminator(nn.Module):
    """(B, 3, H, W) images in [0, 1] -> (B, 1, h, w) real/fake logits, one per patch."""

    def __init__(self, config: PatchDiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config or PatchDiscriminatorConfig()
        c = self.config.channels
        layers: list[nn.Module] = [
            nn.Conv2d(self.config.in_channels, c, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        ]
        width = c
        for i in range(1, self.config.n_layers + 1):
            out = c * min(2**i, 8)
            stride = 2 if i < self.config.n_layers else 1
            layers += [
                nn.Conv2d(width, out, 4, stride=stride, padding=1, bias=False),
                nn.GroupNorm(min(8, out // 4), out),
                nn.LeakyReLU(0.2),
            ]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images * 2.0 - 1.0)  # the critic sees [-1, 1]


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the critic (Lim & Ye 2017; as in VQGAN)."""
    return 0.5 * (torch.relu(1.0 - logits_real).mean() + torch.relu(1.0 + logits_fake).mean())


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """The generator's side of the hinge game: raise the critic's score of reconstructions."""
    return -logits_fake.mean()
