"""Live face-swap benchmark: the frame rate the WebSocket holds against a real server process.

A real `genstudio serve` on loopback; a client sends JPEG frames of a moving clip built from the public-domain
astronaut photo (NASA) with Grace Hopper's face (US Navy) as the source, one frame in flight as the web page
does, and times each round trip (encode on the client not counted; decode, swap, label, watermark and encode
on the server and the socket both ways counted).

    .venv/bin/python bench/run_faceswap_live_bench.py [--seconds 20] [--out bench/results/faceswap-live.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]
STATEMENT = "I agree that my face may be used for this benchmark of the live face swap."


def frames(width: int, height: int, n: int = 60) -> list[bytes]:
    from skimage.data import astronaut

    base = cv2.resize(cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR), (width + 2 * n, height + 2 * n))
    out = []
    for i in range(n):
        j = i if i < n // 2 else n - i  # back and forth
        ok, buf = cv2.imencode(".jpg", base[j : j + height, 2 * j : 2 * j + width], [cv2.IMWRITE_JPEG_QUALITY, 80])
        out.append(buf.tobytes())
    return out


def upload(base: str, data: bytes, name: str) -> str:
    boundary = "genstudio-bench"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n\r\n'.encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    req = urllib.request.Request(
        f"{base}/api/uploads", data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    with urllib.request.urlopen(req) as r:
        return json.load(r)["asset_id"]


def run_session(port: int, source: str, jpegs: list[bytes], seconds: float) -> dict:
    latencies, faces = [], 0
    with connect(f"ws://127.0.0.1:{port}/api/faceswap/live", subprotocols=["genstudio.live"],
                 max_size=None) as ws:
        ws.send(json.dumps({"source": source, "consent": {"subject": "Grace Hopper (public-domain photo)",
                                                           "statement": STATEMENT}}))
        assert json.loads(ws.recv())["type"] == "ready"
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            ws.send(jpegs[i % len(jpegs)])
            ws.recv()  # the swapped JPEG
            stats = json.loads(ws.recv())
            latencies.append((time.perf_counter() - t0) * 1000)
            faces += stats["faces"]
            i += 1
        elapsed = time.perf_counter() - start
        ws.send(json.dumps({"type": "stop"}))
        ws.recv()
    lat = sorted(latencies)
    return {
        "frames": len(lat),
        "seconds": round(elapsed, 2),
        "fps": round(len(lat) / elapsed, 2),
        "latency_ms_p50": round(statistics.median(lat), 1),
        "latency_ms_p95": round(lat[int(0.95 * (len(lat) - 1))], 1),
        "frames_with_a_face_swapped": faces,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "faceswap-live.json"))
    args = p.parse_args()
    from matplotlib import cbook

    face = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GENSTUDIO_")}
        proc = subprocess.Popen([sys.executable, "-m", "genstudio.cli", "serve", "--port", str(port),
                                 "--data-dir", tmp, "--log-level", "warning"], env=env, cwd=ROOT)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{base}/api/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.2)
            source = upload(base, face, "grace_hopper.jpg")
            results = {}
            for width, height in ((640, 480), (320, 240)):
                jpegs = frames(width, height)
                run_session(port, source, jpegs, 2.0)  # warm-up
                results[f"{width}x{height}"] = run_session(port, source, jpegs, args.seconds)
                print(width, height, results[f"{width}x{height}"], flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    report = {
        "what": "live face swap over the WebSocket, one frame in flight, real server on loopback",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg()},
        "results": results,
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
