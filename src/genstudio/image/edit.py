"""Pixel work around the pipelines: outpaint canvases, "only masked" crops, ControlNet preprocessors.

Plain OpenCV and Pillow; nothing here loads a model.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageFilter

from genstudio.image.params import Outpaint

FILL_WORK_SIDE = 160  # the outpaint fill is computed at about this size, then enlarged (it is only a start)
MASKED_PADDING = 32  # A1111's "only masked padding": context kept around the mask's box, px


def extend_canvas(init: Image.Image, pad: Outpaint, seed: int = 0) -> tuple[Image.Image, Image.Image]:
    """The init image inside a larger canvas, and the mask of the new area (white = paint).

    The new area is not left flat: it continues the picture's edge colours (OpenCV's Telea inpainting at a
    small size, enlarged and blurred) with a little noise, so that denoising starts from plausible colours and
    the seam does not show a grey band.
    """
    w, h = init.size
    W, H = w + pad.left + pad.right, h + pad.top + pad.bottom
    canvas = np.zeros((H, W, 3), np.uint8)
    canvas[pad.top:pad.top + h, pad.left:pad.left + w] = np.asarray(init.convert("RGB"))
    known = np.zeros((H, W), np.uint8)
    known[pad.top:pad.top + h, pad.left:pad.left + w] = 255
    k = min(1.0, FILL_WORK_SIDE / max(W, H))
    sw, sh = max(8, round(W * k)), max(8, round(H * k))
    small = cv2.resize(canvas, (sw, sh), interpolation=cv2.INTER_AREA)
    # A known pixel at the small size is one whose whole footprint was known (no black bleeding in).
    small_known = cv2.resize(known, (sw, sh), interpolation=cv2.INTER_AREA) >= 250
    filled = cv2.inpaint(small, (~small_known).astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
    big = cv2.resize(filled, (W, H), interpolation=cv2.INTER_CUBIC)
    big = cv2.GaussianBlur(big, (0, 0), sigmaX=max(1.0, 2.0 / k))
    rng = np.random.default_rng(seed)
    noisy = np.clip(big.astype(np.float32) + rng.normal(0.0, 12.0, big.shape), 0, 255).astype(np.uint8)
    new = known == 0
    canvas[new] = noisy[new]
    mask = Image.fromarray(np.where(new, 255, 0).astype(np.uint8), "L")
    return Image.fromarray(canvas), mask


def masked_box(mask: Image.Image, aspect: float, padding: int = MASKED_PADDING) -> tuple[int, int, int, int] | None:
    """The region "only masked" inpainting works on: the mask's bounding box with `padding` pixels of
    context, grown to the generation's aspect ratio (width / height) and kept inside the picture.
    None when the mask is empty."""
    arr = np.asarray(mask.convert("L")) > 127
    ys, xs = np.nonzero(arr)
    if not len(xs):
        return None
    H, W = arr.shape
    x0, x1 = max(0, xs.min() - padding), min(W, xs.max() + 1 + padding)
    y0, y1 = max(0, ys.min() - padding), min(H, ys.max() + 1 + padding)
    bw, bh = x1 - x0, y1 - y0
    if bw / bh < aspect:  # too tall: widen
        bw = min(W, round(bh * aspect))
    else:
        bh = min(H, round(bw / aspect))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    x0 = int(min(max(0, round(cx - bw / 2)), W - bw))
    y0 = int(min(max(0, round(cy - bh / 2)), H - bh))
    return x0, y0, x0 + bw, y0 + bh


def paste_crop(base: Image.Image, made: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """`made` (the repainted crop at generation size) put back over `box` of `base`; the caller composites
    with the mask afterwards, so only masked pixels change."""
    out = base.copy()
    out.paste(made.resize((box[2] - box[0], box[3] - box[1]), Image.Resampling.LANCZOS), box[:2])
    return out


def preprocess(img: Image.Image, name: str) -> Image.Image:
    """A ControlNet control image from a picture, with no model: `canny` edges (white on black, as the canny
    ControlNets were trained), `lineart` (dark lines on white turned to white lines on black, as lineart
    ControlNets take them), `scribble` (thick simplified strokes), or `none` (the picture as given)."""
    rgb = np.asarray(img.convert("RGB"))
    if name == "none":
        return Image.fromarray(rgb)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    side = max(gray.shape)
    if name == "canny":
        # A1111's defaults are 100 / 200 on 512 px images.
        edges = cv2.Canny(gray, 100, 200)
    elif name == "lineart":
        # Lines are where the picture is darker than its neighbourhood (an adaptive threshold), cleaned of specks.
        smooth = cv2.bilateralFilter(gray, 7, 50, 50)
        lines = cv2.adaptiveThreshold(smooth, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV,
                                      blockSize=max(5, (side // 32) | 1), C=6)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(lines, connectivity=8)
        specks = np.nonzero(stats[:, cv2.CC_STAT_AREA] < max(8, side // 32))[0]
        edges = np.where(np.isin(labels, specks[specks > 0]), 0, lines).astype(np.uint8)
    elif name == "scribble":
        # Strong edges of a blurred picture, thickened: the look of a quick hand sketch.
        blurred = cv2.GaussianBlur(gray, (0, 0), sigmaX=max(1.5, side / 256))
        edges = cv2.Canny(blurred, 40, 120)
        k = max(3, side // 128)
        edges = cv2.dilate(edges, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    else:
        raise ValueError(f"preprocessor: unknown {name!r} (none, canny, lineart, scribble)")
    return Image.fromarray(edges).convert("RGB")


PREVIEW_SIDE = 1024


def preprocess_file(path: str, name: str) -> bytes:
    """A preprocessor's output for the file at `path`, as PNG bytes, at most PREVIEW_SIDE px (a preview)."""
    import io

    with Image.open(path) as im:
        im.draft("RGB", (PREVIEW_SIDE, PREVIEW_SIDE))
        img = im.convert("RGB")
    img.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    preprocess(img, name).save(buf, "PNG")
    return buf.getvalue()


def feather_inward(mask: Image.Image, blur: int) -> Image.Image:
    """The mask blurred by `blur` px but never past its own edge (black stays black)."""
    from PIL import ImageChops

    hard = mask.convert("L")
    return ImageChops.darker(hard.filter(ImageFilter.GaussianBlur(blur)), hard) if blur else hard
