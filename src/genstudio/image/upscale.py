"""Upscaling: Lanczos, or an upscaler model (ESRGAN, Real-ESRGAN, SwinIR, HAT, SPAN, ... as .safetensors)
loaded through spandrel, the library ComfyUI and chaiNNer use to recognise an architecture from its weights.

Large images go through the model in overlapping tiles, so memory stays bounded whatever the size.
"""

from __future__ import annotations

import sys
import threading
import types
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from genstudio.image.models import ModelError

TILE = 256  # input pixels per tile side
OVERLAP = 16  # input pixels each tile shares with its neighbours (cut away when stitching)
_spandrel_lock = threading.Lock()


def _spandrel() -> Any:
    """Import spandrel. Two of its ~45 architectures (LaMa inpainting, RestoreFormer face restoration)
    import torchvision at import time; PyPI's torchvision wheels are CUDA builds that cannot load beside the
    CPU torch this project pins, so where torchvision is missing a stand-in is present while spandrel
    imports, whose functions refuse to run. Upscalers never use them."""
    with _spandrel_lock:
        if "spandrel" in sys.modules:
            return sys.modules["spandrel"]
        try:
            import torchvision  # noqa: F401
        except Exception:  # noqa: BLE001 - missing, or a build for another torch
            for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
                del sys.modules[name]
            return _import_with_standin()
        import spandrel

        return spandrel


def _import_with_standin() -> Any:
    def refuse(*_a: Any, **_k: Any) -> Any:
        raise ModelError("this architecture needs torchvision, which is not installed (upscalers do not)")

    class InterpolationMode(Enum):
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    names = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
    mods = {n: types.ModuleType(n) for n in names}
    functional = mods["torchvision.transforms.functional"]
    functional.normalize = functional.rotate = refuse  # type: ignore[attr-defined]
    functional.InterpolationMode = InterpolationMode  # type: ignore[attr-defined]
    mods["torchvision"].transforms = mods["torchvision.transforms"]  # type: ignore[attr-defined]
    mods["torchvision.transforms"].functional = functional  # type: ignore[attr-defined]
    sys.modules.update(mods)
    try:
        import spandrel
    finally:
        for n in names:  # gone again: other libraries probe for torchvision and must not find the stand-in
            sys.modules.pop(n, None)
    return spandrel


def load(path: str | Path, device: str = "cpu") -> Any:
    """An upscaler from a .safetensors file (never a pickle), ready to run: spandrel's descriptor."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ModelError(f"{path.name}: upscalers load from .safetensors only (never pickled .pth/.pt)")
    from safetensors.torch import load_file

    spandrel = _spandrel()
    try:
        state = load_file(str(path))
        model = spandrel.ModelLoader(device=torch.device(device)).load_from_state_dict(state)
    except spandrel.UnsupportedModelError as exc:
        raise ModelError(f"{path.name}: not an upscaler architecture spandrel knows (ESRGAN, SwinIR, ...)") from exc
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file
        raise ModelError(f"{path.name}: could not load as an upscaler ({type(exc).__name__}: {exc})") from exc
    if not isinstance(model, spandrel.ImageModelDescriptor):
        raise ModelError(f"{path.name}: a {model.architecture.name} model is not an image-to-image upscaler")
    return model.eval()


def describe(path: str | Path) -> dict[str, Any]:
    """What `models add --kind upscaler` records: the architecture and its scale."""
    model = load(path)
    return {"scale": int(model.scale), "architecture": model.architecture.name}


class UpscalerCache:
    """The last upscaler used stays loaded (most are 1-70 MB)."""

    def __init__(self) -> None:
        self._key: tuple[str, str] | None = None
        self._model: Any = None
        self._lock = threading.Lock()

    def get(self, path: str, device: str) -> Any:
        with self._lock:
            if self._key != (path, device):
                self._model, self._key = load(path, device), (path, device)
            return self._model


def run_model(model: Any, img: Image.Image) -> Image.Image:
    """Run an upscaler over `img` in overlapping tiles; the result is `model.scale` times the size."""
    scale = int(model.scale)
    arr = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
    _, h, w = arr.shape
    out = torch.zeros(3, h * scale, w * scale)
    device = next(iter(model.model.parameters())).device
    dtype = next(iter(model.model.parameters())).dtype
    step = TILE - 2 * OVERLAP
    with torch.inference_mode():
        for y0 in range(0, h, step):
            for x0 in range(0, w, step):
                # The tile with its margin, clipped to the picture; only its centre part is kept.
                ty0, tx0 = max(0, y0 - OVERLAP), max(0, x0 - OVERLAP)
                ty1, tx1 = min(h, y0 + step + OVERLAP), min(w, x0 + step + OVERLAP)
                tile = arr[:, ty0:ty1, tx0:tx1][None].to(device, dtype)
                made = model(tile)[0].float().clamp(0, 1).cpu()
                ky, kx = (y0 - ty0) * scale, (x0 - tx0) * scale
                hh, ww = (min(y0 + step, h) - y0) * scale, (min(x0 + step, w) - x0) * scale
                out[:, y0 * scale:y0 * scale + hh, x0 * scale:x0 * scale + ww] = made[:, ky:ky + hh, kx:kx + ww]
    data = (out.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(data)


def upscale(img: Image.Image, size: tuple[int, int], model: Any = None) -> Image.Image:
    """`img` at `size`: through the model (then Lanczos to the exact size), or Lanczos alone."""
    if model is not None:
        img = run_model(model, img)
    return img if img.size == size else img.resize(size, Image.Resampling.LANCZOS)
