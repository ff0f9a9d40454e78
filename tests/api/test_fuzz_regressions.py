"""Requests that once got a 500; each must now be a 4xx whose detail names the field."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image, PngImagePlugin

from genstudio.api.app import create_app


@pytest.fixture
def api(settings) -> Iterator[TestClient]:  # noqa: ANN001
    # No workers: POST /api/images only enqueues. A 500 comes back as a response, not a raised exception.
    with TestClient(create_app(settings, start_workers=False), raise_server_exceptions=False) as c:
        yield c


def post_json(c: TestClient, raw: bytes):  # noqa: ANN201
    return c.post("/api/images", content=raw, headers={"content-type": "application/json"})


def png_with_text(**chunks: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def field_locs(r) -> list[list]:  # noqa: ANN001
    return [e["loc"] for e in r.json()["detail"]]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"prompt": "x", "guidance": NaN}', "guidance"),
        (b'{"prompt": "x", "width": Infinity}', "width"),
        (b'{"prompt": "x", "steps": -Infinity}', "steps"),
        (b'{"prompt": "x", "steps": 1e400}', "steps"),  # overflows to inf when parsed
        (b'{"prompt": NaN}', "prompt"),
    ],
)
def test_non_finite_json_numbers_are_422(api: TestClient, raw: bytes, field: str) -> None:
    # Python's JSON parser takes NaN/Infinity; the validation error used to echo them back, which
    # Starlette refuses to encode (allow_nan=False): 500.
    r = post_json(api, raw)
    assert r.status_code == 422, r.text
    assert ["body", field] in field_locs(r)


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        (b'{"prompt": "\\ud800"}', ["body", "prompt"]),
        (b'{"prompt": "x", "negative_prompt": "a\\udfffb"}', ["body", "negative_prompt"]),
        (b'{"prompt": "x", "steps": "\\ud800"}', ["body", "steps"]),
        (b'{"prompt": "x", "\\ud800": 1}', ["body"]),  # the bad text is the key itself
    ],
)
def test_lone_surrogates_in_json_are_422(api: TestClient, raw: bytes, loc: list) -> None:
    # A lone surrogate escape is valid JSON but not Unicode text. Echoed back (in the error's input, or
    # the accepted job's params) it made the answer unencodable as UTF-8: 500.
    r = post_json(api, raw)
    assert r.status_code == 422, r.text
    assert loc in field_locs(r)


@pytest.mark.parametrize(
    "png",
    [
        png_with_text(parameters='a cat\nSteps: 20, Model: "\\ud800,x"'),
        png_with_text(genstudio='{"prompt": "\\udc00"}'),
    ],
    ids=["a1111-quoted-value", "genstudio-json"],
)
def test_png_params_with_lone_surrogate_is_422(api: TestClient, png: bytes) -> None:
    r = api.post("/api/images/params", files={"file": ("x.png", png, "image/png")})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("file: ")


def test_png_params_with_deeply_nested_json_chunk_is_422(api: TestClient) -> None:
    # json.loads raises RecursionError (not a ValueError) on deep nesting.
    png = png_with_text(genstudio="[" * 100_000 + "]" * 100_000)
    r = api.post("/api/images/params", files={"file": ("x.png", png, "image/png")})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("file: ")


def test_readable_answers_are_unchanged(api: TestClient) -> None:
    # The safety net must not alter ordinary answers.
    r = post_json(api, b'{"prompt": "x", "steps": 0}')
    assert r.status_code == 422
    assert r.json()["detail"][0] | {"ctx": None} == {
        "type": "greater_than_equal",
        "loc": ["body", "steps"],
        "msg": "Input should be greater than or equal to 1",
        "input": 0,
        "ctx": None,
    }
    png = png_with_text(parameters="a cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5")
    r = api.post("/api/images/params", files={"file": ("x.png", png, "image/png")})
    assert r.status_code == 200, r.text
    assert r.json()["params"] == {
        "prompt": "a cat",
        "negative_prompt": "dog",
        "steps": 20,
        "sampler": "euler",
        "guidance": 7.0,
        "seed": 5,
    }


def test_control_characters_in_text_fields_are_422(api) -> None:  # noqa: ANN001
    for field in ("prompt", "negative_prompt"):
        body = {"prompt": "ok", field: "a\u0000b"}
        r = api.post("/api/images", json=body)
        assert r.status_code == 422, r.text
        assert ["body", field] == r.json()["detail"][0]["loc"][:2] and "control" in r.json()["detail"][0]["msg"]
    assert api.post("/api/images", json={"prompt": "two\nlines\tok", "width": 64, "height": 64}).status_code == 202
