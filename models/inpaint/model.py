"""TinyGLCIC: a small GLCIC-style completion generator (dilated convolutions at 1/4 resolution), plus the
optional global and local discriminators of GLCIC (Iizuka et al. 2017), shrunk to the same scale.

Generator contract (the runtime's, see README.md): input NCHW/NHWC 4 channels = RGB in [-1, 1] with the hole
zeroed, then the mask (1 inside the hole); output 3 channels RGB in [-1, 1] (tanh), NOT composited.
Fully convolutional: any H and W divisible by 4.
"""

from __future__ import annotations

import torch
from torch import nn

WIDTHS = (24, 48, 96)
DILATIONS = (2, 4, 8, 16)


def conv_elu(cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding, dilation), nn.ELU())


class TinyGLCIC(nn.Module):
    def __init__(self, widths: tuple[int, int, int] = WIDTHS) -> None:
        super().__init__()
        c1, c2, c3 = widths
        self.encoder = nn.Sequential(
            conv_elu(4, c1, 5),
            conv_elu(c1, c2, 3, 2),
            conv_elu(c2, c2),
            conv_elu(c2, c3, 3, 2),
            conv_elu(c3, c3),
        )
        self.middle = nn.Sequential(*[conv_elu(c3, c3, dilation=d) for d in DILATIONS], conv_elu(c3, c3))
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            conv_elu(c3, c2),
            conv_elu(c2, c2),
            nn.Upsample(scale_factor=2, mode="nearest"),
            conv_elu(c2, c1),
            nn.Conv2d(c1, 3, 3, 1, 1),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.middle(self.encoder(x)))


def strided_critic(cin: int, widths: tuple[int, ...], size: int) -> nn.Sequential:
    """GLCIC discriminator branch: 5x5 stride-2 convs down to 4x4, then a linear score."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Conv2d(cin, width, 5, 2, 2), nn.LeakyReLU(0.2)]
        cin = width
    final = size // 2 ** len(widths)
    layers += [nn.Flatten(), nn.Linear(cin * final * final, 1)]
    return nn.Sequential(*layers)


class GlobalLocalDiscriminator(nn.Module):
    """GLCIC's two critics: one sees the whole 128 px crop, one a 64 px window around the hole."""

    def __init__(self, image_size: int = 128, local_size: int = 64) -> None:
        super().__init__()
        self.global_branch = strided_critic(3, (32, 64, 128, 128, 128), image_size)
        self.local_branch = strided_critic(3, (32, 64, 128, 128), local_size)

    def forward(self, image: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
        return self.global_branch(image) + self.local_branch(local)


def load_generator(path: str) -> TinyGLCIC:
    """A trained generator from its state dict; the widths are read off the weight shapes."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    widths = (
        state["encoder.0.0.weight"].shape[0],
        state["encoder.1.0.weight"].shape[0],
        state["encoder.3.0.weight"].shape[0],
    )
    generator = TinyGLCIC(widths)
    generator.load_state_dict(state)
    return generator.eval()


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
