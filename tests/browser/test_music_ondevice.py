"""On-device melodies: static/js/music-ondevice.js runs the exported ONNX model with onnxruntime-web in a real
headless Chromium, under the server's own Content-Security-Policy, and agrees with onnxruntime in Python."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services import free_port

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
ort = pytest.importorskip("onnxruntime")

from genstudio.api.app import CSP  # noqa: E402
from genstudio.music.encoding import MelodyEncoding  # noqa: E402
from genstudio.music.onnx_export import BUILTIN_MELODY_MODEL, CONFIG_FILE, DECODER_FILE, ENCODER_FILE  # noqa: E402

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
TIMEOUT_MS = 120_000
ONNX = "/api/music/onnx"


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=120) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if not (BUILTIN_MELODY_MODEL / "model.safetensors").is_file():
        pytest.skip("the built-in melody model is not present")
    data_dir = tmp_path_factory.mktemp("ondevice") / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENSTUDIO_")}
    env.update({"GENSTUDIO_DATA_DIR": str(data_dir), "GENSTUDIO_TORCH_THREADS": "1", "GENSTUDIO_EXECUTOR": "thread"})
    log = data_dir.parent / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "genstudio.cli", "serve", "--port", str(port), "--log-level", "warning"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if _get(f"{base}/api/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not healthy after 90 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base, data_dir
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def exported(server: tuple[str, Path]) -> dict[str, Any]:
    """The files as the server hands them out (the first request exports), with Python sessions on them."""
    base, data_dir = server
    status, headers, body = _get(f"{base}{ONNX}/{CONFIG_FILE}")
    assert status == 200, body
    cfg = json.loads(body)
    cache = data_dir / "onnx" / "melody-2bar"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return {
        "config": cfg,
        "config_etag": headers["etag"],
        "decoder": ort.InferenceSession(str(cache / DECODER_FILE), opts, providers=["CPUExecutionProvider"]),
        "encoder": ort.InferenceSession(str(cache / ENCODER_FILE), opts, providers=["CPUExecutionProvider"]),
    }


# page.evaluate runs outside the page's CSP (DevTools may eval and compile wasm), so the module is loaded by a
# module script of the page's own origin, as the music page would: that load is what the CSP governs.
HARNESS = """import * as ondevice from '/static/js/music-ondevice.js';
window.ondevice = ondevice;
try {
  window.ondeviceConfig = await ondevice.load('/api/music/onnx/');
  window.ondeviceReady = 'ok';
} catch (e) {
  window.ondeviceReady = 'error: ' + e.message;
}
"""
HARNESS_PATH = "/static/test-ondevice-harness.js"  # answered by the test's route; no such file on disk


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _open_module(browser: Any, base: str, csp: str | None = None) -> tuple[Any, Any, list[str], str]:
    """A page on `/` (the server's CSP, or `csp` instead) that loaded the module: (context, page, errors, state)."""
    errors: list[str] = []
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    context.expose_function("__cspViolation", lambda what: errors.append(f"CSP: {what}"))
    context.add_init_script(
        "document.addEventListener('securitypolicyviolation', "
        "e => window.__cspViolation(`${e.violatedDirective} ${e.blockedURI}`))"
    )
    context.route(f"{base}{HARNESS_PATH}", lambda route: route.fulfill(body=HARNESS, content_type="text/javascript"))
    if csp is not None:

        def _with_csp(route: Any) -> None:
            response = route.fetch()
            route.fulfill(response=response, headers={**response.headers, "content-security-policy": csp})

        context.route(f"{base}/", _with_csp)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    response = page.goto(f"{base}/")
    assert response is not None and response.all_headers()["content-security-policy"] == (csp or CSP)
    page.evaluate(
        "(src) => { const s = document.createElement('script'); s.type = 'module'; s.src = src; "
        "document.head.append(s); }",
        HARNESS_PATH,
    )
    page.wait_for_function("() => window.ondeviceReady !== undefined")
    return context, page, errors, page.evaluate("() => window.ondeviceReady")


@pytest.fixture(scope="module")
def page(server: tuple[str, Path], exported: dict[str, Any], browser: Any) -> Iterator[Any]:
    """The image page under the server's real CSP, with the module loaded as `window.ondevice`."""
    context, p, errors, state = _open_module(browser, server[0])
    try:
        assert state == "ok", state
        yield p
    finally:
        context.close()
    assert errors == [], f"errors in the page: {errors}"


def test_wasm_needs_the_csp_allowance(server: tuple[str, Path], exported: dict[str, Any], browser: Any) -> None:
    """Without 'wasm-unsafe-eval' the browser refuses to compile onnxruntime's wasm: why app.CSP carries it."""
    context, _, errors, state = _open_module(browser, server[0], CSP.replace(" 'wasm-unsafe-eval'", ""))
    context.close()
    assert state.startswith("error:") and "WebAssembly" in state, state
    assert any("wasm-eval" in e for e in errors), errors


def test_route_serves_only_its_files_with_etags(server: tuple[str, Path], exported: dict[str, Any]) -> None:
    base, data_dir = server
    cfg = exported["config"]
    for name in (ENCODER_FILE, DECODER_FILE):
        status, headers, body = _get(f"{base}{ONNX}/{name}")
        assert status == 200 and headers["etag"] == f'"{cfg["files"][name]["sha256"]}"'
        assert len(body) == cfg["files"][name]["bytes"]
        assert headers["cache-control"] == "no-cache"
        assert _get(f"{base}{ONNX}/{name}", {"If-None-Match": headers["etag"]})[0] == 304
    assert _get(f"{base}{ONNX}/{CONFIG_FILE}", {"If-None-Match": exported["config_etag"]})[0] == 304
    assert _get(f"{base}{ONNX}/{CONFIG_FILE}", {"If-None-Match": '"stale"'})[0] == 200
    for name in ("model.safetensors", "..%2Fgenstudio.db", ".melody_decoder.onnx.tmp", "x.onnx"):
        status, _, body = _get(f"{base}{ONNX}/{name}")
        assert status == 404, name
    assert sorted(p.name for p in (data_dir / "onnx" / "melody-2bar").iterdir()) == sorted(
        [CONFIG_FILE, DECODER_FILE, ENCODER_FILE]
    )


def test_browser_samples_valid_reproducible_melodies(page: Any, exported: dict[str, Any]) -> None:
    cfg = exported["config"]
    assert page.evaluate("() => window.ondeviceConfig") == cfg
    result = page.evaluate("() => window.ondevice.sample(4, 1.0, 1234)")
    again = page.evaluate("() => window.ondevice.sample(4, 1.0, 1234)")
    other = page.evaluate("() => window.ondevice.sample(4, 1.0, 1235)")
    assert result["seed"] == 1234 and result["tokens"] == again["tokens"] and result["tokens"] != other["tokens"]
    encoding = MelodyEncoding(cfg["min_pitch"], cfg["max_pitch"])
    assert len(result["tokens"]) == len(result["notes"]) == 4
    for row, notes in zip(result["tokens"], result["notes"], strict=True):
        assert len(row) == cfg["num_steps"] and all(0 <= t < cfg["classes"] for t in row)
        # The JS decoder gives exactly what encoding.py's decode gives.
        assert [(n["pitch"], n["start"], n["end"]) for n in notes] == [
            (n.pitch, n.start, n.end) for n in encoding.decode(row)
        ]
        assert all(cfg["min_pitch"] <= n["pitch"] <= cfg["max_pitch"] and n["start"] < n["end"] for n in notes)
    assert sum(len(n) for n in result["notes"]) > 0


@pytest.mark.parametrize("temperature", [0.0, 0.5, 1.0])
def test_browser_tokens_equal_python_onnxruntime(page: Any, exported: dict[str, Any], temperature: float) -> None:
    cfg = exported["config"]
    rng = np.random.default_rng(int(temperature * 10))
    z = rng.standard_normal((6, cfg["z_size"])).astype(np.float32)
    u = rng.random((6, cfg["num_steps"]), dtype=np.float32)
    got = page.evaluate("([z, u, t]) => window.ondevice.decodeWith(z, u, t)", [z.tolist(), u.tolist(), temperature])
    feed = {"z": z, "temperature": np.array(temperature, dtype=np.float32), "u": u}
    expected = exported["decoder"].run(None, feed)[0]
    np.testing.assert_array_equal(np.array(got), expected)


def test_browser_encode_and_interpolate(page: Any, exported: dict[str, Any]) -> None:
    cfg = exported["config"]
    tokens = page.evaluate("() => window.ondevice.sample(2, 0.5, 7)")["tokens"]
    enc = page.evaluate("(rows) => window.ondevice.encode(rows)", tokens)
    mu, sigma = exported["encoder"].run(None, {"tokens": np.array(tokens, dtype=np.int64)})
    np.testing.assert_allclose(np.array(enc["mu"]), mu, atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.array(enc["sigma"]), sigma, atol=1e-4, rtol=0)
    result = page.evaluate("([a, b]) => window.ondevice.interpolate(a, b, 8, 0.0, 3)", tokens)
    z = np.array(result["z"])
    assert z.shape == (8, cfg["z_size"]) and len(result["tokens"]) == len(result["notes"]) == 8
    np.testing.assert_allclose(z[0], mu[0], atol=1e-4)
    np.testing.assert_allclose(z[-1], mu[1], atol=1e-4)
    # Slerp keeps the norm between the endpoints' norms.
    norms = np.linalg.norm(z, axis=1)
    assert norms.min() >= min(norms[0], norms[-1]) * 0.99
    # At temperature 0 the tokens are the sampler's argmax for those z: check against Python.
    feed = {
        "z": z.astype(np.float32),
        "temperature": np.array(0.0, dtype=np.float32),
        "u": np.zeros((8, 32), np.float32),
    }
    np.testing.assert_array_equal(np.array(result["tokens"]), exported["decoder"].run(None, feed)[0])


def test_browser_encodes_notes_like_python(page: Any, exported: dict[str, Any]) -> None:
    """encodeNotes (gallery melodies -> tokens for on-device interpolation) matches MelodyEncoding.encode."""
    from genstudio.music.encoding import MelodyEncoding, Note

    melodies = [
        [[60, 0, 4], [62, 4, 6], [64, 8, 12], [67, 12, 40]],  # a rest before 64, the last note runs past the window
        [[72, 2, 3], [71, 3, 4], [69, 30, 32]],
        [],
    ]
    got = page.evaluate("(ms) => ms.map((m) => window.ondevice.encodeNotes(m))", melodies)
    enc = MelodyEncoding(exported["config"]["min_pitch"], exported["config"]["max_pitch"])
    want = [enc.encode([Note(*n) for n in m], exported["config"]["num_steps"]).tolist() for m in melodies]
    assert got == want
    error = page.evaluate(
        "() => { try { window.ondevice.encodeNotes([[60, 0, 4], [62, 2, 6]]); return null; } "
        "catch (e) { return e.name + ': ' + e.message; } }"
    )
    assert error == "RangeError: notes overlap at step 2: the melody is not monophonic"


def test_browser_rejects_bad_input(page: Any) -> None:
    cases = {
        "() => window.ondevice.sample(0, 1.0, 1)": "n must be an integer in 1-256",
        "() => window.ondevice.sample(1000, 1.0, 1)": "n must be an integer in 1-256",
        "() => window.ondevice.sample(2, NaN, 1)": "temperature must be a number",
        "() => window.ondevice.sample(2, -1, 1)": "temperature must be a number",
        "() => window.ondevice.sample(2, 1.0, -5)": "seed must be an integer",
        "() => window.ondevice.encode([[1, 2, 3]])": "must hold 32 tokens",
        "() => window.ondevice.encode([Array(32).fill(90)])": "is outside 0-89",
        "() => window.ondevice.decodeWith([Array(128).fill(0)], [Array(32).fill(1)], 1)": "u must lie in",
        "() => window.ondevice.interpolate(Array(32).fill(0), Array(32).fill(0), 1, 0, 1)": "steps must be",
    }
    for script, message in cases.items():
        error = page.evaluate(
            f"async () => {{ try {{ await ({script})(); return null; }} catch (e) {{ return e.message; }} }}"
        )
        assert error is not None and message in error, (script, error)
