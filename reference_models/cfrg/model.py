"""The CFRG network: frozen teacher, heterogeneous student, recovery branch, segmentation head.

Written from the description in ``shared/3cad_facts.md`` ("The CFRG model") with torchvision
building blocks. Feature lists are ordered fine to coarse: scale 0 at 1/4 of the input
(256 channels), scale 1 at 1/8 (512), scale 2 at 1/16 (1024), the channel counts of
wide_resnet50_2's layer1-3.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import CFRGConfig, TEACHER_CHANNELS

__all__ = ["Teacher", "Student", "Recovery", "SegmentationHead", "CFRG", "cosine_distance", "TEACHER_PREFIXES"]

# The parts of wide_resnet50_2 the teacher keeps (keys of its state dict start with these).
TEACHER_PREFIXES = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.")


def cosine_distance(a: Tensor, b: Tensor) -> Tensor:
    """``1 - cos(a, b)`` over channels, in float32.

    Parameters
    ----------
    a, b : Tensor
        ``(B, C, H, W)``.

    Returns
    -------
    Tensor
        ``(B, H, W)`` in [0, 2].
    """
    return 1.0 - F.cosine_similarity(a.float(), b.float(), dim=1, eps=1e-6)


class Teacher(nn.Module):
    """wide_resnet50_2 up to layer3, frozen and always in eval mode.

    ``forward(x)``: ``x`` ``(B, 3, S, S)`` normalised -> three maps ``(B, 256, S/4, S/4)``,
    ``(B, 512, S/8, S/8)``, ``(B, 1024, S/16, S/16)``.
    """

    def __init__(self, state_dict: dict[str, Tensor] | None = None) -> None:
        super().__init__()
        from torchvision.models import wide_resnet50_2

        net = wide_resnet50_2(weights=None)
        if state_dict is not None:
            wanted = {k: v for k, v in state_dict.items() if k.startswith(TEACHER_PREFIXES)}
            net.load_state_dict(wanted, strict=False)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "Teacher":
        """The teacher stays in eval mode whatever the caller asks (its BatchNorm is frozen)."""
        return super().train(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return [f1, f2, f3]


def _separable(cin: int, cout: int) -> nn.Sequential:
    """Adapter: depthwise 3x3 + pointwise 1x1 convolution, BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Student(nn.Module):
    """EfficientNet-B0 (random init) cut at three scales, each lifted to the teacher's channels.

    ``forward(x)`` -> three maps shaped like the teacher's.
    """

    def __init__(self, blocks: tuple[int, int, int] = (2, 3, 5)) -> None:
        super().__init__()
        from torchvision.models import efficientnet_b0

        if list(blocks) != sorted(blocks) or len(blocks) != 3:
            raise ValueError(f"student_blocks must be three increasing indices, got {blocks}")
        features = efficientnet_b0(weights=None).features
        self.blocks = tuple(int(b) for b in blocks)
        self.body = nn.ModuleList(features[: self.blocks[-1] + 1])
        with torch.no_grad():
            chans, strides = [], []
            x = torch.zeros(1, 3, 64, 64)
            for i, m in enumerate(self.body):
                x = m(x)
                if i in self.blocks:
                    chans.append(x.shape[1])
                    strides.append(64 // x.shape[-1])
        if strides != [4, 8, 16]:
            raise ValueError(f"student_blocks {blocks} give strides {strides}, need 4, 8, 16")
        self.adapters = nn.ModuleList(_separable(c, t) for c, t in zip(chans, TEACHER_CHANNELS))

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for i, m in enumerate(self.body):
            x = m(x)
            if i in self.blocks:
                out.append(self.adapters[len(out)](x))
        return out


def _conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Bottleneck(nn.Module):
    """ResNet bottleneck (1x1, 3x3, 1x1, expansion 4) of width ``2 * planes`` (wide ResNet);
    ``stride`` 2 downsamples, ``stride`` -2 upsamples (transposed 2x2 convolution), as in a
    de-ResNet block."""

    def __init__(self, cin: int, planes: int, stride: int = 1, width_factor: int = 2) -> None:
        super().__init__()
        width, cout = planes * width_factor, planes * 4
        self.conv1 = nn.Sequential(nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        if stride == -2:
            mid = nn.ConvTranspose2d(width, width, 2, stride=2, bias=False)
            short = nn.ConvTranspose2d(cin, cout, 2, stride=2, bias=False)
        else:
            mid = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
            short = nn.Conv2d(cin, cout, 1, stride=stride, bias=False) if (stride != 1 or cin != cout) else None
        self.conv2 = nn.Sequential(mid, nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.conv3 = nn.Sequential(nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential(short, nn.BatchNorm2d(cout)) if short is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x))


def _stage(cin: int, planes: int, blocks: int, stride: int, width_factor: int) -> nn.Sequential:
    layers = [_Bottleneck(cin, planes, stride, width_factor)]
    layers += [_Bottleneck(planes * 4, planes, 1, width_factor) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class Recovery(nn.Module):
    """Recovery branch: multi-scale fusion bottleneck, then a de-ResNet decoder.

    ``forward(feats)``: teacher features of the (augmented) image, three maps -> three maps of
    the same shapes, trained to match the teacher's features of the clean image.
    Fusion: scales 0 and 1 brought to 1/16 by strided 3x3 convolutions, concatenated with scale 2
    (3 x 1024 channels) and reduced by a stage of bottleneck blocks to 2048 channels at 1/32.
    Decoder: three de-ResNet stages (transposed-convolution upsampling) back to 1024 @ 1/16,
    512 @ 1/8, 256 @ 1/4.
    """

    def __init__(self, bottleneck_blocks: int = 3, decoder_blocks: tuple[int, int, int] = (3, 4, 6),
                 width_factor: int = 2) -> None:
        super().__init__()
        w = width_factor
        c1, c2, c3 = TEACHER_CHANNELS
        self.down1 = nn.Sequential(_conv_bn_relu(c1, c2, 3, 2), _conv_bn_relu(c2, c3, 3, 2))
        self.down2 = _conv_bn_relu(c2, c3, 3, 2)
        self.fuse = _stage(3 * c3, 512, bottleneck_blocks, 2, w)             # -> 2048 @ 1/32
        self.up3 = _stage(2048, c3 // 4, decoder_blocks[0], -2, w)           # -> 1024 @ 1/16
        self.up2 = _stage(c3, c2 // 4, decoder_blocks[1], -2, w)             # -> 512 @ 1/8
        self.up1 = _stage(c2, c1 // 4, decoder_blocks[2], -2, w)             # -> 256 @ 1/4

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        f1, f2, f3 = feats
        z = self.fuse(torch.cat([self.down1(f1), self.down2(f2), f3], dim=1))
        r3 = self.up3(z)
        r2 = self.up2(r3)
        r1 = self.up1(r2)
        return [r1, r2, r3]


class SegmentationHead(nn.Module):
    """U-Net-like decoder from the three discrepancy-weighted feature maps to input-size logits.

    ``forward(feats, size)``: three maps shaped like the teacher's -> ``(B, 1, size, size)`` logits.
    """

    def __init__(self, channels: tuple[int, int, int] = (256, 128, 64)) -> None:
        super().__init__()
        c1, c2, c3 = TEACHER_CHANNELS
        a, b, c = channels
        self.block3 = nn.Sequential(_conv_bn_relu(c3, a), _conv_bn_relu(a, a))
        self.block2 = nn.Sequential(_conv_bn_relu(a + c2, b), _conv_bn_relu(b, b))
        self.block1 = nn.Sequential(_conv_bn_relu(b + c1, c), _conv_bn_relu(c, c))
        self.refine = nn.Sequential(_conv_bn_relu(c, 32), _conv_bn_relu(32, 32))
        self.out = nn.Conv2d(32, 1, 1)

    def forward(self, feats: list[Tensor], size: int) -> Tensor:
        f1, f2, f3 = feats
        x = self.block3(f3)
        x = self.block2(torch.cat([F.interpolate(x, size=f2.shape[-2:], mode="bilinear", align_corners=False), f2], 1))
        x = self.block1(torch.cat([F.interpolate(x, size=f1.shape[-2:], mode="bilinear", align_corners=False), f1], 1))
        x = self.refine(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        return self.out(x)


class CFRG(nn.Module):
    """The whole model. ``forward(x)`` returns a dict of tensors:

    ``t``, ``s``, ``r``: teacher, student and recovery features of ``x`` (three maps each);
    ``logits``: ``(B, 1, S, S)`` segmentation logits. With ``clean`` (the same images before the
    synthetic anomalies), also ``t_clean``: the teacher's features of ``clean``.
    """

    def __init__(self, config: CFRGConfig, teacher_state: dict[str, Tensor] | None = None) -> None:
        super().__init__()
        self.config = config
        self.teacher = Teacher(teacher_state)
        self.student = Student(config.student_blocks)
        self.recovery = Recovery(config.bottleneck_blocks, config.decoder_blocks, config.recovery_width)
        self.seg = SegmentationHead(config.seg_channels)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters of the student, recovery branch and segmentation head (not the teacher)."""
        return [p for n, p in self.named_parameters() if not n.startswith("teacher.")]

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """State of everything but the teacher (which is saved on its own, once)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("teacher.")}

    def forward(self, x: Tensor, clean: Tensor | None = None) -> dict[str, Any]:
        b = x.shape[0]
        with torch.no_grad():
            t_all = self.teacher(x if clean is None else torch.cat([x, clean], 0))
        t = [f[:b] for f in t_all]
        s = self.student(x)
        r = self.recovery(t)
        d_ts = [cosine_distance(ti, si).unsqueeze(1) for ti, si in zip(t, s)]
        d_tr = [cosine_distance(ti, ri).unsqueeze(1) for ti, ri in zip(t, r)]
        if self.config.seg_detach:
            d_ts = [d.detach() for d in d_ts]
            d_tr = [d.detach() for d in d_tr]
        in_t = [d.to(ti.dtype) * ti for d, ti in zip(d_ts, t)]
        in_s = [d.to(ti.dtype) * it for d, ti, it in zip(d_tr, t, in_t)]
        out: dict[str, Any] = {"t": t, "s": s, "r": r, "logits": self.seg(in_s, x.shape[-1])}
        if clean is not None:
            out["t_clean"] = [f[b:] for f in t_all]
        return out
