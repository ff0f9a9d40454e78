"""The real loading and generation code on tiny seeded pipelines: SD 1.x/2.x-style, SDXL, one-step."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from genstudio.config import Settings
from genstudio.image.backend import generate, load_pipeline, make_scheduler, resize_image, set_tiling
from genstudio.image.models import ModelEntry, ModelError, ModelRegistry
from genstudio.image.params import ImageParams
from genstudio.image.pngmeta import a1111_text, parse_a1111, read_png_params
from tiny_models import save_tiny_sd, tiny_sd_pipeline, tiny_sdxl_pipeline

SAMPLERS = ["ddim", "euler", "euler_a", "dpmpp_2m", "lcm"]


def params(**kw: object) -> ImageParams:
    base = dict(
        prompt="a cat",
        negative_prompt="blurry",
        style=None,
        model="m",
        seed=1,
        steps=2,
        guidance=5.0,
        width=64,
        height=64,
        batch=1,
        sampler="ddim",
        tile=False,
    )
    base.update(kw)
    return ImageParams(**base)


def pixels(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB")).astype(np.float64)


@pytest.fixture(scope="module")
def sd_pipe(tiny_sd_dir: Path):  # noqa: ANN201
    return load_pipeline(ModelEntry(id="tiny", format="folder", source=str(tiny_sd_dir)))


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_runs_and_is_reproducible(sd_pipe, sampler: str) -> None:  # noqa: ANN001
    calls: list[tuple[int, int]] = []
    a = generate(
        sd_pipe,
        params(sampler=sampler, steps=3),
        prompt="a cat",
        negative_prompt="blurry",
        on_step=lambda d, t: calls.append((d, t)),
    )
    b = generate(sd_pipe, params(sampler=sampler, steps=3), prompt="a cat", negative_prompt="blurry")
    c = generate(sd_pipe, params(sampler=sampler, steps=3, seed=2), prompt="a cat", negative_prompt="blurry")
    assert a[0].size == (64, 64)
    assert calls == [(1, 3), (2, 3), (3, 3)]
    np.testing.assert_array_equal(pixels(a[0]), pixels(b[0]))
    assert np.abs(pixels(a[0]) - pixels(c[0])).mean() > 1.0


def test_batch_images_use_consecutive_seeds(sd_pipe) -> None:  # noqa: ANN001
    batch = generate(sd_pipe, params(batch=2, seed=10), prompt="a cat", negative_prompt="")
    alone = generate(sd_pipe, params(seed=11), prompt="a cat", negative_prompt="")
    assert len(batch) == 2
    assert np.abs(pixels(batch[1]) - pixels(alone[0])).max() <= 2  # same seed, batched matmuls may round differently


def test_one_step_turbo_style_without_guidance(sd_pipe) -> None:  # noqa: ANN001
    out = generate(sd_pipe, params(steps=1, guidance=0.0, sampler="euler_a"), prompt="a cat", negative_prompt="")
    assert out[0].size == (64, 64)


def test_v_prediction_model_loads_and_runs(tmp_path: Path) -> None:
    pipe = tiny_sd_pipeline()
    pipe.scheduler = pipe.scheduler.from_config(pipe.scheduler.config, prediction_type="v_prediction")
    pipe.save_pretrained(tmp_path / "sd2", safe_serialization=True)
    loaded = load_pipeline(ModelEntry(id="sd2", format="folder", source=str(tmp_path / "sd2")))
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    for sampler in SAMPLERS:
        generate(loaded, params(sampler=sampler), prompt="x", negative_prompt="")
        assert loaded.scheduler.config.prediction_type == "v_prediction"


def test_sdxl_folder_loads_through_the_same_path(tmp_path: Path) -> None:
    tiny_sdxl_pipeline().save_pretrained(tmp_path / "xl", safe_serialization=True)
    pipe = load_pipeline(ModelEntry(id="xl", format="folder", source=str(tmp_path / "xl")))
    assert type(pipe).__name__ == "StableDiffusionXLPipeline"
    a = generate(pipe, params(sampler="euler_a"), prompt="a cat", negative_prompt="blurry")
    b = generate(pipe, params(sampler="euler_a"), prompt="a cat", negative_prompt="blurry")
    np.testing.assert_array_equal(pixels(a[0]), pixels(b[0]))


def test_tiling_makes_the_image_wrap(sd_pipe) -> None:  # noqa: ANN001
    """With circular padding the whole pipeline commutes with rolling the noise: no edge is special."""
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 4, 32, 32, generator=g)
    kw = dict(prompt="pattern", num_inference_steps=2, guidance_scale=1.0, width=64, height=64, output_type="np")
    set_tiling(sd_pipe, True)
    try:
        sd_pipe.scheduler = make_scheduler("ddim", sd_pipe._genstudio_base_scheduler_config)
        base = sd_pipe(latents=latents.clone(), **kw).images[0]
        rolled = sd_pipe(latents=torch.roll(latents, shifts=(4, 6), dims=(2, 3)), **kw).images[0]
    finally:
        set_tiling(sd_pipe, False)
    np.testing.assert_allclose(np.roll(base, shift=(8, 12), axis=(0, 1)), rolled, atol=2e-4)


def test_tiled_image_opposite_edges_match(sd_pipe) -> None:  # noqa: ANN001
    def seam_ratio(a: np.ndarray) -> float:
        seam = np.abs(a[:, 0] - a[:, -1]).mean()  # the step across the wrap-around edge
        interior = np.abs(np.diff(a, axis=1)).mean()  # a typical step between neighbours
        return float(seam / interior)

    tiled = pixels(generate(sd_pipe, params(tile=True, steps=3), prompt="cloth", negative_prompt="")[0])
    assert seam_ratio(tiled) < 1.3 and seam_ratio(tiled.transpose(1, 0, 2)) < 1.3
    # Resizing keeps the wrap: the upscaled tile still matches across its edges.
    big = pixels(resize_image(Image.fromarray(tiled.astype(np.uint8)), 256, 256, wrap=True))
    assert seam_ratio(big) < 1.5 and seam_ratio(big.transpose(1, 0, 2)) < 1.5
    assert all(not getattr(m, "padding_mode", "zeros") == "circular" for m in sd_pipe.unet.modules())


def test_registry_add_list_and_errors(tmp_path: Path, tiny_sd_dir: Path) -> None:
    reg = ModelRegistry(Settings(data_dir=tmp_path))
    e = reg.add(str(tiny_sd_dir), name="My Model")
    assert e.id == "my-model" and e.format == "folder"
    assert "my-model" in [m.id for m in reg.list()]
    with pytest.raises(ModelError, match="no such folder"):
        reg.add(str(tmp_path / "missing"))
    (tmp_path / "w.ckpt").write_bytes(b"x")
    with pytest.raises(ModelError, match="only .safetensors"):
        reg.add(str(tmp_path / "w.ckpt"))
    with pytest.raises(ModelError, match="unknown model"):
        reg.get("nope")
    reg.remove("my-model")
    assert "my-model" not in [m.id for m in reg.list()]


def test_single_file_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    save_file({"foo.weight": torch.zeros(2)}, str(tmp_path / "not_sd.safetensors"))
    with pytest.raises(ModelError, match="not a Stable Diffusion checkpoint"):
        load_pipeline(ModelEntry(id="x", format="single_file", source=str(tmp_path / "not_sd.safetensors")))
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2)}, str(tmp_path / "sd.safetensors"))
    with pytest.raises(ModelError, match="--config"):
        load_pipeline(ModelEntry(id="x", format="single_file", source=str(tmp_path / "sd.safetensors")))


def test_hub_pull_without_internet_is_a_clear_error(tmp_path: Path) -> None:
    reg = ModelRegistry(Settings(data_dir=tmp_path))
    with pytest.raises(ModelError, match="could not download|disabled"):
        reg.pull("stabilityai/sd-turbo")
    with pytest.raises(ModelError, match="not a hub id"):
        reg.pull("../../etc")


def test_a1111_text_round_trip() -> None:
    p = params(prompt="a, b", negative_prompt="c", seed=99, sampler="euler_a", guidance=7.5, style="anime", tile=True)
    text = a1111_text(p, final_prompt="anime art of a, b", final_negative="c, lowres", seed=99, model_name="m")
    assert text == (
        "anime art of a, b\nNegative prompt: c, lowres\nSteps: 2, Sampler: Euler a, CFG scale: 7.5, "
        "Seed: 99, Size: 64x64, Model: m, Style: anime, Tiling: True"
    )
    back = parse_a1111(text)
    assert back == {
        "prompt": "anime art of a, b",
        "negative_prompt": "c, lowres",
        "steps": 2,
        "sampler": "euler_a",
        "guidance": 7.5,
        "seed": 99,
        "width": 64,
        "height": 64,
        "model": "m",
        "style": "anime",
        "tile": True,
    }
    # A real A1111 line with extra keys and a quoted value.
    a1111 = (
        "portrait\nNegative prompt: ugly\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, "
        'Seed: 1234, Size: 512x768, Model hash: abc, Model: sd15, Lora hashes: "a: 1, b: 2", Version: v1.9'
    )
    got = parse_a1111(a1111)
    assert got["sampler"] == "dpmpp_2m" and got["width"] == 512 and got["height"] == 768 and got["seed"] == 1234


def test_read_png_params_errors() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    with pytest.raises(ValueError, match="no generation parameters"):
        read_png_params(buf.getvalue())
    with pytest.raises(ValueError, match="not a readable PNG"):
        read_png_params(b"garbage")
    jpg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpg, "JPEG")
    with pytest.raises(ValueError, match="expected a PNG"):
        read_png_params(jpg.getvalue())


def test_tiny_sd_folder_is_safetensors_only(tmp_path: Path) -> None:
    folder = save_tiny_sd(tmp_path / "m")
    assert not list(folder.rglob("*.bin")) and list(folder.rglob("*.safetensors"))
