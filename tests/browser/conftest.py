"""Shared by the image page's browser tests: a real `genstudio serve` on whichever image model is available
(the built-in one, else a tiny seeded SD pipeline), and a headless Chromium whose pages are served under a
strict Content-Security-Policy. (The music pages' tests keep fixtures of their own.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import genstudio
from services import free_port

REPO = Path(__file__).resolve().parents[2]
BUILTIN = Path(genstudio.__file__).resolve().parent / "builtin_models" / "emoji-tiny" / "model_index.json"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000


def _start_server(data_dir: Path, env_extra: dict[str, str]) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENSTUDIO_")}
    env.update({"GENSTUDIO_TORCH_THREADS": "1", "PYTHONUNBUFFERED": "1", **env_extra})
    log = data_dir.parent / f"server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "genstudio.cli",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--log-level",
                "warning",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    return proc, f"http://127.0.0.1:{port}", log


def _wait_healthy(proc: subprocess.Popen, base: str, log: Path, token: str | None, timeout: float = 90.0) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{base}/api/health", headers=headers), timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not healthy after {timeout}s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def model_setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """How to prepare a data dir, the server environment and small request values for whichever
    model is available."""
    if BUILTIN.is_file():
        # The built-in model has a fixed size; keep only the step count small.
        return {
            "tiny": None,
            "env": {},
            "fields": {"Steps": "4"},
            "quick": {"Steps": "2"},
            "big": {"Steps": "100", "Batch (1-8)": "8"},
        }
    # 256 px: the smallest size that carries the invisible watermark.
    return {
        "tiny": request.getfixturevalue("tiny_sd_dir"),
        "env": {"GENSTUDIO_DEFAULT_IMAGE_MODEL": "tiny-sd"},
        "fields": {"Steps": "2", "Width": "256", "Height": "256"},
        "quick": {"Steps": "1", "Width": "64", "Height": "64"},  # where no watermark check follows
        # Long in total (about a second a step here) but short per step, so a cancel lands quickly.
        "big": {"Steps": "100", "Width": "256", "Height": "256"},
    }


def _add_model(folder: Path, name: str, data_dir: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "genstudio.cli",
            "models",
            "add",
            str(folder),
            "--name",
            name,
            "--data-dir",
            str(data_dir),
        ],
        check=True,
        capture_output=True,
        cwd=REPO,
    )


def _serve(
    model_setup: dict[str, Any], data_dir: Path, env: dict[str, str] | None = None, broken_model: bool = False
) -> Iterator[str]:
    if model_setup["tiny"] is not None:
        _add_model(model_setup["tiny"], "tiny-sd", data_dir)
    if broken_model:
        # A diffusers folder with no components: every job on it fails while loading.
        broken = data_dir.parent / "broken-model"
        broken.mkdir()
        (broken / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
        _add_model(broken, "broken", data_dir)
    env = model_setup["env"] | (env or {})
    proc, base, log = _start_server(data_dir, env)
    try:
        _wait_healthy(proc, base, log, env.get("GENSTUDIO_API_TOKEN"))
        yield base
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def serve(model_setup: dict[str, Any]) -> Any:
    """serve(data_dir, env=None, broken_model=False): a generator that yields the base URL of a real
    `genstudio serve` on the model that `model_setup` picked, and stops it when closed."""
    return lambda data_dir, env=None, broken_model=False: _serve(model_setup, data_dir, env, broken_model)


@pytest.fixture(scope="module")
def server(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of the module's own (a fresh data dir), with a model named "broken" that fails every job."""
    yield from serve(tmp_path_factory.mktemp("browser") / "data", broken_model=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


# The page must work under a strict policy: no inline script, style or handler, nothing from elsewhere.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
    "worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def _with_csp(route: Any) -> None:
    response = route.fetch()
    route.fulfill(response=response, headers={**response.headers, "content-security-policy": CSP})


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    """open_page(url, **context_options) -> a loaded page, served under CSP; uncaught page errors and
    policy violations fail the test."""
    contexts = []
    errors: list[str] = []

    def _open(url: str, *, ready: bool = True, **options: Any) -> Any:
        context = browser.new_context(**({"viewport": {"width": 1280, "height": 900}} | options))
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        context.route(re.compile(r"^http://127\.0\.0\.1:\d+/(\?.*)?$"), _with_csp)
        context.expose_function("__cspViolation", lambda what: errors.append(f"CSP: {what}"))
        context.add_init_script(
            "document.addEventListener('securitypolicyviolation', "
            "e => window.__cspViolation(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`))"
        )
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        if ready:
            page.wait_for_selector("body[data-ready='true']", state="attached")
        assert page.evaluate("() => document.querySelectorAll('[style], [onclick], [onload], [onerror]').length") == 0
        return page

    yield _open
    for c in contexts:
        c.close()
    assert errors == [], f"errors in the page: {errors}"
