"""What the attack tests share: the server's address, real image bytes, a raw HTTP exchange."""

from __future__ import annotations

import io
import select
import socket
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

MAX_UPLOAD = 1 << 20  # GENSTUDIO_MAX_UPLOAD_BYTES of the test server: oversize bodies stay small
CAP = MAX_UPLOAD + 64 * 1024  # the body cap: the upload limit plus room for the multipart framing


@dataclass
class Studio:
    base: str
    port: int
    data_dir: Path

    def stored_files(self) -> list[Path]:
        return [p for p in (self.data_dir / "assets").rglob("*") if p.is_file()]


def png_bytes(size: tuple[int, int] = (64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


def chunked_post(
    port: int, path: str, content_type: str, most: int, prefix: bytes = b"", chunk: int = 64 * 1024
) -> tuple[int, bytes]:
    """POST a chunked body (no Content-Length): `prefix`, then up to `most` bytes, over a plain socket, as a
    client that keeps sending does; return the status and body of the answer (read as soon as one comes)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    block = b"%x\r\n" % chunk + b"x" * chunk + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        try:
            s.sendall(head + (b"%x\r\n" % len(prefix) + prefix + b"\r\n" if prefix else b""))
            sent = 0
            while sent < most:
                if select.select([s], [], [], 0)[0]:
                    break  # answered before the end of the body
                s.sendall(block)
                sent += chunk
            else:
                s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while the body was still coming: read the answer
        data = b""
        while b"\r\n\r\n" not in data or len(data) < _expected(data):
            try:
                more = s.recv(65536)
            except ConnectionResetError:
                break
            if not more:
                break
            data += more
    head_end = data.index(b"\r\n\r\n")
    return int(data.split(b" ", 2)[1]), data[head_end + 4 :]


def _expected(data: bytes) -> int:
    if b"\r\n\r\n" not in data:
        return 1 << 62
    head, _, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return 1 << 62
