"""Live preview: a small approximate image of the current sampling step, without running the VAE.

Stable Diffusion's 4-channel latents map to RGB almost linearly; the factors below are the least-squares
fits published by the community (Keturn's "latent to RGB" notes for SD 1.x/2.x, the SDXL VAE's refit), as
used by A1111 and ComfyUI's cheap previews. The built-in model samples in pixel space: its own decode is
the preview. Families without a known projection (SD3, FLUX: 16 packed channels) get no preview."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
from PIL import Image

PREVIEW_SIDE = 256
PREVIEWS_PER_JOB = 6  # at most this many per job (and at least one in any job of 4 steps or more)

# rows: latent channel; columns: R, G, B
_SD_FACTORS = torch.tensor(
    [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]]
)
_SDXL_FACTORS = torch.tensor(
    [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]]
)
_SDXL_BIAS = torch.tensor([0.1084, -0.0175, -0.0011])


def preview_steps(steps: int) -> set[int]:
    """The (1-based) steps after which a preview is made: evenly spread, always the last when steps >= 4."""
    if steps < 4:
        return set()
    every = max(1, round(steps / PREVIEWS_PER_JOB))
    return {s for s in range(every, steps + 1, every)} | {steps}


def latent_rgb(pipe: Any, latents: torch.Tensor, family: str) -> np.ndarray | None:
    """(h, w, 3) floats in [0, 1] for the first image of the batch, or None."""
    first = latents[:1].detach().float().cpu()
    if family == "builtin" and hasattr(pipe, "decode"):
        with torch.no_grad():
            img = pipe.decode(first.to(next(pipe.unet.parameters()).device))[0].float().cpu()
        return ((img.permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy()
    if first.shape[1] != 4 or family in ("sd3", "flux"):  # their latents are not SD's: no projection known
        return None
    if family in ("sdxl", "sdxl-refiner"):
        rgb = torch.einsum("chw,cr->hwr", first[0], _SDXL_FACTORS) + _SDXL_BIAS
    else:
        rgb = torch.einsum("chw,cr->hwr", first[0], _SD_FACTORS)
    return ((rgb + 1) / 2).clamp(0, 1).numpy()


def preview_jpeg(pipe: Any, latents: torch.Tensor, family: str, size: tuple[int, int]) -> bytes | None:
    """A JPEG of the current step at most PREVIEW_SIDE on its long side, in the output's aspect ratio."""
    rgb = latent_rgb(pipe, latents, family)
    if rgb is None:
        return None
    w, h = size
    scale = PREVIEW_SIDE / max(w, h)
    im = Image.fromarray((rgb * 255).round().astype(np.uint8)).resize(
        (max(1, round(w * min(scale, 1.0))), max(1, round(h * min(scale, 1.0)))), Image.Resampling.BILINEAR
    )
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=70)
    return buf.getvalue()
