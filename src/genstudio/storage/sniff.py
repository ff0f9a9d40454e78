"""What a file is, from its leading bytes (never from its name or a declared type, which can lie)."""

from __future__ import annotations

import mimetypes

# (magic, offset, short format name, MIME type, upload kind or None when uploads refuse the type)
_MAGIC: list[tuple[bytes, int, str, str, str | None]] = [
    (b"\x89PNG\r\n\x1a\n", 0, "png", "image/png", "image"),
    (b"\xff\xd8\xff", 0, "jpeg", "image/jpeg", "image"),
    (b"GIF8", 0, "gif", "image/gif", None),
    (b"II*\x00", 0, "tiff", "image/tiff", None),
    (b"MM\x00*", 0, "tiff", "image/tiff", None),
    (b"BM", 0, "bmp", "image/bmp", None),
    (b"ID3", 0, "mp3", "audio/mpeg", None),
    (b"fLaC", 0, "flac", "audio/flac", None),
    (b"OggS", 0, "ogg", "audio/ogg", None),
    (b"\xff\xf1", 0, "aac", "audio/aac", None),  # ADTS AAC (MPEG-4)
    (b"\xff\xf9", 0, "aac", "audio/aac", None),  # ADTS AAC (MPEG-2)
    (b"\xff\xfb", 0, "mp3", "audio/mpeg", None),  # MPEG-1 layer III frame, no ID3 tag
    (b"\xff\xf3", 0, "mp3", "audio/mpeg", None),
    (b"\xff\xf2", 0, "mp3", "audio/mpeg", None),
    (b"MThd", 0, "midi", "audio/midi", "midi"),
]


def _riff_or_box(data: bytes) -> tuple[str, str, str | None] | None:
    """The container formats whose type sits a few bytes in (RIFF, ISO-BMFF) or in a header (EBML)."""
    if data[:4] == b"RIFF":
        form = data[8:12]
        if form == b"WEBP":
            return "webp", "image/webp", "image"
        if form == b"WAVE":
            return "wav", "audio/wav", None
        if form == b"AVI ":
            return "avi", "video/x-msvideo", "video"
    if data[4:8] == b"ftyp":
        if data[8:12] == b"M4A ":
            return "m4a", "audio/mp4", None
        if data[8:12] == b"qt  ":
            return "mov", "video/quicktime", "video"
        return "mp4", "video/mp4", "video"
    if data.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska or its WebM profile
        if b"webm" in data[:64]:
            return "webm", "video/webm", "video"
        return "mkv", "video/x-matroska", "video"
    return None


def identify(data: bytes) -> tuple[str, str, str | None] | None:
    """(short format name, MIME type, upload kind or None) from the leading bytes, or None."""
    for magic, offset, name, mime, kind in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return name, mime, kind
    return _riff_or_box(data)


def sniff(data: bytes) -> tuple[str, str] | None:
    """(upload kind, MIME type) for the types an upload may be: images, MIDI and videos; else None."""
    found = identify(data)
    if found is None or found[2] is None:
        return None
    return found[2], found[1]


def sniff_format(data: bytes, *, filename: str | None = None, mime: str | None = None) -> tuple[str, str | None]:
    """(short format name, MIME type) of any file; the name or MIME a client sent is only a fallback."""
    found = identify(data)
    if found is not None:
        return found[0], found[1]
    guess = mime or (mimetypes.guess_type(filename)[0] if filename else None)
    if guess:
        return guess.split("/")[-1].removeprefix("x-"), guess
    return "unknown", None
