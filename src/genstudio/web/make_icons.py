"""Draw the web app's icons (home screen, manifest, favicon) with Pillow: `python make_icons.py`.

The PNGs are committed; run this again only to change the design.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).resolve().parent / "static" / "icons"
SIZE = 1024  # drawn large, then downsampled for smooth edges
TOP = (67, 56, 202)  # theme colour #4338ca
BOTTOM = (192, 38, 211)


def gradient(size: int) -> Image.Image:
    img = Image.new("RGB", (size, size))
    px = img.load()
    for y in range(size):
        for x in range(size):
            t = (x + y) / (2 * (size - 1))
            px[x, y] = tuple(round(a + (b - a) * t) for a, b in zip(TOP, BOTTOM, strict=True))
    return img


def sparkle(cx: float, cy: float, r: float, waist: float) -> list[tuple[float, float]]:
    """A four-pointed star: tips at distance r, joined by curves bent in towards the centre
    (quadratic Béziers whose control point sits at r * waist on the diagonal)."""
    pts: list[tuple[float, float]] = []
    for i in range(4):
        a0, a1 = i * math.pi / 2, (i + 1) * math.pi / 2
        p0 = (cx + r * math.cos(a0), cy + r * math.sin(a0))
        p2 = (cx + r * math.cos(a1), cy + r * math.sin(a1))
        am = (a0 + a1) / 2
        p1 = (cx + r * waist * math.cos(am), cy + r * waist * math.sin(am))
        for k in range(24):
            t = k / 24
            x = (1 - t) ** 2 * p0[0] + 2 * (1 - t) * t * p1[0] + t**2 * p2[0]
            y = (1 - t) ** 2 * p0[1] + 2 * (1 - t) * t * p1[1] + t**2 * p2[1]
            pts.append((x, y))
    return pts


def draw_icon(safe: float) -> Image.Image:
    """`safe` is the fraction of the canvas the artwork may use (maskable icons need about 0.8)."""
    s = SIZE
    img = gradient(s).convert("RGBA")
    art = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(art)
    c = s / 2
    scale = safe * s / 2
    d.polygon(sparkle(c - 0.08 * scale, c + 0.06 * scale, 0.62 * scale, 0.1), fill=(255, 255, 255, 255))
    d.polygon(sparkle(c + 0.48 * scale, c - 0.46 * scale, 0.26 * scale, 0.1), fill=(255, 255, 255, 235))
    r = 0.09 * scale
    x, y = c + 0.44 * scale, c + 0.50 * scale
    d.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255, 210))
    glow = art.filter(ImageFilter.GaussianBlur(s / 60))
    img.alpha_composite(glow)
    img.alpha_composite(art)
    return img.convert("RGB")


def rounded(img: Image.Image, radius: float) -> Image.Image:
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, img.width - 1, img.height - 1), radius=radius, fill=255)
    out = img.convert("RGBA")
    out.putalpha(mask)
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    plain = draw_icon(safe=0.9)
    maskable = draw_icon(safe=0.72)  # inside the maskable safe zone (a circle of 80% diameter)
    rounded(plain, SIZE * 0.2).resize((512, 512), Image.LANCZOS).save(OUT / "icon-512.png", optimize=True)
    rounded(plain, SIZE * 0.2).resize((192, 192), Image.LANCZOS).save(OUT / "icon-192.png", optimize=True)
    maskable.resize((512, 512), Image.LANCZOS).save(OUT / "icon-maskable-512.png", optimize=True)
    # iOS rounds the corners itself and shows transparency as black: a full square.
    plain.resize((180, 180), Image.LANCZOS).save(OUT / "apple-touch-icon.png", optimize=True)


if __name__ == "__main__":
    main()
