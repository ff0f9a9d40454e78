"""The image studio over REST: enqueue, progress, assets, gallery, params round trip, errors."""

from __future__ import annotations

import io
import json

from PIL import Image

from helpers import SMALL, wait_job


def test_image_job_end_to_end(client) -> None:  # noqa: ANN001
    r = client.post("/api/images", json={"prompt": "a futuristic city with flying cars", "seed": 42, **SMALL})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    assert r.json()["params"]["seed"] == 42
    job = wait_job(client, job_id)
    assert job["status"] == "succeeded", job
    assert job["progress"] == 1.0 and len(job["assets"]) == 1

    asset_id = job["assets"][0]
    f = client.get(f"/api/assets/{asset_id}")
    assert f.status_code == 200 and f.headers["content-type"] == "image/png"
    im = Image.open(io.BytesIO(f.content))
    assert im.size == (64, 64)
    text = im.text["parameters"]
    assert text.startswith("a futuristic city with flying cars\n")
    assert "Steps: 2, Sampler: DPM++ 2M, CFG scale: 5, Seed: 42, Size: 64x64, Model: tiny-sd" in text

    meta = client.get(f"/api/assets/{asset_id}/meta").json()
    assert meta["seed"] == 42 and meta["job_id"] == job_id and meta["params"]["prompt"].startswith("a futuristic")

    gallery = client.get("/api/gallery?kind=image").json()
    assert [i["id"] for i in gallery["items"]] == [asset_id]

    back = client.post("/api/images/params", files={"file": ("x.png", f.content, "image/png")}).json()
    assert back["source"] == "genstudio" and back["params"]["seed"] == 42 and back["params"]["steps"] == 2

    v = client.post("/api/verify", files={"file": ("x.png", f.content, "image/png")}).json()
    assert v["ai_generated"] is True and v["manifest"]["found"] is True

    assert client.delete(f"/api/assets/{asset_id}").status_code == 200
    assert client.get(f"/api/assets/{asset_id}").status_code == 404
    assert client.get("/api/gallery").json()["items"] == []


def test_same_seed_same_image_and_batch_seeds(client) -> None:  # noqa: ANN001
    def make(**kw: object) -> list[bytes]:
        job = wait_job(
            client, client.post("/api/images", json={"prompt": "a red apple", **SMALL, **kw}).json()["job_id"]
        )
        assert job["status"] == "succeeded", job
        return [client.get(f"/api/assets/{a}").content for a in job["assets"]]

    def pixels(data: bytes) -> bytes:
        return Image.open(io.BytesIO(data)).convert("RGB").tobytes()

    a = make(seed=7)
    b = make(seed=7)
    c = make(seed=8)
    assert pixels(a[0]) == pixels(b[0])
    assert pixels(a[0]) != pixels(c[0])
    batch = make(seed=7, batch=2)
    assert len(batch) == 2
    metas = client.get("/api/gallery?limit=2").json()["items"]
    assert sorted(m["seed"] for m in metas) == [7, 8]


def test_styles_and_models_listed(client) -> None:  # noqa: ANN001
    styles = client.get("/api/styles").json()
    assert len(styles) >= 20 and {"id", "name", "category", "description"} <= set(styles[0])
    models = client.get("/api/models?kind=image").json()
    ids = [m["id"] for m in models]
    assert "tiny-sd" in ids
    # `source` says where a model came from (hub id, "local", "built-in"); no server path leaks.
    assert {m["source"] for m in models} <= {"local", "built-in"}
    assert "/" not in json.dumps([m["source"] for m in models])
    tiny = next(m for m in models if m["id"] == "tiny-sd")
    assert tiny["family"] == "sd1" and tiny["size_bytes"] > 0


def test_style_applies_and_is_recorded(client) -> None:  # noqa: ANN001
    r = client.post("/api/images", json={"prompt": "a dragon", "style": "watercolor", "seed": 1, **SMALL})
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["job_id"])
    png = Image.open(io.BytesIO(client.get(f"/api/assets/{job['assets'][0]}").content))
    first_line = png.text["parameters"].split("\n")[0]
    assert "a dragon" in first_line and first_line != "a dragon"
    assert "Style: watercolor" in png.text["parameters"]


def test_bad_input_is_4xx_naming_field_and_limit(client) -> None:  # noqa: ANN001
    cases = [
        ({"prompt": "x" * 5000}, "prompt", "1000"),
        ({"prompt": "ok", "steps": 1000}, "steps", "100"),
        ({"prompt": "ok", "width": 100}, "width", "multiple of 8"),
        ({"prompt": "ok", "width": 8192}, "width", "1536"),
        ({"prompt": "ok", "batch": 9}, "batch", "8"),
        ({"prompt": "ok", "sampler": "plms"}, "sampler", ""),
        ({"prompt": "ok", "style": "nope"}, "style", "nope"),
        ({"prompt": "ok", "model": "../../etc/passwd"}, "model", "unknown"),
        ({"prompt": "   "}, "prompt", "blank"),
        ({"prompt": "ok", "seed": -1}, "seed", ""),
        ({"prompt": "ok", "extra": 1}, "extra", ""),
        ({}, "prompt", ""),
    ]
    for body, field, limit in cases:
        r = client.post("/api/images", json=body)
        assert r.status_code == 422, (body, r.status_code, r.text)
        detail = r.json()["detail"]
        assert any(field in d["loc"] for d in detail), (body, detail)
        assert limit in " ".join(d["msg"] for d in detail), (body, detail)
    assert client.get("/api/gallery").json()["items"] == []


def test_unknown_ids_are_404(client) -> None:  # noqa: ANN001
    assert client.get("/api/jobs/nope").status_code == 404
    assert client.post("/api/jobs/nope/cancel").status_code == 404
    assert client.get("/api/assets/nope").status_code == 404
    assert client.get("/api/assets/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert client.delete("/api/assets/nope").status_code == 404


def test_sse_streams_progress_until_the_end(client) -> None:  # noqa: ANN001
    job_id = client.post("/api/images", json={"prompt": "a cat", "seed": 3, **{**SMALL, "steps": 4}}).json()["job_id"]
    events = []
    with client.stream("GET", f"/api/jobs/{job_id}/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event:"):
                events.append(line.split(":", 1)[1].strip())
    assert events[-1] == "end" and "progress" in events


def test_page_has_csp_and_models_mark_the_default(client) -> None:  # noqa: ANN001
    page = client.get("/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    models = client.get("/api/models").json()
    assert [m["id"] for m in models if m["default"] and m["kind"] == "image"] == ["tiny-sd"]
    assert [m["id"] for m in client.get("/api/models?kind=image").json() if m["default"]] == ["tiny-sd"]


def test_gallery_pages_with_a_cursor(client) -> None:  # noqa: ANN001
    job = wait_job(
        client, client.post("/api/images", json={"prompt": "a", "seed": 1, "batch": 3, **SMALL}).json()["job_id"]
    )
    assert job["status"] == "succeeded"
    first = client.get("/api/gallery?limit=2").json()
    assert len(first["items"]) == 2 and first["next"] == first["items"][-1]["id"]
    second = client.get(f"/api/gallery?limit=2&before={first['next']}").json()
    assert len(second["items"]) == 1 and second["next"] is None
    assert {i["id"] for i in first["items"] + second["items"]} == set(job["assets"])
    exact = client.get("/api/gallery?limit=3").json()
    assert len(exact["items"]) == 3 and exact["next"] is None
