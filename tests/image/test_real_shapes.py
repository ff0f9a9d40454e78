"""Real architectures, random weights, offline: the shipped family configs build SD 1.x, SD 2.x and SDXL
at their published sizes (parameter counts), the CLIP tokenizer is CLIP's, and a full-size SD 1.5 pipeline
saved both as a diffusers folder and as an A1111 single file loads through `genstudio models add` (no
--config, no network) and makes a 512x512 image through the API."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save_file

from genstudio.image.single_file import FAMILIES, config_folder
from helpers import wait_job
from ldm_layout import SINGLE_FILE_WRITERS, random_pipeline

# Published parameter counts of the reference models (UNet, VAE, text encoder(s)).
PUBLISHED = {
    "sd1": (859_520_964, 83_653_863, [123_060_480]),
    "sd2": (865_910_724, 83_653_863, [340_387_840]),
    "sd2-base": (865_910_724, 83_653_863, [340_387_840]),
    "sdxl": (2_567_463_684, 83_653_863, [123_060_480, 694_659_840]),
}
# Inpainting checkpoints: the same, with 5 more input channels in the UNet's first convolution (320 x 5 x 3 x 3);
# sd-v1-5-inpainting's UNet has 859,535,364 parameters.
for _family in ("sd1", "sd2-base", "sdxl"):
    _unet, _vae, _text = PUBLISHED[_family]
    PUBLISHED[f"{_family}-inpaint"] = (_unet + 320 * 5 * 9, _vae, _text)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_configs_build_the_published_architectures(family: str, tmp_path: Path) -> None:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    folder = config_folder(family, tmp_path)
    with torch.device("meta"):  # shapes only: no memory
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae"))
        encoders = [CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder"))]
        if (folder / "text_encoder_2").is_dir():
            encoders.append(CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(folder / "text_encoder_2")))
    assert (count(unet), count(vae), [count(e) for e in encoders]) == PUBLISHED[family]
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    assert len(tokenizer) == 49408
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


@pytest.mark.slow
@pytest.mark.parametrize(("family", "config"), [("sd1", "sd1"), ("sd2", "sd2"), ("sd1", "sd1-inpaint")])
def test_full_size_pipeline_as_folder_and_single_file_makes_512px_images(
    family: str, config: str, tmp_path: Path
) -> None:
    """SD 1.5, SD 2.1 and SD 1.5 inpainting (9-channel UNet, recognised from the weights, run as an inpainting
    model even for text to image) at full size (about 1.1 and 1.3 billion parameters). SDXL's full size needs about
    14 GB in float32: it runs in bench/run_real_shapes.py instead of CI."""
    cfg = config_folder(config, tmp_path / "configs")
    pipe = random_pipeline(family, cfg)
    single = tmp_path / f"{family}-random.safetensors"
    save_file(SINGLE_FILE_WRITERS[family](pipe), str(single))
    pipe.to(dtype=torch.float16).save_pretrained(tmp_path / "folder", safe_serialization=True)  # half the disk
    del pipe
    gc.collect()
    assert single.stat().st_size > 1.9e9  # a real SD 1.x/2.x checkpoint in float16 is 2-2.6 GB

    data = tmp_path / "data"
    env = {**os.environ, "GENSTUDIO_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1"}
    for source, name in ((single, "file"), (tmp_path / "folder", "folder")):
        added = subprocess.run([sys.executable, "-m", "genstudio.cli", "models", "add", str(source), "--name", name],
                               env=env, capture_output=True, text=True, timeout=600)
        assert added.returncode == 0, added.stderr
        assert family in added.stdout

    from genstudio.api.app import create_app
    from genstudio.config import Settings

    settings = Settings(data_dir=data, executor="thread", torch_threads=2)
    with TestClient(create_app(settings)) as client:
        families = {m["id"]: m["family"] for m in client.get("/api/models?kind=image").json()}
        assert families["file"] == families["folder"] == family
        for model in ("file", "folder"):
            r = client.post("/api/images", json={"prompt": "a lighthouse", "model": model, "steps": 1, "guidance": 0,
                                                "width": 512, "height": 512, "seed": 1})
            assert r.status_code == 202, r.text
            job = wait_job(client, r.json()["job_id"], timeout=900)
            assert job["status"] == "succeeded", job["error"]
            meta = client.get(f"/api/assets/{job['assets'][0]}/meta").json()
            assert (meta["params"]["width"], meta["params"]["height"]) == (512, 512)
    # Gigabytes each: not left for pytest's kept temp dirs.
    shutil.rmtree(tmp_path, ignore_errors=True)
