"""The visible "AI-generated" label fits every target: scaled down for narrow or low ones, never clipped,
and a target too small for a legible label is refused naming `target` and the minimum size."""

from __future__ import annotations

import numpy as np
import pytest

from genstudio.faceswap.label import CORNERS, draw_label, label_box, min_target_size, stamp_label
from genstudio.image.params import LimitError


def grey(w: int, h: int) -> np.ndarray:
    return np.full((h, w, 3), 128, np.uint8)


@pytest.mark.parametrize("corner", CORNERS)
@pytest.mark.parametrize("size", [(66, 24), (80, 80), (99, 60), (100, 100), (120, 90), (4000, 30), (70, 1000)])
def test_label_fits_narrow_target(size: tuple[int, int], corner: str) -> None:
    # Left corners of targets under ~100 px wide used to crash the job; right ones cut the text to "AI-gener".
    w, h = size
    out = draw_label(grey(w, h), corner)
    x, y, bw, bh = label_box(w, h, corner)
    assert 0 <= x and x + bw <= w and 0 <= y and y + bh <= h, (x, y, bw, bh)
    changed = np.nonzero(np.abs(out.astype(int) - 128).sum(axis=2))
    ys, xs = changed
    assert ys.min() == y and ys.max() == y + bh - 1 and xs.min() == x and xs.max() == x + bw - 1
    box = out[y : y + bh, x : x + bw]
    # The whole text is inside the box: its edge rows and columns are box only (no ink cut off at the edge).
    edges = np.concatenate([box[0], box[-1], box[:, 0], box[:, -1]])
    assert (edges.max(axis=1) < 80).all()
    ink = box.min(axis=2) > 150  # white strokes (the box alone is 51 on this grey)
    assert ink.sum() > 0.06 * bw * bh
    # The same text as on a large frame, scaled: as many separate strokes along the line (12 glyphs' worth).
    columns = ink.any(axis=0)
    runs = int(columns[0]) + int(np.count_nonzero(columns[1:] & ~columns[:-1]))
    assert runs >= 8, runs
    in_place = grey(w, h)
    stamp_label(in_place, corner)
    assert np.array_equal(in_place, out)


def test_label_too_small_target_refused() -> None:
    need_w, need_h = min_target_size()
    assert (need_w, need_h) == (66, 24)
    for w, h in ((need_w - 1, 200), (200, need_h - 1), (32, 32), (1, 1)):
        for corner in CORNERS:
            with pytest.raises(LimitError) as refused:
                draw_label(grey(w, h), corner)
            assert refused.value.field == "target"
            assert f"{w}x{h}" in refused.value.message and f"at least {need_w}x{need_h}" in refused.value.message


def test_label_unchanged_for_normal_sizes() -> None:
    # Frames that always fitted keep their label exactly: size, place, ~4% of the short side.
    assert label_box(640, 480, "bottom-right") == (455, 421, 178, 52)
    assert label_box(1920, 1080, "top-left") == (16, 16, 417, 114)
    for w, h in ((320, 240), (640, 480), (3840, 2160)):
        for corner in CORNERS:
            _, _, bw, bh = label_box(w, h, corner)
            assert bh >= 0.04 * h and bh >= 14 and bw < 0.5 * w
