"""Customisation (API v2): LoRAs (PEFT and kohya layouts, several at once, weight 0 = exactly none, A1111's
<lora:ID:W> tags), textual-inversion embeddings, ControlNet units (weight, start/end, preprocessors), their
registration by kind, their PNG keys and the errors that name the field."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from safetensors.torch import save_file

from helpers import wait_job
from toy_addons import save_controlnet, save_embedding, save_kohya_lora, save_peft_lora


@pytest.fixture(scope="module")
def toys(tmp_path_factory: pytest.TempPathFactory, tiny_sd_dir: Path) -> dict[str, Path]:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd_dir)
    root = tmp_path_factory.mktemp("addons")
    return {
        "peft": save_peft_lora(pipe, root / "toy-peft.safetensors", seed=0),
        "kohya": save_kohya_lora(pipe, root / "toy-kohya.safetensors", seed=1),
        "cn": save_controlnet(pipe, root / "toy-cn"),
        "emb": save_embedding(pipe, root / "toy-style.safetensors"),
    }


@pytest.fixture(scope="module")
def tiny_pipe(tiny_sd_dir: Path) -> Any:
    from genstudio.image.backend import load_pipeline
    from genstudio.image.models import ModelEntry

    return load_pipeline(ModelEntry(id="tiny", format="folder", source=str(tiny_sd_dir)))


def entry(path: Path, kind: str) -> Any:
    from genstudio.image.models import ModelEntry

    fmt = "folder" if path.is_dir() else "single_file"
    return ModelEntry(id=path.stem, format=fmt, source=str(path), kind=kind)  # type: ignore[arg-type]


def params(**kw: Any) -> Any:
    from genstudio.image.params import ImageParams

    base = dict(prompt="a cat", negative_prompt="", style=None, model="tiny", seed=3, steps=4, guidance=1.0,
                width=64, height=64, batch=1, sampler="ddim", tile=False)
    return ImageParams(**{**base, **kw})


def make(pipe: Any, addons: Any = None, prompt: str = "a cat", **kw: Any) -> np.ndarray:
    from genstudio.image.backend import generate

    return np.asarray(generate(pipe, params(**kw), prompt=prompt, negative_prompt="", addons=addons)[0], float)


def test_lora_weight_zero_is_exactly_no_lora_and_weight_orders_the_change(tiny_pipe: Any, toys: dict) -> None:
    from genstudio.image.addons import Addons

    plain = make(tiny_pipe)
    for layout in ("peft", "kohya"):
        lora = entry(toys[layout], "lora")
        zero = make(tiny_pipe, Addons(loras=[(lora, 0.0)]))
        assert np.array_equal(zero, plain), layout
        half = make(tiny_pipe, Addons(loras=[(lora, 0.5)]))
        full = make(tiny_pipe, Addons(loras=[(lora, 1.0)]))
        d_half, d_full = np.abs(half - plain).mean(), np.abs(full - plain).mean()
        assert 0 < d_half < d_full, (layout, d_half, d_full)
    both = make(tiny_pipe, Addons(loras=[(entry(toys["peft"], "lora"), 1.0), (entry(toys["kohya"], "lora"), 1.0)]))
    assert not np.array_equal(both, full)
    assert np.array_equal(make(tiny_pipe), plain)  # nothing left switched on after a LoRA job


def test_kohya_and_peft_layouts_of_one_lora_give_one_image(tiny_pipe: Any, tmp_path: Path, tiny_sd_dir: Path) -> None:
    from diffusers import StableDiffusionPipeline

    from genstudio.image.addons import Addons

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd_dir)
    a = make(tiny_pipe, Addons(loras=[(entry(save_peft_lora(pipe, tmp_path / "p.safetensors", seed=5), "lora"), 1)]))
    b = make(tiny_pipe, Addons(loras=[(entry(save_kohya_lora(pipe, tmp_path / "k.safetensors", seed=5), "lora"), 1)]))
    assert np.abs(a - b).max() <= 2.0  # the same weights, read from either layout


def test_controlnet_steers_and_weight_zero_is_none(tiny_pipe: Any, toys: dict) -> None:
    from genstudio.image.addons import Addons, controlnet
    from genstudio.image.params import ControlUnit

    cn = controlnet(tiny_pipe, entry(toys["cn"], "controlnet"))
    control = Image.new("RGB", (64, 64), 0)
    control.paste((255, 255, 255), (16, 16, 48, 48))
    plain = make(tiny_pipe)

    def unit(**kw: Any) -> Any:
        return Addons(controls=[(cn, control, ControlUnit(model="toy-cn", image="x", **kw))])

    assert np.array_equal(make(tiny_pipe, unit(weight=0.0)), plain)
    steered = make(tiny_pipe, unit(weight=1.0))
    assert np.abs(steered - plain).mean() > 0.5
    late = make(tiny_pipe, unit(weight=1.0, start=0.5, end=1.0))
    assert 0 < np.abs(late - plain).mean() < np.abs(steered - plain).mean() + 1e-9
    two = Addons(controls=[(cn, control, ControlUnit(model="a", image="x")),
                           (cn, control.transpose(Image.FLIP_LEFT_RIGHT), ControlUnit(model="a", image="x"))])
    assert make(tiny_pipe, two).shape == plain.shape
    # with img2img too (diffusers' ControlNet img2img pipeline of the family)
    start = Image.fromarray(np.full((64, 64, 3), 120, np.uint8))
    from genstudio.image.backend import generate

    out = generate(tiny_pipe, params(init_image="s", strength=0.7), prompt="a cat", negative_prompt="",
                   init=start, addons=unit(weight=1.0))
    assert out[0].size == (64, 64)
    # and in the hires fix's refine pass (the control image at the larger size)
    out = generate(tiny_pipe, params(hires={"scale": 2, "strength": 0.5, "upscaler": "latent"}), prompt="a cat",
                   negative_prompt="", addons=unit(weight=1.0))
    assert out[0].size == (128, 128)


def test_single_file_controlnet_loads_offline(tiny_pipe: Any, tmp_path: Path, tiny_sd_dir: Path) -> None:
    """A ControlNet as one file in the original layout (what CivitAI serves), configured offline from the
    model's own UNet: the weights that load are the ones written."""
    from diffusers import StableDiffusionPipeline

    from genstudio.image.addons import controlnet
    from genstudio.image.models import family_of
    from toy_addons import save_single_file_controlnet

    path, made = save_single_file_controlnet(StableDiffusionPipeline.from_pretrained(tiny_sd_dir),
                                             tmp_path / "cn-single.safetensors")
    loaded = controlnet(tiny_pipe, entry(path, "controlnet"))
    ours, theirs = loaded.state_dict(), made.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert family_of(entry(path, "controlnet")) == "unknown"  # a 32-wide toy: no real family's text width


def test_embedding_by_its_id_in_the_prompt(tiny_pipe: Any, toys: dict) -> None:
    from genstudio.image.addons import Addons

    emb = entry(toys["emb"], "embedding")
    plain = make(tiny_pipe, prompt="a cat toy-style")
    used = make(tiny_pipe, Addons(embeddings=[emb]), prompt="a cat toy-style")
    assert np.abs(used - plain).mean() > 0.1


def test_preprocessors_make_control_images() -> None:
    from genstudio.image.edit import preprocess

    arr = np.full((128, 128, 3), 230, np.uint8)
    arr[32:96, 32:96] = 30  # a dark square on light grey
    img = Image.fromarray(arr)
    for name in ("canny", "lineart", "scribble"):
        out = np.asarray(preprocess(img, name).convert("L"))
        assert out.shape == (128, 128)
        edge, flat = out[28:100, 28:36].max(), out[50:80, 50:80].max()
        assert edge == 255 and flat == 0, (name, edge, flat)  # lines on the square's edge, none inside
    assert np.array_equal(np.asarray(preprocess(img, "none")), arr)


# ---- through the API and the CLI --------------------------------------------------------------------------

def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _upload(client: TestClient, im: Image.Image) -> str:
    return client.post("/api/uploads", files={"file": ("c.png", _png(im), "image/png")}).json()["asset_id"]


def test_api_loras_controlnets_and_their_png_keys(client: TestClient, toys: dict) -> None:
    registry = client.app.state.genstudio.studios["image"].registry
    for name, kind in (("peft", "lora"), ("kohya", "lora"), ("cn", "controlnet"), ("emb", "embedding")):
        registry.add(str(toys[name]), kind=kind)
    kinds = {m["id"]: m["kind"] for m in client.get("/api/models").json()}
    assert kinds["toy-peft"] == kinds["toy-kohya"] == "lora" and kinds["toy-cn"] == "controlnet"
    assert [m["id"] for m in client.get("/api/models?kind=lora").json()] == ["toy-peft", "toy-kohya"]
    assert "toy-peft" not in [m["id"] for m in client.get("/api/models?kind=image").json()]
    control = Image.new("RGB", (64, 64), 0)
    control.paste((255, 255, 255), (16, 16, 48, 48))
    image = _upload(client, control)
    body = {"prompt": "a cat <lora:toy-kohya:0.6>", "steps": 4, "seed": 2, "width": 64, "height": 64,
            "loras": [{"id": "toy-peft", "weight": 0.8}],
            "controlnets": [{"model": "toy-cn", "image": image, "preprocessor": "canny", "weight": 0.9,
                             "start": 0.1, "end": 0.8}]}
    r = client.post("/api/images", json=body)
    assert r.status_code == 202, r.text
    assert r.json()["params"]["loras"] == [{"id": "toy-peft", "weight": 0.8}, {"id": "toy-kohya", "weight": 0.6}]
    job = wait_job(client, r.json()["job_id"], timeout=120)
    assert job["status"] == "succeeded", job["error"]
    data = client.get(f"/api/assets/{job['assets'][0]}").content
    text = Image.open(io.BytesIO(data)).text["parameters"]
    assert "<lora:toy-peft:0.8>" in text and "<lora:toy-kohya:0.6>" in text
    assert 'Lora hashes: "toy-peft: ' in text and "toy-kohya: " in text
    assert 'ControlNet 0: "Module: canny, Model: toy-cn [' in text and "Guidance Start: 0.1" in text
    back = client.post("/api/images/params", files={"file": ("x.png", data, "image/png")}).json()
    assert back["params"]["loras"] == r.json()["params"]["loras"]
    from genstudio.image.pngmeta import parse_a1111

    a1111 = parse_a1111(back["parameters"])
    assert sorted(lo["id"] for lo in a1111["loras"]) == ["toy-kohya", "toy-peft"]
    assert a1111["controlnets"][0] | {"image": None} == {"model": "toy-cn", "preprocessor": "canny", "weight": 0.9,
                                                         "start": 0.1, "end": 0.8, "image": None}
    # The preprocessor preview
    r = client.post("/api/images/preprocess", json={"image": image, "preprocessor": "canny"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    edges = np.asarray(Image.open(io.BytesIO(r.content)).convert("L"))
    assert edges[13:19, 20:40].max() == 255 and edges[30, 30] == 0


def test_api_errors_name_the_field(client: TestClient, toys: dict, tmp_path: Path) -> None:
    registry = client.app.state.genstudio.studios["image"].registry
    registry.add(str(toys["peft"]), kind="lora")
    registry.add(str(toys["cn"]), kind="controlnet")
    xl = tmp_path / "xl-lora.safetensors"  # an SDXL LoRA: 2048-wide text states
    save_file({"lora_unet_x_attn2_to_k.lora_down.weight": torch.zeros(4, 2048),
               "lora_unet_x_attn2_to_k.lora_up.weight": torch.zeros(320, 4)}, str(xl))
    registry.add(str(xl), kind="lora")
    image = _upload(client, Image.new("RGB", (64, 64)))
    cases = [
        ({"loras": [{"id": "nope", "weight": 1}]}, "loras.0.id"),
        ({"loras": [{"id": "xl-lora", "weight": 1}]}, "loras.0.id"),  # for sdxl; tiny-sd is sd1
        ({"prompt": "a <lora:xl-lora:1>"}, "loras.0.id"),
        ({"loras": [{"id": "tiny-sd", "weight": 1}]}, "loras.0.id"),  # an image model, not a LoRA
        ({"controlnets": [{"model": "toy-peft", "image": image}]}, "controlnets.0.model"),
        ({"controlnets": [{"model": "toy-cn", "image": "0" * 32}]}, "controlnets.0.image"),
        ({"controlnets": [{"model": "toy-cn", "image": image, "start": 0.8, "end": 0.2}]}, "controlnets.0.end"),
        ({"model": "builtin:emoji-tiny", "loras": [{"id": "toy-peft", "weight": 1}]}, "loras"),
    ]
    for extra, field in cases:
        r = client.post("/api/images", json={"prompt": "x", "steps": 4, **extra})
        assert r.status_code in (404, 422) and field in r.text, (extra, r.text)
    assert "sdxl" in client.post("/api/images", json={"prompt": "x", "loras": [{"id": "xl-lora"}]}).text


def test_registering_add_ons(settings: Any, toys: dict, tmp_path: Path, tiny_sd_dir: Path) -> None:
    from diffusers import StableDiffusionPipeline

    from genstudio.image.models import ModelError, ModelRegistry
    from toy_addons import save_single_file_controlnet

    registry = ModelRegistry(settings)
    single, _ = save_single_file_controlnet(StableDiffusionPipeline.from_pretrained(tiny_sd_dir),
                                            tmp_path / "cn.safetensors")
    assert registry.add(str(single), kind="controlnet").format == "single_file"
    with pytest.raises(ModelError, match="does not look like a controlnet"):
        registry.add(str(toys["peft"]), kind="controlnet")
    with pytest.raises(ModelError, match="only .safetensors"):
        (tmp_path / "x.ckpt").write_bytes(b"x")
        registry.add(str(tmp_path / "x.ckpt"), kind="lora")
    with pytest.raises(ModelError, match="does not look like a lora"):
        registry.add(str(toys["emb"]), kind="lora")
    assert registry.add(str(toys["emb"]), kind="embedding").kind == "embedding"
    assert registry.list("embedding")[0].id == "toy-style"
    assert all(e.kind == "image" for e in registry.list())


def test_cli_lora_and_controlnet(tmp_path: Path, toys: dict, tiny_sd_dir: Path) -> None:
    env = {**os.environ, "GENSTUDIO_DATA_DIR": str(tmp_path / "data")}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "genstudio.cli", *args], env=env, capture_output=True,
                              text=True, timeout=300)

    assert cli("models", "add", str(tiny_sd_dir), "--name", "tiny").returncode == 0
    done = cli("models", "add", str(toys["kohya"]), "--kind", "lora", "--name", "k")
    assert done.returncode == 0 and "added k (lora" in done.stdout, done.stderr
    assert cli("models", "add", str(toys["cn"]), "--kind", "controlnet", "--name", "c").returncode == 0
    listing = cli("models", "list").stdout
    assert "lora" in listing and "controlnet" in listing
    control = tmp_path / "control.png"
    Image.new("RGB", (64, 64), 255).save(control)
    out = tmp_path / "o.png"
    done = cli("image", "a cat", "--model", "tiny", "--steps", "4", "--width", "64", "--height", "64",
               "--lora", "k:0.7", "--controlnet", f"c:{control}:scribble:0.5", "-o", str(out), "-q")
    assert done.returncode == 0, done.stderr
    text = Image.open(out).text["parameters"]
    assert "<lora:k:0.7>" in text and "Module: scribble" in text and "Weight: 0.5" in text
    bad = cli("image", "a cat", "--model", "tiny", "--lora", "k:lots", "-o", str(out))
    assert bad.returncode == 1 and "--lora" in bad.stderr



def test_emphasis_and_long_prompts_reach_the_image(tiny_pipe: Any) -> None:
    """A1111 emphasis changes the picture; words past the encoder's window still count (chunked, not cut:
    the toy tokenizer's window is 14 tokens, one per character)."""
    plain = make(tiny_pipe, prompt="a cat")
    assert np.array_equal(make(tiny_pipe, prompt="a (cat:1.0)"), plain)
    assert not np.array_equal(make(tiny_pipe, prompt="a (cat:1.6)"), plain)
    head = "a cat on a mat, " * 4
    assert not np.array_equal(make(tiny_pipe, prompt=head + "red"), make(tiny_pipe, prompt=head + "blue"))


def test_sdxl_lora_controlnet_emphasis_and_edits(tmp_path: Path) -> None:
    """The same road for SDXL (two text encoders, size conditioning): a LoRA in each layout with weight 0 =
    none, a ControlNet of the family (its text-time embedding), A1111 emphasis on both encoders, inpaint
    with the outside kept, and the latent hires fix."""
    from diffusers import StableDiffusionXLPipeline

    from genstudio.image.addons import Addons, controlnet
    from genstudio.image.backend import generate, load_pipeline
    from genstudio.image.models import ModelEntry
    from genstudio.image.params import ControlUnit
    from tiny_models import tiny_sdxl_pipeline

    folder = tmp_path / "tiny-xl"
    tiny_sdxl_pipeline().save_pretrained(folder, safe_serialization=True)
    pipe = load_pipeline(ModelEntry(id="xl", format="folder", source=str(folder)))
    assert pipe._genstudio_family == "sdxl"
    raw = StableDiffusionXLPipeline.from_pretrained(folder)
    peft = entry(save_peft_lora(raw, tmp_path / "xl-peft.safetensors"), "lora")
    kohya = entry(save_kohya_lora(raw, tmp_path / "xl-kohya.safetensors"), "lora")
    cn = controlnet(pipe, entry(save_controlnet(raw, tmp_path / "xl-cn"), "controlnet"))

    def xl(addons: Any = None, prompt: str = "a cat", **kw: Any) -> np.ndarray:
        return np.asarray(generate(pipe, params(sampler="euler", **kw), prompt=prompt, negative_prompt="",
                                   addons=addons)[0], float)

    plain = xl()
    for lora in (peft, kohya):
        assert np.array_equal(xl(Addons(loras=[(lora, 0.0)])), plain)
        assert np.abs(xl(Addons(loras=[(lora, 1.0)])) - plain).mean() > 0.1
    control = Image.new("RGB", (64, 64), 0)
    control.paste((255, 255, 255), (16, 16, 48, 48))
    steered = xl(Addons(controls=[(cn, control, ControlUnit(model="xl-cn", image="x"))]))
    assert np.abs(steered - plain).mean() > 0.1
    assert not np.array_equal(xl(prompt="a (cat:1.5)"), plain)
    # An SDXL textual-inversion file (A1111: one vector set per encoder, clip_l and clip_g) by its id.
    emb_path = tmp_path / "xl-style.safetensors"
    save_file({"clip_l": torch.randn(2, raw.text_encoder.get_input_embeddings().weight.shape[1]),
               "clip_g": torch.randn(2, raw.text_encoder_2.get_input_embeddings().weight.shape[1])}, str(emb_path))
    from genstudio.image.models import family_of

    assert family_of(entry(emb_path, "embedding")) == "sdxl"
    without = xl(prompt="a cat xl-style")  # before it is loaded: the id is plain text
    with_emb = xl(Addons(embeddings=[entry(emb_path, "embedding")]), prompt="a cat xl-style")
    assert np.abs(with_emb - without).mean() > 0.05
    start = Image.fromarray(np.full((64, 64, 3), 90, np.uint8))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    made = generate(pipe, params(sampler="euler", init_image="s", strength=0.9, mask="m", mask_blur=0),
                    prompt="a cat", negative_prompt="", init=start, mask=mask)[0]
    assert np.array_equal(np.asarray(made)[:, 32:], np.asarray(start)[:, 32:])
    big = generate(pipe, params(sampler="euler", hires={"scale": 2, "strength": 0.5, "upscaler": "latent"}),
                   prompt="a cat", negative_prompt="")[0]
    assert big.size == (128, 128)
