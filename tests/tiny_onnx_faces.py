"""Tiny ONNX models of the inswapper / ArcFace shapes, built and exported by the tests (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import torch


class TinyRecognition(torch.nn.Module):
    """1x3x112x112 -> 1x512, like an ArcFace model."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 4, stride=4)
        self.fc = torch.nn.Linear(8 * 4 * 4, 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 4)
        return self.fc(x.flatten(1))


class TinySwap(torch.nn.Module):
    """(1x3x128x128 face in [0, 1], 1x512 identity) -> 1x3x128x128 face: a residual tint set by the identity,
    `identity_only=True` returns the face untouched (to check alignment and paste-back)."""

    def __init__(self, identity_only: bool = False) -> None:
        super().__init__()
        self.tint = torch.nn.Linear(512, 3)
        self.identity_only = identity_only

    def forward(self, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        if self.identity_only:
            return target + source.mean() * 0.0  # keeps the identity input in the graph
        return torch.clamp(target * 0.5 + torch.sigmoid(self.tint(source))[:, :, None, None] * 0.5, 0, 1)


def _export(model: torch.nn.Module, args: tuple, names: list[str], path: Path) -> Path:
    torch.manual_seed(0)
    for p in model.parameters():
        torch.nn.init.normal_(p, 0, 0.5)
    model.eval()
    torch.onnx.export(model, args, str(path), input_names=names, output_names=["output"], opset_version=17,
                      dynamo=False)
    return path


def export_tiny_face_models(folder: Path) -> dict[str, Path]:
    """recognition (1x3x112x112 -> 1x512), swap (face + identity -> face) and identity (returns its input)."""
    face, identity = torch.rand(1, 3, 128, 128), torch.rand(1, 512)
    return {
        "recognition": _export(TinyRecognition(), (torch.rand(1, 3, 112, 112),), ["input.1"], folder / "rec.onnx"),
        "swap": _export(TinySwap(), (face, identity), ["target", "source"], folder / "swap.onnx"),
        "identity": _export(TinySwap(identity_only=True), (face, identity), ["target", "source"], folder / "id.onnx"),
    }


class TinyEnhancer(torch.nn.Module):
    """GFPGAN-style 1x3x64x64 in [-1, 1] -> the same shape: the face with its colours inverted (a change the
    tests can see and place). `fidelity=True` adds CodeFormer's scalar weight input."""

    def __init__(self, fidelity: bool = False) -> None:
        super().__init__()
        self.fidelity = fidelity

    def forward(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        out = -x
        if weight is not None:
            out = out + weight.float().sum() * 0.0
        return out


class TinyOccluder(torch.nn.Module):
    """XSeg-style 1x64x64x3 (channels last) in [0, 1] -> 1x64x64x1: 0 (occluded) on the crop's left third,
    as if a hand covered that cheek; 1 elsewhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cols = torch.arange(64, dtype=torch.float32)
        visible = (cols >= 22).float()[None, None, :, None].expand(1, 64, 64, 1)
        return visible + x[..., :1] * 0.0


class TinyParser(torch.nn.Module):
    """BiSeNet-style 1x3x64x64 -> 1x19x64x64 scores: "skin" above the crop's middle row, "hair" below it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(64, dtype=torch.float32)[:, None].expand(64, 64)
        scores = torch.zeros(19, 64, 64)
        scores[1] = (rows < 32).float()
        scores[17] = (rows >= 32).float()
        return scores[None] + x[:, :1].mean() * 0.0


def export_tiny_post_models(folder: Path) -> dict[str, Path]:
    """enhancer (GFPGAN shape), codeformer (with the weight input), occluder (XSeg, NHWC), parser (BiSeNet)."""
    face = torch.rand(1, 3, 64, 64) * 2 - 1
    return {
        "enhancer": _export(TinyEnhancer(), (face,), ["input"], folder / "enhancer.onnx"),
        "codeformer": _export(TinyEnhancer(fidelity=True), (face, torch.tensor([0.5], dtype=torch.float64)),
                              ["x", "w"], folder / "codeformer.onnx"),
        "occluder": _export(TinyOccluder(), (torch.rand(1, 64, 64, 3),), ["input"], folder / "occluder.onnx"),
        "parser": _export(TinyParser(), (torch.rand(1, 3, 64, 64),), ["input"], folder / "parser.onnx"),
    }


class TinyStyledSwap(torch.nn.Module):
    """A swap model of another family's shape: returns the face it is given (`zero=False`) or all zeros, and
    (HyperSwap-style) a second output, a mask."""

    def __init__(self, zero: bool = False, with_mask: bool = False, imagenet: bool = False) -> None:
        super().__init__()
        self.zero, self.with_mask, self.imagenet = zero, with_mask, imagenet
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406])[None, :, None, None])
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225])[None, :, None, None])

    def forward(self, target: torch.Tensor, source: torch.Tensor):  # noqa: ANN201
        if self.imagenet:  # SimSwap: ImageNet-normalised in, [0, 1] out: undo the normalisation
            target = target * self.std + self.mean
        face = target * 0.0 if self.zero else target
        face = face + source.mean() * 0.0
        return (face, target[:, :1] * 0.0 + 1.0) if self.with_mask else face


def export_styled_swaps(folder: Path) -> dict[str, Path]:
    """hyperswap (256, two outputs), hyperswap_zero, simswap (224) models."""
    identity = torch.rand(1, 512)
    big, mid = torch.rand(1, 3, 256, 256), torch.rand(1, 3, 224, 224)
    out = {}
    for name, model, face in (("hyperswap", TinyStyledSwap(with_mask=True), big),
                              ("hyperswap_zero", TinyStyledSwap(zero=True, with_mask=True), big),
                              ("simswap", TinyStyledSwap(imagenet=True), mid)):
        model.eval()
        path = folder / f"{name}.onnx"
        names = ["output", "mask"] if model.with_mask else ["output"]
        torch.onnx.export(model, (face, identity), str(path), input_names=["target", "source"], output_names=names,
                          opset_version=17, dynamo=False)
        out[name] = path
    return out
