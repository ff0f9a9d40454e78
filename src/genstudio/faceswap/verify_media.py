"""What `genstudio verify` adds for face-swap outputs: the visible "AI-generated" label (in images and
video frames) and, for MP4, the per-frame video watermark and the stream's basic facts.

The label check is a template match, not a guess: the label is drawn (with the studio's own
`draw_label`) on a flat grey frame of the same size, and the pixels under it are correlated with the
file's pixels at each corner. A labelled corner correlates near 1 (still above 0.8 after H.264 at
crf 23); a corner without the label scores near 0."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

LABEL_THRESHOLD = 0.6
LABEL_FRAMES = 6


def _label_template(shape: tuple[int, ...], corner: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(mask of label pixels, their grey values) for a frame of `shape`, or None if nothing is drawn."""
    from genstudio.faceswap.label import draw_label

    canvas = np.full(shape, 128, np.uint8)
    drawn = draw_label(canvas.copy(), corner=corner)
    mask = np.any(drawn != canvas, axis=2)
    if mask.sum() < 16:
        return None
    ys, xs = np.nonzero(mask)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    # Score the whole bounding box: the text and the box behind it together make the pattern.
    gray = drawn[box].astype(np.float32).mean(axis=2)
    full = np.zeros(mask.shape, bool)
    full[box] = True
    return full, gray


def label_scores(bgr: np.ndarray) -> dict[str, float]:
    """Correlation of each corner with the drawn label (1.0: identical pattern)."""
    from genstudio.faceswap.label import CORNERS

    scores: dict[str, float] = {}
    for corner in CORNERS:
        tpl = _label_template(bgr.shape, corner)
        if tpl is None:
            continue
        mask, gray = tpl
        ys, xs = np.nonzero(mask)
        region = bgr[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32).mean(axis=2)
        a, b = gray - gray.mean(), region - region.mean()
        denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
        scores[corner] = round(float((a * b).sum() / denom), 3) if denom > 0 else 0.0
    return scores


def _no_label() -> dict[str, Any]:
    return {"found": False, "corner": None, "score": None, "frames_checked": 0, "frames_labelled": 0,
            "text": "AI-generated"}


def label_report(frames: list[np.ndarray]) -> dict[str, Any]:
    """Whether most of `frames` carry the label in one corner, and which."""
    try:
        per_frame = [label_scores(f) for f in frames]
    except ImportError as exc:
        return _no_label() | {"error": f"label check unavailable: {exc}"}
    return label_report_of_scores(per_frame)


def label_report_of_scores(per_frame: list[dict[str, float]]) -> dict[str, Any]:
    """label_report from each frame's label_scores (so frames need not be held)."""
    report = _no_label()
    frames = per_frame
    if not per_frame or not per_frame[0]:
        return report | {"error": "no frames to check"}
    best_corner = max(per_frame[0], key=lambda c: float(np.median([s.get(c, 0.0) for s in per_frame])))
    best = [s.get(best_corner, 0.0) for s in per_frame]
    labelled = sum(score >= LABEL_THRESHOLD for score in best)
    found = labelled * 2 > len(frames)
    return report | {
        "found": found,
        "corner": best_corner if found else None,
        "score": round(float(np.median(best)), 3),
        "frames_checked": len(frames),
        "frames_labelled": int(labelled),
    }


def _sample_frames(path: Path, count: int) -> tuple[list[np.ndarray], Any]:
    from genstudio.faceswap import media

    info = media.probe(path)
    total = max(int(info.frames), 1)
    wanted = set(np.linspace(0, total - 1, num=min(count, total)).round().astype(int).tolist())
    frames = []
    for i, frame in enumerate(media.read_frames(path)):
        if i in wanted:
            frames.append(frame)
        if i >= max(wanted):
            break
    return frames, info


VERIFY_FRAMES = 16  # frames decoded by verify: the first ones, one at a time, never held
KEY_FRAMES = 3  # key frames decoded on their own after them (a re-encode keeps the mark best in these)
MAX_FRAME_PIXELS = 3840 * 2160  # larger video frames are not decoded at all (read from the probe)


def _read_bounded(path: Path, info: Any) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """One pass over at most VERIFY_FRAMES frames (the watermark verdict and the label scores of LABEL_FRAMES
    of them), then up to KEY_FRAMES key frames decoded alone. Only the frame being looked at is in memory,
    and the running sum of the first frames' luminance.

    The verdict is the image mark's (`videomark`: outputs since the resynchronising mark) when found, else the
    previous per-frame mark's (`video_watermark`: older outputs)."""
    import cv2

    from genstudio.faceswap import media
    from genstudio.faceswap.video_watermark import EVERY, frame_votes
    from genstudio.provenance import videomark
    from genstudio.provenance.watermark import MAX_BIT_ERRORS, can_watermark, tag_bit_errors

    count = min(VERIFY_FRAMES, max(int(info.frames), 1))
    wanted = set(np.linspace(0, count - 1, num=min(LABEL_FRAMES, count)).round().astype(int).tolist())
    votes, scores, error = [], [], None
    total: np.ndarray | None = None  # a running sum of the frames' luminance, not the frames
    for i, frame in enumerate(media.read_frames(path)):
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if total is None:
            total = gray.astype(np.float32)
        elif gray.shape == total.shape:
            np.add(total, gray, out=total, casting="unsafe")
        if can_watermark(frame.shape[1], frame.shape[0]):
            try:
                votes.append(frame_votes(frame))
            except Exception as exc:  # noqa: BLE001 - a report, never an exception
                error = f"watermark detection failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        if i in wanted:
            scores.append(label_scores(frame))
        del frame
        if i + 1 >= count:
            break
    frames_read = i + 1 if total is not None else 0
    mean = None
    if total is not None:
        total /= frames_read
        mean, total = videomark.for_reading(total), None  # the full-size sum is let go before the search
    keys = media.read_key_frames_luma(path, info.width, info.height, KEY_FRAMES)
    reading = videomark.read_video(mean, frames_read, keys)
    if reading.found or not votes:
        found = reading.report() | {"present": reading.found, "frames_checked": frames_read}
        return found, scores
    stacked = np.stack(votes)
    per_frame = [tag_bit_errors(v > 0) for v in stacked]
    best = min(tag_bit_errors(stacked[p::EVERY].sum(0) > 0) for p in range(min(EVERY, len(stacked))))
    found = {"present": best <= MAX_BIT_ERRORS, "bit_errors": best, "frames_checked": len(votes),
             "frames_detected": sum(e <= MAX_BIT_ERRORS for e in per_frame), "method": "video_watermark"}
    if not found["present"]:  # neither mark: report the resynchronising reader's closest look
        found = reading.report() | {"present": False, "frames_checked": frames_read}
    if error:
        found["error"] = error
    return found, scores


def video_report(data: bytes) -> dict[str, Any]:
    """{"watermark", "label", "video"} for MP4 bytes; never raises.

    Bounded: the probe's frame size is checked first (over MAX_FRAME_PIXELS nothing is decoded), and at
    most VERIFY_FRAMES frames are decoded, one at a time."""
    from genstudio.faceswap import media
    from genstudio.provenance.watermark import WATERMARK_METHOD

    watermark: dict[str, Any] = {
        "found": False,
        "payload": None,
        "bit_errors": None,
        "method": f"{WATERMARK_METHOD} per frame",
    }
    label: dict[str, Any] = {"found": False, "corner": None, "score": None, "text": "AI-generated"}
    video: dict[str, Any] | None = None
    fd, name = tempfile.mkstemp(prefix="genstudio-scratch-verify-", suffix=".mp4")  # swept at start if left
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            info = media.probe(path)
        except Exception as exc:  # noqa: BLE001 - a report, never an exception
            reason = f"not a decodable video: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            return {"watermark": watermark | {"error": reason}, "label": label | {"error": reason}, "video": None}
        video = {
            "width": info.width,
            "height": info.height,
            "fps": info.fps,
            "frames": info.frames,
            "duration_s": info.duration_s,
            "has_audio": info.has_audio,
            "codec": info.codec,
        }
        if info.width * info.height > MAX_FRAME_PIXELS:
            reason = (f"video frames of {info.width}x{info.height} are over the {MAX_FRAME_PIXELS}-pixel limit "
                      "for verification; not decoded")
            return {"watermark": watermark | {"error": reason}, "label": label | {"error": reason}, "video": video}
        try:
            found, scores = _read_bounded(path, info)
            watermark |= {k: v for k, v in found.items() if k != "present"}
            watermark["found"] = bool(found.get("present"))
            label = label_report_of_scores(scores)
        except Exception as exc:  # noqa: BLE001 - a report, never an exception
            reason = f"not a decodable video: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            label["error"] = reason
            watermark.setdefault("error", reason)
    finally:
        path.unlink(missing_ok=True)
    return {"watermark": watermark, "label": label, "video": video}


SEARCH_THRESHOLD = 0.7  # a searched match (any scale and place) needs more than a match where it belongs
SEARCH_SCALES = np.exp(np.linspace(np.log(0.45), np.log(2.2), 30))
SEARCH_PART = 0.65  # share of the label's width a partial template keeps (a crop that cut into the label)


def find_label(bgr: np.ndarray, text: str = "AI-generated") -> dict[str, Any]:
    """The label anywhere near a corner, at any scale 0.45-2.2 of the frame it was drawn on, whole or with a
    third of it cropped away: for each scale, the label as it would have been drawn on the frame before the
    scaling (its size depends on the frame's), resized, and matched (normalised correlation) in each corner
    quadrant, as a whole and by its left and right parts."""
    import cv2

    from genstudio.faceswap.label import CORNERS, LabelDoesNotFit, _overlay

    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    h, w = gray.shape
    best: tuple[float, str | None, float] = (0.0, None, 1.0)
    for s in SEARCH_SCALES:
        try:
            _x, _y, colour, alpha = _overlay(round(w / s), round(h / s), "bottom-right", text)
        except LabelDoesNotFit:
            continue
        tpl = (128.0 * (1 - alpha) + colour * alpha)[:, :, 0].astype(np.float32)
        tw, th = max(8, round(tpl.shape[1] * s)), max(4, round(tpl.shape[0] * s))
        if th * 2 > h or tw * 2 > w:
            continue
        tpl = cv2.resize(tpl, (tw, th), interpolation=cv2.INTER_AREA)
        part = max(8, round(tw * SEARCH_PART))
        for corner in CORNERS:
            y0 = 0 if corner.startswith("top") else h // 2 - th
            x0 = 0 if corner.endswith("left") else w // 2 - tw
            region = gray[y0:y0 + h // 2 + th, x0:x0 + w // 2 + tw]
            for piece in (tpl, tpl[:, :part], tpl[:, tw - part:]):
                score = float(cv2.matchTemplate(region, piece, cv2.TM_CCOEFF_NORMED).max())
                if score > best[0]:
                    best = (score, corner, float(s))
    found = best[0] >= SEARCH_THRESHOLD
    return {"found": found, "corner": best[1] if found else None, "score": round(best[0], 3),
            "scale": round(best[2], 3) if found else None, "searched": True}


def image_label_report(bgr: np.ndarray) -> dict[str, Any]:
    """The label where it is drawn (fast); else searched at other scales and places (a resized or cropped
    copy)."""
    report = label_report([bgr])
    if report["found"]:
        return report
    searched = find_label(bgr)
    return report | searched if searched["found"] else report


VIDEO_FORMATS = ("mp4", "mov")
MAX_LABEL_PIXELS = 4096 * 4096  # the default of GENSTUDIO_MAX_IMAGE_PIXELS, read from the header


def inspect(data: bytes, fmt: str, mime: str | None) -> dict[str, Any] | None:
    """The face-swap studio's part of a verify report: the visible label in an image's corners, and
    for a video the label, the frame watermark and what was read."""
    if fmt in VIDEO_FORMATS:
        found = video_report(data)
        return {"watermark": found["watermark"], "label": found["label"], "video": found["video"]}
    if mime is None or mime.startswith("image/"):
        return {"label": _image_label(data), "frame_watermark": _image_frame_mark(data)}
    return None


def _image_frame_mark(data: bytes) -> dict[str, Any]:
    """The face-swap video's frame watermark in a still (a frame saved as an image): one reader for every
    still. Read like one frame of a video."""
    import io
    import warnings

    from PIL import Image

    from genstudio.faceswap.video_watermark import frame_votes
    from genstudio.provenance.watermark import MAX_BIT_ERRORS, can_watermark, tag_bit_errors

    report: dict[str, Any] = {"found": False, "payload": None, "bit_errors": None, "method": "video_watermark"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_LABEL_PIXELS or not can_watermark(image.width, image.height):
                    return report
                rgb = np.asarray(image.convert("RGB"))
        errors = tag_bit_errors(frame_votes(np.ascontiguousarray(rgb[:, :, ::-1])) > 0)
    except Exception as exc:  # noqa: BLE001 -- a report, never an exception
        return report | {"error": f"frame watermark check failed: {exc}"}
    return report | {"found": errors <= MAX_BIT_ERRORS, "bit_errors": errors,
                     "confidence": round(max(0.0, 1 - errors / 32), 4)}


def _image_label(data: bytes) -> dict[str, Any]:
    """The visible "AI-generated" label of face-swap outputs, looked for in every corner."""
    import io
    import warnings

    from PIL import Image

    report: dict[str, Any] = {"found": False, "corner": None, "score": None}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_LABEL_PIXELS:
                    return report | {"error": "image too large for the label check"}
                rgb = np.asarray(image.convert("RGB"))
        return image_label_report(np.ascontiguousarray(rgb[:, :, ::-1]))
    except Exception as exc:  # noqa: BLE001 -- a report, never an exception
        return report | {"error": f"label check failed: {exc}"}
