"""A loopback stand-in for the Hugging Face hub: serves local folders as model repos over HTTP the way the
hub does (repo info, file tree, `resolve` downloads with commit and etag headers, errors with the hub's
error codes), so `huggingface_hub` itself is exercised with `HF_ENDPOINT` pointed here. No mock: real
sockets, real downloads, real library code paths.

    with hub_standin({"genstudio-test/tiny-sd": folder}) as endpoint: ...
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


def _sha1_git(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Repo:
    def __init__(self, repo_id: str, folder: Path) -> None:
        self.repo_id = repo_id
        self.folder = folder
        self.files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        digest = hashlib.sha1(repo_id.encode())
        for f in self.files:
            digest.update(f.encode() + (folder / f).read_bytes()[:4096])
        self.sha = digest.hexdigest()

    def entry(self, path: str) -> dict:
        data = (self.folder / path).read_bytes()
        out = {"type": "file", "path": path, "size": len(data), "oid": _sha1_git(data)}
        if path.endswith(".safetensors"):  # large files live in LFS on the hub
            out["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return out


def _handler(repos: dict[str, _Repo], log: list[str], chunk_delay: list[float]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: object) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                  ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _not_found(self, code: str = "RepoNotFound") -> None:
            body = json.dumps({"error": "Repository not found"}).encode()
            self._send(404, body, {"X-Error-Code": code, "X-Error-Message": "Repository not found"})

        def _route(self) -> None:
            path = unquote(urlparse(self.path).path)
            log.append(f"{self.command} {path}")
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 5:
                repo = repos.get("/".join(parts[2:4]))
                if repo is None:
                    return self._not_found()
                if parts[4] == "revision":
                    info = {"id": repo.repo_id, "modelId": repo.repo_id, "sha": repo.sha, "private": False,
                            "siblings": [{"rfilename": f} for f in repo.files]}
                    return self._send(200, json.dumps(info).encode())
                if parts[4] == "tree":
                    rest = "/".join(parts[6:])
                    files = [repo.entry(f) for f in repo.files if not rest or f.startswith(rest + "/")]
                    return self._send(200, json.dumps(files).encode())
            if len(parts) >= 5 and parts[2] == "resolve":
                repo = repos.get("/".join(parts[:2]))
                if repo is None:
                    return self._not_found()
                name = "/".join(parts[4:])
                if name not in repo.files:
                    return self._not_found("EntryNotFound")
                data = (repo.folder / name).read_bytes()
                entry = repo.entry(name)
                etag = entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]
                headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
                if "lfs" in entry:
                    headers["X-Linked-Etag"] = f'"{etag}"'
                    headers["X-Linked-Size"] = str(len(data))
                if self.command == "HEAD" or not chunk_delay[0]:
                    return self._send(200, data, headers, "application/octet-stream")
                # Slow download (tests of progress and cancel): the body in small chunks with pauses.
                import time

                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    for i in range(0, len(data), 16384):
                        self.wfile.write(data[i : i + 16384])
                        self.wfile.flush()
                        time.sleep(chunk_delay[0])
                except (BrokenPipeError, ConnectionResetError):
                    pass
                return None
            return self._not_found()

        do_GET = _route  # noqa: N815
        do_HEAD = _route  # noqa: N815

    return Handler


class HubStandin:
    def __init__(self, endpoint: str, log: list[str], chunk_delay: list[float]) -> None:
        self.endpoint = endpoint
        self.log = log
        self._delay = chunk_delay

    def slow(self, seconds_per_16k: float) -> None:
        self._delay[0] = seconds_per_16k


@contextmanager
def hub_standin(repos: dict[str, Path]) -> Iterator[HubStandin]:
    log: list[str] = []
    delay = [0.0]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler({k: _Repo(k, v) for k, v in repos.items()}, log, delay))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HubStandin(f"http://127.0.0.1:{server.server_address[1]}", log, delay)
    finally:
        server.shutdown()
        server.server_close()
