"""Fuzz every REST operation from the app's own OpenAPI schema (schemathesis): no request gets a 5xx.

The app is built in-process with no workers, so POST /api/images only enqueues (a full queue answers 429).
Checks kept are the ones the contract (shared/API.md, "Errors") promises: never a 5xx, and every 4xx is
JSON with a `detail`. Not kept: status-code and response-schema conformance (the schema documents only
200/422 and FastAPI's 422 shape; our documented 4xx answers are 404/410/413/415/429 with a string detail),
and positive-data acceptance (schema-valid values can still be over a configured limit).
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin
from schemathesis.checks import not_a_server_error

from genstudio.api.app import create_app
from genstudio.config import Settings
from genstudio.image.params import ImageRequest

MAX_EXAMPLES = 50  # per operation


def _openapi_document() -> dict[str, Any]:
    # The document depends on the routes only; the app that answers is built per test on its own data dir.
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(data_dir=Path(tmp) / "data", executor="thread"), start_workers=False)
        doc = app.openapi()
        app.state.genstudio.store.engine.dispose()
    return doc


schema = schemathesis.openapi.from_dict(_openapi_document())
MULTIPART = {"/api/uploads", "/api/images/params", "/api/verify"}


def _png(text: dict[str, str]) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_itxt(key, value)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (30, 60, 90)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


# Text as Python's JSON parser can deliver it: any code point, lone surrogates (JSON escapes) included.
_text = st.text(st.characters() | st.integers(0xD800, 0xDFFF).map(chr), max_size=20)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63) | st.floats() | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=10,
)
_a1111_value = st.text(st.characters(exclude_characters="\n"), max_size=12) | _text.map(json.dumps)  # A1111 quotes
_a1111 = st.builds(
    lambda prompt, pairs: f"{prompt}\n" + ", ".join(f"{k}: {v}" for k, v in pairs),
    st.text(max_size=30),
    st.lists(
        st.tuples(
            st.sampled_from(["Steps", "Sampler", "CFG scale", "Seed", "Size", "Model", "Style", "Tiling"]),
            _a1111_value,
        ),
        max_size=6,
    ),
)
_MAGIC = [
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"RIFF\x00\x00\x00\x00WEBP",
    b"MThd",
    b"\x00\x00\x00\x18ftyp",
    b"GIF89a",
]


@st.composite
def _file_content(draw: st.DrawFn, generated: Any) -> Any:
    """What schemathesis made for `file` (arbitrary text), or a magic number in front of it, or a real PNG
    carrying generation parameters: so the decoders behind the type sniffing get fuzzed too."""
    raw = generated.encode("utf-8", "surrogatepass") if isinstance(generated, str) else None
    choice = draw(st.integers(0, 3))
    if choice == 0 or raw is None:
        return generated
    if choice == 1:
        return draw(st.sampled_from(_MAGIC)) + raw
    if choice == 2:
        return _png({"parameters": draw(_a1111)})
    return _png({"genstudio": json.dumps(draw(_json_values)), "parameters": draw(_a1111)})


@schema.hook
def flatmap_body(context, body):  # noqa: ANN001, ANN201
    if context.operation is None or context.operation.path not in MULTIPART:
        return st.just(body)
    if not isinstance(body, dict) or "file" not in body:
        return st.just(body)
    return _file_content(body["file"]).map(lambda content: {**body, "file": content})


def error_has_detail(ctx, response, case) -> None:  # noqa: ANN001, ARG001
    """API.md: a bad request answers 4xx with {"detail": ...}."""
    if 400 <= response.status_code < 500:
        payload = json.loads(response.content)
        assert isinstance(payload, dict) and "detail" in payload, f"{response.status_code} without a detail"


@pytest.fixture
def app(settings):  # noqa: ANN001, ANN201
    return create_app(settings, start_workers=False)


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    # One fresh app per operation (a function-scoped fixture) is intended.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_error(case, app) -> None:  # noqa: ANN001
    case.call_and_validate(app=app, checks=[not_a_server_error, error_has_detail])


_IMAGE_FIELDS = list(ImageRequest.model_fields)


@hypothesis.settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@hypothesis.given(body=st.dictionaries(st.sampled_from(_IMAGE_FIELDS) | _text, _json_values, max_size=6) | _json_values)
def test_images_json_beyond_the_schema(app, body) -> None:  # noqa: ANN001
    """What schemathesis does not send: NaN/Infinity, integers past 64 bits and lone surrogate escapes,
    all of which Python's JSON parser accepts."""
    raw = json.dumps({"prompt": "x", **body} if isinstance(body, dict) and "prompt" not in body else body)
    r = TestClient(app).post("/api/images", content=raw, headers={"content-type": "application/json"})
    assert r.status_code < 500
    assert r.status_code in (202, 429) or "detail" in r.json()
